package image

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// WalkFunc is called for every entry reachable from the root: p is "/" for
// the root and "/a/b" below it. Returning an error stops the walk.
type WalkFunc func(p string, in Inode) error

// WalkBytesFunc is a WalkFunc whose path is a buffer the walk reuses: it is
// valid only during the call and must not be modified.
type WalkBytesFunc func(p []byte, in Inode) error

// Walk visits the tree depth first, each directory's children sorted by name
// (bytewise), so the order is stable whatever order the image stores. A
// directory reached twice (a cycle or a hard-linked directory) is an error.
func (im *Image) Walk(fn WalkFunc) error { return im.WalkPath("/", fn) }

// WalkPath is Walk starting at p ("/a/b"), which is visited first; a
// symlink at p is not followed. Each path handed to fn is a new string,
// which fn may keep.
func (im *Image) WalkPath(p string, fn WalkFunc) error {
	return im.WalkPathBytes(p, func(b []byte, in Inode) error { return fn(string(b), in) })
}

// walkFrame is a directory being listed: its entries sorted by name, the
// next to visit, and the length of its path in the walk's buffer.
type walkFrame struct {
	dir  uint32
	ents []DirEntry
	next int
	plen int
}

// WalkPathBytes is WalkPath without a string per entry. Its memory is
// linear in the depth: one path buffer and the listing of each directory
// on the current path, never a path per level (a chain 20,000 directories
// deep with 255-byte names would otherwise hold gigabytes of prefixes).
func (im *Image) WalkPathBytes(p string, fn WalkBytesFunc) error {
	clean := path.Clean("/" + p)
	in, err := im.LookupPath(clean)
	if err != nil {
		return err
	}
	if in.Ino == RootIno && !in.IsDir() {
		return inodeErr(RootIno, "root inode is not a directory (mode %#o)", in.Mode)
	}
	buf := []byte(clean)
	if err := fn(buf, in); err != nil || !in.IsDir() {
		return err
	}
	seen := make([]uint64, im.base.inodeCount/64+1) // directories visited, a bit per inode
	mark := func(ino uint32) bool {
		w, bit := &seen[ino/64], uint64(1)<<(ino%64)
		was := *w&bit != 0
		*w |= bit
		return was
	}
	mark(in.Ino)
	buf = bytes.TrimSuffix(buf, []byte("/"))
	ents, err := im.sortedDir(in.Ino)
	if err != nil {
		return err
	}
	stack := []walkFrame{{dir: in.Ino, ents: ents, plen: len(buf)}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.next == len(top.ents) {
			top.ents = nil
			stack = stack[:len(stack)-1]
			continue
		}
		j, e, dir := top.next, top.ents[top.next], top.dir
		top.next++
		buf = append(append(buf[:top.plen], '/'), e.Name...)
		in, err := im.Inode(e.Ino)
		if err != nil {
			return err
		}
		if in.IsDir() && mark(e.Ino) {
			return entryErr(dir, j, e.Name, "directory inode %d reached twice (cycle or hard-linked directory)", e.Ino)
		}
		if err := fn(buf, in); err != nil {
			return err
		}
		if in.IsDir() {
			ents, err := im.sortedDir(e.Ino)
			if err != nil {
				return err
			}
			stack = append(stack, walkFrame{dir: e.Ino, ents: ents, plen: len(buf)})
		}
	}
	return nil
}

// sortedDir lists directory dir sorted by name (bytewise).
func (im *Image) sortedDir(dir uint32) ([]DirEntry, error) {
	ents, err := im.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ents, func(a, b DirEntry) int { return strings.Compare(a.Name, b.Name) })
	return ents, nil
}

// LookupPath resolves a slash-separated path from the root without
// following symlinks; "/" and "" are the root.
func (im *Image) LookupPath(p string) (Inode, error) {
	in, err := im.Inode(RootIno)
	for _, c := range strings.Split(p, "/") {
		if err != nil {
			return Inode{}, err
		}
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			return Inode{}, fmt.Errorf("daxfs: path %q: %w", p, fs.ErrInvalid)
		}
		in, err = im.Lookup(in.Ino, c)
		if errors.Is(err, fs.ErrNotExist) {
			return Inode{}, fmt.Errorf("daxfs: path %q: %w", p, fs.ErrNotExist)
		}
	}
	return in, err
}
