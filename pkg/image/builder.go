package image

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Specials says what the Builder does with FIFOs, sockets and device nodes.
type Specials int

const (
	// SpecialsSkip (the default) leaves them out: the kernel's validate
	// option rejects any inode that is not a file, directory or symlink,
	// and device numbers cannot be stored anyway.
	SpecialsSkip Specials = iota
	// SpecialsKeep stores them with size 0 and data_offset 0, as mkdaxfs
	// does; such images mount, but not with validate.
	SpecialsKeep
)

// BuildOptions configures a Builder.
type BuildOptions struct {
	Specials Specials
	// TempDir holds the spool file for tar file data; "" means os.TempDir().
	TempDir string
	// Progress, when set, is called after each object WriteTo writes with
	// the bytes written so far and the image size.
	Progress func(written, total int64)
	// MaxSize, when > 0, caps the image: WriteTo refuses a larger one
	// before writing a byte, and AddTar refuses a member whose data would
	// take the spool (every spooled member, replaced ones included) or
	// the member itself past it, before reading its data.
	MaxSize int64
}

// Builder assembles a tree from directories and tar layers stacked in call
// order, then writes it as a static image.
//
// nlink: each inode stores the number of directory entries pointing at it,
// so directories get 1, a hard-linked file its link count within the image,
// and the root 1 (no entry points at the root, and the kernel forbids 0:
// the one validate rule no image can pass). Inode numbers are assigned
// depth first with each directory's entries sorted by name (bytewise), and
// data follows in inode order, so the same input always gives the same
// bytes. Only regular files share inodes (hard links); hard links to
// anything else become separate inodes.
type Builder struct {
	opts    BuildOptions
	root    *node
	layer   int
	spool   *os.File
	tarFile tarFile // the seekable tar AddTar is reading, if any
	spoolAt int64
	skipped []string
	roots   []*srcRoot // AddDir sources, open until Close
	lay     *layout    // computed by WriteTo / Size; nil after the tree changes
}

// node is one inode of the tree being built.
type node struct {
	mode, uid, gid uint32
	size           int64
	target         string           // symlink target
	children       map[string]child // directories
	src            *srcFile         // regular file: where to re-open it at write time, or
	data           io.ReaderAt      // (src == nil) where a tar member's bytes are:
	dataOff        int64            // the seekable tar itself or the spool file

	ino  uint32   // assigned by layout
	refs uint32   // entries pointing here
	ents []dirent // sorted entries, by layout
	off  uint64   // data offset in the base image, by layout
}

// child is a directory entry; layer says which Add call made it, so an
// opaque directory can drop what lower layers put there.
type child struct {
	n     *node
	layer int
}

type dirent struct {
	name string
	n    *node
}

// NewBuilder returns a Builder holding an empty root directory (0755,
// owned by 0:0) until a layer sets the root's metadata.
func NewBuilder(opts BuildOptions) *Builder {
	return &Builder{opts: opts, root: newDir(modeDir|0o755, 0, 0)}
}

func newDir(mode, uid, gid uint32) *node {
	return &node{mode: mode, uid: uid, gid: gid, children: map[string]child{}}
}

func (n *node) isDir() bool     { return n.mode&modeTypeMask == modeDir }
func (n *node) isRegular() bool { return n.mode&modeTypeMask == modeRegular }

// Skipped lists the special files left out (SpecialsSkip), by path.
func (b *Builder) Skipped() []string { return b.skipped }

// Close removes the spool file of tar data and closes the AddDir sources.
// The Builder is unusable after.
func (b *Builder) Close() error {
	var err error
	for _, r := range b.roots {
		err = errors.Join(err, r.dir.Close())
	}
	b.roots = nil
	if b.spool == nil {
		return err
	}
	name := b.spool.Name()
	err = errors.Join(err, b.spool.Close(), os.Remove(name))
	b.spool = nil
	return err
}

// isSpecial reports FIFOs, sockets and device nodes.
func isSpecial(mode uint32) bool {
	switch mode & modeTypeMask {
	case modeFIFO, modeSocket, modeChar, modeBlock:
		return true
	}
	return false
}

// checkName rejects names the format cannot hold.
func checkName(p, name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("daxfs build: %s: invalid name %q", p, name)
	case len(name) > MaxNameLen:
		return fmt.Errorf("daxfs build: %s: name of %d bytes exceeds %d", p, len(name), MaxNameLen)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("daxfs build: %s: name contains '/' or NUL", p)
	}
	return nil
}

func checkTarget(p, target string) error {
	if target == "" || len(target) > MaxSymlinkLen || strings.IndexByte(target, 0) >= 0 {
		return fmt.Errorf("daxfs build: %s: symlink target of %d bytes is empty, longer than %d or holds a NUL", p, len(target), MaxSymlinkLen)
	}
	return nil
}

// put adds n as dir/name for the current layer. A directory over a
// directory merges (the new metadata wins, the children stay); anything
// else replaces the old entry.
func (b *Builder) put(dir *node, name string, n *node) *node {
	b.lay = nil
	if old, ok := dir.children[name]; ok && old.n.isDir() && n.isDir() {
		old.n.mode, old.n.uid, old.n.gid = n.mode, n.uid, n.gid
		dir.children[name] = child{old.n, b.layer}
		return old.n
	}
	dir.children[name] = child{n, b.layer}
	return n
}

// parent returns the directory holding path parts[:len-1], creating
// missing directories (0755, 0:0) and replacing non-directories on the way.
func (b *Builder) parent(parts []string) *node {
	dir := b.root
	for _, p := range parts[:len(parts)-1] {
		c, ok := dir.children[p]
		if !ok || !c.n.isDir() {
			b.lay = nil
			c = child{newDir(modeDir|0o755, 0, 0), b.layer}
			dir.children[p] = c
		}
		dir = c.n
	}
	return dir
}

// find returns the node at parts, or nil.
func (b *Builder) find(parts []string) *node {
	n := b.root
	for _, p := range parts {
		if n.children == nil {
			return nil
		}
		c, ok := n.children[p]
		if !ok {
			return nil
		}
		n = c.n
	}
	return n
}
