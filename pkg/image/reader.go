package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Layout is how the regions of an image are arranged.
type Layout int

const (
	LayoutStatic    Layout = iota // superblock, base image at 0x1000
	LayoutBranching               // plus branch table and delta region (mkdaxfs -b)
)

func (l Layout) String() string {
	if l == LayoutBranching {
		return "branching"
	}
	return "static"
}

// Image is an open DAXFS v5 image. Only the read-only base image is served.
// All methods are safe for concurrent use.
type Image struct {
	r    io.ReaderAt
	b    []byte // whole region when opened with OpenBytes; nil otherwise
	size int64  // real length of the region

	sb   superblock
	base baseSuperblock

	baseOff uint64 // absolute offset of the base image
	limit   uint64 // readable length of the base image (base_size)
}

// Open reads an image of size bytes from r. It checks the structure every
// accessor relies on (magics, version, layout, region bounds against size,
// the inode table); Validate checks everything else.
func Open(r io.ReaderAt, size int64) (*Image, error) {
	return open(r, nil, size)
}

// OpenBytes opens an image held in memory (typically mapped device memory).
// FileBytes then returns sub-slices of b without copying; b must stay valid
// and unchanged while the Image is used.
func OpenBytes(b []byte) (*Image, error) {
	return open(bytes.NewReader(b), b, int64(len(b)))
}

func open(r io.ReaderAt, b []byte, size int64) (*Image, error) {
	im := &Image{r: r, b: b, size: size}
	if size < BlockSize {
		return nil, imageErr("region of %d bytes is shorter than the %d-byte superblock", size, BlockSize)
	}
	hdr, err := im.header(0, "superblock")
	if err != nil {
		return nil, err
	}
	im.sb = decodeSuperblock(hdr)
	if err := checkHeader("superblock", im.sb.magic, Magic, im.sb.version); err != nil {
		return nil, err
	}
	usize := uint64(size)
	if im.sb.baseOffset == 0 {
		return nil, imageErr("superblock: base_offset is 0 (no base image)")
	}
	if im.sb.baseSize < BlockSize {
		return nil, imageErr("superblock: base_size %d is smaller than the base superblock", im.sb.baseSize)
	}
	if !span(im.sb.baseOffset, im.sb.baseSize, usize) {
		return nil, imageErr("superblock: base region [%#x, +%#x) runs past the end of the %d-byte region", im.sb.baseOffset, im.sb.baseSize, size)
	}
	im.baseOff, im.limit = im.sb.baseOffset, im.sb.baseSize
	if hdr, err = im.header(im.baseOff, "base superblock"); err != nil {
		return nil, err
	}
	im.base = decodeBaseSuperblock(hdr)
	if err := checkHeader("base superblock", im.base.magic, BaseMagic, im.base.version); err != nil {
		return nil, err
	}
	if im.base.flags&baseFlagSplit != 0 {
		return nil, ErrSplitMode
	}
	if im.base.inodeCount < 1 {
		return nil, imageErr("base superblock: inode_count is 0 (the root inode 1 must exist)")
	}
	if !span(im.base.inodeOffset, uint64(im.base.inodeCount)*InodeSize, im.limit) {
		return nil, imageErr("base superblock: inode table at %#x with %d inodes runs past base_size %#x",
			im.base.inodeOffset, im.base.inodeCount, im.limit)
	}
	return im, nil
}

// checkHeader checks a header's magic (naming v1-v4 when it finds one)
// and version.
func checkHeader(where string, magic, want, version uint32) error {
	if magic != want {
		if v, ok := oldMagics[magic]; ok {
			return fmt.Errorf("%w: %s magic %#x is DAXFS version %d, want version %d", ErrVersion, where, magic, v, Version)
		}
		return imageErr("%s: bad magic %#x, want %#x", where, magic, want)
	}
	if version != Version {
		return fmt.Errorf("%w: %s version %d, want %d", ErrVersion, where, version, Version)
	}
	return nil
}

