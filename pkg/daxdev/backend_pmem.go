package daxdev

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pmem is an fsdax pmem block device mapped MAP_SHARED. Block devices map
// through the page cache, so msync is what writes the bytes to the device;
// the physical range from sysfs then holds them for the kernel daxfs mount.
type pmem struct {
	f     *os.File
	b     []byte
	name  string
	phys  uint64
	known bool
	node  int
}

func openPmem(path string, opts PoolOptions) (*pmem, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open pmem %s: %w", path, ErrNoDevice)
	}
	if err != nil {
		return nil, fmt.Errorf("open pmem %s: %w", path, err)
	}
	p, err := setupPmem(f, path, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	return p, nil
}

func setupPmem(f *os.File, path string, opts PoolOptions) (*pmem, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return nil, fmt.Errorf("%w: %s is not a block device (pmem is /dev/pmemN)", ErrBadArgument, path)
	}
	var size uint64
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); errno != 0 {
		return nil, fmt.Errorf("BLKGETSIZE64 %s: %w", path, errno)
	}
	n := int64(size) / pageSize * pageSize
	if n < headerSize {
		return nil, fmt.Errorf("%w: pmem %s has %d bytes", ErrTooSmall, path, size)
	}
	sys := opts.SysRoot
	if sys == "" {
		sys = "/sys"
	}
	// /sys/dev/block/M:m/device is the namespace (raw) or the pfn device
	// (fsdax); either's resource is where block 0 lives.
	dev := filepath.Join(sys, "dev", "block", fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)), "device")
	p := &pmem{f: f, name: path, node: readNode(dev, "numa_node")}
	if phys, err := readHex(dev, "resource"); err == nil {
		p.phys, p.known = phys, true
	}
	var err error
	if p.b, err = mapShared(f, 0, n); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *pmem) kind() Kind               { return KindPmem }
func (p *pmem) path() string             { return p.name }
func (p *pmem) bytes() []byte            { return p.b }
func (p *pmem) align() int64             { return pageSize }
func (p *pmem) numaNode() int            { return p.node }
func (p *pmem) physAddr() (uint64, bool) { return p.phys, p.known }
func (p *pmem) dmaBufFD() int            { return -1 }
func (p *pmem) flush(off, n int64) error { return msyncRange(p.b, off, n) }
func (p *pmem) lockHost() error          { return flockFile(p.f, unix.LOCK_EX) }
func (p *pmem) unlockHost() error        { return flockFile(p.f, unix.LOCK_UN) }
func (p *pmem) close() error {
	var errs []error
	if p.b != nil {
		errs = append(errs, unix.Munmap(p.b))
		p.b = nil
	}
	errs = append(errs, p.f.Close())
	return errors.Join(errs...)
}

func flockFile(f *os.File, how int) error {
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		return fmt.Errorf("flock %s: %w", f.Name(), err)
	}
	return nil
}

// coherence: a block device maps through one host's page cache.
func (p *pmem) coherence() Coherence { return CoherenceCoherent }
