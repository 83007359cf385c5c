package fusefs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

func TestWritesFailWithEROFS(t *testing.T) {
	_, mnt := mountTest(t, openSample(t, "tree1.static.daxfs", true), Options{})
	file := filepath.Join(mnt, "small.txt")
	ops := map[string]func() error{
		"create":   func() error { return os.WriteFile(filepath.Join(mnt, "new"), []byte("x"), 0o644) },
		"write":    func() error { _, err := os.OpenFile(file, os.O_WRONLY, 0); return err },
		"truncate": func() error { return os.Truncate(file, 0) },
		"mkdir":    func() error { return os.Mkdir(filepath.Join(mnt, "d"), 0o755) },
		"remove":   func() error { return os.Remove(file) },
		"rmdir":    func() error { return os.Remove(filepath.Join(mnt, "emptydir")) },
		"rename":   func() error { return os.Rename(file, filepath.Join(mnt, "moved")) },
		"symlink":  func() error { return os.Symlink("x", filepath.Join(mnt, "l")) },
		"link":     func() error { return os.Link(file, filepath.Join(mnt, "hl")) },
		"chmod":    func() error { return os.Chmod(file, 0o600) },
		"chown":    func() error { return os.Lchown(file, 1, 1) },
		"mknod":    func() error { return unix.Mkfifo(filepath.Join(mnt, "f"), 0o644) },
		"setxattr": func() error { return unix.Setxattr(file, "user.x", []byte("1"), 0) },
	}
	for name, op := range ops {
		if err := op(); errnoOf(err) != unix.EROFS {
			t.Errorf("%s: %v, want EROFS", name, err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) == "" {
		t.Errorf("file unreadable after refused writes: %q %v", b, err)
	}
}

func TestHardLinksShareInode(t *testing.T) {
	for _, tc := range []struct {
		image string
		paths []string
	}{
		{"tree1.static.daxfs", []string{"/small.txt", "/dir1/hardlink_to_small"}},
		{"tree2.static.daxfs", []string{"/big", "/d/big_link1", "/d/big_link2"}},
	} {
		_, mnt := mountTest(t, openSample(t, tc.image, true), Options{})
		var first uint64
		for _, p := range tc.paths {
			fi, err := os.Stat(filepath.Join(mnt, p))
			if err != nil {
				t.Fatal(err)
			}
			ino := fi.Sys().(*syscall.Stat_t).Ino
			if first == 0 {
				first = ino
			} else if ino != first {
				t.Errorf("%s %s: inode %d, first link has %d", tc.image, p, ino, first)
			}
		}
	}
}

func TestStatfsAndMountinfo(t *testing.T) {
	im := openSample(t, "tree1.static.daxfs", true)
	_, mnt := mountTest(t, im, Options{FSName: "daxfs:sha256:0123456789ab"})
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	info := im.Info()
	wantBlocks := uint64((info.RegionSize + 4095) / 4096)
	if st.Bsize != 4096 || st.Blocks != wantBlocks || st.Files != uint64(info.InodeCount) || st.Namelen != 255 || st.Bfree != 0 {
		t.Errorf("statfs: bsize %d blocks %d files %d namelen %d bfree %d; want 4096 %d %d 255 0",
			st.Bsize, st.Blocks, st.Files, st.Namelen, st.Bfree, wantBlocks, info.InodeCount)
	}
	line := mountinfoLine(t, mnt)
	for _, want := range []string{" - fuse.daxfs daxfs:sha256:0123456789ab ", "default_permissions", "allow_other"} {
		if !strings.Contains(line, want) {
			t.Errorf("mountinfo %q lacks %q", line, want)
		}
	}
	f := strings.Fields(line)
	if len(f) < 6 || !strings.HasPrefix(f[5], "ro,") {
		t.Fatalf("mountinfo %q: mount is not ro", line)
	}
	ra, err := os.ReadFile("/sys/class/bdi/" + f[2] + "/read_ahead_kb")
	if err != nil || strings.TrimSpace(string(ra)) != "1024" {
		t.Errorf("read_ahead_kb of %s: %q %v, want 1024", f[2], ra, err)
	}
}

// mountinfoLine is the /proc/self/mountinfo line of mountpoint ("" if none).
func mountinfoLine(t *testing.T, mnt string) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == mnt {
			return l
		}
	}
	return ""
}

// TestCorruptDirectoryGivesEIO: quirk Q1 leaves the root's entry array
// running past the image. Listing it must fail with EIO, not crash the
// server; the mount keeps answering.
func TestCorruptDirectoryGivesEIO(t *testing.T) {
	im := openSample(t, "tree5-q1-overflow.static.daxfs", true)
	_, mnt := mountTest(t, im, Options{})
	for i := 0; i < 2; i++ { // twice: the second is the already-logged path
		_, err := os.ReadDir(mnt)
		if errnoOf(err) != unix.EIO {
			t.Errorf("readdir: %v, want EIO", err)
		}
		_, err = os.Lstat(filepath.Join(mnt, "f1"))
		if errnoOf(err) != unix.EIO {
			t.Errorf("lookup: %v, want EIO", err)
		}
	}
	if _, err := os.Stat(mnt); err != nil {
		t.Errorf("mount stopped answering: %v", err)
	}
}

