package fusefs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// TestListingWithoutOpendir: with OPENDIR answered ENOSYS, a listing that
// takes many READDIRPLUS requests (each with a handle of its own) is
// complete and in order, is decoded from the image once, and a second
// listing and a rewind come from the kernel's cache.
func TestListingWithoutOpendir(t *testing.T) {
	im, err := image.OpenBytes(bigDirTree(2, 3000).bytes())
	if err != nil {
		t.Fatal(err)
	}
	s, mnt := mountTest(t, im, Options{})
	want := make([]string, 3000)
	for i := range want {
		want[i] = fmt.Sprintf("f%05d", i)
	}
	dir := filepath.Join(mnt, "d1")
	for pass := 1; pass <= 2; pass++ {
		if got := readDirNames(t, dir); !slices.Equal(got, want) {
			t.Fatalf("pass %d: %d names, want %d in stored order", pass, len(got), len(want))
		}
		if n := s.fsys.listingsDecoded.Load(); n != 1 {
			t.Errorf("pass %d: listing decoded %d times, want 1", pass, n)
		}
	}
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first, err := f.Readdirnames(10)
	if err != nil || len(first) != 10 {
		t.Fatalf("first 10 names: %v %v", first, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if all, err := f.Readdirnames(-1); err != nil || !slices.Equal(all, want) {
		t.Fatalf("after rewind: %d names, %v", len(all), err)
	}
	// Another directory is decoded on its own, once.
	if got := readDirNames(t, filepath.Join(mnt, "d0")); len(got) != 3000 {
		t.Fatalf("d0: %d names", len(got))
	}
	if n := s.fsys.listingsDecoded.Load(); n != 2 {
		t.Errorf("after d0: %d listings decoded, want 2", n)
	}
}
