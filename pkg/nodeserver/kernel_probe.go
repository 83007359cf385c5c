package nodeserver

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/volume"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

// The probe finds out what the loaded module can do before any volume
// depends on it: it stages a tiny image of our own as an extent of the
// pool (the one region the module can reach: by the pool's physical
// address, or the extent's own dma-buf), mounts it through the same path
// as volumes at <state-dir>/kernel-probe/mnt (a 0700 directory), maps its
// one file shared read-only (DAX) and private read-write (what the ELF
// loader does with every program's data segment), then unmounts and
// releases the extent. It runs once per module instance
// (realModule.Instance); the result is kept in <state-dir>/kernel-probe.json
// and in the daxfs_kernel_module_capability metric.

const probeFile = "probe"

// probeImage is the probe's image, its digest and its file's bytes.
var probeImage = sync.OnceValues(func() (probeImg, error) {
	content := make([]byte, 2*4096)
	for i := range content {
		content[i] = byte(i*31 + i>>12 + 1)
	}
	var t bytes.Buffer
	tw := tar.NewWriter(&t)
	if err := tw.WriteHeader(&tar.Header{Name: probeFile, Mode: 0o444, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		return probeImg{}, err
	}
	tw.Write(content)
	if err := tw.Close(); err != nil {
		return probeImg{}, err
	}
	b := image.NewBuilder(image.BuildOptions{})
	defer b.Close()
	if err := b.AddTar(&t); err != nil {
		return probeImg{}, fmt.Errorf("build probe image: %w", err)
	}
	var out bytes.Buffer
	if _, err := b.WriteTo(&out); err != nil {
		return probeImg{}, fmt.Errorf("build probe image: %w", err)
	}
	h := sha256.Sum256(out.Bytes())
	return probeImg{bytes: out.Bytes(), digest: "sha256:" + hex.EncodeToString(h[:]), content: content}, nil
})

type probeImg struct {
	bytes   []byte
	digest  string
	content []byte
}

// kernelProber holds the last probe of this node; one probe runs at a time.
type kernelProber struct {
	mu     sync.Mutex
	last   state.KernelProbe
	probed bool
}

// KernelProbe is the last probe of the kernel module; ok is false before
// any (no module, or no volume asked for it yet).
func (s *NodeServer) KernelProbe() (p state.KernelProbe, ok bool) {
	s.prober.mu.Lock()
	defer s.prober.mu.Unlock()
	return s.prober.last, s.prober.probed
}

// kernelView reads what the node knows of the module for a mount of r,
// probing it when r could go to the kernel and this instance is unprobed.
func (s *NodeServer) kernelView(ctx context.Context, mode volume.MountMode, r region) kernelView {
	inst, err := s.kernel.Instance()
	if err != nil {
		klog.ErrorS(err, "Cannot tell whether the daxfs module is loaded; assuming not")
	}
	k := kernelView{listed: inst != ""}
	if !k.listed || !r.reachable() || mode == volume.MountFUSE {
		return k
	}
	k.probe, k.probeErr = s.kernelCaps(ctx, inst)
	return k
}

// kernelCaps returns the probe of module instance inst: remembered, read
// from the state dir, or run now.
func (s *NodeServer) kernelCaps(ctx context.Context, inst string) (state.KernelProbe, error) {
	s.prober.mu.Lock()
	defer s.prober.mu.Unlock()
	if s.prober.probed && s.prober.last.Instance == inst {
		return s.prober.last, nil
	}
	if p, ok, err := s.store.KernelProbe(); err != nil {
		klog.ErrorS(err, "Recorded kernel probe unreadable; probing again")
	} else if ok && p.Instance == inst {
		s.prober.last, s.prober.probed = p, true
		return p, nil
	}
	p, err := s.runProbe(ctx, inst)
	if err != nil {
		return p, fmt.Errorf("probe kernel daxfs module: %w", err)
	}
	if err := s.store.SaveKernelProbe(p); err != nil {
		klog.ErrorS(err, "Record kernel probe")
	}
	s.prober.last, s.prober.probed = p, true
	klog.InfoS("Kernel daxfs module probed", "instance", inst, "mount", p.Mount, "sharedMap", p.SharedMap,
		"privateWriteMap", p.PrivateWriteMap, "detail", p.Detail)
	return p, nil
}

// runProbe stages, mounts, maps and releases the probe image. An error
// means the probe could not run (pool, state dir); a module that refuses
// a step is a result, with the refusal in Detail.
func (s *NodeServer) runProbe(ctx context.Context, inst string) (state.KernelProbe, error) {
	img, err := probeImage()
	if err != nil {
		return state.KernelProbe{}, err
	}
	ext, err := s.pool.Stage(ctx, img.digest, int64(len(img.bytes)), s.owner, func(dst []byte) error {
		copy(dst, img.bytes)
		return nil
	})
	if err != nil {
		return state.KernelProbe{}, fmt.Errorf("stage probe image: %w", err)
	}
	defer func() {
		if _, err := s.pool.Release(img.digest, s.owner); err != nil {
			klog.ErrorS(err, "Release kernel probe image", "digest", img.digest)
		}
	}()
	dir := filepath.Join(s.opts.StateDir, "kernel-probe", "mnt")
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return state.KernelProbe{}, fmt.Errorf("probe dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return state.KernelProbe{}, fmt.Errorf("probe dir: %w", err)
	}
	if err := unmountAll(dir); err != nil { // a probe cut short by a crash
		return state.KernelProbe{}, err
	}
	p := state.KernelProbe{Instance: inst, At: time.Now().UTC()}
	phys, _ := s.pool.PhysAddr(ext)
	exp, _ := s.pool.(DMABufExporter)
	if err := s.mountKernel(dir, ext, phys, int64(len(img.bytes)), exp); err != nil {
		p.Detail = err.Error()
		return p, nil
	}
	p.Mount = true
	defer func() {
		if err := unmountAll(dir); err != nil {
			klog.ErrorS(err, "Unmount kernel probe image", "dir", dir)
		}
	}()
	f, err := os.Open(filepath.Join(dir, probeFile))
	if err != nil {
		p.Detail = fmt.Sprintf("open probe file: %v", err)
		return p, nil
	}
	defer f.Close()
	var detail []error
	n := len(img.content)
	if b, err := s.kernel.Map(f, n, unix.PROT_READ, unix.MAP_SHARED); err != nil {
		detail = append(detail, fmt.Errorf("shared read-only mmap: %w", err))
	} else {
		p.SharedMap = bytes.Equal(b, img.content)
		if !p.SharedMap {
			detail = append(detail, errors.New("shared read-only mmap: bytes differ from the image"))
		}
		unix.Munmap(b)
	}
	if b, err := s.kernel.Map(f, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE); err != nil {
		detail = append(detail, fmt.Errorf("private read-write mmap: %w", err))
	} else {
		// Copy-on-write: the mapping takes the write, the file keeps its bytes.
		same := bytes.Equal(b, img.content)
		b[0] ^= 0xff
		var first [1]byte
		_, rerr := f.ReadAt(first[:], 0)
		p.PrivateWriteMap = same && rerr == nil && first[0] == img.content[0]
		unix.Munmap(b)
		if !p.PrivateWriteMap {
			detail = append(detail, fmt.Errorf("private read-write mmap: not a private copy of the file (read back: %v)", rerr))
		}
	}
	var msgs []string
	for _, d := range detail {
		msgs = append(msgs, d.Error())
	}
	p.Detail = strings.Join(msgs, "; ")
	return p, nil
}
