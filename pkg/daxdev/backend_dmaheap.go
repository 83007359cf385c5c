package daxdev

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dmaHeapAllocationData is struct dma_heap_allocation_data of
// include/uapi/linux/dma-heap.h.
type dmaHeapAllocationData struct {
	Len       uint64 // in: bytes
	Fd        uint32 // out: the dma-buf fd
	FdFlags   uint32 // in: O_RDWR | O_CLOEXEC for the dma-buf fd
	HeapFlags uint64 // in: must be 0
}

// DMA_HEAP_IOCTL_ALLOC = _IOWR('H', 0x0, struct dma_heap_allocation_data):
// direction, size, type 'H'; the command number is 0.
const dmaHeapIoctlAlloc = 3<<30 | uintptr(unsafe.Sizeof(dmaHeapAllocationData{}))<<16 | 'H'<<8

// dmaheap is a buffer allocated from a dma-buf heap. The memory lives as long
// as the dma-buf fd, so it is neither persistent nor shared with another
// process unless the fd is passed on (the kernel's dmabuf= mount option).
type dmaheap struct {
	noHostLock
	fd   int
	b    []byte
	name string
}

func openDMAHeap(name string, opts PoolOptions) (*dmaheap, error) {
	dev := opts.DevRoot
	if dev == "" {
		dev = "/dev"
	}
	path := filepath.Join(dev, "dma_heap", name)
	if opts.Size <= 0 {
		return nil, fmt.Errorf("%w: dma-buf heap %s needs a pool size", ErrBadArgument, path)
	}
	heap, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open dma-buf heap %s: %w (is CONFIG_DMABUF_HEAPS on?)", path, ErrNoDevice)
	}
	if err != nil {
		return nil, fmt.Errorf("open dma-buf heap %s: %w", path, err)
	}
	defer heap.Close()
	req := dmaHeapAllocationData{Len: uint64(roundUp(opts.Size, pageSize)), FdFlags: unix.O_RDWR | unix.O_CLOEXEC}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, heap.Fd(), dmaHeapIoctlAlloc, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return nil, fmt.Errorf("DMA_HEAP_IOCTL_ALLOC %d bytes from %s: %w", req.Len, path, errno)
	}
	d := &dmaheap{fd: int(req.Fd), name: path}
	d.b, err = unix.Mmap(d.fd, 0, int(req.Len), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(d.fd)
		return nil, fmt.Errorf("mmap dma-buf of %s: %w", path, err)
	}
	return d, nil
}

func (d *dmaheap) kind() Kind               { return KindDMAHeap }
func (d *dmaheap) path() string             { return d.name }
func (d *dmaheap) bytes() []byte            { return d.b }
func (d *dmaheap) align() int64             { return pageSize }
func (d *dmaheap) numaNode() int            { return -1 }
func (d *dmaheap) physAddr() (uint64, bool) { return 0, false }
func (d *dmaheap) dmaBufFD() int            { return d.fd }

// flush: dma-buf memory is ordinary RAM seen by this CPU; CPU access needs
// DMA_BUF_IOCTL_SYNC only around device access, which we do not do.
func (d *dmaheap) flush(off, n int64) error { return nil }
func (d *dmaheap) close() error {
	var errs []error
	if d.b != nil {
		errs = append(errs, unix.Munmap(d.b))
		d.b = nil
	}
	errs = append(errs, unix.Close(d.fd))
	return errors.Join(errs...)
}

// coherence: ordinary RAM of this host.
func (d *dmaheap) coherence() Coherence { return CoherenceCoherent }
