package fusefs

import (
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// pushListed stores the contents of the small regular files of a directory
// whose listing was just read to its end into the kernel's page cache
// (FUSE NOTIFY_STORE), in stored order, up to the mount's push budget.
// A cold walk (tar, a container's start-up) then reads them without a READ
// round trip each: one context switch to this server and one back per
// small file, which on a busy or virtualised host cost more than the copy.
// It runs in the last READDIRPLUS, after the kernel has linked every entry
// of the earlier replies, so each child has a kernel inode to store into.
// Anything it cannot push (an inode the kernel already forgot, a fault on
// a cut-short image) is skipped: the READ path serves it as before.
func (f *filesys) pushListed(dir *node, ents []fuse.DirEntry) {
	budget := f.pushBudget
	if budget <= 0 || !f.mapped {
		return
	}
	guardFaults()
	defer func() { _ = recover() }() // a fault on the mapping: stop pushing
	for i := range ents {
		e := &ents[i]
		if e.Mode&syscall.S_IFMT != syscall.S_IFREG {
			continue
		}
		ch := dir.GetChild(e.Name)
		if ch == nil {
			continue
		}
		c, ok := ch.Operations().(*node)
		if !ok || !c.in.IsRegular() || c.in.Size == 0 || c.in.Size > maxPushFile {
			continue
		}
		if int64(c.in.Size) > budget {
			return
		}
		b, err := f.im.FileBytes(c.in.Ino)
		if err != nil || len(b) == 0 {
			continue
		}
		loadByte(b, len(b)-1) // fault here (recovered), not in the kernel's copy
		if ch.WriteCache(0, b) != 0 {
			continue
		}
		budget -= int64(len(b))
		f.pushedFiles.Add(1)
	}
}
