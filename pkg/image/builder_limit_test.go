package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// gnuSparseTar is a tar of one old-GNU sparse member ('S') of realSize
// bytes whose only data is "tail" in its last 512-byte block: a few KB
// that a tar reader expands to realSize.
func gnuSparseTar(name string, realSize int64) []byte {
	var h [512]byte
	copy(h[0:], name)
	copy(h[100:], "0000644\x00")
	copy(h[108:], "0000000\x00")
	copy(h[116:], "0000000\x00")
	copy(h[124:], fmt.Sprintf("%011o\x00", 512)) // stored bytes
	copy(h[136:], "00000000000\x00")
	h[156] = 'S'
	copy(h[257:], "ustar  \x00") // GNU magic and version
	copy(h[386:], fmt.Sprintf("%011o\x00", realSize-512))
	copy(h[398:], fmt.Sprintf("%011o\x00", 512))
	copy(h[483:], fmt.Sprintf("%011o\x00", realSize))
	copy(h[148:], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	var data [512]byte
	copy(data[512-4:], "tail")
	return bytes.Join([][]byte{h[:], data[:], make([]byte, 1024)}, nil)
}

// dirBytes sums the allocated bytes of the files under dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	ents, err := os.ReadDir(dir)
	must(t, err)
	for _, e := range ents {
		if info, err := e.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}

// TestMaxSizeRefusesSparseTar: a few KB of tar claiming a 2 GiB file is
// refused before the 2 GiB are spooled, read in place or streamed.
func TestMaxSizeRefusesSparseTar(t *testing.T) {
	const claimed = 2 << 30
	sparse := gnuSparseTar("big", claimed)
	if len(sparse) > 10<<10 {
		t.Fatalf("sparse tar of %d bytes", len(sparse))
	}
	// Without a cap such a member does expand to its claimed size.
	got, err := openValid(t, build(t, BuildOptions{TempDir: t.TempDir()}, func(b *Builder) error {
		return b.AddTar(bytes.NewReader(gnuSparseTar("small", 1<<20)))
	})).FS().ReadFile("small")
	if err != nil || len(got) != 1<<20 || !bytes.HasSuffix(got, []byte("tail")) {
		t.Fatalf("uncapped sparse member: %d bytes, %v", len(got), err)
	}
	for name, r := range map[string]func() io.Reader{
		"seekable": func() io.Reader { return bytes.NewReader(sparse) },
		"stream":   func() io.Reader { return io.MultiReader(bytes.NewReader(sparse)) }, // hides Seek: spooled
	} {
		t.Run(name, func(t *testing.T) {
			spool := t.TempDir()
			b := NewBuilder(BuildOptions{TempDir: spool, MaxSize: 1 << 30})
			defer b.Close()
			err := b.AddTar(r())
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), `tar member "big"`) {
				t.Fatalf("AddTar = %v, want ErrTooLarge naming the member", err)
			}
			if n := dirBytes(t, spool); n > 1<<20 {
				t.Errorf("spooled %d bytes before refusing", n)
			}
		})
	}
}

// TestMaxSizeSpoolCountsEveryMember: members that fit one by one but not
// together are refused once the spool would pass the cap.
func TestMaxSizeSpoolCountsEveryMember(t *testing.T) {
	var tars []byte
	for i := range 3 {
		tars = append(tars[:max(0, len(tars)-1024)], gnuSparseTar(fmt.Sprintf("f%d", i), 4<<20)...)
	}
	b := NewBuilder(BuildOptions{TempDir: t.TempDir(), MaxSize: 10 << 20})
	defer b.Close()
	err := b.AddTar(io.MultiReader(bytes.NewReader(tars)))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), `tar member "f2"`) {
		t.Fatalf("AddTar = %v, want ErrTooLarge at f2", err)
	}
}

// TestMaxSizeRefusesBeforeWriting: a sparse 10 GiB file in a directory is
// refused by WriteTo before any byte is written.
func TestMaxSizeRefusesBeforeWriting(t *testing.T) {
	root := t.TempDir()
	f, err := os.Create(filepath.Join(root, "sparse"))
	must(t, err)
	must(t, f.Truncate(10<<30))
	must(t, f.Close())
	mustWrite(t, filepath.Join(root, "small"), []byte("x"))
	b := NewBuilder(BuildOptions{MaxSize: 1 << 30})
	defer b.Close()
	must(t, b.AddDir(root))
	var w countWriter
	n, err := b.WriteTo(&w)
	if !errors.Is(err, ErrTooLarge) || n != 0 || w.n != 0 {
		t.Fatalf("WriteTo = %d, %v (wrote %d), want ErrTooLarge before any byte", n, err, w.n)
	}
}

// TestMaxSizeAtTheLimit: an image of exactly MaxSize is built, one byte
// less refused.
func TestMaxSizeAtTheLimit(t *testing.T) {
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "f"), pattern(5000, 2))
	size := int64(len(build(t, BuildOptions{}, func(b *Builder) error { return b.AddDir(root) })))
	build(t, BuildOptions{MaxSize: size}, func(b *Builder) error { return b.AddDir(root) })
	b := NewBuilder(BuildOptions{MaxSize: size - 1})
	defer b.Close()
	must(t, b.AddDir(root))
	if _, err := b.WriteTo(io.Discard); !errors.Is(err, ErrTooLarge) {
		t.Errorf("WriteTo under a cap one byte short = %v", err)
	}
}
