package image

import (
	"bytes"
	"errors"
	"slices"
)

// maxProblems caps how many problems Validate reports at once.
const maxProblems = 20

// Validate checks every rule of the kernel's validate option (format doc
// section 7) and the stricter ones a kernel misses: 272-stride bounds,
// inode 0, bad names, entry mode vs inode mode, reserved bytes and flags,
// reachability, cycles, alignment, zero padding, overlapping objects and
// total_size against the real region. It tolerates the harmless quirks of
// upstream mkdaxfs: Q2 (zero unused inode slots), Q3 (base total_size short,
// data still inside base_size), Q4 (nlink copied from the source tree) and
// Q5 (FIFOs, sockets and device nodes of size 0). The error joins up to 20
// problems, each a *FormatError.
func (im *Image) Validate() error {
	return im.validate(&validator{im: im})
}

// ValidateMetadata is Validate without the zero-padding check after each
// file's data: every rule that keeps a reader and the kernel's dcache safe
// (bounds, cycles, names, overlaps) and none that needs a file's data
// pages. It suits a server that never exposes bytes past a file's size,
// like the FUSE fallback (the kernel zeroes a page cache tail); a cold
// image is then not read whole before it is served. A kernel DAX mount maps
// those tails, so stage with Validate.
func (im *Image) ValidateMetadata() error {
	return im.validate(&validator{im: im, skipPadding: true})
}

func (im *Image) validate(v *validator) error {
	v.superblock()
	v.baseSuperblock()
	if len(v.errs) == 0 {
		v.tree()
	}
	return errors.Join(v.errs...)
}

type validator struct {
	im   *Image
	errs []error

	reached []bool   // by inode number
	refs    []uint32 // entries pointing at each inode
	extents []extent // data objects, for the overlap check
	buf     []byte   // scratch for ReaderAt-backed images
	names   map[string]struct{}

	skipPadding bool // ValidateMetadata
}

type extent struct {
	start, end uint64
	ino        uint32
}

// add records a problem; it reports false once enough have been found.
func (v *validator) add(err error) bool {
	if len(v.errs) < maxProblems {
		v.errs = append(v.errs, err)
	}
	return len(v.errs) < maxProblems
}

func (v *validator) full() bool { return len(v.errs) >= maxProblems }

func (v *validator) superblock() {
	im, sb := v.im, v.im.sb
	hdr, err := im.header(0, "superblock")
	if err != nil {
		v.add(err)
		return
	}
	if sb.flags != 0 {
		v.add(imageErr("superblock: unknown flags %#x", sb.flags))
	}
	if sb.blockSize != BlockSize {
		v.add(imageErr("superblock: block_size %d, want %d", sb.blockSize, BlockSize))
	}
	if !allZero(hdr[116:160]) || !allZero(hdr[192:]) {
		v.add(imageErr("superblock: reserved bytes are not zero"))
	}
	if sb.totalSize > uint64(im.size) {
		v.add(imageErr("superblock: total_size %d exceeds the %d-byte region (truncated image)", sb.totalSize, im.size))
	}
	if sb.baseOffset%BlockSize != 0 || sb.baseSize%BlockSize != 0 {
		v.add(imageErr("superblock: base region [%#x, +%#x) is not 4096-aligned", sb.baseOffset, sb.baseSize))
	}
	if sb.branchTableEntries != 0 && sb.branchTableOffset == 0 {
		v.add(imageErr("superblock: %d branch table entries but branch_table_offset is 0", sb.branchTableEntries))
	}
	type region struct {
		name      string
		off, size uint64
	}
	regions := []region{{"base", sb.baseOffset, sb.baseSize}}
	if sb.branchTableOffset != 0 {
		regions = append(regions, region{"branch table", sb.branchTableOffset, uint64(sb.branchTableEntries) * branchRecordSize})
	}
	if sb.deltaOffset != 0 {
		regions = append(regions, region{"delta", sb.deltaOffset, sb.deltaSize})
	}
	if sb.pcacheOffset != 0 {
		regions = append(regions, region{"page cache", sb.pcacheOffset, sb.pcacheSize})
		v.pcache()
	}
	for i, r := range regions {
		if r.off < superblockUsed {
			v.add(imageErr("superblock: %s region at %#x overlaps the superblock", r.name, r.off))
		}
		if !span(r.off, r.size, sb.totalSize) {
			v.add(imageErr("superblock: %s region [%#x, +%#x) does not fit in total_size %#x", r.name, r.off, r.size, sb.totalSize))
		}
		for _, o := range regions[:i] {
			if r.off < o.off+o.size && o.off < r.off+r.size {
				v.add(imageErr("superblock: %s region [%#x, +%#x) overlaps the %s region [%#x, +%#x)", r.name, r.off, r.size, o.name, o.off, o.size))
			}
		}
	}
}

