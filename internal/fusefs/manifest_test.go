package fusefs

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

var samples = []struct{ image, manifest string }{
	{"tree1.static.daxfs", "tree1.manifest.json"},
	{"tree1.branching.daxfs", "tree1.manifest.json"},
	{"tree2.static.daxfs", "tree2.manifest.json"},
	{"tree4.static.daxfs", "tree4.manifest.json"},
}

// TestMountMatchesManifest compares what the kernel shows through the
// mount with what the source tree held, field by field.
func TestMountMatchesManifest(t *testing.T) {
	for _, s := range samples {
		for _, mapped := range []bool{true, false} {
			name := s.image + "/readerat"
			if mapped {
				name = s.image + "/mapped"
			}
			t.Run(name, func(t *testing.T) {
				im := openSample(t, s.image, mapped)
				_, mnt := mountTest(t, im, Options{FSName: "daxfs:test"})
				checkAgainstManifest(t, im, mnt, readManifest(t, s.manifest))
			})
		}
	}
}

func checkAgainstManifest(t *testing.T, im *image.Image, mnt string, want []manifestEntry) {
	inodes := map[string]image.Inode{}
	if err := im.Walk(func(p string, in image.Inode) error { inodes[p] = in; return nil }); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	children := map[string][]string{}
	for _, w := range want {
		if w.Path != "/" {
			d := path.Dir(w.Path)
			children[d] = append(children[d], path.Base(w.Path))
		}
	}
	for _, w := range want {
		p := filepath.Join(mnt, w.Path)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", w.Path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Mode != w.Mode || st.Uid != w.UID || st.Gid != w.GID || st.Nlink != uint64(w.Nlink) {
			t.Errorf("%s: mode %#o uid %d gid %d nlink %d; manifest mode %#o uid %d gid %d nlink %d",
				w.Path, st.Mode, st.Uid, st.Gid, st.Nlink, w.Mode, w.UID, w.GID, w.Nlink)
		}
		if in := inodes[w.Path]; st.Ino != uint64(in.Ino) || in.Ino == 0 {
			t.Errorf("%s: st_ino %d, image inode %d", w.Path, st.Ino, in.Ino)
		}
		if st.Rdev != 0 || st.Atim.Nano() != 0 || st.Mtim.Nano() != 0 || st.Ctim.Nano() != 0 || st.Blksize != 4096 {
			t.Errorf("%s: rdev %d atime %v mtime %v ctime %v blksize %d; want all 0 and 4096",
				w.Path, st.Rdev, st.Atim, st.Mtim, st.Ctim, st.Blksize)
		}
		switch w.Type {
		case "file":
			b, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("%s: %v", w.Path, err)
				continue
			}
			sum := sha256.Sum256(b)
			if w.Size == nil || st.Size != *w.Size || int64(len(b)) != *w.Size || hex.EncodeToString(sum[:]) != w.SHA256 {
				t.Errorf("%s: st_size %d read %d bytes sha256 %x; manifest %v %s", w.Path, st.Size, len(b), sum, w.Size, w.SHA256)
			}
			if wantBlocks := (st.Size + 4095) / 4096 * 8; st.Blocks != wantBlocks {
				t.Errorf("%s: st_blocks %d, want %d", w.Path, st.Blocks, wantBlocks)
			}
		case "symlink":
			target, err := os.Readlink(p)
			if err != nil || target != w.Target || st.Size != int64(len(w.Target)) {
				t.Errorf("%s: readlink %q, %v (size %d); manifest %q", w.Path, target, err, st.Size, w.Target)
			}
		case "dir":
			got := readDirNames(t, p)
			stored, err := im.ReadDir(inodes[w.Path].Ino)
			if err != nil {
				t.Fatal(err)
			}
			var storedNames []string
			for _, e := range stored {
				storedNames = append(storedNames, e.Name)
			}
			if !slices.Equal(got, storedNames) {
				t.Errorf("%s: listed %q, stored order %q", w.Path, got, storedNames)
			}
			wantSet := slices.Sorted(slices.Values(children[w.Path]))
			if gotSet := slices.Sorted(slices.Values(got)); !slices.Equal(gotSet, wantSet) {
				t.Errorf("%s: entries %q, manifest %q", w.Path, gotSet, wantSet)
			}
		}
	}
	n := 0
	filepath.WalkDir(mnt, func(string, os.DirEntry, error) error { n++; return nil })
	if n != len(want) {
		t.Errorf("walk through the mount found %d entries, manifest has %d", n, len(want))
	}
}

// readDirNames lists a directory in the order the kernel returns it.
func readDirNames(t *testing.T, p string) []string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return names
}
