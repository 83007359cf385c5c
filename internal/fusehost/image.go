package fusehost

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/internal/fusefs"
	"github.com/daxfs-csi/daxfs-csi/internal/ociref"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// Source names the image one FUSE mount serves: the ready extent of Digest
// in the pool Pool (memfile pools: starting at Offset in the file), or an
// image file (benchmarks, debugging). fuse-serve's flags and the serve op
// carry the same fields.
type Source struct {
	Pool   string `json:"pool,omitempty"`
	Offset string `json:"offset,omitempty"`
	Digest string `json:"digest,omitempty"`
	Image  string `json:"image,omitempty"`
}

// Check reports a source that names no image, or two.
func (s Source) Check() error {
	switch {
	case (s.Pool == "") == (s.Image == ""):
		return errors.New("give exactly one of a pool with a digest, or an image file")
	case s.Pool != "" && s.Digest == "":
		return errors.New("a pool needs a digest")
	case s.Digest != "" && !ociref.IsDigest(s.Digest):
		return fmt.Errorf("digest %q is not sha256:<64 lowercase hex>", s.Digest)
	}
	return nil
}

// fsName is the mount source /proc/mounts shows.
func (s Source) fsName() string {
	if s.Digest != "" {
		return "daxfs:" + s.Digest[:len("sha256:")+12]
	}
	return "daxfs:" + filepath.Base(s.Image)
}

// Opened is an image mapped and checked, ready to mount.
type Opened struct {
	Image  *image.Image
	Name   string // for messages
	FSName string
	Bytes  int
	close  func()

	populated <-chan struct{} // pool images: closed once the mapping is populated
}

// Close unmaps the image; only once nothing serves it any more.
func (o *Opened) Close() { o.close() }

// Open maps the image (zero copy) and validates its metadata: a corrupt
// image is refused before anything is mounted. FUSE never exposes the bytes
// after a file's size, so their zero padding is not checked: that would read
// every file's last page.
func Open(src Source) (*Opened, error) {
	if err := src.Check(); err != nil {
		return nil, err
	}
	var data []byte
	var name string
	var closeFn func()
	if src.Image != "" {
		b, unmap, err := MapFile(src.Image)
		if err != nil {
			return nil, err
		}
		data, name, closeFn = b, src.Image, unmap
	} else {
		b, unmap, err := mapPoolExtent(src.Pool, src.Offset, src.Digest)
		if err != nil {
			return nil, err
		}
		data, name, closeFn = b, fmt.Sprintf("%s in %s", src.Digest, src.Pool), unmap
	}
	im, err := image.OpenBytes(data)
	if err == nil {
		if err = im.ValidateMetadata(); err != nil {
			err = fmt.Errorf("image %s is corrupt, refusing to mount it: %w", name, err)
		}
	} else {
		err = fmt.Errorf("image %s: %w", name, err)
	}
	if err != nil {
		closeFn()
		return nil, err
	}
	o := &Opened{Image: im, Name: name, FSName: src.fsName(), Bytes: len(data), close: closeFn}
	if src.Pool != "" { // already in memory: map it all now rather than fault per page
		pop := startPopulate(data)
		o.populated = pop.done
		o.close = func() { pop.halt(); closeFn() }
	}
	return o, nil
}

// Mount serves the opened image read-only at mountpoint, after detaching a
// dead mount a killed server left there. The serving process never opens
// files in its own mounts (fusefs.Options.NoSelfAccess).
func (o *Opened) Mount(mountpoint string, debug bool) (*fusefs.Server, error) {
	if _, err := fusefs.CleanStale(mountpoint); err != nil {
		return nil, err
	}
	return fusefs.Mount(mountpoint, o.Image, fusefs.Options{FSName: o.FSName, Debug: debug, NoSelfAccess: true})
}

// MapFile maps path read-only and shared: pages come from (and stay in) the
// page cache, nothing is copied. unmap releases the mapping.
func MapFile(path string) (data []byte, unmap func(), err error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open image: %w", err)
	}
	defer file.Close() // the mapping outlives the descriptor
	st, err := file.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("stat image: %w", err)
	}
	if st.Size() <= 0 || int64(int(st.Size())) != st.Size() {
		return nil, nil, fmt.Errorf("image %s: cannot map %d bytes", path, st.Size())
	}
	b, err := unix.Mmap(int(file.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap image %s: %w", path, err)
	}
	return b, func() { unix.Munmap(b) }, nil
}

// mapPoolExtent maps the ready extent of digest straight from the pool's
// mapping of device memory.
func mapPoolExtent(spec, offset, digest string) ([]byte, func(), error) {
	var off int64
	if offset != "" {
		var err error
		if off, err = daxdev.ParseSize(offset); err != nil {
			return nil, nil, fmt.Errorf("pool offset: %w", err)
		}
	}
	p, err := daxdev.OpenPool(spec, daxdev.PoolOptions{Offset: off})
	if err != nil {
		return nil, nil, fmt.Errorf("open pool %s: %w", spec, err)
	}
	e, ok := p.Lookup(digest)
	if !ok {
		p.Close()
		return nil, nil, fmt.Errorf("pool %s has no ready extent for %s", spec, digest)
	}
	b, err := p.Data(e)
	if err != nil {
		p.Close()
		return nil, nil, fmt.Errorf("pool %s: mapping %s: %w", spec, digest, err)
	}
	return b, func() { p.Close() }, nil
}
