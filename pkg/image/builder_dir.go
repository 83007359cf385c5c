package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// AddDir stacks the tree under dir onto the image as the next layer.
// Entries are read with lstat (symlinks below dir are stored, not
// followed); the root takes dir's own mode and owner, and may itself be a
// symlink to a directory. Everything below is opened from directory file
// descriptors without following symlinks, so nothing outside dir is read
// however the tree changes meanwhile. File data is read again at WriteTo
// time, beneath the same root and only if each file is still the one the
// walk saw (device, inode, size); Close releases the root.
func (b *Builder) AddDir(dir string) error {
	b.layer++
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("daxfs build: %s is not a directory", dir)
	}
	if err != nil {
		return fmt.Errorf("daxfs build: %w", &os.PathError{Op: "open", Path: dir, Err: err})
	}
	f := os.NewFile(uintptr(fd), dir)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return fmt.Errorf("daxfs build: %w", &os.PathError{Op: "stat", Path: dir, Err: err})
	}
	root := &srcRoot{name: dir, dir: f}
	b.roots = append(b.roots, root)
	b.lay = nil
	b.root.mode, b.root.uid, b.root.gid = st.Mode, st.Uid, st.Gid
	w := dirWalker{b: b, root: root, links: map[[2]uint64]*node{}}
	return w.walk(f, &srcDir{}, b.root)
}

// srcRoot is one AddDir source: the directory its files are opened beneath.
type srcRoot struct {
	name string   // as given, for messages
	dir  *os.File // held open until Builder.Close
}

// srcDir is a directory below a srcRoot, as a chain of names up to the
// root (whose name is ""), so a deep tree costs memory linear in its size
// rather than one full path per file.
type srcDir struct {
	parent *srcDir
	name   string
}

// appendRel appends the directory's path below the root, "" or "a/b".
func (d *srcDir) appendRel(b []byte) []byte {
	if d == nil || d.parent == nil {
		return b
	}
	b = d.parent.appendRel(b)
	if d.parent.parent != nil {
		b = append(b, '/')
	}
	return append(b, d.name...)
}

// srcFile is where a regular file of an AddDir layer is, and what it was
// when walked.
type srcFile struct {
	root     *srcRoot
	dir      *srcDir
	name     string
	dev, ino uint64
}

// appendRel appends the file's path below its root, "a/b/f".
func (f *srcFile) appendRel(b []byte) []byte {
	if b = f.dir.appendRel(b); f.dir.parent != nil {
		b = append(b, '/')
	}
	return append(b, f.name...)
}

func (f *srcFile) path() string {
	return shortPath(filepath.Join(f.root.name, string(f.appendRel(nil))))
}

// shortPath keeps a message readable when a path runs past PATH_MAX (a
// tree thousands of levels deep): its start and its last components.
func shortPath(p string) string {
	const head, tail = 512, 1024
	if len(p) <= head+tail+64 {
		return p
	}
	return fmt.Sprintf("%s/[%d bytes]/%s", p[:head], len(p)-head-tail, p[len(p)-tail:])
}

// dirWalker carries one AddDir call's hard-link table (dev, ino → node)
// and the path below the root of the entry at hand ("/a/b"), one buffer
// for the whole walk.
type dirWalker struct {
	b     *Builder
	root  *srcRoot
	links map[[2]uint64]*node
	rel   []byte
	link  [MaxSymlinkLen + 1]byte // readlinkat buffer: a full one means too long
}

// testHookStatted runs after an entry is lstat'ed and before it is opened
// or read, so tests can change the tree at the worst moment.
var testHookStatted func(rel string)

// path is the entry at hand as a path for messages.
func (w *dirWalker) path() string { return shortPath(filepath.Join(w.root.name, string(w.rel))) }

// walk reads the directory open as f (d below the root; w.rel its path).
func (w *dirWalker) walk(f *os.File, d *srcDir, dir *node) error {
	names, err := f.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("daxfs build: reading directory %s: %w", w.path(), err)
	}
	fd := int(f.Fd())
	base := len(w.rel)
	defer func() { w.rel = w.rel[:base] }()
	for _, name := range names {
		w.rel = append(append(w.rel[:base], '/'), name...)
		if err := checkName("", name); err != nil {
			return checkName(w.path(), name)
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("daxfs build: %w", &os.PathError{Op: "lstat", Path: w.path(), Err: err})
		}
		if testHookStatted != nil {
			testHookStatted(string(w.rel))
		}
		n := &node{mode: st.Mode, uid: st.Uid, gid: st.Gid}
		switch st.Mode & modeTypeMask {
		case modeDir:
			n.children = map[string]child{}
			if err := w.subdir(fd, &srcDir{d, name}, &st, w.b.put(dir, name, n)); err != nil {
				return err
			}
			continue
		case modeRegular:
			key := [2]uint64{st.Dev, st.Ino}
			if st.Nlink > 1 {
				if first, ok := w.links[key]; ok {
					w.b.put(dir, name, first)
					continue
				}
				w.links[key] = n
			}
			n.size = st.Size
			n.src = &srcFile{root: w.root, dir: d, name: name, dev: st.Dev, ino: st.Ino}
		case modeSymlink:
			k, err := unix.Readlinkat(fd, name, w.link[:])
			if err != nil {
				return fmt.Errorf("daxfs build: %w", &os.PathError{Op: "readlink", Path: w.path(), Err: err})
			}
			n.target = string(w.link[:k])
			if err := checkTarget(w.path(), n.target); err != nil {
				return err
			}
		default:
			if !isSpecial(st.Mode) {
				return fmt.Errorf("daxfs build: %s: unknown file type %#o", w.path(), st.Mode)
			}
			if w.b.opts.Specials != SpecialsKeep {
				w.b.skipped = append(w.b.skipped, string(w.rel))
				continue
			}
		}
		w.b.put(dir, name, n)
	}
	return nil
}

// subdir opens directory d of parent fd without following a symlink,
// checks it is the directory lstat saw, and walks it.
func (w *dirWalker) subdir(parent int, d *srcDir, st *unix.Stat_t, n *node) error {
	fd, err := unix.Openat(parent, d.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("daxfs build: %s: changed during the walk: no longer a directory", w.path())
	case errors.Is(err, unix.EMFILE):
		return fmt.Errorf("daxfs build: %s: the tree is deeper than the open-file limit allows (the walk holds a descriptor per level): %w", w.path(), err)
	}
	if err != nil {
		return fmt.Errorf("daxfs build: %w", &os.PathError{Op: "open", Path: w.path(), Err: err})
	}
	f := os.NewFile(uintptr(fd), d.name) // not the full path: a deep tree's open directories would hold them all
	defer f.Close()
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		return fmt.Errorf("daxfs build: %w", &os.PathError{Op: "stat", Path: w.path(), Err: err})
	}
	if now.Dev != st.Dev || now.Ino != st.Ino {
		return fmt.Errorf("daxfs build: %s: changed during the walk: another directory (inode %d:%d, walked %d:%d)",
			w.path(), now.Dev, now.Ino, st.Dev, st.Ino)
	}
	return w.walk(f, d, n)
}
