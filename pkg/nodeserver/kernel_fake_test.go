package nodeserver

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/internal/fusefs"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// fakeModule stands in for the kernel daxfs module, which cannot exist
// here, behind the interface the node drives the real one with. It
// behaves as upstream aa9c212 was measured to (docs/daxfs-format.md
// section 10): options parsed like fs_parse (phys/size with base
// detection, unknown keys EINVAL), `validate` refuses every image whose
// root no entry references ("inode 1 nlink mismatch: nlink=1 refcount=0"),
// and mmap refuses any mapping with VM_WRITE, private copy-on-write ones
// included (EACCES). Its mounts serve the region's bytes through internal/fusefs
// in the test process; unmount(2) takes them down like a kernel mount.
type fakeModule struct {
	t testing.TB
	// privateWrite makes a module that allows private writable mappings
	// (what a fixed upstream would do).
	privateWrite bool
	// region returns the bytes at a physical address (the test pool's).
	region func(phys uint64, size int64) ([]byte, error)

	mu       sync.Mutex
	instance string   // "" = not loaded
	mounts   []string // option strings of the mounts it made or refused
	dmesg    []string // what the module logged
	maps     []string // "shared,ro" etc. of every Map call
}

func newFakeModule(t testing.TB) *fakeModule {
	return &fakeModule{t: t, instance: "fake-daxfs aa9c212 load 1"}
}

func (m *fakeModule) Instance() (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.instance, nil
}

func (m *fakeModule) setInstance(s string) {
	m.mu.Lock()
	m.instance = s
	m.mu.Unlock()
}

func (m *fakeModule) log(format string, args ...any) {
	m.mu.Lock()
	m.dmesg = append(m.dmesg, fmt.Sprintf(format, args...))
	m.mu.Unlock()
}

func (m *fakeModule) mountLog() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.mounts...)
}

func (m *fakeModule) MountPhys(dir, data string) error {
	m.mu.Lock()
	loaded := m.instance != ""
	m.mounts = append(m.mounts, data)
	m.mu.Unlock()
	if !loaded {
		return unix.ENODEV
	}
	var phys, size uint64
	validate := false
	for _, opt := range strings.Split(data, ",") {
		k, v, hasV := strings.Cut(opt, "=")
		var err error
		switch {
		case k == "phys" && hasV:
			phys, err = strconv.ParseUint(v, 0, 64)
		case k == "size" && hasV:
			size, err = strconv.ParseUint(v, 0, 64)
		case k == "validate" && !hasV:
			validate = true
		default:
			m.log("daxfs: Unknown parameter '%s'", k)
			return unix.EINVAL
		}
		if err != nil {
			return unix.EINVAL
		}
	}
	if phys == 0 || size == 0 {
		m.log("daxfs: need phys= and size= or dmabuf")
		return unix.EINVAL
	}
	b, err := m.region(phys, int64(size))
	if err != nil {
		m.log("daxfs: memremap 0x%x: %v", phys, err)
		return unix.ENOMEM
	}
	return m.mount(dir, b, validate)
}

func (m *fakeModule) MountDmabuf(dir string, f *os.File, flags []string) error {
	m.mu.Lock()
	loaded := m.instance != ""
	m.mounts = append(m.mounts, "dmabuf,"+strings.Join(flags, ","))
	m.mu.Unlock()
	if !loaded {
		return fmt.Errorf("fsopen daxfs: %w", unix.ENODEV)
	}
	validate := false
	for _, fl := range flags {
		if fl != "validate" {
			return fmt.Errorf("fsconfig %s: %w", fl, unix.EINVAL)
		}
		validate = true
	}
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
	if err != nil {
		return fmt.Errorf("dma-buf: %w", err)
	}
	if err := m.mount(dir, b, validate); err != nil {
		return fmt.Errorf("fsconfig create: %w", err)
	}
	return nil
}

