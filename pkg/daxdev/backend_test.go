package daxdev

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/internal/machine"
)

func TestDMAHeapIoctlContract(t *testing.T) {
	var d dmaHeapAllocationData
	if got := []uintptr{unsafe.Sizeof(d), unsafe.Offsetof(d.Fd), unsafe.Offsetof(d.FdFlags), unsafe.Offsetof(d.HeapFlags)}; !equalUintptr(got, []uintptr{24, 8, 12, 16}) {
		t.Fatalf("struct dma_heap_allocation_data layout (size, fd, fd_flags, heap_flags) = %v, want [24 8 12 16]", got)
	}
	if dmaHeapIoctlAlloc != 0xc0184800 {
		t.Fatalf("DMA_HEAP_IOCTL_ALLOC = %#x, want 0xc0184800", dmaHeapIoctlAlloc)
	}
	// Against the installed kernel uapi header (linux-libc-dev), with a C compiler.
	if _, err := os.Stat("/usr/include/linux/dma-heap.h"); err != nil {
		machine.Lacks(t, "no linux/dma-heap.h to compare with (linux-libc-dev)")
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		machine.Lacks(t, "no C compiler")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "h.c")
	os.WriteFile(src, []byte(`#include <stdio.h>
#include <stddef.h>
#include <linux/dma-heap.h>
int main(void) {
	printf("%lu %zu %zu %zu %zu\n", (unsigned long)DMA_HEAP_IOCTL_ALLOC, sizeof(struct dma_heap_allocation_data),
		offsetof(struct dma_heap_allocation_data, fd), offsetof(struct dma_heap_allocation_data, fd_flags),
		offsetof(struct dma_heap_allocation_data, heap_flags));
	return 0;
}
`), 0o600)
	bin := filepath.Join(dir, "h")
	if out, err := exec.Command(cc, "-o", bin, src).CombinedOutput(); err != nil {
		machine.Lacks(t, "cannot compile against the uapi header: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.FormatUint(uint64(dmaHeapIoctlAlloc), 10) + " 24 8 12 16"
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("kernel uapi says %q, we use %q", got, want)
	}
}

func equalUintptr(a, b []uintptr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDMAHeapMissing(t *testing.T) {
	dev := t.TempDir()
	_, err := OpenPool("dmaheap:system", PoolOptions{DevRoot: dev, Size: 1 << 20})
	if !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), filepath.Join(dev, "dma_heap", "system")) {
		t.Fatalf("missing heap: %v, want ErrNoDevice naming the heap path", err)
	}
	if _, err := OpenPool("dmaheap:system", PoolOptions{DevRoot: dev}); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("heap without a size: %v, want ErrBadArgument", err)
	}
	// A file that is not a heap: the ioctl fails and says so.
	os.MkdirAll(filepath.Join(dev, "dma_heap"), 0o755)
	os.WriteFile(filepath.Join(dev, "dma_heap", "fake"), nil, 0o600)
	if _, err := OpenPool("dmaheap:fake", PoolOptions{DevRoot: dev, Size: 1 << 20}); err == nil || !strings.Contains(err.Error(), "DMA_HEAP_IOCTL_ALLOC") {
		t.Fatalf("non-heap file: %v, want the ioctl error", err)
	}
}

