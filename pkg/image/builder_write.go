package image

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
)

// layout is the placement of every inode, computed from metadata only.
type layout struct {
	nodes     []*node // by inode number - 1
	order     []*node // data objects as written: objectOrder
	dataStart uint64  // base-relative start of the data area
	baseSize  uint64
}

// Size returns the length of the image WriteTo will write.
func (b *Builder) Size() (int64, error) {
	lay, err := b.layout()
	if err != nil {
		return 0, err
	}
	return int64(BlockSize + lay.baseSize), nil
}

func (b *Builder) layout() (*layout, error) {
	if b.lay != nil {
		return b.lay, nil
	}
	lay := &layout{}
	lay.number(b.root)
	lay.assign(b.root)
	for _, n := range lay.nodes {
		n.refs = 0
	}
	for _, n := range lay.nodes {
		for _, e := range n.ents {
			e.n.refs++
		}
	}
	if len(lay.nodes) > 1<<32-1 {
		return nil, fmt.Errorf("daxfs build: %d inodes exceed the format's limit", len(lay.nodes))
	}
	lay.dataStart, _ = align4096(BlockSize + InodeSize*uint64(len(lay.nodes)))
	cur := lay.dataStart
	lay.order = lay.objectOrder()
	for _, n := range lay.order {
		alloc, _ := align4096(n.reserve())
		n.off = 0
		if alloc > 0 {
			n.off = cur
		}
		cur += alloc
	}
	lay.baseSize = cur
	b.lay = lay
	return lay, nil
}

// objectOrder is the order of data objects in the image: directories and
// symlinks first, then file data, each in inode order. Metadata is then
// one run of blocks right after the inode table, so a cold walk of the
// tree reads it sequentially (readahead helps) instead of one block per
// directory scattered between files.
func (l *layout) objectOrder() []*node {
	order := make([]*node, 0, len(l.nodes))
	for _, n := range l.nodes {
		if !n.isRegular() {
			order = append(order, n)
		}
	}
	for _, n := range l.nodes {
		if n.isRegular() {
			order = append(order, n)
		}
	}
	return order
}

// number gives n the next inode number.
func (l *layout) number(n *node) {
	l.nodes = append(l.nodes, n)
	n.ino = uint32(len(l.nodes))
}

// numbered reports whether n already has a number in this layout (ino
// may be stale from an earlier layout of a since-changed tree).
func (l *layout) numbered(n *node) bool {
	return n.ino != 0 && int(n.ino) <= len(l.nodes) && l.nodes[n.ino-1] == n
}

