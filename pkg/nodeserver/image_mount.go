// Pipeline step 3: the image's one read-only mount, kernel or FUSE.

package nodeserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc/codes"
	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
	"github.com/daxfs-csi/daxfs-csi/internal/proc"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

// mountImage makes the image's one read-only mount, kernel or FUSE.
// needExec: some volume of the image may run programs from it.
func (s *NodeServer) mountImage(ctx context.Context, im *state.Image, mode volume.MountMode, needExec bool) error {
	ext, ok := s.pool.Lookup(im.Digest)
	if !ok {
		return fmt.Errorf("mount image %s: not ready in the pool", im.Digest)
	}
	phys, hasPhys := s.pool.PhysAddr(ext)
	if !hasPhys {
		phys = 0
	}
	exporter, dmabuf := s.pool.(DMABufExporter)
	r := region{phys: phys, size: im.Size, dmabuf: dmabuf}
	choice, err := selectBackend(mode, needExec, s.kernelView(ctx, mode, r), r)
	if err != nil {
		return fmt.Errorf("mount image %s: %w", im.Digest, err)
	}
	dir := s.store.ImageMount(im.Digest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mount image %s: %w", im.Digest, err)
	}
	if choice.Backend == backendKernel {
		err = s.mountKernel(dir, ext, phys, im.Size, exporter)
		if err != nil && mode == volume.MountAuto {
			// auto promises a mount, not a backend: the module may refuse a
			// region while FUSE can serve it.
			klog.ErrorS(err, "Kernel daxfs mount failed; falling back to FUSE", "digest", im.Digest)
			choice = backendChoice{backendFUSE, reasonKernelMountError, fmt.Sprintf("kernel daxfs mount failed: %v", err)}
			err = nil
		}
	}
	if choice.Backend == backendFUSE && s.pool.Info().Kind == daxdev.KindDMAHeap {
		// fuse-serve reopens the pool by spec; a dma-heap spec allocates a
		// new, empty buffer instead of finding this one. The kernel needs a
		// dma-buf per extent, which no pool exports yet (docs/kernel-mount.md).
		return grpccode.With(codes.FailedPrecondition, fmt.Errorf(
			"mount image %s: the FUSE fallback cannot serve a dma-heap pool (another process cannot reopen the buffer), and the kernel cannot: %s",
			im.Digest, choice.Message))
	}
	if choice.Backend == backendFUSE {
		var srv fuseServer
		srv, err = s.fuse.start(im.Digest, dir, filepath.Join(s.store.ImageDir(im.Digest), "fuse.log"))
		s.mu.Lock()
		im.PID, im.FuseHost, im.HostPID = srv.PID, srv.Handle, srv.HostPID
		s.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("mount image %s: %w", im.Digest, err)
	}
	s.mu.Lock()
	im.Backend, im.Reason, im.ReasonMessage = choice.Backend, choice.Reason, choice.Message
	im.LastUsed = time.Now()
	im.Generation++
	s.mu.Unlock()
	klog.InfoS("Image mount backend chosen", "digest", im.Digest, "backend", choice.Backend,
		"reason", choice.Reason, "message", choice.Message, "mount", mode, "exec", needExec)
	if err := s.store.SaveImage(im); err != nil {
		return err
	}
	return nil
}

// imageHealthy reports why the image mount does not answer (or its FUSE
// server is gone), nil when it serves.
func (s *NodeServer) imageHealthy(im *state.Image) error {
	if im.Backend == backendFUSE && im.PID > 0 && !proc.Alive(im.PID) {
		return fmt.Errorf("fuse-serve %d for %s is gone", im.PID, im.Digest)
	}
	return mountHealthy(s.store.ImageMount(im.Digest))
}

// unmountImage takes the image mount down (stopping its server) but keeps
// the pool extent and the record.
func (s *NodeServer) unmountImage(im *state.Image) error {
	dir := s.store.ImageMount(im.Digest)
	var err error
	if im.Backend == backendKernel {
		err = unmountAll(dir)
	} else {
		// FUSE, or unknown after a crash mid-mount: stopFuse also detaches
		// a mount whose server is dead.
		err = s.fuse.stop(fuseServer{PID: im.PID, Handle: im.FuseHost}, im.Digest, dir)
	}
	if err != nil {
		return fmt.Errorf("unmount image %s: %w", im.Digest, err)
	}
	s.mu.Lock()
	im.Backend, im.PID, im.FuseHost, im.HostPID, im.Reason, im.ReasonMessage = "", 0, "", 0, "", ""
	s.mu.Unlock()
	return s.store.SaveImage(im)
}

// mountKernel mounts by physical address when there is one, else through
// the extent's own dma-buf.
func (s *NodeServer) mountKernel(dir string, e daxdev.Extent, phys uint64, size int64, exp DMABufExporter) error {
	if phys != 0 || exp == nil {
		return mountKernelPhys(s.kernel, dir, phys, size)
	}
	f, err := exp.ExtentDMABuf(e)
	if err != nil {
		return fmt.Errorf("dma-buf of %s: %w", e.Digest, err)
	}
	defer f.Close()
	return mountKernelDmabuf(s.kernel, dir, f)
}