func (v *validator) pcache() {
	sb := v.im.sb
	slots := uint64(sb.pcacheSlots)
	if slots == 0 || slots&(slots-1) != 0 {
		v.add(imageErr("superblock: page cache slot count %d is not a power of two", slots))
		return
	}
	table, _ := align4096(16 * slots)
	if need := BlockSize + table + BlockSize*slots; sb.pcacheSize < need {
		v.add(imageErr("superblock: page cache of %d bytes is smaller than the %d its %d slots need", sb.pcacheSize, need, slots))
	}
}

func (v *validator) baseSuperblock() {
	im, b := v.im, v.im.base
	hdr, err := im.header(im.baseOff, "base superblock")
	if err != nil {
		v.add(err)
		return
	}
	if b.flags != 0 {
		v.add(imageErr("base superblock: unknown flags %#x", b.flags))
	}
	if b.blockSize != BlockSize {
		v.add(imageErr("base superblock: block_size %d, want %d", b.blockSize, BlockSize))
	}
	if !allZero(hdr[48:]) {
		v.add(imageErr("base superblock: reserved bytes are not zero"))
	}
	if b.totalSize > im.limit {
		v.add(imageErr("base superblock: total_size %#x exceeds base_size %#x", b.totalSize, im.limit))
	}
	if b.rootInode != RootIno {
		v.add(imageErr("base superblock: root_inode %d, want %d (the kernel always uses 1)", b.rootInode, RootIno))
	}
	if b.inodeOffset < BlockSize || b.inodeOffset%BlockSize != 0 {
		v.add(imageErr("base superblock: inode_offset %#x is not a 4096-aligned offset after the base superblock", b.inodeOffset))
	}
	tableEnd := b.inodeOffset + uint64(b.inodeCount)*InodeSize // bounded by Open
	if b.dataOffset%BlockSize != 0 || b.dataOffset < tableEnd || b.dataOffset > im.limit {
		v.add(imageErr("base superblock: data_offset %#x is not 4096-aligned in [%#x, %#x]", b.dataOffset, tableEnd, im.limit))
	}
}

// tree walks from the root, checking each reachable inode once and each
// directory entry, then the inodes nothing reaches and object overlaps.
func (v *validator) tree() {
	im := v.im
	count := im.base.inodeCount
	v.reached = make([]bool, count+1)
	v.refs = make([]uint32, count+1)
	v.names = make(map[string]struct{})
	if im.b == nil {
		v.buf = make([]byte, BlockSize)
	}
	root, ok := v.inode(RootIno)
	if !ok {
		return
	}
	if !root.IsDir() {
		v.add(inodeErr(RootIno, "root inode is not a directory (mode %#o)", root.Mode))
		return
	}
	stack := []Inode{root}
	for len(stack) > 0 && !v.full() {
		dir := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		stack = v.dir(dir, stack)
	}
	if v.full() {
		return
	}
	for ino := uint32(1); ino <= count; ino++ {
		if ino != RootIno && v.refs[ino] > 1 && !v.reachedRegular(ino) {
			v.add(inodeErr(ino, "%d entries point at it, but only regular files may be hard-linked", v.refs[ino]))
		}
		if !v.reached[ino] {
			raw, err := im.rawInode(ino, v.buf)
			if err == nil && !allZero(raw) {
				err = inodeErr(ino, "not reachable from the root (only all-zero slots may be unused)")
			}
			if err != nil && !v.add(err) {
				return
			}
		}
	}
	v.overlaps()
}

func (v *validator) reachedRegular(ino uint32) bool {
	in, err := v.im.Inode(ino)
	return err == nil && in.IsRegular()
}

// inode checks inode ino the first time it is reached.
func (v *validator) inode(ino uint32) (Inode, bool) {
	im := v.im
	raw, err := im.rawInode(ino, v.buf)
	if err != nil {
		v.add(err)
		return Inode{}, false
	}
	in := decodeInode(ino, raw)
	v.reached[ino] = true
	ok := true
	fail := func(format string, args ...any) {
		v.add(inodeErr(ino, format, args...))
		ok = false
	}
	if stored := le.Uint32(raw[0:]); stored != ino {
		fail("stored inode number %d differs from its slot", stored)
	}
	if !allZero(raw[36:]) {
		fail("reserved bytes are not zero")
	}
	if in.Mode&^0o177777 != 0 {
		fail("mode %#o has bits beyond st_mode", in.Mode)
	}
	if in.Nlink == 0 {
		fail("nlink is 0")
	}
	switch in.Mode & modeTypeMask {
	case modeRegular:
		if in.Size > 0 {
			v.object(in, in.Size, &ok)
		}
	case modeDir:
		if n, err := im.dirCount(in); err != nil {
			v.add(err)
			ok = false
		} else if n > 0 {
			v.object(in, n*DirentStride, &ok)
		}
	case modeSymlink:
		if in.Size < 1 || in.Size > MaxSymlinkLen {
			fail("symlink target length %d out of range 1..%d", in.Size, MaxSymlinkLen)
		} else if v.object(in, in.Size+1, &ok) {
			t, err := im.at(in.DataOffset, in.Size+1, v.scratch(in.Size+1))
			switch {
			case err != nil:
				fail("reading symlink target: %v", err)
			case t[in.Size] != 0:
				fail("symlink target is not followed by a NUL")
			case bytes.IndexByte(t[:in.Size], 0) >= 0:
				fail("symlink target contains a NUL byte")
			}
		}
	case modeFIFO, modeSocket, modeChar, modeBlock:
		if in.Size != 0 || in.DataOffset != 0 {
			fail("special file has size %d and data_offset %#x, want 0 and 0", in.Size, in.DataOffset)
		}
	default:
		fail("unknown file type in mode %#o", in.Mode)
	}
	return in, ok
}

