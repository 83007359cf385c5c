package main

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

// serveSource is the mapped image fuse-serve answers from.
type serveSource struct {
	data   []byte
	name   string // for messages
	fsName string // mount source in /proc/mounts
	close  func()
}

func openServeSource(f fuseServeFlags) (*serveSource, error) {
	fsName := "daxfs:" + filepath.Base(f.image)
	if f.digest != "" {
		fsName = "daxfs:" + f.digest[:len("sha256:")+12]
	}
	if f.image != "" {
		return mapImageFile(f.image, fsName)
	}
	return mapPoolExtent(f.pool, f.offset, f.digest, fsName)
}

// mapImageFile maps the file read-only and shared: pages come from (and
// stay in) the page cache, nothing is copied.
func mapImageFile(path, fsName string) (*serveSource, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open image: %w", err)
	}
	defer file.Close() // the mapping outlives the descriptor
	st, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat image: %w", err)
	}
	if st.Size() <= 0 || int64(int(st.Size())) != st.Size() {
		return nil, fmt.Errorf("image %s: cannot map %d bytes", path, st.Size())
	}
	b, err := unix.Mmap(int(file.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap image %s: %w", path, err)
	}
	return &serveSource{data: b, name: path, fsName: fsName, close: func() { unix.Munmap(b) }}, nil
}

// mapPoolExtent serves the ready extent of digest straight from the
// pool's mapping of device memory.
func mapPoolExtent(spec, offset, digest, fsName string) (*serveSource, error) {
	off, err := daxdev.ParseSize(offset)
	if err != nil {
		return nil, usageError{"--offset: " + err.Error()}
	}
	p, err := daxdev.OpenPool(spec, daxdev.PoolOptions{Offset: off})
	if err != nil {
		return nil, fmt.Errorf("open pool %s: %w", spec, err)
	}
	e, ok := p.Lookup(digest)
	if !ok {
		p.Close()
		return nil, fmt.Errorf("pool %s has no ready extent for %s", spec, digest)
	}
	b, err := p.Data(e)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("pool %s: mapping %s: %w", spec, digest, err)
	}
	name := fmt.Sprintf("%s in %s", digest, spec)
	return &serveSource{data: b, name: name, fsName: fsName, close: func() { p.Close() }}, nil
}
