package image

import (
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

// Walk visits the tree depth first, each directory's children sorted by name
// (bytewise), so the order is stable whatever order the image stores. A
// directory reached twice (a cycle or a hard-linked directory) is an error.
func (im *Image) Walk(fn WalkFunc) error { return im.WalkPath("/", fn) }

// WalkPath is Walk starting at p ("/a/b"), which is visited first; a
// symlink at p is not followed.
func (im *Image) WalkPath(p string, fn WalkFunc) error {
	clean := path.Clean("/" + p)
	in, err := im.LookupPath(clean)
	if err != nil {
		return err
	}
	if in.Ino == RootIno && !in.IsDir() {
		return inodeErr(RootIno, "root inode is not a directory (mode %#o)", in.Mode)
	}
	if err := fn(clean, in); err != nil || !in.IsDir() {
		return err
	}
	seen := make([]bool, im.base.inodeCount+1)
	seen[in.Ino] = true
	return im.walkDir(strings.TrimSuffix(clean, "/"), in.Ino, seen, fn)
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

func (im *Image) walkDir(prefix string, dir uint32, seen []bool, fn WalkFunc) error {
	ents, err := im.ReadDir(dir)
	if err != nil {
		return err
	}
	slices.SortFunc(ents, func(a, b DirEntry) int { return strings.Compare(a.Name, b.Name) })
	for j, e := range ents {
		in, err := im.Inode(e.Ino)
		if err != nil {
			return err
		}
		p := prefix + "/" + e.Name
		if in.IsDir() {
			if seen[e.Ino] {
				return entryErr(dir, j, e.Name, "directory inode %d reached twice (cycle or hard-linked directory)", e.Ino)
			}
			seen[e.Ino] = true
		}
		if err := fn(p, in); err != nil {
			return err
		}
		if in.IsDir() {
			if err := im.walkDir(p, e.Ino, seen, fn); err != nil {
				return err
			}
		}
	}
	return nil
}
