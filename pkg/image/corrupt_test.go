package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"
	"testing"
)

// Offsets in tree1.static.daxfs (base image at 0x1000).
const (
	t1Base     = 0x1000
	t1RootData = t1Base + 0x2000 // root directory entries
	t1Size     = 0x317000
)

func t1Inode(n int) int     { return t1Base + 0x1000 + 64*(n-1) }
func t1RootEntry(j int) int { return t1RootData + 272*j }

type patch func(b []byte) []byte

func put32(off int, v uint32) patch {
	return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
}
func put64(off int, v uint64) patch {
	return func(b []byte) []byte { binary.LittleEndian.PutUint64(b[off:], v); return b }
}
func put16(off int, v uint16) patch {
	return func(b []byte) []byte { binary.LittleEndian.PutUint16(b[off:], v); return b }
}
func putBytes(off int, s string) patch {
	return func(b []byte) []byte { copy(b[off:], s); return b }
}
func patches(ps ...patch) patch {
	return func(b []byte) []byte {
		for _, p := range ps {
			b = p(b)
		}
		return b
	}
}

// corruptions are hand-made defects of tree1.static.daxfs, each with the
// reason the reader must give (open: at Open; otherwise at Validate).
var corruptions = []struct {
	name   string
	patch  patch
	atOpen bool
	is     error
	want   string
}{
	{"bad magic", put32(0, 0xdeadbeef), true, nil, "superblock: bad magic 0xdeadbeef, want 0x64617835"},
	{"v4 magic", put32(0, 0x64617834), true, ErrVersion, "superblock magic 0x64617834 is DAXFS version 4"},
	{"v1 magic", put32(0, 0x64646178), true, ErrVersion, "is DAXFS version 1"},
	{"version 6", put32(4, 6), true, ErrVersion, "superblock version 6, want 5"},
	{"base v3 magic", put32(t1Base, 0x64617833), true, ErrVersion, "base superblock magic 0x64617833 is DAXFS version 3"},
	{"base version", put32(t1Base+4, 4), true, ErrVersion, "base superblock version 4"},
	{"split mode", put32(t1Base+8, 1), true, ErrSplitMode, "split-mode"},
	{"no base", put64(24, 0), true, nil, "base_offset is 0"},
	{"base past region", put64(32, 0x10000000), true, nil, "base region [0x1000, +0x10000000) runs past the end"},
	{"base offset overflow", put64(24, ^uint64(0)-10), true, nil, "runs past the end"},
	{"truncated", func(b []byte) []byte { return b[:len(b)-4096] }, true, nil, "runs past the end of the 3235840-byte region"},
	{"tiny", func(b []byte) []byte { return b[:100] }, true, nil, "shorter than the 4096-byte superblock"},
	{"inode count 0", put32(t1Base+32, 0), true, nil, "inode_count is 0"},
	{"inode table past base", put32(t1Base+32, 0xffffffff), true, nil, "inode table at 0x1000 with 4294967295 inodes runs past base_size"},

	{"total_size past region", put64(16, t1Size+4096), false, nil, "total_size 3244032 exceeds the 3239936-byte region (truncated image)"},
	{"superblock flags", put32(8, 1), false, nil, "superblock: unknown flags 0x1"},
	{"block size", put32(12, 512), false, nil, "superblock: block_size 512, want 4096"},
	{"superblock reserved", putBytes(300, "x"), false, nil, "superblock: reserved bytes are not zero"},
	{"coordination reserved", putBytes(130, "x"), false, nil, "superblock: reserved bytes are not zero"},
	{"branch entries without table", put32(48, 1), false, nil, "1 branch table entries but branch_table_offset is 0"},
	{"branch table in superblock", patches(put64(40, 0x100), put32(48, 1)), false, nil, "branch table region at 0x100 overlaps the superblock"},
	{"delta past total", patches(put64(72, t1Size), put64(80, 4096)), false, nil, "delta region [0x317000, +0x1000) does not fit in total_size 0x317000"},
	{"delta overlaps base", patches(put64(72, 0x2000), put64(80, 4096)), false, nil, "delta region [0x2000, +0x1000) overlaps the base region"},
	{"pcache slots", patches(put64(160, 0x2000), put64(168, 4096), put32(176, 3)), false, nil, "page cache slot count 3 is not a power of two"},
	{"pcache small", patches(put64(160, 0x2000), put64(168, 4096), put32(176, 4)), false, nil, "page cache of 4096 bytes is smaller than the 24576 its 4 slots need"},
	{"base flags", put32(t1Base+8, 2), false, nil, "base superblock: unknown flags 0x2"},
	{"base reserved", putBytes(t1Base+100, "x"), false, nil, "base superblock: reserved bytes are not zero"},
	{"base total_size", put64(t1Base+16, 0x317000), false, nil, "base superblock: total_size 0x317000 exceeds base_size 0x316000"},
	{"root_inode", put32(t1Base+36, 2), false, nil, "root_inode 2, want 1"},
	{"inode_offset", put64(t1Base+24, 0x1040), false, nil, "inode_offset 0x1040 is not a 4096-aligned offset"},
	{"data_offset in table", put64(t1Base+40, 0x1000), false, nil, "data_offset 0x1000 is not 4096-aligned in [0x1540, 0x316000]"},

	{"root not a dir", put32(t1Inode(1)+4, 0o100644), false, nil, "daxfs: inode 1: root inode is not a directory"},
	{"child out of range", put32(t1RootEntry(2), 99), false, nil, `daxfs: inode 1: directory entry 2 ("x"): child inode 99 out of range 1..21`},
	{"child inode 0", put32(t1RootEntry(2), 0), false, nil, `directory entry 2 ("x"): child inode 0 out of range`},
	{"name length 0", put16(t1RootEntry(3)+8, 0), false, nil, `daxfs: inode 1: directory entry 3 (""): name length 0 out of range 1..255`},
	{"name length 256", put16(t1RootEntry(3)+8, 256), false, nil, "name length 256 out of range 1..255"},
	{"name dot", putBytes(t1RootEntry(2)+16, "."), false, nil, `directory entry 2 ("."): name "." is reserved`},
	{"name dotdot", patches(put16(t1RootEntry(2)+8, 2), putBytes(t1RootEntry(2)+16, "..")), false, nil, `name ".." is reserved`},
	{"name slash", putBytes(t1RootEntry(3)+16, "sm/ll"), false, nil, `directory entry 3 ("sm/ll.txt"): name contains '/'`},
	{"name NUL", putBytes(t1RootEntry(3)+16, "sm\x00ll"), false, nil, "name contains a NUL byte"},
	{"duplicate name", putBytes(t1RootEntry(4)+16, "small.txt"), false, nil, `directory entry 4 ("small.txt"): duplicate name`},
	{"entry mode", put32(t1RootEntry(2)+4, 0o100600), false, nil, `directory entry 2 ("x"): entry mode 0100600 differs from inode 4 mode 0100644`},
	{"entry reserved", putBytes(t1RootEntry(2)+12, "x"), false, nil, "reserved or padding bytes are not zero"},
	{"entry name padding", putBytes(t1RootEntry(2)+20, "x"), false, nil, "reserved or padding bytes are not zero"},
	{"entry last byte", putBytes(t1RootEntry(2)+271, "x"), false, nil, "reserved or padding bytes are not zero"},
	{"points at root", patches(put32(t1RootEntry(6), 1)), false, nil, `directory entry 6 ("dir1"): points at the root inode`},
	{"cycle", patches(put32(0x30d000, 8), put32(0x30d004, 0o40755)), false, nil, "directory inode 8 reached twice (cycle or hard-linked directory)"},

	{"inode reserved", putBytes(t1Inode(3)+40, "x"), false, nil, "daxfs: inode 3: reserved bytes are not zero"},
	{"stored ino", put32(t1Inode(3), 7), false, nil, "inode 3: stored inode number 7 differs from its slot"},
	{"nlink 0", put32(t1Inode(3)+32, 0), false, nil, "inode 3: nlink is 0"},
	{"unknown type", put32(t1Inode(3)+4, 0o070755), false, nil, "inode 3: unknown file type in mode 070755"},
	{"mode high bits", put32(t1Inode(3)+4, 0o304755), false, nil, "inode 3: mode 0304755 has bits beyond st_mode"},
	{"data unaligned", put64(t1Inode(3)+24, 0x3001), false, nil, "inode 3: data_offset 0x3001 is not 4096-aligned"},
	{"data in inode table", put64(t1Inode(3)+24, 0x1000), false, nil, "inode 3: data_offset 0x1000 is not 4096-aligned in the data area (from 0x2000)"},
	{"data past base", put64(t1Inode(12)+16, 0x400000), false, nil, "inode 12: data [0xb000, +4194304) runs past base_size 0x316000"},
	{"data offset overflow", put64(t1Inode(12)+24, ^uint64(0)&^0xfff), false, nil, "inode 12: data [0xfffffffffffff000, +3145851) runs past base_size"},
	{"dir size", put64(t1Inode(8)+16, 1898), false, nil, "inode 8: directory size 1898 is not a multiple of 271"},
	{"dir huge", put64(t1Inode(8)+16, 271*(1<<50)), false, nil, "inode 8: directory of 1125899906842624 entries at 0x7000 runs past base_size"},
	{"symlink no NUL", putBytes(t1Base+0x315000+9, "x"), false, nil, "inode 20: symlink target is not followed by a NUL"},
	{"symlink inner NUL", putBytes(t1Base+0x315000+2, "\x00"), false, nil, "inode 20: symlink target contains a NUL byte"},
	{"symlink too long", put64(t1Inode(20)+16, 5000), false, nil, "inode 20: symlink target length 5000 out of range 1..4095"},
	{"symlink empty", put64(t1Inode(20)+16, 0), false, nil, "inode 20: symlink target length 0 out of range"},
	{"file padding", putBytes(t1Base+0x3000+100, "x"), false, nil, "inode 3: padding after the data [0x3005, 0x4000) is not zero"},
	{"overlap", put64(t1Inode(5)+24, 0x3000), false, nil, "inode 5: data [0x3000, 0x300c) overlaps the data of inode 3 [0x3000, 0x3005)"},
	{"unreachable", put32(t1Inode(21)+4, 0o100644), false, nil, "inode 21: not reachable from the root"},
	{"hard-linked symlink", put32(t1RootEntry(5), 20), false, nil, "inode 20: 2 entries point at it, but only regular files may be hard-linked"},
	{"special with size", patches(put32(t1Inode(3)+4, 0o010755), put32(t1RootEntry(1)+4, 0o010755)), false, nil, "inode 3: special file has size 5 and data_offset 0x3000, want 0 and 0"},
}

