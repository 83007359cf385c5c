package fusefs

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// TestPushSiblings: listing a directory pushes nothing; the first read of
// one of its files stores the directory's other small files into the
// kernel's page cache, which are then read without a READ, up to
// PushSiblingsKB in stored order; files over maxPushFile and everything
// past the budget are read as before; a negative budget pushes nothing.
// Contents are exact.
func TestPushSiblings(t *testing.T) {
	data := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i*7)
		}
		return b
	}
	tr := newTestTree()
	tr.add("/d", syscall.S_IFDIR|0o755, nil)
	order := []string{"a", "e", "b", "big"}
	files := map[string][]byte{
		"a":   data(8<<10, 1),
		"e":   data(300, 4),
		"b":   data(8<<10+100, 2),
		"big": data(maxPushFile+4096, 3),
	}
	for _, name := range order {
		tr.add("/d/"+name, syscall.S_IFREG|0o644, files[name])
	}
	img := tr.bytes()

	cases := []struct {
		name     string
		kb       int
		noReadOf []string // read without a READ request, after a
		readOf   []string // each needs READs
	}{
		{"default", 0, []string{"e", "b"}, []string{"big"}},
		{"budget 8 KiB", 8, []string{"e"}, []string{"b", "big"}},
		{"off", -1, nil, []string{"e", "b", "big"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			im, err := image.OpenBytes(img)
			if err != nil {
				t.Fatal(err)
			}
			s, mnt := mountTest(t, im, Options{PushSiblingsKB: c.kb})
			if _, err := os.ReadDir(filepath.Join(mnt, "d")); err != nil {
				t.Fatal(err)
			}
			if n := s.fsys.pushedFiles.Load(); n != 0 {
				t.Errorf("a listing pushed %d files, want none", n)
			}
			check := func(name string, wantRead bool) {
				before := s.fsys.readRequests.Load()
				got, err := os.ReadFile(filepath.Join(mnt, "d", name))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, files[name]) {
					t.Errorf("%s: %d bytes read differ from the %d stored", name, len(got), len(files[name]))
				}
				if n := s.fsys.readRequests.Load() - before; (n > 0) != wantRead {
					t.Errorf("%s: %d READ requests; want a READ: %v", name, n, wantRead)
				}
			}
			check("a", true)
			for _, name := range c.noReadOf {
				check(name, false)
			}
			for _, name := range c.readOf {
				check(name, true)
			}
			if n := s.fsys.pushedFiles.Load(); n != int64(len(c.noReadOf)) {
				t.Errorf("%d files pushed, want %d", n, len(c.noReadOf))
			}
		})
	}
}
