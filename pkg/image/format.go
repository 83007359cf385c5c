package image

import "encoding/binary"

// On-disk constants of DAXFS format version 5 (../shared/docs/daxfs-format.md).
const (
	RootIno = 1 // the kernel always uses inode 1 as the root

	BlockSize = 4096

	Magic     = 0x64617835 // "dax5": superblock magic
	BaseMagic = 0x64646135 // "dda5": base image superblock magic
	Version   = 5

	superblockUsed   = 4040 // bytes of the superblock the kernel treats as used
	branchRecordSize = 128
	InodeSize        = 64
	DirentSize       = 271 // what a directory's size counts per entry
	DirentStride     = 272 // where entries really start (the C struct is padded)
	MaxNameLen       = 255
	MaxSymlinkLen    = 4095 // PATH_MAX without the NUL

	baseFlagSplit = 1 // base flags bit 0: file data lives in an external file
)

// Linux st_mode bits; pkg/image must not depend on syscall for the reader.
const (
	modeTypeMask = 0o170000
	modeSocket   = 0o140000
	modeSymlink  = 0o120000
	modeRegular  = 0o100000
	modeBlock    = 0o060000
	modeDir      = 0o040000
	modeChar     = 0o020000
	modeFIFO     = 0o010000
	modeSetuid   = 0o4000
	modeSetgid   = 0o2000
	modeSticky   = 0o1000
	modePerm     = 0o777
)

// Old magics, recognised only to name the version in the error.
var oldMagics = map[uint32]int{
	0x64646178: 1,
	0x64617832: 2,
	0x64617833: 3,
	0x64617834: 4,
}

var le = binary.LittleEndian

// superblock is the decoded header at offset 0.
type superblock struct {
	magic, version, flags, blockSize   uint32
	totalSize, baseOffset, baseSize    uint64
	branchTableOffset                  uint64
	branchTableEntries, activeBranches uint32
	nextBranchID, nextInodeID          uint64
	deltaOffset, deltaSize, deltaAlloc uint64
	pcacheOffset, pcacheSize           uint64
	pcacheSlots, pcacheShift           uint32
	pcachePending, pcacheReserved      uint32
}

func decodeSuperblock(b []byte) superblock {
	return superblock{
		magic: le.Uint32(b[0:]), version: le.Uint32(b[4:]), flags: le.Uint32(b[8:]),
		blockSize: le.Uint32(b[12:]), totalSize: le.Uint64(b[16:]),
		baseOffset: le.Uint64(b[24:]), baseSize: le.Uint64(b[32:]),
		branchTableOffset: le.Uint64(b[40:]), branchTableEntries: le.Uint32(b[48:]),
		activeBranches: le.Uint32(b[52:]), nextBranchID: le.Uint64(b[56:]),
		nextInodeID: le.Uint64(b[64:]), deltaOffset: le.Uint64(b[72:]),
		deltaSize: le.Uint64(b[80:]), deltaAlloc: le.Uint64(b[88:]),
		pcacheOffset: le.Uint64(b[160:]), pcacheSize: le.Uint64(b[168:]),
		pcacheSlots: le.Uint32(b[176:]), pcacheShift: le.Uint32(b[180:]),
		pcachePending: le.Uint32(b[184:]), pcacheReserved: le.Uint32(b[188:]),
	}
}

// baseSuperblock is the decoded header at base_offset.
type baseSuperblock struct {
	magic, version, flags, blockSize uint32
	totalSize, inodeOffset           uint64
	inodeCount, rootInode            uint32
	dataOffset                       uint64
}

func decodeBaseSuperblock(b []byte) baseSuperblock {
	return baseSuperblock{
		magic: le.Uint32(b[0:]), version: le.Uint32(b[4:]), flags: le.Uint32(b[8:]),
		blockSize: le.Uint32(b[12:]), totalSize: le.Uint64(b[16:]),
		inodeOffset: le.Uint64(b[24:]), inodeCount: le.Uint32(b[32:]),
		rootInode: le.Uint32(b[36:]), dataOffset: le.Uint64(b[40:]),
	}
}

// Inode is one decoded inode. Ino is the inode number it was read as; Mode is
// the full Linux st_mode (type, permissions, setuid/setgid/sticky).
type Inode struct {
	Ino, Mode, UID, GID, Nlink uint32
	Size, DataOffset           uint64
}

func decodeInode(ino uint32, b []byte) Inode {
	return Inode{
		Ino: ino, Mode: le.Uint32(b[4:]), UID: le.Uint32(b[8:]), GID: le.Uint32(b[12:]),
		Size: le.Uint64(b[16:]), DataOffset: le.Uint64(b[24:]), Nlink: le.Uint32(b[32:]),
	}
}

func (in Inode) IsDir() bool     { return in.Mode&modeTypeMask == modeDir }
func (in Inode) IsRegular() bool { return in.Mode&modeTypeMask == modeRegular }
func (in Inode) IsSymlink() bool { return in.Mode&modeTypeMask == modeSymlink }

// DirEntry is one directory entry as stored.
type DirEntry struct {
	Name      string
	Ino, Mode uint32
}

// align4096 rounds up; ok is false when the result overflows.
func align4096(n uint64) (uint64, bool) {
	r := (n + BlockSize - 1) &^ (BlockSize - 1)
	return r, r >= n
}

// span reports whether [off, off+n) fits in [0, limit) without overflow.
func span(off, n, limit uint64) bool {
	return off <= limit && n <= limit-off
}
