package daxdev

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// DefaultMemfileAlign is the align of a memory-file pool unless PoolOptions
// says otherwise: 2 MiB, like device-dax, so extents suit huge pages.
const DefaultMemfileAlign = 2 << 20

// memfile is a pool in a file on tmpfs or hugetlbfs (or any file: the host
// view of a QEMU backing file). Offset lets the pool start inside the file,
// where a guest's device-dax data begins.
type memfile struct {
	f    *os.File
	b    []byte
	name string
	al   int64
}

func openMemfile(path string, opts PoolOptions) (*memfile, error) {
	flags := os.O_RDWR
	if opts.Init && opts.Size > 0 {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open memory file %s: %w (init it with a size to create it)", path, ErrNoDevice)
	}
	if err != nil {
		return nil, fmt.Errorf("open memory file %s: %w", path, err)
	}
	m := &memfile{f: f, name: path, al: opts.Align}
	if m.al == 0 {
		m.al = DefaultMemfileAlign
	}
	if err := m.setup(opts); err != nil {
		f.Close()
		return nil, err
	}
	return m, nil
}

func (m *memfile) setup(opts PoolOptions) error {
	if opts.Offset < 0 || opts.Offset%pageSize != 0 {
		return fmt.Errorf("%w: memory file offset %d is not a multiple of the page size %d", ErrBadArgument, opts.Offset, pageSize)
	}
	st, err := m.f.Stat()
	if err != nil {
		return fmt.Errorf("stat memory file %s: %w", m.name, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: memory file %s is not a regular file", ErrBadArgument, m.name)
	}
	size := st.Size()
	// Size applies when a pool is created: a file that already holds one
	// keeps its size, whatever the caller asks.
	if opts.Init && opts.Size > 0 && opts.Offset+opts.Size > size && !m.holdsPool(opts.Offset) {
		want := opts.Offset + roundUp(opts.Size, m.al)
		if err := m.f.Truncate(want); err != nil {
			return fmt.Errorf("size memory file %s to %d bytes: %w", m.name, want, err)
		}
		size = want
	}
	n := size - opts.Offset
	n = n / pageSize * pageSize
	if n < headerSize {
		return fmt.Errorf("%w: memory file %s holds %d bytes after offset %d", ErrTooSmall, m.name, n, opts.Offset)
	}
	m.b, err = mapShared(m.f, opts.Offset, n)
	return err
}

func (m *memfile) holdsPool(off int64) bool {
	magic := make([]byte, len(poolMagic))
	_, err := m.f.ReadAt(magic, off)
	return err == nil && string(magic) == poolMagic
}

func (m *memfile) kind() Kind               { return KindMemfile }
func (m *memfile) path() string             { return m.name }
func (m *memfile) bytes() []byte            { return m.b }
func (m *memfile) align() int64             { return pageSize }
func (m *memfile) numaNode() int            { return -1 }
func (m *memfile) physAddr() (uint64, bool) { return 0, false }
func (m *memfile) dmaBufFD() int            { return -1 }
func (m *memfile) flush(off, n int64) error { return msyncRange(m.b, off, n) }
func (m *memfile) lockHost() error          { return flockFile(m.f, unix.LOCK_EX) }
func (m *memfile) unlockHost() error        { return flockFile(m.f, unix.LOCK_UN) }

func (m *memfile) close() error {
	var errs []error
	if m.b != nil {
		errs = append(errs, unix.Munmap(m.b))
		m.b = nil
	}
	errs = append(errs, m.f.Close())
	return errors.Join(errs...)
}

// coherence: one host's page cache (QEMU shares its backing file through it too).
func (m *memfile) coherence() Coherence { return CoherenceCoherent }