func TestReadDAXAttrs(t *testing.T) {
	sys, _ := fixture("cxl-devdax")
	a, err := readDAXAttrs(filepath.Join(sys, "bus", "dax", "devices", "dax0.0"))
	if err != nil {
		t.Fatal(err)
	}
	if a.size != 262144000 || a.align != 2<<20 || a.phys != 0x390600000 || a.node != 1 {
		t.Fatalf("attrs %+v", a)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "size"), []byte("lots\n"), 0o600)
	if _, err := readDAXAttrs(dir); err == nil || !strings.Contains(err.Error(), `"lots"`) {
		t.Fatalf("bad size: %v, want an error quoting the value", err)
	}
	os.WriteFile(filepath.Join(dir, "size"), []byte("4194304\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "align"), []byte("3000\n"), 0o600)
	if _, err := readDAXAttrs(dir); err == nil || !strings.Contains(err.Error(), "power of two") {
		t.Fatalf("bad align: %v", err)
	}
}

func TestDAXMapLength(t *testing.T) {
	for _, tc := range []struct {
		size, align, want, n int64
		err                  error
	}{
		{262144000, 2 << 20, 0, 262144000, nil}, // 125 units exactly
		{262144000 + 4096, 2 << 20, 0, 262144000, nil},
		{262144000, 2 << 20, 64 << 20, 64 << 20, nil},
		{262144000, 2 << 20, 3 << 20, 2 << 20, nil},
		{1 << 20, 2 << 20, 0, 0, ErrTooSmall},
		{8 << 20, 3 << 20, 0, 0, ErrBadArgument},
	} {
		n, err := daxMapLength(tc.size, tc.align, tc.want)
		if n != tc.n || !errors.Is(err, tc.err) {
			t.Errorf("daxMapLength(%d, %d, %d) = %d, %v; want %d, %v", tc.size, tc.align, tc.want, n, err, tc.n, tc.err)
		}
	}
}

func TestDevDAXOnCharDeviceWithoutSysfs(t *testing.T) {
	// /dev/zero is a character device but no dax device: sysfs has no size.
	_, err := OpenPool("devdax:/dev/zero", PoolOptions{SysRoot: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "/dev/zero") || !strings.Contains(err.Error(), "size") {
		t.Fatalf("devdax on /dev/zero: %v, want an error naming the device and its missing size", err)
	}
}

// TestPmemOnLoopDevice runs the pmem backend for real on a block device: a
// loop device over a file, which maps through the page cache like /dev/pmemN.
func TestPmemOnLoopDevice(t *testing.T) {
	machine.NeedRoot(t, "losetup")
	backing := filepath.Join(t.TempDir(), "pmem.img")
	if err := os.WriteFile(backing, make([]byte, 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", backing).Output()
	if err != nil {
		machine.Lacks(t, "losetup: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })

	p, err := OpenPool("pmem:"+loop, PoolOptions{Init: true, Align: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if info := p.Info(); info.Kind != KindPmem || info.Size != 8<<20 {
		t.Fatalf("info %+v", info)
	}
	b, dg := content(5, 1<<20+7)
	e, err := p.Stage(context.Background(), dg, int64(len(b)), "n", copyFill(b, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// msync wrote through the block device: the backing file has the bytes.
	unix.Sync()
	img, err := os.ReadFile(backing)
	if err != nil {
		t.Fatal(err)
	}
	if string(img[:8]) != poolMagic || !bytes.Equal(img[e.Offset:e.Offset+e.Length], b) {
		t.Fatal("backing file lacks the pool header or the staged bytes")
	}
	// And the same file opened as a memory-file pool shows the same extent.
	q, err := OpenPool("memfile:"+backing, PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if got, ok := q.Lookup(dg); !ok || got.Offset != e.Offset {
		t.Fatalf("memfile view: %+v %v", got, ok)
	}
}

func TestCacheWriteback(t *testing.T) {
	b, err := unix.Mmap(-1, 0, 3*int(pageSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	for i := range b {
		b[i] = byte(i)
	}
	// Unaligned start and an end at the mapping end must not fault.
	writeback(b, 13, int64(len(b))-13)
	writeback(b, int64(len(b))-1, 100)
	writeback(b, int64(len(b)), 1)
	for i := range b {
		if b[i] != byte(i) {
			t.Fatalf("byte %d changed by the write-back", i)
		}
	}
}

// TestDevDAXBackendOnStandIn runs the device-dax backend's real open, sysfs
// lookup (by the device number, as on a real system) and MAP_SHARED mapping
// on /dev/zero, whose shared mappings behave like anonymous shared memory.
func TestDevDAXBackendOnStandIn(t *testing.T) {
	var st unix.Stat_t
	if err := unix.Stat("/dev/zero", &st); err != nil {
		machine.Lacks(t, "%v", err)
	}
	sys := t.TempDir()
	dir := filepath.Join(sys, "dev", "char", strconv.Itoa(int(unix.Major(st.Rdev)))+":"+strconv.Itoa(int(unix.Minor(st.Rdev))))
	os.MkdirAll(dir, 0o755)
	for name, v := range map[string]string{"size": "10485760", "align": "2097152", "resource": "0x100600000", "target_node": "0"} {
		os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600)
	}
	p, err := OpenPool("devdax:/dev/zero", PoolOptions{SysRoot: sys, Init: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	info := p.Info()
	if info.Kind != KindDevDAX || info.Align != 2<<20 || info.Size != 10<<20 || info.NUMANode != 0 || info.PhysAddr != 0x100600000 {
		t.Fatalf("info %+v", info)
	}
	b, dg := content(4, 3<<20)
	e, err := p.Stage(context.Background(), dg, int64(len(b)), "n", copyFill(b, nil))
	if err != nil {
		t.Fatal(err)
	}
	if e.Offset != 2<<20 || e.Reserved != 4<<20 {
		t.Fatalf("extent at %d reserving %d, want 2 MiB reserving 4 MiB", e.Offset, e.Reserved)
	}
	if phys, ok := p.PhysAddr(e); !ok || phys != 0x100600000+2<<20 {
		t.Fatalf("PhysAddr = %#x %v", phys, ok)
	}
	data, _ := p.Data(e)
	if !bytes.Equal(data, b) {
		t.Fatal("bytes differ")
	}
	// The same range inside a CXL region makes the pool's kind cxl.
	p.Close()
	region := filepath.Join(sys, "bus", "cxl", "devices", "region0")
	os.MkdirAll(region, 0o755)
	os.WriteFile(filepath.Join(region, "resource"), []byte("0x100000000\n"), 0o600)
	os.WriteFile(filepath.Join(region, "size"), []byte("0x10000000\n"), 0o600)
	c, err := OpenPool("devdax:/dev/zero", PoolOptions{SysRoot: sys, Init: true, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if k := c.Info().Kind; k != KindCXL {
		t.Fatalf("kind %s inside a CXL region, want cxl", k)
	}
	c.Close()
	// An align that is no multiple of the device's is refused.
	if _, err := OpenPool("devdax:/dev/zero", PoolOptions{SysRoot: sys, Init: true, Force: true, Align: 1 << 20}); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("align 1 MiB on a 2 MiB device: %v, want ErrBadArgument", err)
	}
}
