package daxdev

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"testing"
)

// testPool makes a memory-file pool in a temp dir with a small align so tests
// need little memory.
func testPool(t testing.TB, size int64, opts PoolOptions) (*Pool, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pool")
	opts.Size, opts.Init = size, true
	if opts.Align == 0 {
		opts.Align = 64 << 10
	}
	if opts.Records == 0 {
		opts.Records = 32
	}
	p, err := OpenPool("memfile:"+path, opts)
	if err != nil {
		t.Fatalf("OpenPool: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p, path
}

// content returns n deterministic bytes and their digest.
func content(seed byte, n int) ([]byte, string) {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	sum := sha256.Sum256(b)
	return b, "sha256:" + hex.EncodeToString(sum[:])
}

func copyFill(src []byte, calls *int) func([]byte) error {
	return func(dst []byte) error {
		if calls != nil {
			*calls++
		}
		copy(dst, src)
		return nil
	}
}
