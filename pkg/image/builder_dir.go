package image

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// AddDir stacks the tree under dir onto the image as the next layer.
// Entries are read with lstat (symlinks below dir are stored, not
// followed); the root takes dir's own mode and owner. File data is read
// again at WriteTo time.
func (b *Builder) AddDir(dir string) error {
	b.layer++
	var st syscall.Stat_t // the root may be a symlink to a directory
	if err := syscall.Stat(dir, &st); err != nil {
		return fmt.Errorf("daxfs build: %w", &os.PathError{Op: "stat", Path: dir, Err: err})
	}
	if st.Mode&modeTypeMask != modeDir {
		return fmt.Errorf("daxfs build: %s is not a directory", dir)
	}
	b.lay = nil
	b.root.mode, b.root.uid, b.root.gid = st.Mode, st.Uid, st.Gid
	w := dirWalker{b: b, links: map[[2]uint64]*node{}}
	return w.walk(dir, "", b.root)
}

// dirWalker carries one AddDir call's hard-link table (dev, ino → node).
type dirWalker struct {
	b     *Builder
	links map[[2]uint64]*node
}

func lstat(p string) (*syscall.Stat_t, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return nil, fmt.Errorf("daxfs build: %w", &os.PathError{Op: "lstat", Path: p, Err: err})
	}
	return &st, nil
}

func (w *dirWalker) walk(src, rel string, dir *node) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("daxfs build: %w", err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("daxfs build: reading directory %s: %w", src, err)
	}
	for _, name := range names {
		p, r := filepath.Join(src, name), rel+"/"+name
		if err := checkName(p, name); err != nil {
			return err
		}
		st, err := lstat(p)
		if err != nil {
			return err
		}
		n := &node{mode: st.Mode, uid: st.Uid, gid: st.Gid}
		switch st.Mode & modeTypeMask {
		case modeDir:
			n.children = map[string]child{}
			if err := w.walk(p, r, w.b.put(dir, name, n)); err != nil {
				return err
			}
			continue
		case modeRegular:
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if st.Nlink > 1 {
				if first, ok := w.links[key]; ok {
					w.b.put(dir, name, first)
					continue
				}
				w.links[key] = n
			}
			n.size, n.src = st.Size, p
		case modeSymlink:
			if n.target, err = os.Readlink(p); err != nil {
				return fmt.Errorf("daxfs build: %w", err)
			}
			if err := checkTarget(p, n.target); err != nil {
				return err
			}
		default:
			if !isSpecial(st.Mode) {
				return fmt.Errorf("daxfs build: %s: unknown file type %#o", p, st.Mode)
			}
			if w.b.opts.Specials != SpecialsKeep {
				w.b.skipped = append(w.b.skipped, r)
				continue
			}
		}
		w.b.put(dir, name, n)
	}
	return nil
}
