package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

// FuzzBuildTar feeds arbitrary bytes to AddTar as a tar stream, both as a
// seekable file (data read in place) and as a pipe (data spooled). Nothing
// may panic; what builds must be an image that opens, validates and walks,
// the same bytes both ways. MaxSize keeps a sparse member's claim from
// filling the disk.
//
//	go test ./pkg/image -run '^$' -fuzz FuzzBuildTar -fuzztime 60s
func FuzzBuildTar(f *testing.F) {
	for _, members := range [][]tarMember{
		{dir("d/"), reg("d/f", "hello"), reg("big", string(pattern(5000, 1)))},
		{reg("a", "1"), {name: "s", link: "a", typ: tar.TypeSymlink}, {name: "h", link: "a", typ: tar.TypeLink}},
		{{name: "p", typ: tar.TypeFifo}, {name: "c", typ: tar.TypeChar}, {name: "b", typ: tar.TypeBlock}},
		{dir("./"), reg("./x/../y", "up"), reg("../escape", "no")},
		{reg("d/f", "lower"), reg("d/.wh.f", ""), reg("e/g", "g"), reg("e/.wh..wh..opq", "")},
		{{name: "h", link: "missing", typ: tar.TypeLink}},
		{dir("d/"), {name: "hd", link: "d", typ: tar.TypeLink}},
		{reg(string(bytes.Repeat([]byte("n"), 256)), "long name")},
		{{name: "s", link: string(bytes.Repeat([]byte("t"), 4096)), typ: tar.TypeSymlink}},
		{{name: "u", body: "x", typ: tar.TypeReg, uid: 1 << 31}},
		{reg("f", "file"), dir("f/"), reg("f/g", "dir replaced the file")},
	} {
		f.Add(makeTarTB(f, members...))
	}
	f.Add(gnuSparseTar("sparse", 64<<10))
	f.Add(gnuSparseTar("huge", 2<<30))
	full := makeTarTB(f, reg("a", string(pattern(3000, 7))), reg("b", "b"))
	f.Add(full[:1500]) // truncated in a member's data
	f.Add(full[:512])  // a header and nothing else
	f.Add([]byte{})
	spool := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		data = fixTarChecksums(data)
		var imgs [2][]byte
		for i, r := range []io.Reader{bytes.NewReader(data), io.MultiReader(bytes.NewReader(data))} {
			imgs[i] = buildFuzzed(t, r, spool)
		}
		if imgs[0] != nil && imgs[1] != nil && !bytes.Equal(imgs[0], imgs[1]) {
			t.Fatalf("in-place and spooled builds differ (%d and %d bytes)", len(imgs[0]), len(imgs[1]))
		}
	})
}

// buildFuzzed builds r; nil when the tar is refused. A built image must
// open, validate and walk.
func buildFuzzed(t *testing.T, r io.Reader, spool string) []byte {
	b := NewBuilder(BuildOptions{TempDir: spool, MaxSize: 4 << 20})
	defer b.Close()
	if err := b.AddTar(r); err != nil {
		return nil
	}
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil
		}
		t.Fatalf("AddTar accepted the tar, WriteTo failed: %v", err)
	}
	im, err := OpenBytes(buf.Bytes())
	if err != nil {
		t.Fatalf("built image does not open: %v", err)
	}
	if err := im.Validate(); err != nil {
		t.Fatalf("built image does not validate: %v", err)
	}
	if err := im.Walk(func(string, Inode) error { return nil }); err != nil {
		t.Fatalf("built image does not walk: %v", err)
	}
	return buf.Bytes()
}

// fixTarChecksums recomputes the checksum of every block that carries a
// ustar magic, so mutations of header fields reach the builder instead of
// stopping at the tar reader's checksum test.
func fixTarChecksums(data []byte) []byte {
	data = bytes.Clone(data)
	for off := 0; off+512 <= len(data); off += 512 {
		h := data[off : off+512]
		if !bytes.HasPrefix(h[257:], []byte("ustar")) {
			continue
		}
		copy(h[148:156], "        ")
		sum := 0
		for _, c := range h {
			sum += int(c)
		}
		copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	}
	return data
}