// header reads the header block at absolute offset off.
func (im *Image) header(off uint64, where string) ([]byte, error) {
	hdr := make([]byte, BlockSize)
	if err := im.readAbs(hdr, off); err != nil {
		return nil, fmt.Errorf("daxfs: reading %s: %w", where, err)
	}
	return hdr, nil
}

// readAbs fills p from absolute offset off of the region.
func (im *Image) readAbs(p []byte, off uint64) error {
	if !span(off, uint64(len(p)), uint64(im.size)) {
		return imageErr("read of %d bytes at %#x is outside the %d-byte region", len(p), off, im.size)
	}
	if im.b != nil {
		copy(p, im.b[off:])
		return nil
	}
	n, err := im.r.ReadAt(p, int64(off))
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// at returns n bytes at base-relative offset off: a sub-slice of the mapped
// bytes, or buf (which must hold n bytes) filled from the ReaderAt. The
// caller has already checked span(off, n, im.limit).
func (im *Image) at(off, n uint64, buf []byte) ([]byte, error) {
	abs := im.baseOff + off
	if im.b != nil {
		return im.b[abs : abs+n : abs+n], nil
	}
	buf = buf[:n]
	if err := im.readAbs(buf, abs); err != nil {
		return nil, err
	}
	return buf, nil
}

// Info describes the image header.
type Info struct {
	Version            uint32
	Layout             Layout
	RegionSize         int64  // real length of the region opened
	TotalSize          uint64 // superblock total_size
	BaseOffset         uint64
	BaseSize           uint64
	BaseTotalSize      uint64 // end of the data area as recorded
	InodeOffset        uint64 // relative to the base image
	InodeCount         uint32
	RootInode          uint32
	DataOffset         uint64 // relative to the base image
	BranchTableOffset  uint64
	BranchTableEntries uint32
	DeltaRegionOffset  uint64
	DeltaRegionSize    uint64
}

// Info returns the header fields; it does not walk the tree.
func (im *Image) Info() Info {
	layout := LayoutStatic
	if im.sb.branchTableEntries != 0 {
		layout = LayoutBranching
	}
	return Info{
		Version: im.sb.version, Layout: layout, RegionSize: im.size,
		TotalSize: im.sb.totalSize, BaseOffset: im.baseOff, BaseSize: im.sb.baseSize,
		BaseTotalSize: im.base.totalSize, InodeOffset: im.base.inodeOffset,
		InodeCount: im.base.inodeCount, RootInode: im.base.rootInode,
		DataOffset: im.base.dataOffset, BranchTableOffset: im.sb.branchTableOffset,
		BranchTableEntries: im.sb.branchTableEntries, DeltaRegionOffset: im.sb.deltaOffset,
		DeltaRegionSize: im.sb.deltaSize,
	}
}

// Mapped reports whether the image was opened with OpenBytes.
func (im *Image) Mapped() bool { return im.b != nil }

// Inode returns inode ino (1..inode_count).
func (im *Image) Inode(ino uint32) (Inode, error) {
	raw, err := im.rawInode(ino, nil)
	if err != nil {
		return Inode{}, err
	}
	return decodeInode(ino, raw), nil
}

// rawInode returns the 64 stored bytes of inode ino.
func (im *Image) rawInode(ino uint32, buf []byte) ([]byte, error) {
	if ino < 1 || ino > im.base.inodeCount {
		return nil, inodeErr(ino, "inode number out of range 1..%d", im.base.inodeCount)
	}
	if buf == nil && im.b == nil {
		buf = make([]byte, InodeSize)
	}
	return im.at(im.base.inodeOffset+uint64(ino-1)*InodeSize, InodeSize, buf)
}

// dirInode returns directory ino and its entry count, with the entry array
// bounds-checked against the base image using the 272-byte stride.
func (im *Image) dirInode(ino uint32) (Inode, uint64, error) {
	in, err := im.Inode(ino)
	if err != nil {
		return in, 0, err
	}
	if !in.IsDir() {
		return in, 0, kindErr(ino, ErrNotDir)
	}
	n, err := im.dirCount(in)
	return in, n, err
}

// dirCount returns the entry count of directory in after checking its size
// and that the entry array, at the 272-byte stride, lies inside the base.
func (im *Image) dirCount(in Inode) (uint64, error) {
	if in.Size%DirentSize != 0 {
		return 0, inodeErr(in.Ino, "directory size %d is not a multiple of %d", in.Size, DirentSize)
	}
	n := in.Size / DirentSize
	if n > 0 && (n > im.limit/DirentStride || !span(in.DataOffset, n*DirentStride, im.limit)) {
		return 0, inodeErr(in.Ino, "directory of %d entries at %#x runs past base_size %#x (272-byte stride)",
			n, in.DataOffset, im.limit)
	}
	return n, nil
}

// entryChunk is how many entries a ReaderAt-backed scan reads at once.
const entryChunk = 15

// scanEntries calls fn with the raw 272-byte slot of each of the n entries
// of directory in (bounds already checked by dirInode).
func (im *Image) scanEntries(in Inode, n uint64, fn func(j int, e []byte) error) error {
	var buf []byte
	for j := uint64(0); j < n; {
		k := n - j
		if im.b == nil {
			k = min(k, entryChunk)
			if buf == nil {
				buf = make([]byte, entryChunk*DirentStride)
			}
		}
		chunk, err := im.at(in.DataOffset+j*DirentStride, k*DirentStride, buf)
		if err != nil {
			return fmt.Errorf("daxfs: inode %d: reading directory entries: %w", in.Ino, err)
		}
		for i := uint64(0); i < k; i, j = i+1, j+1 {
			if err := fn(int(j), chunk[i*DirentStride:(i+1)*DirentStride]); err != nil {
				return err
			}
		}
	}
	return nil
}

// errStop ends a scan early without an error.
var errStop = errors.New("stop")

// decodeEntry splits a raw entry, checking what every reader relies on.
func (im *Image) decodeEntry(dir uint32, j int, e []byte) (child, mode uint32, name []byte, err error) {
	child, mode, nameLen := le.Uint32(e[0:]), le.Uint32(e[4:]), int(le.Uint16(e[8:]))
	if nameLen < 1 || nameLen > MaxNameLen {
		return 0, 0, nil, entryErr(dir, j, "", "name length %d out of range 1..%d", nameLen, MaxNameLen)
	}
	name = e[16 : 16+nameLen]
	if child < 1 || child > im.base.inodeCount {
		return 0, 0, nil, entryErr(dir, j, string(name), "child inode %d out of range 1..%d", child, im.base.inodeCount)
	}
	return child, mode, name, nil
}

// Lookup finds name in directory dir by a linear scan (first match wins, as
// in the kernel). A missing name gives an error wrapping fs.ErrNotExist.
// Only a matching entry is fully checked, so a scan costs one length
// compare per entry.
func (im *Image) Lookup(dir uint32, name string) (Inode, error) {
	in, n, err := im.dirInode(dir)
	if err != nil {
		return Inode{}, err
	}
	// dirCount checks the entry array's bounds only when there are entries:
	// an empty directory's data offset is not to be trusted, even to slice.
	if n == 0 || len(name) == 0 || len(name) > MaxNameLen {
		return Inode{}, errNotFound
	}
	var child uint32
	match := func(j int, e []byte) error {
		if int(le.Uint16(e[8:])) != len(name) || string(e[16:16+len(name)]) != name {
			return nil
		}
		c, _, _, err := im.decodeEntry(dir, j, e)
		if err != nil {
			return err
		}
		child = c
		return errStop
	}
	if im.b != nil { // mapped: scan the slice directly, no callback per entry
		ents := im.b[im.baseOff+in.DataOffset:][:n*DirentStride]
		for j := 0; len(ents) > 0; j, ents = j+1, ents[DirentStride:] {
			if int(le.Uint16(ents[8:])) == len(name) {
				if err = match(j, ents[:DirentStride]); err != nil {
					break
				}
			}
		}
	} else {
		err = im.scanEntries(in, n, match)
	}
	if err != nil && err != errStop {
		return Inode{}, err
	}
	if child == 0 {
		return Inode{}, errNotFound
	}
	return im.Inode(child)
}

// ReadDir lists directory dir in stored order.
func (im *Image) ReadDir(dir uint32) ([]DirEntry, error) {
	in, n, err := im.dirInode(dir)
	if err != nil {
		return nil, err
	}
	ents := make([]DirEntry, 0, n)
	names := make([]byte, 0, n*16)
	ends := make([]int, 0, n)
	err = im.scanEntries(in, n, func(j int, e []byte) error {
		child, mode, name, err := im.decodeEntry(dir, j, e)
		if err != nil {
			return err
		}
		names = append(names, name...)
		ends = append(ends, len(names))
		ents = append(ents, DirEntry{Ino: child, Mode: mode})
		return nil
	})
	if err != nil {
		return nil, err
	}
	// One string for all names keeps a listing at a few allocations.
	all := string(names)
	start := 0
	for i := range ents {
		ents[i].Name = all[start:ends[i]]
		start = ends[i]
	}
	return ents, nil
}

// ReadLink returns the target of symlink ino.
func (im *Image) ReadLink(ino uint32) (string, error) {
	in, err := im.Inode(ino)
	if err != nil {
		return "", err
	}
	if !in.IsSymlink() {
		return "", kindErr(ino, ErrNotSymlink)
	}
	if in.Size > MaxSymlinkLen {
		return "", inodeErr(ino, "symlink target of %d bytes exceeds %d", in.Size, MaxSymlinkLen)
	}
	if !span(in.DataOffset, in.Size, im.limit) {
		return "", inodeErr(ino, "symlink target [%#x, +%d) runs past base_size %#x", in.DataOffset, in.Size, im.limit)
	}
	var buf []byte
	if im.b == nil {
		buf = make([]byte, in.Size)
	}
	t, err := im.at(in.DataOffset, in.Size, buf)
	if err != nil {
		return "", fmt.Errorf("daxfs: inode %d: reading symlink target: %w", ino, err)
	}
	return string(t), nil
}

// fileInode returns regular file ino with its data bounds checked.
func (im *Image) fileInode(ino uint32) (Inode, error) {
	in, err := im.Inode(ino)
	if err != nil {
		return in, err
	}
	if !in.IsRegular() {
		return in, kindErr(ino, ErrNotRegular)
	}
	if in.Size > 0 && !span(in.DataOffset, in.Size, im.limit) {
		return in, inodeErr(ino, "file data [%#x, +%d) runs past base_size %#x", in.DataOffset, in.Size, im.limit)
	}
	return in, nil
}

// ReadAt reads from regular file ino like io.ReaderAt.
func (im *Image) ReadAt(ino uint32, p []byte, off int64) (int, error) {
	in, err := im.fileInode(ino)
	if err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("daxfs: inode %d: negative offset %d", ino, off)
	}
	if uint64(off) >= in.Size {
		return 0, io.EOF
	}
	n := uint64(len(p))
	if rest := in.Size - uint64(off); n > rest {
		n = rest
	}
	abs := im.baseOff + in.DataOffset + uint64(off)
	if err := im.readAbs(p[:n], abs); err != nil {
		return 0, fmt.Errorf("daxfs: inode %d: reading data: %w", ino, err)
	}
	if int(n) < len(p) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// FileBytes returns the data of regular file ino as a sub-slice of the
// mapped image (zero copy, capacity clipped to the file). Only for images
// opened with OpenBytes; callers must not write to it.
func (im *Image) FileBytes(ino uint32) ([]byte, error) {
	if im.b == nil {
		return nil, ErrNotMapped
	}
	in, err := im.fileInode(ino)
	if err != nil {
		return nil, err
	}
	if in.Size == 0 {
		return im.b[:0:0], nil
	}
	return im.at(in.DataOffset, in.Size, nil)
}
