package fusefs

import (
	"syscall"
)

// pushSiblings stores the contents of the small regular files of dir into
// the kernel's page cache (FUSE NOTIFY_STORE), in stored order, up to the
// mount's push budget, the first time a file of dir is read from its start.
// A cold walk that reads files (tar, a container's start-up) then reads the
// rest of the directory without a READ round trip each: one context switch
// to this server and one back per small file, which on a busy or
// virtualised host cost more than the copy. A walk that only lists and
// stats (find) reads no file and pushes nothing. Only files the kernel
// already knows (listed with READDIRPLUS or looked up) can be pushed; the
// rest, and anything that fails (an inode the kernel forgot, a fault on a
// cut-short image), are served by READ as before.
func (f *filesys) pushSiblings(dir, reading *node) {
	budget := f.pushBudget
	if budget <= 0 || !f.mapped || !dir.pushed.CompareAndSwap(false, true) {
		return
	}
	defer func() { _ = recover() }() // a fault on the mapping: stop pushing
	ents, err := f.im.ReadDir(dir.in.Ino)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Mode&syscall.S_IFMT != syscall.S_IFREG || e.Ino == reading.in.Ino {
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

// parentDir is the directory n was found in (any one, for a hard link).
func (n *node) parentDir() *node {
	_, p := n.Parent()
	if p == nil {
		return nil
	}
	d, _ := p.Operations().(*node)
	return d
}
