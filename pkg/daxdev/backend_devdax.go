package daxdev

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

const defaultDAXAlign = 2 << 20

// devdax is a device-dax character device: MAP_SHARED only, at offsets and
// lengths that are multiples of the device align.
type devdax struct {
	noHostLock
	f     *os.File
	b     []byte
	name  string
	al    int64
	phys  uint64
	node  int
	known bool
	k     Kind // devdax, or cxl when the range lies in a CXL region
}

// daxAttrs is what sysfs says about a dax device.
type daxAttrs struct {
	size, align int64
	phys        uint64
	node        int
}

func readDAXAttrs(dir string) (daxAttrs, error) {
	a := daxAttrs{node: readNode(dir, "target_node", "numa_node")}
	var err error
	if a.size, err = readInt(dir, "size"); err != nil {
		return a, fmt.Errorf("dax device size: %w", err)
	}
	if a.align, err = readInt(dir, "align"); err != nil {
		// Older kernels keep the align on the region only.
		if a.align, err = readInt(filepath.Join(dir, "..", "dax_region"), "align"); err != nil {
			a.align = defaultDAXAlign
		}
	}
	if a.align <= 0 || a.align&(a.align-1) != 0 {
		return a, fmt.Errorf("dax device %s: align %d is not a power of two", dir, a.align)
	}
	if a.phys, err = readHex(dir, "resource"); err != nil {
		a.phys = 0
	}
	return a, nil
}

func openDevDAX(path string, opts PoolOptions) (*devdax, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open device-dax %s: %w", path, ErrNoDevice)
	}
	if err != nil {
		return nil, fmt.Errorf("open device-dax %s: %w", path, err)
	}
	d, err := setupDevDAX(f, path, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

func setupDevDAX(f *os.File, path string, opts PoolOptions) (*devdax, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return nil, fmt.Errorf("%w: %s is not a character device (device-dax is /dev/daxX.Y)", ErrBadArgument, path)
	}
	sys := opts.SysRoot
	if sys == "" {
		sys = "/sys"
	}
	dir := filepath.Join(sys, "dev", "char", fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)))
	a, err := readDAXAttrs(dir)
	if err != nil {
		return nil, fmt.Errorf("device-dax %s: %w", path, err)
	}
	// Map the whole device: PoolOptions.Size only limits a new pool.
	n, err := daxMapLength(a.size, a.align, 0)
	if err != nil {
		return nil, fmt.Errorf("device-dax %s: %w", path, err)
	}
	d := &devdax{f: f, name: path, al: a.align, phys: a.phys, node: a.node, known: a.phys != 0, k: KindDevDAX}
	if _, ok := regionOf(cxlRegions(sys), a.phys, a.size); ok {
		d.k = KindCXL
	}
	if d.b, err = mapShared(f, 0, n); err != nil {
		return nil, err
	}
	return d, nil
}

// daxMapLength is how much of a device of size bytes to map: want (0 = all)
// rounded down to the align, which device-dax mmap requires.
func daxMapLength(size, align, want int64) (int64, error) {
	if align <= 0 || align&(align-1) != 0 {
		return 0, fmt.Errorf("%w: align %d is not a power of two", ErrBadArgument, align)
	}
	n := size
	if want > 0 && want < n {
		n = want
	}
	n = n / align * align
	if n < align {
		return 0, fmt.Errorf("%w: %d bytes hold no %d-byte aligned unit", ErrTooSmall, size, align)
	}
	return n, nil
}

func (d *devdax) kind() Kind               { return d.k }
func (d *devdax) path() string             { return d.name }
func (d *devdax) bytes() []byte            { return d.b }
func (d *devdax) align() int64             { return d.al }
func (d *devdax) numaNode() int            { return d.node }
func (d *devdax) physAddr() (uint64, bool) { return d.phys, d.known }
func (d *devdax) dmaBufFD() int            { return -1 }
func (d *devdax) flush(off, n int64) error { writeback(d.b, off, n); return nil }
func (d *devdax) close() error {
	var errs []error
	if d.b != nil {
		errs = append(errs, unix.Munmap(d.b))
		d.b = nil
	}
	errs = append(errs, d.f.Close())
	return errors.Join(errs...)
}

// coherence: no kernel we know of (6.1 to 6.12) reports whether shared CXL memory is
// hardware coherent, so auto means coherent; noncoherent must be asked for.
func (d *devdax) coherence() Coherence { return CoherenceCoherent }
