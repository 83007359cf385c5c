package fusefs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

var (
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.FileReaddirenter   = (*dirHandle)(nil)
	_ fs.FileSeekdirer      = (*dirHandle)(nil)
)

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	guardFaults()
	n.fsys.ra.set()
	if !n.in.IsDir() {
		return nil, syscall.ENOTDIR
	}
	child, errno := n.fsys.lookup(n.in, name)
	if errno != 0 {
		return nil, errno
	}
	if !validType(child.Mode) {
		return nil, n.fsys.errs.errno("lookup", child.Ino, &image.FormatError{Ino: child.Ino, Entry: -1, Rule: "unknown file type in mode"})
	}
	fillAttr(&out.Attr, child)
	return n.NewInode(ctx, n.fsys.newNode(child), stableAttr(child)), 0
}

// lookup finds name in dir: through the name index for big directories,
// by the reader's linear scan otherwise (or when the index cannot be built).
func (f *filesys) lookup(dir image.Inode, name string) (image.Inode, syscall.Errno) {
	if dir.Size/image.DirentSize >= indexMinEntries {
		if m := f.dirIndex(dir.Ino); m != nil {
			ino, ok := m[name]
			if !ok {
				return image.Inode{}, syscall.ENOENT
			}
			in, err := f.im.Inode(ino)
			if err != nil {
				return in, f.errs.errno("lookup", ino, err)
			}
			return in, 0
		}
	}
	in, err := f.im.Lookup(dir.Ino, name)
	if err != nil {
		return in, f.errs.errno("lookup", dir.Ino, err)
	}
	return in, 0
}

// dirIndex returns the cached name map of dir, building it on first use.
// nil means "scan instead" (corrupt directory or over the budget).
func (f *filesys) dirIndex(dir uint32) map[string]uint32 {
	if m := f.idx.get(dir); m != nil {
		return m
	}
	ents, err := f.im.ReadDir(dir)
	if err != nil {
		return nil // the scan reports the error, or finds names before it
	}
	m := make(map[string]uint32, len(ents))
	for _, e := range ents {
		if _, dup := m[e.Name]; !dup { // first match wins, as in the kernel
			m[e.Name] = e.Ino
		}
	}
	f.idx.put(dir, m)
	return m
}

// OpendirHandle lets the kernel cache the listing (FOPEN_CACHE_DIR): it
// never changes. The listing itself is read on the first READDIR, so a
// reopen answered from the kernel's cache costs no scan. The kernel never
// sends OPENDIR (see noOpendir); the handles come from noOpendir.withHandle.
func (n *node) OpendirHandle(context.Context, uint32) (fs.FileHandle, uint32, syscall.Errno) {
	n.fsys.ra.set()
	if !n.in.IsDir() {
		return nil, 0, syscall.ENOTDIR
	}
	return &dirHandle{n: n}, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

// dirHandle streams a directory in stored order after "." and "..".
// go-fuse serialises calls on one handle.
type dirHandle struct {
	n    *node
	ents []fuse.DirEntry
	pos  int
	read bool

	served int // entries returned through this handle
}

func (d *dirHandle) load() syscall.Errno {
	if d.read {
		return 0
	}
	if l := d.n.listing.Load(); l != nil {
		d.ents, d.read = *l, true
		return 0
	}
	guardFaults()
	f := d.n.fsys
	ents, err := f.im.ReadDir(d.n.in.Ino)
	if err != nil {
		return f.errs.errno("readdir", d.n.in.Ino, err)
	}
	self := uint64(d.n.in.Ino)
	parent := self // the root is its own parent
	if _, p := d.n.Parent(); p != nil {
		parent = p.StableAttr().Ino
	}
	list := make([]fuse.DirEntry, 0, len(ents)+2)
	list = append(list,
		fuse.DirEntry{Name: ".", Ino: self, Mode: syscall.S_IFDIR},
		fuse.DirEntry{Name: "..", Ino: parent, Mode: syscall.S_IFDIR})
	for _, e := range ents {
		list = append(list, fuse.DirEntry{Name: e.Name, Ino: uint64(e.Ino), Mode: e.Mode & syscall.S_IFMT})
	}
	for i := range list {
		list[i].Off = uint64(i + 1)
	}
	d.ents, d.read = list, true
	f.listingsDecoded.Add(1)
	if noOpendirSupport { // each request has a handle of its own
		d.n.listing.Store(&list)
	}
	return 0
}

func (d *dirHandle) Readdirent(context.Context) (*fuse.DirEntry, syscall.Errno) {
	if errno := d.load(); errno != 0 {
		return nil, errno
	}
	if d.pos >= len(d.ents) {
		if d.served == 0 { // the kernel's last request: it has every entry
			d.n.listing.Store(nil)
		}
		return nil, 0
	}
	d.served++
	d.pos++
	return &d.ents[d.pos-1], 0
}

// Seekdir positions after the entry whose Off is off (offsets are 1-based).
func (d *dirHandle) Seekdir(_ context.Context, off uint64) syscall.Errno {
	if errno := d.load(); errno != 0 {
		return errno
	}
	d.pos = int(min(off, uint64(len(d.ents))))
	return 0
}
