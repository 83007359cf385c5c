package image

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// sparseImage is an io.Writer + io.ReaderAt that keeps only non-zero 64 KiB
// chunks, so a multi-GiB image costs memory only for its real content.
type sparseImage struct {
	size   int64
	chunks map[int64][]byte
}

const sparseChunk = 64 << 10

func (s *sparseImage) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		idx, off := s.size/sparseChunk, int(s.size%sparseChunk)
		k := min(len(p), sparseChunk-off)
		if !allZero(p[:k]) {
			c := s.chunks[idx]
			if c == nil {
				c = make([]byte, sparseChunk)
				s.chunks[idx] = c
			}
			copy(c[off:], p[:k])
		}
		s.size += int64(k)
		p = p[k:]
	}
	return n, nil
}

func (s *sparseImage) ReadAt(p []byte, at int64) (int, error) {
	n := 0
	for n < len(p) && at < s.size {
		idx, off := at/sparseChunk, int(at%sparseChunk)
		k := min(len(p)-n, sparseChunk-off, int(s.size-at))
		if c := s.chunks[idx]; c != nil {
			copy(p[n:n+k], c[off:])
		} else {
			clear(p[n : n+k])
		}
		n += k
		at += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestFileOver2GiB builds a 4 GiB sparse file (reading 4 GiB of zeros
// from the page cache, a few seconds) and reads it back across the 2^31 and
// 2^32 boundaries. Skipped with -short.
func TestFileOver2GiB(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 4 GiB of a sparse file; skipped with -short")
	}
	root := t.TempDir()
	const size = 1<<32 + 4099 // past both the 2^31 and 2^32 boundaries
	marks := map[int64]string{0: "head", 1<<31 - 2: "2G-edge", 1<<32 - 3: "4G-edge", size - 4: "tail"}
	f, err := os.Create(filepath.Join(root, "huge"))
	must(t, err)
	must(t, f.Truncate(size))
	for off, m := range marks {
		_, err := f.WriteAt([]byte(m), off)
		must(t, err)
	}
	must(t, f.Close())
	mustWrite(t, filepath.Join(root, "zafter"), []byte("after the huge file"))

	b := NewBuilder(BuildOptions{})
	defer b.Close()
	must(t, b.AddDir(root))
	img := &sparseImage{chunks: map[int64][]byte{}}
	n, err := b.WriteTo(img)
	must(t, err)
	im, err := Open(img, n)
	must(t, err)
	must(t, im.Validate())
	huge, err := im.Lookup(RootIno, "huge")
	must(t, err)
	if huge.Size != size {
		t.Fatalf("size %d, want %d", huge.Size, size)
	}
	for off, m := range marks {
		buf := make([]byte, len(m)+2)
		k, err := im.ReadAt(huge.Ino, buf, off-1)
		if off == 0 {
			k, err = im.ReadAt(huge.Ino, buf[1:], 0)
			buf[0], k = 0, k+1
		}
		if want := "\x00" + m; !bytes.HasPrefix(buf[:k], []byte(want)) || (err != nil && err != io.EOF) {
			t.Errorf("at %d: %q, %v; want %q", off, buf[:k], err, want)
		}
	}
	after, err := im.Lookup(RootIno, "zafter")
	must(t, err)
	if after.DataOffset < 1<<31 {
		t.Errorf("second file at %#x, want beyond 2 GiB", after.DataOffset)
	}
	got, err := im.FS().ReadFile("zafter")
	if err != nil || string(got) != "after the huge file" {
		t.Errorf("zafter: %q, %v", got, err)
	}
}
