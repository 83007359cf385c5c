package fusefs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
)

// noOpendir answers OPENDIR with ENOSYS. The kernel then stops sending
// OPENDIR and RELEASEDIR for every directory of the mount and caches
// listings by default (fuse_do_open: FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR
// when no_opendir is set), so a warm walk sends no request at all and a
// cold one two fewer per directory. go-fuse's bridge only reads a
// directory through a handle, so a READDIR(PLUS) without one opens a
// handle here, in process, for that one request; the node keeps the
// decoded listing until it has been read to the end once.
type noOpendir struct {
	fuse.RawFileSystem
}

var noOpendirSupport = true // a variable only so benchmarks can compare both

func wrapRaw(raw fuse.RawFileSystem) fuse.RawFileSystem {
	if !noOpendirSupport {
		return raw
	}
	return noOpendir{raw}
}

func (n noOpendir) OpenDir(<-chan struct{}, *fuse.OpenIn, *fuse.OpenOut) fuse.Status {
	return fuse.ENOSYS
}

func (n noOpendir) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return n.withHandle(cancel, in, func(in *fuse.ReadIn) fuse.Status {
		return n.RawFileSystem.ReadDirPlus(cancel, in, out)
	})
}

func (n noOpendir) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return n.withHandle(cancel, in, func(in *fuse.ReadIn) fuse.Status {
		return n.RawFileSystem.ReadDir(cancel, in, out)
	})
}

// withHandle runs read with a directory handle of the bridge's own,
// released afterwards; a request that has one (none does once OPENDIR
// failed, but a kernel may differ) uses it.
func (n noOpendir) withHandle(cancel <-chan struct{}, in *fuse.ReadIn, read func(*fuse.ReadIn) fuse.Status) fuse.Status {
	if in.Fh != 0 {
		return read(in)
	}
	var opened fuse.OpenOut
	open := fuse.OpenIn{InHeader: in.InHeader, Flags: in.Flags}
	if st := n.RawFileSystem.OpenDir(cancel, &open, &opened); !st.Ok() {
		return st
	}
	defer n.RawFileSystem.ReleaseDir(&fuse.ReleaseIn{InHeader: in.InHeader, Fh: opened.Fh})
	req := *in
	req.Fh = opened.Fh
	return read(&req)
}