func TestReadAtOffsets(t *testing.T) {
	for _, mapped := range []bool{true, false} {
		im := openSample(t, "tree1.static.daxfs", mapped)
		_, mnt := mountTest(t, im, Options{})
		want, err := im.FS().ReadFile("dir1/sub1/multi_mib.bin")
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(mnt, "dir1/sub1/multi_mib.bin"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, off := range []int64{0, 1, 4095, 4096, 1 << 20, int64(len(want)) - 10, int64(len(want)), int64(len(want)) + 100} {
			buf := make([]byte, 300000)
			n, err := f.ReadAt(buf, off)
			wantN := max(0, min(int64(len(buf)), int64(len(want))-off))
			if int64(n) != wantN || (err != nil && !errors.Is(err, io.EOF)) {
				t.Errorf("mapped=%v ReadAt(off %d) = %d, %v; want %d", mapped, off, n, err, wantN)
				continue
			}
			if wantN > 0 && !bytes.Equal(buf[:n], want[off:off+wantN]) {
				t.Errorf("mapped=%v ReadAt(off %d): data differs", mapped, off)
			}
		}
	}
}

// TestReadIsZeroCopy: for a mapped image the reply is a sub-slice of the
// image bytes themselves.
func TestReadIsZeroCopy(t *testing.T) {
	b, err := os.ReadFile(samplePath(t, "tree1.static.daxfs"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := image.OpenBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	in, err := im.FS().Lstat("dir1/exact8k.bin")
	if err != nil {
		t.Fatal(err)
	}
	ino := in.Sys().(image.Inode)
	fsys := &filesys{im: im, mapped: true, info: im.Info(), idx: newIndexCache(10), errs: &errLog{}}
	n := fsys.newNode(ino)
	res, errno := n.Read(context.Background(), nil, make([]byte, 4096), 100)
	if errno != 0 {
		t.Fatal(errno)
	}
	got, _ := res.Bytes(nil)
	fb, _ := im.FileBytes(ino.Ino)
	if len(got) != 4096 || &got[0] != &fb[100] {
		t.Errorf("read reply is not the mapped bytes (len %d)", len(got))
	}
}

func bigDirTree(dirs, perDir int) *testTree {
	tr := newTestTree()
	for d := 0; d < dirs; d++ {
		dir := fmt.Sprintf("/d%d", d)
		tr.add(dir, syscall.S_IFDIR|0o755, nil)
		for i := 0; i < perDir; i++ {
			tr.add(fmt.Sprintf("%s/f%05d", dir, i), syscall.S_IFREG|0o644, []byte(fmt.Sprint(i)))
		}
	}
	return tr
}

func TestBigDirectoryLookups(t *testing.T) {
	im, err := image.OpenBytes(bigDirTree(1, 5000).bytes())
	if err != nil {
		t.Fatal(err)
	}
	s, mnt := mountTest(t, im, Options{})
	for _, i := range []int{0, 1, 2500, 4999} {
		p := filepath.Join(mnt, fmt.Sprintf("d0/f%05d", i))
		b, err := os.ReadFile(p)
		if err != nil || string(b) != fmt.Sprint(i) {
			t.Errorf("%s: %q %v", p, b, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(mnt, "d0/nope")); errnoOf(err) != unix.ENOENT {
		t.Errorf("missing name: %v, want ENOENT", err)
	}
	if maps, entries := s.fsys.idx.size(); maps != 1 || entries != 5000 {
		t.Errorf("index cache holds %d maps / %d entries, want 1 / 5000", maps, entries)
	}
	names := readDirNames(t, filepath.Join(mnt, "d0"))
	if len(names) != 5000 || names[0] != "f00000" || names[4999] != "f04999" {
		t.Errorf("listing: %d names, first %q", len(names), names[:1])
	}
}

// TestLookupIndexBudget: the indexes never hold more entries than the
// budget; lookups still work when a directory cannot be indexed.
func TestLookupIndexBudget(t *testing.T) {
	im, err := image.OpenBytes(bigDirTree(4, 200).bytes())
	if err != nil {
		t.Fatal(err)
	}
	s, mnt := mountTest(t, im, Options{LookupIndexBudget: 500})
	for d := 0; d < 4; d++ {
		if _, err := os.Lstat(filepath.Join(mnt, fmt.Sprintf("d%d/f00199", d))); err != nil {
			t.Fatal(err)
		}
		if maps, entries := s.fsys.idx.size(); entries > 500 || maps != min(d+1, 2) {
			t.Errorf("after dir %d: %d maps, %d entries; want <= 500 entries, %d maps", d, maps, entries, min(d+1, 2))
		}
	}
	small, err := image.OpenBytes(bigDirTree(1, 200).bytes())
	if err != nil {
		t.Fatal(err)
	}
	s2, mnt2 := mountTest(t, small, Options{LookupIndexBudget: 100})
	if _, err := os.Lstat(filepath.Join(mnt2, "d0/f00150")); err != nil {
		t.Errorf("lookup in an unindexable directory: %v", err)
	}
	if maps, _ := s2.fsys.idx.size(); maps != 0 {
		t.Errorf("a directory over the whole budget was indexed")
	}
}
