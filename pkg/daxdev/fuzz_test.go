package daxdev

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpenTable: whatever the table bytes, opening the pool and reading its
// status gives an error or a consistent answer, never a panic.
func FuzzOpenTable(f *testing.F) {
	dir := f.TempDir()
	seed := filepath.Join(dir, "seed")
	p, err := OpenPool("memfile:"+seed, PoolOptions{Init: true, Size: 1 << 20, Align: 64 << 10, Records: 4})
	if err != nil {
		f.Fatal(err)
	}
	b, dg := content(1, 1000)
	stageForFuzz(f, p, dg, b)
	p.Close()
	raw, _ := os.ReadFile(seed)
	table := raw[:tableEnd(4)]
	f.Add(table)
	f.Add(append([]byte(nil), table[:headerSize]...))
	f.Fuzz(func(t *testing.T, tbl []byte) {
		img := make([]byte, len(raw))
		copy(img, raw)
		copy(img, tbl)
		path := filepath.Join(t.TempDir(), "pool")
		if err := os.WriteFile(path, img, 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := OpenPool("memfile:"+path, PoolOptions{})
		if err != nil {
			return
		}
		defer p.Close()
		st := p.Status()
		if st.Free < 0 || st.Free > st.DataSize {
			t.Fatalf("free %d outside [0, %d]", st.Free, st.DataSize)
		}
		for _, e := range st.Extents {
			if _, err := p.Data(e); err != nil {
				t.Fatalf("listed extent has no data: %v", err)
			}
		}
	})
}

func stageForFuzz(f *testing.F, p *Pool, dg string, b []byte) {
	f.Helper()
	if _, err := p.Stage(f.Context(), dg, int64(len(b)), "o", copyFill(b, nil)); err != nil {
		f.Fatal(err)
	}
}
