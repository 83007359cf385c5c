package image

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/daxfs-csi/daxfs-csi/internal/sharedtest"
)

func samplePath(t testing.TB, name string) string { return sharedtest.Sample(t, name) }

// soundSamples are the upstream images that must open and validate.
var soundSamples = []struct{ image, manifest string }{
	{"tree1.static.daxfs", "tree1.manifest.json"},
	{"tree1.branching.daxfs", "tree1.manifest.json"},
	{"tree2.static.daxfs", "tree2.manifest.json"},
	{"tree4.static.daxfs", "tree4.manifest.json"},
}

type manifestEntry = sharedtest.ManifestEntry

func readManifest(t testing.TB, name string) []manifestEntry { return sharedtest.Manifest(t, name) }

func openSampleBytes(t testing.TB, name string) *Image {
	b, err := os.ReadFile(samplePath(t, name))
	if err != nil {
		t.Fatal(err)
	}
	im, err := OpenBytes(b)
	if err != nil {
		t.Fatalf("%s: OpenBytes: %v", name, err)
	}
	return im
}

func openSampleFile(t testing.TB, name string) *Image {
	f, err := os.Open(samplePath(t, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	im, err := Open(f, st.Size())
	if err != nil {
		t.Fatalf("%s: Open: %v", name, err)
	}
	return im
}

func typeName(mode uint32) string {
	switch mode & modeTypeMask {
	case modeRegular:
		return "file"
	case modeDir:
		return "dir"
	case modeSymlink:
		return "symlink"
	case modeFIFO:
		return "fifo"
	case modeSocket:
		return "socket"
	case modeChar:
		return "chardev"
	case modeBlock:
		return "blockdev"
	}
	return fmt.Sprintf("unknown(%#o)", mode&modeTypeMask)
}

// compareWithManifest walks im and checks every field of every entry.
func compareWithManifest(t *testing.T, im *Image, want []manifestEntry) {
	t.Helper()
	i := 0
	err := im.Walk(func(p string, in Inode) error {
		if i >= len(want) {
			return fmt.Errorf("extra entry %s", p)
		}
		w := want[i]
		i++
		if p != w.Path {
			return fmt.Errorf("entry %d: path %q, manifest %q", i-1, p, w.Path)
		}
		if in.Mode != w.Mode || in.UID != w.UID || in.GID != w.GID || in.Nlink != w.Nlink || typeName(in.Mode) != w.Type {
			return fmt.Errorf("%s: mode %#o uid %d gid %d nlink %d type %s; manifest mode %#o uid %d gid %d nlink %d type %s",
				p, in.Mode, in.UID, in.GID, in.Nlink, typeName(in.Mode), w.Mode, w.UID, w.GID, w.Nlink, w.Type)
		}
		switch w.Type {
		case "file":
			buf := make([]byte, in.Size+1)
			n, err := im.ReadAt(in.Ino, buf, 0)
			if err == nil || int64(n) != int64(in.Size) {
				return fmt.Errorf("%s: ReadAt = %d, %v; want %d, EOF", p, n, err, in.Size)
			}
			sum := sha256.Sum256(buf[:n])
			if w.Size == nil || int64(in.Size) != *w.Size || hex.EncodeToString(sum[:]) != w.SHA256 {
				return fmt.Errorf("%s: size %d sha256 %x; manifest %v %s", p, in.Size, sum, w.Size, w.SHA256)
			}
			if im.Mapped() {
				fb, err := im.FileBytes(in.Ino)
				if err != nil {
					return err
				}
				if s := sha256.Sum256(fb); s != sum || cap(fb) != len(fb) {
					return fmt.Errorf("%s: FileBytes differs from ReadAt (cap %d len %d)", p, cap(fb), len(fb))
				}
			}
		case "symlink":
			target, err := im.ReadLink(in.Ino)
			if err != nil {
				return err
			}
			if target != w.Target {
				return fmt.Errorf("%s: target %q, manifest %q", p, target, w.Target)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != len(want) {
		t.Fatalf("walked %d entries, manifest has %d", i, len(want))
	}
}

func TestSamplesMatchManifests(t *testing.T) {
	for _, s := range soundSamples {
		for _, mode := range []string{"bytes", "readerat"} {
			t.Run(s.image+"/"+mode, func(t *testing.T) {
				var im *Image
				if mode == "bytes" {
					im = openSampleBytes(t, s.image)
				} else {
					im = openSampleFile(t, s.image)
				}
				if err := im.Validate(); err != nil {
					t.Fatalf("Validate: %v", err)
				}
				compareWithManifest(t, im, readManifest(t, s.manifest))
			})
		}
	}
}

func TestSampleLayouts(t *testing.T) {
	st := openSampleBytes(t, "tree1.static.daxfs").Info()
	br := openSampleBytes(t, "tree1.branching.daxfs").Info()
	if st.Layout != LayoutStatic || st.BaseOffset != 0x1000 {
		t.Errorf("static: layout %v base %#x", st.Layout, st.BaseOffset)
	}
	if br.Layout != LayoutBranching || br.BaseOffset != 0x9000 || br.BranchTableEntries != 256 {
		t.Errorf("branching: layout %v base %#x entries %d", br.Layout, br.BaseOffset, br.BranchTableEntries)
	}
	if st.InodeCount != br.InodeCount || st.BaseSize != br.BaseSize {
		t.Errorf("base images differ: %+v vs %+v", st, br)
	}
}

func TestQ1OverflowRejected(t *testing.T) {
	for _, mode := range []string{"bytes", "readerat"} {
		t.Run(mode, func(t *testing.T) {
			var im *Image
			if mode == "bytes" {
				im = openSampleBytes(t, "tree5-q1-overflow.static.daxfs")
			} else {
				im = openSampleFile(t, "tree5-q1-overflow.static.daxfs")
			}
			err := im.Validate()
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Ino != RootIno {
				t.Fatalf("Validate = %v, want a FormatError on inode 1", err)
			}
			const want = "daxfs: inode 1: directory of 136 entries at 0x4000 runs past base_size 0xd000 (272-byte stride)"
			if err.Error() != want {
				t.Errorf("Validate = %q\nwant %q", err, want)
			}
			if _, err := im.ReadDir(RootIno); err == nil || err.Error() != want {
				t.Errorf("ReadDir = %v, want %q", err, want)
			}
			if _, err := im.Lookup(RootIno, "f1"); err == nil || errors.Is(err, os.ErrNotExist) {
				t.Errorf("Lookup = %v, want the format error", err)
			}
		})
	}
}