func TestCorruptImagesRejected(t *testing.T) {
	orig, err := os.ReadFile(samplePath(t, "tree1.static.daxfs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range corruptions {
		t.Run(c.name, func(t *testing.T) {
			b := c.patch(bytes.Clone(orig))
			for _, mode := range []string{"bytes", "readerat"} {
				var im *Image
				var err error
				if mode == "bytes" {
					im, err = OpenBytes(b)
				} else {
					im, err = Open(bytes.NewReader(b), int64(len(b)))
				}
				if c.atOpen {
					if err == nil {
						t.Fatalf("%s: Open succeeded, want %q", mode, c.want)
					}
				} else {
					if err != nil {
						t.Fatalf("%s: Open: %v", mode, err)
					}
					exerciseAll(im) // must not panic on a bad image
					meta := im.ValidateMetadata()
					if c.name == "file padding" {
						if meta != nil {
							t.Errorf("%s: ValidateMetadata: %v, want nil (it skips file padding)", mode, meta)
						}
					} else if meta == nil || !strings.Contains(meta.Error(), c.want) {
						t.Errorf("%s: ValidateMetadata: %v\nwant it to contain %q", mode, meta, c.want)
					}
					err = im.Validate()
					if err == nil {
						t.Fatalf("%s: Validate succeeded, want %q", mode, c.want)
					}
					var fe *FormatError
					if !errors.As(err, &fe) {
						t.Errorf("%s: %v is not a *FormatError", mode, err)
					}
				}
				if !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s: error %q\nwant it to contain %q", mode, err, c.want)
				}
				if c.is != nil && !errors.Is(err, c.is) {
					t.Errorf("%s: error %v is not %v", mode, err, c.is)
				}
			}
		})
	}
}