// assign numbers dir's subtree depth first, entries sorted by name; a
// file reached again (a hard link) keeps its first number.
func (l *layout) assign(dir *node) {
	dir.ents = dir.ents[:0]
	for name, c := range dir.children {
		dir.ents = append(dir.ents, dirent{name, c.n})
	}
	slices.SortFunc(dir.ents, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
	for _, e := range dir.ents {
		if l.numbered(e.n) {
			continue
		}
		l.number(e.n)
		if e.n.isDir() {
			l.assign(e.n)
		}
	}
}

// storedSize is the inode size field.
func (n *node) storedSize() uint64 {
	switch n.mode & modeTypeMask {
	case modeDir:
		return DirentSize * uint64(len(n.ents))
	case modeRegular:
		return uint64(n.size)
	case modeSymlink:
		return uint64(len(n.target))
	}
	return 0
}

// reserve is the bytes of data the object occupies before block padding.
func (n *node) reserve() uint64 {
	switch n.mode & modeTypeMask {
	case modeDir:
		return DirentStride * uint64(len(n.ents))
	case modeRegular:
		return uint64(n.size)
	case modeSymlink:
		return uint64(len(n.target)) + 1
	}
	return 0
}

// WriteTo writes the image sequentially: headers, inode table, then each
// object's data in objectOrder. File data is streamed from its source; a
// source that cannot be read or changed size fails the build.
func (b *Builder) WriteTo(w io.Writer) (int64, error) {
	lay, err := b.layout()
	if err != nil {
		return 0, err
	}
	total := int64(BlockSize + lay.baseSize)
	if max := b.opts.MaxSize; max > 0 && total > max {
		return 0, fmt.Errorf("daxfs build: %w: %d bytes, limit %d", ErrTooLarge, total, max)
	}
	iw := &imageWriter{w: bufio.NewWriterSize(w, 1<<20), total: total, progress: b.opts.Progress}
	iw.headers(lay)
	iw.inodeTable(lay)
	for _, n := range lay.order {
		if iw.err != nil {
			break
		}
		b.writeObject(iw, n)
		if iw.progress != nil && iw.err == nil {
			iw.progress(iw.n, total)
		}
	}
	if iw.err == nil {
		iw.err = iw.w.Flush()
	}
	if iw.err == nil && iw.n != total {
		iw.err = fmt.Errorf("daxfs build: wrote %d bytes, layout says %d", iw.n, total)
	}
	return iw.n, iw.err
}

// imageWriter counts bytes and keeps the first error, so the sequence of
// writes reads straight.
type imageWriter struct {
	w        *bufio.Writer
	n, total int64
	err      error
	progress func(written, total int64)
	rel      []byte // path buffer for reopening AddDir files
}

var zeros [BlockSize]byte

func (iw *imageWriter) write(p []byte) {
	if iw.err != nil {
		return
	}
	n, err := iw.w.Write(p)
	iw.n += int64(n)
	if err != nil {
		iw.err = fmt.Errorf("daxfs build: writing image: %w", err)
	}
}

// pad writes zeros up to the next block boundary.
func (iw *imageWriter) pad() {
	if r := iw.n % BlockSize; r != 0 {
		iw.write(zeros[:BlockSize-r])
	}
}

func (iw *imageWriter) headers(lay *layout) {
	var sb [BlockSize]byte
	le.PutUint32(sb[0:], Magic)
	le.PutUint32(sb[4:], Version)
	le.PutUint32(sb[12:], BlockSize)
	le.PutUint64(sb[16:], uint64(iw.total))
	le.PutUint64(sb[24:], BlockSize)
	le.PutUint64(sb[32:], lay.baseSize)
	le.PutUint64(sb[64:], uint64(len(lay.nodes))+1)
	iw.write(sb[:])

	var base [BlockSize]byte
	le.PutUint32(base[0:], BaseMagic)
	le.PutUint32(base[4:], Version)
	le.PutUint32(base[12:], BlockSize)
	le.PutUint64(base[16:], lay.baseSize)
	le.PutUint64(base[24:], BlockSize)
	le.PutUint32(base[32:], uint32(len(lay.nodes)))
	le.PutUint32(base[36:], RootIno)
	le.PutUint64(base[40:], lay.dataStart)
	iw.write(base[:])
}

func (iw *imageWriter) inodeTable(lay *layout) {
	var rec [InodeSize]byte
	for _, n := range lay.nodes {
		nlink := n.refs
		if n.ino == RootIno {
			nlink = 1
		}
		le.PutUint32(rec[0:], n.ino)
		le.PutUint32(rec[4:], n.mode)
		le.PutUint32(rec[8:], n.uid)
		le.PutUint32(rec[12:], n.gid)
		le.PutUint64(rec[16:], n.storedSize())
		le.PutUint64(rec[24:], n.off)
		le.PutUint32(rec[32:], nlink)
		iw.write(rec[:])
	}
	iw.pad()
}

func (b *Builder) writeObject(iw *imageWriter, n *node) {
	if n.reserve() == 0 {
		return
	}
	if want := int64(BlockSize + n.off); iw.err == nil && iw.n != want {
		iw.err = fmt.Errorf("daxfs build: inode %d: at offset %d, layout says %d", n.ino, iw.n, want)
		return
	}
	switch n.mode & modeTypeMask {
	case modeDir:
		var e [DirentStride]byte
		for _, d := range n.ents {
			clear(e[:])
			le.PutUint32(e[0:], d.n.ino)
			le.PutUint32(e[4:], d.n.mode)
			le.PutUint16(e[8:], uint16(len(d.name)))
			copy(e[16:], d.name)
			iw.write(e[:])
		}
	case modeSymlink:
		iw.write(append([]byte(n.target), 0))
	case modeRegular:
		b.copyData(iw, n)
	}
	iw.pad()
}

// copyData streams a regular file's bytes from its source; a source that
// is shorter or longer than recorded fails the build (never silent zeros).
func (b *Builder) copyData(iw *imageWriter, n *node) {
	if iw.err != nil {
		return
	}
	var src io.Reader
	name := func() string { return fmt.Sprintf("tar data of inode %d", n.ino) } // for errors only
	if n.src != nil {
		iw.rel = n.src.appendRel(iw.rel[:0])
		f, err := n.src.open(iw.rel, n.size)
		if err != nil {
			iw.err = err
			return
		}
		defer f.Close()
		src, name = f, n.src.path
	} else {
		src = io.NewSectionReader(n.data, n.dataOff, n.size)
	}
	written, err := io.CopyN(iw.w, src, n.size)
	iw.n += written
	switch {
	case err == io.EOF:
		iw.err = fmt.Errorf("daxfs build: %s: shrank to %d bytes during the build (had %d)", name(), written, n.size)
	case err != nil:
		iw.err = fmt.Errorf("daxfs build: copying %s: %w", name(), err)
	default:
		var one [1]byte
		if k, _ := src.Read(one[:]); k > 0 {
			iw.err = fmt.Errorf("daxfs build: %s: grew during the build (had %d bytes)", name(), n.size)
		}
	}
}
