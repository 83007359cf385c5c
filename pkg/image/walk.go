package image

import (
	"slices"
	"strings"
)

// WalkFunc is called for every entry reachable from the root: p is "/" for
// the root and "/a/b" below it. Returning an error stops the walk.
type WalkFunc func(p string, in Inode) error

// Walk visits the tree depth first, each directory's children sorted by name
// (bytewise), so the order is stable whatever order the image stores. A
// directory reached twice (a cycle or a hard-linked directory) is an error.
func (im *Image) Walk(fn WalkFunc) error {
	root, err := im.Inode(RootIno)
	if err != nil {
		return err
	}
	if !root.IsDir() {
		return inodeErr(RootIno, "root inode is not a directory (mode %#o)", root.Mode)
	}
	seen := make([]bool, im.base.inodeCount+1)
	seen[RootIno] = true
	if err := fn("/", root); err != nil {
		return err
	}
	return im.walkDir("", root.Ino, seen, fn)
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