// object checks the data of in: [data_offset, +used) inside base_size and
// 4096-aligned after the inode table, zero padding to the next block (or
// base_size), and records it for the overlap check.
func (v *validator) object(in Inode, used uint64, ok *bool) bool {
	im := v.im
	fail := func(format string, args ...any) bool {
		v.add(inodeErr(in.Ino, format, args...))
		*ok = false
		return false
	}
	if in.DataOffset%BlockSize != 0 || in.DataOffset < im.base.dataOffset {
		return fail("data_offset %#x is not 4096-aligned in the data area (from %#x)", in.DataOffset, im.base.dataOffset)
	}
	if !span(in.DataOffset, used, im.limit) {
		return fail("data [%#x, +%d) runs past base_size %#x", in.DataOffset, used, im.limit)
	}
	end := in.DataOffset + used
	if !v.skipPadding || !in.IsRegular() {
		padEnd, _ := align4096(end)
		padEnd = min(padEnd, im.limit)
		if pad, err := im.at(end, padEnd-end, v.scratch(padEnd-end)); err != nil {
			return fail("reading padding: %v", err)
		} else if !allZero(pad) {
			return fail("padding after the data [%#x, %#x) is not zero", end, padEnd)
		}
	}
	v.extents = append(v.extents, extent{in.DataOffset, end, in.Ino})
	return true
}

func (v *validator) scratch(n uint64) []byte {
	if v.im.b != nil {
		return nil
	}
	if uint64(cap(v.buf)) < n {
		v.buf = make([]byte, n)
	}
	return v.buf[:n]
}

// dir checks every entry of dir, checks children reached for the first
// time, and pushes child directories onto stack.
func (v *validator) dir(dir Inode, stack []Inode) []Inode {
	im := v.im
	n, err := im.dirCount(dir)
	if err != nil {
		return stack // already reported by inode
	}
	clear(v.names)
	err = im.scanEntries(dir, n, func(j int, e []byte) error {
		child, mode, name, err := im.decodeEntry(dir.Ino, j, e)
		if err != nil {
			v.add(err)
			return nil
		}
		bad := func(format string, args ...any) {
			v.add(entryErr(dir.Ino, j, string(name), format, args...))
		}
		switch {
		case string(name) == "." || string(name) == "..":
			bad("name %q is reserved", name)
		case bytes.IndexByte(name, '/') >= 0:
			bad("name contains '/'")
		case bytes.IndexByte(name, 0) >= 0:
			bad("name contains a NUL byte")
		}
		if !allZero(e[10:16]) || !allZero(e[16+len(name):]) {
			bad("reserved or padding bytes are not zero")
		}
		if _, dup := v.names[string(name)]; dup {
			bad("duplicate name")
		}
		v.names[string(name)] = struct{}{}
		if child == RootIno {
			bad("points at the root inode")
			return nil
		}
		v.refs[child]++
		var in Inode
		if !v.reached[child] {
			var ok bool
			if in, ok = v.inode(child); !ok {
				return nil
			}
			if in.IsDir() {
				stack = append(stack, in)
			}
		} else if in, err = im.Inode(child); err != nil {
			v.add(err)
			return nil
		} else if in.IsDir() {
			bad("directory inode %d reached twice (cycle or hard-linked directory)", child)
			return nil
		}
		if mode != in.Mode {
			bad("entry mode %#o differs from inode %d mode %#o", mode, child, in.Mode)
		}
		if v.full() {
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		v.add(err)
	}
	return stack
}

// overlaps reports data objects sharing bytes (as upstream's Q1 overflow
// does to the object after a 136-entry directory).
func (v *validator) overlaps() {
	slices.SortFunc(v.extents, func(a, b extent) int {
		if a.start != b.start {
			if a.start < b.start {
				return -1
			}
			return 1
		}
		return int(int64(a.ino) - int64(b.ino))
	})
	for i := 1; i < len(v.extents); i++ {
		p, c := v.extents[i-1], v.extents[i]
		if c.start < p.end {
			if !v.add(inodeErr(c.ino, "data [%#x, %#x) overlaps the data of inode %d [%#x, %#x)", c.start, c.end, p.ino, p.start, p.end)) {
				return
			}
		}
	}
}

// allZero compares against a zero block (vectorised memequal).
func allZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