// mount checks what the module checks and serves b at dir.
func (m *fakeModule) mount(dir string, b []byte, validate bool) error {
	im, err := image.OpenBytes(b)
	if err != nil {
		m.log("daxfs: %v", err)
		return unix.EINVAL
	}
	if validate {
		if err := moduleNlinkRule(im); err != nil {
			m.log("daxfs: %v", err)
			return unix.EINVAL
		}
	}
	if _, err := fusefs.Mount(dir, im, fusefs.Options{FSName: "fake-daxfs"}); err != nil {
		return fmt.Errorf("fake daxfs: %w", err)
	}
	return nil
}

// moduleNlinkRule is the module's validate link-count rule: nlink equals
// the number of entries pointing at the inode and is never 0. No entry
// points at the root, so no image passes.
func moduleNlinkRule(im *image.Image) error {
	n := im.Info().InodeCount
	refs := make([]uint32, n+1)
	for ino := uint32(1); ino <= n; ino++ {
		in, err := im.Inode(ino)
		if err != nil || !in.IsDir() {
			continue
		}
		ents, err := im.ReadDir(ino)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.Ino >= 1 && e.Ino <= n {
				refs[e.Ino]++
			}
		}
	}
	for ino := uint32(1); ino <= n; ino++ {
		in, err := im.Inode(ino)
		if err != nil {
			return err
		}
		if in.Nlink == 0 {
			return fmt.Errorf("inode %d has no references (nlink=0)", ino)
		}
		if in.Nlink != refs[ino] {
			return fmt.Errorf("inode %d nlink mismatch: nlink=%d refcount=%d", ino, in.Nlink, refs[ino])
		}
	}
	return nil
}

// Map refuses VM_WRITE as the module's mmap does. An allowed mapping is
// an anonymous copy of the file's bytes read with pread: touching a mapping
// of this process's own FUSE mount faults into a server that a Go
// stop-the-world can freeze (a page fault is not a syscall), which hangs.
func (m *fakeModule) Map(f *os.File, length, prot, flags int) ([]byte, error) {
	kind := "shared"
	if flags&unix.MAP_PRIVATE != 0 {
		kind = "private"
	}
	m.mu.Lock()
	m.maps = append(m.maps, fmt.Sprintf("%s,prot=%d", kind, prot))
	allow := prot&unix.PROT_WRITE == 0 || (m.privateWrite && flags&unix.MAP_PRIVATE != 0)
	m.mu.Unlock()
	if !allow {
		return nil, unix.EACCES
	}
	b, err := unix.Mmap(-1, 0, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		unix.Munmap(b)
		return nil, err
	}
	if err := unix.Mprotect(b, prot); err != nil {
		unix.Munmap(b)
		return nil, err
	}
	return b, nil
}

// physPool pretends the memfile pool sits at a physical address, as a
// device-dax pool does, and lets the fake module find an extent's bytes
// by that address.
type physPool struct {
	*countingPool
	mu    sync.Mutex
	byPhy map[uint64]daxdev.Extent
}

const fakePhysBase = 0x1_0000_0000

func newPhysPool(p *countingPool) *physPool {
	return &physPool{countingPool: p, byPhy: map[uint64]daxdev.Extent{}}
}

func (p *physPool) PhysAddr(e daxdev.Extent) (uint64, bool) {
	phys := fakePhysBase + uint64(e.Offset)
	p.mu.Lock()
	p.byPhy[phys] = e
	p.mu.Unlock()
	return phys, true
}

func (p *physPool) region(phys uint64, size int64) ([]byte, error) {
	p.mu.Lock()
	e, ok := p.byPhy[phys]
	p.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no extent at 0x%x", phys)
	}
	b, err := p.Data(e)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) < size {
		return nil, fmt.Errorf("extent at 0x%x holds %d bytes, mount asked %d", phys, len(b), size)
	}
	return b[:size], nil
}

// dmaPool exports each extent as a dma-buf of its own: a memfd holding a
// copy of the extent (no dma-heap here; the fake module reads the fd).
type dmaPool struct{ *countingPool }

func (p dmaPool) ExtentDMABuf(e daxdev.Extent) (*os.File, error) {
	b, err := p.Data(e)
	if err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate("dmabuf", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "dmabuf")
	if _, err := f.WriteAt(b, 0); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
