package daxdev

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, size int, random bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dev")
	b := make([]byte, size)
	if random {
		rand.Read(b[:8192])
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestForeignDataIsRefused(t *testing.T) {
	path := writeFile(t, 8<<20, true)
	before, _ := os.ReadFile(path)
	for _, opts := range []PoolOptions{{}, {Init: true}, {Force: true}} {
		if _, err := OpenPool("memfile:"+path, opts); !errors.Is(err, ErrNotAPool) {
			t.Fatalf("open %+v on foreign data: %v, want ErrNotAPool", opts, err)
		}
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("refused open changed the device")
	}
	p, err := OpenPool("memfile:"+path, PoolOptions{Init: true, Force: true, Align: 1 << 20})
	if err != nil {
		t.Fatalf("Init+Force on foreign data: %v", err)
	}
	p.Close()
}

func TestBlankDevice(t *testing.T) {
	path := writeFile(t, 8<<20, false)
	if _, err := OpenPool("memfile:"+path, PoolOptions{}); !errors.Is(err, ErrNotAPool) || !strings.Contains(err.Error(), "blank") {
		t.Fatalf("open of a blank device without Init: %v, want ErrNotAPool saying blank", err)
	}
	p, err := OpenPool("memfile:"+path, PoolOptions{Init: true, Align: 1 << 20})
	if err != nil {
		t.Fatalf("Init on a blank device: %v", err)
	}
	b, dg := content(1, 5000)
	if _, err := p.Stage(context.Background(), dg, 5000, "o", copyFill(b, nil)); err != nil {
		t.Fatal(err)
	}
	id := p.Info().ID
	p.Close()

	// Init again without Force keeps the pool and its extents.
	p, err = OpenPool("memfile:"+path, PoolOptions{Init: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Lookup(dg); !ok || p.Info().ID != id {
		t.Fatalf("Init without Force lost the pool: found=%v id %s -> %s", ok, id, p.Info().ID)
	}
	p.Close()
	// Init+Force makes a new, empty pool.
	p, err = OpenPool("memfile:"+path, PoolOptions{Init: true, Force: true, Align: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, ok := p.Lookup(dg); ok || p.Info().ID == id {
		t.Fatal("Init+Force kept the old pool")
	}
}

func TestTooSmall(t *testing.T) {
	path := writeFile(t, 2<<20, false)
	_, err := OpenPool("memfile:"+path, PoolOptions{Init: true}) // 2 MiB align: table + 1 unit = 4 MiB
	if !errors.Is(err, ErrTooSmall) || !strings.Contains(err.Error(), "needs 4194304") {
		t.Fatalf("2 MiB device at 2 MiB align: %v, want ErrTooSmall naming 4194304", err)
	}
	path = writeFile(t, 1024, false)
	if _, err := OpenPool("memfile:"+path, PoolOptions{Init: true}); !errors.Is(err, ErrTooSmall) {
		t.Fatalf("1 KiB file: %v, want ErrTooSmall", err)
	}
}

func TestHeaderRoundTripAndCorruption(t *testing.T) {
	p, path := testPool(t, 2<<20, PoolOptions{Align: 64 << 10, Records: 8})
	_, dg := stageN(t, p, 1, 300)
	p.Close()
	q, err := OpenPool("memfile:"+path, PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if q.size != 2<<20 || q.align != 64<<10 || q.nrec != 8 || q.dataOff != 64<<10 || q.uuid != p.uuid {
		t.Fatalf("reopened header: size %d align %d records %d data %d", q.size, q.align, q.nrec, q.dataOff)
	}
	e, ok := q.Lookup(dg)
	if !ok || e.Length != 300 || e.Reserved != 64<<10 || e.Owners[0].Name != "o" {
		t.Fatalf("record round trip: %+v", e)
	}
	q.Close()

	corrupt := func(off int64, b byte) {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte{b}, off); err != nil {
			t.Fatal(err)
		}
	}
	// A ready record whose length was flipped fails its checksum.
	corrupt(headerSize+recLength, 0x7f)
	if _, err := OpenPool("memfile:"+path, PoolOptions{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "record 0") {
		t.Fatalf("open with a corrupt record: %v, want ErrCorrupt naming record 0", err)
	}
	// A flipped align bit fails the header checksum.
	corrupt(hdrAlign, 0x01)
	if _, err := OpenPool("memfile:"+path, PoolOptions{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("open with a corrupt header: %v, want ErrCorrupt checksum", err)
	}
}

func TestMemfileOffset(t *testing.T) {
	// A pool inside a file at an offset, as a guest's dax0.0 sits inside a
	// QEMU backing file; the bytes before it are left alone.
	path := writeFile(t, 10<<20, true)
	head, _ := os.ReadFile(path)
	head = head[:2<<20]
	p, err := OpenPool("memfile:"+path, PoolOptions{Offset: 2 << 20, Init: true, Force: true, Align: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	_, dg := stageN(t, p, 9, 4096)
	p.Close()
	all, _ := os.ReadFile(path)
	if !bytes.Equal(all[:2<<20], head) || string(all[2<<20:2<<20+8]) != poolMagic {
		t.Fatal("pool not placed at the offset")
	}
	if off, err := FindPool(path); err != nil || off != 2<<20 {
		t.Fatalf("FindPool: %d %v, want %d", off, err, 2<<20)
	}
	q, err := OpenPool("memfile:"+path, PoolOptions{Offset: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, ok := q.Lookup(dg); !ok {
		t.Fatal("extent not found through the offset")
	}
	if _, err := OpenPool("memfile:"+path, PoolOptions{Offset: 100}); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("unaligned offset: %v", err)
	}
}

func TestOpenMissingDevices(t *testing.T) {
	dir := t.TempDir()
	regular := writeFile(t, 1<<20, false)
	for _, tc := range []struct {
		spec string
		want error
		path string // the error must name it
	}{
		{"memfile:" + dir + "/none", ErrNoDevice, dir + "/none"},
		{"devdax:" + dir + "/dax9.9", ErrNoDevice, dir + "/dax9.9"},
		{"pmem:" + dir + "/pmem9", ErrNoDevice, dir + "/pmem9"},
		{"devdax:" + regular, ErrBadArgument, regular},
		{"pmem:" + regular, ErrBadArgument, regular},
		{"nonsense", ErrBadSpec, "nonsense"},
		{"devdax:dax0.0", ErrBadSpec, "dax0.0"},
		{"floppy:/dev/fd0", ErrBadSpec, "floppy"},
		{"dmaheap:a/b", ErrBadSpec, "a/b"},
	} {
		_, err := OpenPool(tc.spec, PoolOptions{})
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("OpenPool(%q): %v, want %v naming %s", tc.spec, err, tc.want, tc.path)
		}
	}
}

func TestSizeOnlyAppliesAtCreation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pool")
	spec := "memfile:" + path
	p, err := OpenPool(spec, PoolOptions{Init: true, Size: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	_, dg := stageN(t, p, 1, 3<<20)
	p.Close()
	for _, size := range []int64{4 << 20, 16 << 20} {
		q, err := OpenPool(spec, PoolOptions{Init: true, Size: size})
		if err != nil {
			t.Fatalf("reopen with Init and Size %d: %v", size, err)
		}
		if st := q.Status(); st.Size != 8<<20 || len(st.Extents) != 1 || st.Extents[0].Digest != dg {
			t.Fatalf("reopen with Size %d: %+v, want the 8 MiB pool and its extent", size, st)
		}
		q.Close()
	}
	if fi, _ := os.Stat(path); fi.Size() != 8<<20 {
		t.Fatalf("file grew to %d", fi.Size())
	}
	// On a bigger device, Size limits a new pool.
	big := writeFile(t, 16<<20, false)
	q, err := OpenPool("memfile:"+big, PoolOptions{Init: true, Size: 6 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if st := q.Status(); st.Size != 6<<20 {
		t.Fatalf("pool size %d on a 16 MiB file with Size 6 MiB", st.Size)
	}
}
