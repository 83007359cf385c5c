package fusefs

import (
	"context"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// filesys is what every node of one mount shares.
type filesys struct {
	im     *image.Image
	mapped bool // FileBytes works: reads are answered without copying
	info   image.Info
	idx    *indexCache
	errs   *errLog
	ra     *readAhead

	listingsDecoded atomic.Int64 // directory listings read from the image
	pushBudget      int64        // bytes pushed per directory (pushSiblings)
	pushedFiles     atomic.Int64 // files pushed into the kernel's cache
	readRequests    atomic.Int64 // READs answered
}

// node is one image inode. Inodes are immutable, so the decoded copy taken
// at lookup answers every getattr without touching the image again.
type node struct {
	fs.Inode
	fsys *filesys
	in   image.Inode

	// listing is a directory's decoded entries while a reader is part way
	// through them (see noOpendir); nil otherwise.
	listing atomic.Pointer[[]fuse.DirEntry]
	// pushed: a directory whose small files were stored into the kernel's
	// cache (pushSiblings runs once per directory node).
	pushed atomic.Bool
}

var (
	_ fs.NodeGetattrer = (*node)(nil)
	_ fs.NodeStatfser  = (*node)(nil)
)

func (f *filesys) newNode(in image.Inode) *node { return &node{fsys: f, in: in} }

// stableAttr keys the go-fuse inode by the image inode number, so hard
// links share one kernel inode.
func stableAttr(in image.Inode) fs.StableAttr {
	return fs.StableAttr{Mode: in.Mode & syscall.S_IFMT, Ino: uint64(in.Ino)}
}

// validType reports whether mode names a file type the kernel knows; a
// corrupt type would otherwise confuse go-fuse and the VFS.
func validType(mode uint32) bool {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG, syscall.S_IFDIR, syscall.S_IFLNK, syscall.S_IFIFO,
		syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
		return true
	}
	return false
}

// fillAttr copies the stored inode: full mode (with setuid/setgid/sticky),
// 32-bit owners, nlink as stored, times 0 (the format has none), device
// numbers 0 (not stored), blocks from the bytes the object occupies.
func fillAttr(a *fuse.Attr, in image.Inode) {
	*a = fuse.Attr{
		Ino:     uint64(in.Ino),
		Size:    in.Size,
		Blocks:  blocks(in),
		Mode:    in.Mode,
		Nlink:   in.Nlink,
		Owner:   fuse.Owner{Uid: in.UID, Gid: in.GID},
		Blksize: image.BlockSize,
	}
}

// blocks is st_blocks (512-byte units) of the 4096-aligned extent the
// object takes in the image.
func blocks(in image.Inode) uint64 {
	var n uint64 // bytes stored
	switch in.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		n = in.Size
	case syscall.S_IFLNK:
		if in.Size > 0 {
			n = in.Size + 1 // the NUL
		}
	case syscall.S_IFDIR:
		n = in.Size / image.DirentSize * image.DirentStride
	}
	pages := n / image.BlockSize
	if n%image.BlockSize != 0 {
		pages++
	}
	return pages * (image.BlockSize / 512)
}

func (n *node) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.ra.set()
	fillAttr(&out.Attr, n.in)
	return 0
}

// Statfs describes the image: blocks of the mapped region, one file per
// inode slot, nothing free.
func (n *node) Statfs(_ context.Context, out *fuse.StatfsOut) syscall.Errno {
	n.fsys.ra.set()
	size := uint64(n.fsys.info.RegionSize)
	*out = fuse.StatfsOut{
		Blocks:  (size + image.BlockSize - 1) / image.BlockSize,
		Files:   uint64(n.fsys.info.InodeCount),
		Bsize:   image.BlockSize,
		Frsize:  image.BlockSize,
		NameLen: image.MaxNameLen,
	}
	return 0
}
