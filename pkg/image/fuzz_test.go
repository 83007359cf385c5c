package image

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"os"
	"testing"
)

// FuzzOpenValidateWalk feeds arbitrary bytes through Open, every accessor,
// Validate, ValidateMetadata and the walks. Nothing may panic; the mapped
// and ReaderAt paths must agree; an image that validates must walk cleanly
// and read the same data both ways.
//
//	go test ./pkg/image -run '^$' -fuzz FuzzOpenValidateWalk -fuzztime 60s
func FuzzOpenValidateWalk(f *testing.F) {
	for _, name := range []string{"tree2.static.daxfs", "tree4.static.daxfs", "tree5-q1-overflow.static.daxfs"} {
		b, err := os.ReadFile(samplePath(f, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		// Corrupt variants: a bad child, a huge directory, a cycle.
		for _, p := range []struct{ off, val int }{
			{0x1000 + 0x2000, 99}, {0x1000 + 0x1000 + 16, 271 * 40}, {0x1000 + 0x1000 + 24, 0x1000},
		} {
			c := bytes.Clone(b)
			if p.off+4 <= len(c) {
				binary.LittleEndian.PutUint32(c[p.off:], uint32(p.val))
				f.Add(c)
			}
		}
	}
	f.Add(smallBuiltImage(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		imB, errB := OpenBytes(b)
		imR, errR := Open(bytes.NewReader(b), int64(len(b)))
		if (errB == nil) != (errR == nil) {
			t.Fatalf("OpenBytes: %v; Open: %v", errB, errR)
		}
		if errB != nil {
			return
		}
		exerciseAll(imB)
		exerciseAll(imR)
		vB, vR := imB.Validate(), imR.Validate()
		if (vB == nil) != (vR == nil) {
			t.Fatalf("Validate mapped: %v; ReaderAt: %v", vB, vR)
		}
		// ValidateMetadata checks a subset: it may pass what Validate
		// rejects, never the other way round.
		if mB := imB.ValidateMetadata(); vB == nil && mB != nil {
			t.Fatalf("Validate passed but ValidateMetadata: %v", mB)
		}
		if vB != nil {
			return
		}
		err := imB.Walk(func(p string, in Inode) error {
			if !in.IsRegular() {
				return nil
			}
			fb, err := imB.FileBytes(in.Ino)
			if err != nil {
				return err
			}
			buf := make([]byte, len(fb))
			if n, err := imR.ReadAt(in.Ino, buf, 0); (err != nil && n != len(buf)) || !bytes.Equal(buf, fb) {
				t.Fatalf("%s: ReadAt and FileBytes differ (%v)", p, err)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("valid image does not walk: %v", err)
		}
		if err := fs.WalkDir(imB.FS(), ".", func(string, fs.DirEntry, error) error { return err }); err != nil {
			t.Fatalf("valid image: fs.WalkDir: %v", err)
		}
	})
}

// smallBuiltImage is a builder image with every object kind, as a seed.
func smallBuiltImage(t testing.TB) []byte {
	return build(t, BuildOptions{Specials: SpecialsKeep}, func(b *Builder) error {
		return b.AddTar(bytes.NewReader(makeTarTB(t,
			dir("d/"), reg("d/f", "hello"), reg("big", string(pattern(5000, 1))),
			tarMember{name: "s", link: "d/f", typ: '2', mode: 0o777},
			tarMember{name: "h", link: "d/f", typ: '1'},
			tarMember{name: "p", typ: '6'},
		)))
	})
}
