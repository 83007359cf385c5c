package fusehost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/internal/sharedtest"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

var sink byte // keeps touchFaults' loads

// touchFaults reads one byte of every page of b on a locked thread and
// returns that thread's minor faults meanwhile.
func touchFaults(b []byte) int64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var r0, r1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &r0)
	var s byte
	for i := 0; i < len(b); i += os.Getpagesize() {
		s += b[i]
	}
	unix.Getrusage(unix.RUSAGE_THREAD, &r1)
	sink = s
	return r1.Minflt - r0.Minflt
}

// mapShm maps a fresh tmpfs file of n bytes, its pages resident (written).
func mapShm(t *testing.T, n int) []byte {
	t.Helper()
	f, err := os.CreateTemp("/dev/shm", "populate-test-")
	must(t, err)
	t.Cleanup(func() { f.Close(); os.Remove(f.Name()) })
	_, err = f.Write(make([]byte, n))
	must(t, err)
	b, err := unix.Mmap(int(f.Fd()), 0, n, unix.PROT_READ, unix.MAP_SHARED)
	must(t, err)
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

// After a populate, reading a resident image faults (almost) never; a
// fresh mapping of the same pages without one faults at least once per 16
// pages (the kernel's fault-around).
func TestPopulateMapsResidentPages(t *testing.T) {
	const n = 16 << 20
	pages := int64(n / os.Getpagesize())
	if f := touchFaults(mapShm(t, n)); f < pages/32 {
		t.Fatalf("without populate: %d faults for %d pages; the test cannot tell", f, pages)
	}
	b := mapShm(t, n)
	p := startPopulate(b)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("populate did not finish")
	}
	if f := touchFaults(b); f > pages/64 {
		t.Errorf("after populate: %d faults for %d pages, want almost none", f, pages)
	}
	p.halt() // after done: returns at once
}

// An image opened from a pool is populated in the background, and Close
// waits for the populating goroutine (the mapping must outlive it).
func TestOpenPoolPopulates(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(sharedtest.Sample(t, "tree1.static.daxfs"))
	must(t, err)
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	spec := "memfile:" + filepath.Join(dir, "pool")
	pool, err := daxdev.OpenPool(spec, daxdev.PoolOptions{Size: 64 << 20, Init: true})
	must(t, err)
	_, err = pool.Stage(context.Background(), digest, int64(len(data)), "test", func(dst []byte) error {
		copy(dst, data)
		return nil
	})
	must(t, err)
	must(t, pool.Close())

	o, err := Open(Source{Pool: spec, Digest: digest})
	must(t, err)
	if o.populated == nil {
		t.Fatal("a pool image is not populated")
	}
	select {
	case <-o.populated:
	case <-time.After(30 * time.Second):
		t.Fatal("populate did not finish")
	}
	o.Close()

	f, err := Open(Source{Image: sharedtest.Sample(t, "tree1.static.daxfs")})
	must(t, err)
	defer f.Close()
	if f.populated != nil {
		t.Error("an image file is populated: that would read all of it from disk")
	}
}