// exerciseAll calls every accessor on every inode slot and walks the io/fs
// view, ignoring errors: it exists to find panics and out-of-bounds reads.
func exerciseAll(im *Image) {
	n := im.Info().InodeCount
	buf := make([]byte, 8192)
	for ino := uint32(0); ino <= n+1 && ino < 4096; ino++ {
		im.Inode(ino)
		if ents, err := im.ReadDir(ino); err == nil {
			for _, e := range ents {
				im.Lookup(ino, e.Name)
			}
		}
		im.Lookup(ino, "nonexistent")
		im.ReadLink(ino)
		im.ReadAt(ino, buf, 0)
		im.ReadAt(ino, buf, 1<<62)
		im.FileBytes(ino)
	}
	im.Walk(func(string, Inode) error { return nil })
	fsys := im.FS()
	budget := 2000 // bounded: a corrupt image may hold cycles
	var visit func(p string, depth int)
	visit = func(p string, depth int) {
		ents, _ := fs.ReadDir(fsys, p)
		for _, e := range ents {
			if budget--; budget < 0 {
				return
			}
			c := path.Join(p, e.Name())
			fs.ReadFile(fsys, c)
			fsys.ReadLink(c)
			fsys.Lstat(c)
			fsys.Stat(c)
			if e.IsDir() && depth < 8 {
				visit(c, depth+1)
			}
		}
	}
	visit(".", 0)
}
