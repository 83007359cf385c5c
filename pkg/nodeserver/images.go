package nodeserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
	"github.com/daxfs-csi/daxfs-csi/internal/proc"
	"github.com/daxfs-csi/daxfs-csi/internal/source"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

// resolved is an image a volume asks for, named by content.
type resolved struct {
	URI    string
	Digest string
	Size   int64
	Mode   volume.MountMode // effective: the volume's, or the node default for auto
	Strict bool             // the volume itself named the backend
	// NeedExec: the volume may run programs (volume.Attributes.NeedsExec).
	NeedExec bool
	// PullSecret names the secret an oci:// source is pulled with
	// (NAMESPACE/NAME or NAME); empty for other sources.
	PullSecret string
}

// stageTimeout bounds one fetch+fill. Staging runs detached from the
// request: a kubelet retry after its own timeout finds the work done
// instead of starting over.
const stageTimeout = 30 * time.Minute

// effectiveMode applies the node default to a volume's mount mode.
func (s *NodeServer) effectiveMode(m volume.MountMode) (volume.MountMode, bool) {
	if m == "" || m == volume.MountAuto {
		return s.opts.MountMode, false
	}
	return m, true
}

// resolve checks the allow-list and finds digest and size (a file source
// without a digest is hashed by streaming it once).
func (s *NodeServer) resolve(ctx context.Context, a volume.Attributes) (resolved, error) {
	if err := s.opts.AllowSources.Check(a.Image); err != nil {
		return resolved{}, err
	}
	digest := a.Digest
	key, keyed := fileKey{}, false
	if digest == "" {
		if key, keyed = fileKeyOf(a.Image); keyed {
			digest = s.digests.get(key)
		}
	}
	if keyed && s.opts.MaxImageSize > 0 && key.size > s.opts.MaxImageSize {
		// Refused before hashing it.
		return resolved{}, s.imageTooLarge(a.Image, -1)
	}
	r, err := s.opts.Fetcher.Resolve(source.WithPullSecret(ctx, a.PullSecretRef()), a.Image, digest)
	if err != nil {
		return resolved{}, fmt.Errorf("resolve image: %w", err)
	}
	if s.opts.MaxImageSize > 0 && r.Size > s.opts.MaxImageSize {
		return resolved{}, s.imageTooLarge(a.Image, r.Size)
	}
	if keyed && digest == "" {
		s.digests.put(key, r.Digest)
	}
	if r.Size <= 0 {
		return resolved{}, grpccode.With(codes.InvalidArgument, fmt.Errorf("image %s is empty", a.Image))
	}
	mode, strict := s.effectiveMode(a.Mount)
	return resolved{URI: a.Image, Digest: r.Digest, Size: r.Size, Mode: mode, Strict: strict, NeedExec: a.NeedsExec(), PullSecret: a.PullSecretRef()}, nil
}

// ensureImage makes r staged in the pool and mounted once under the state
// dir. The caller holds r's digest lock.
func (s *NodeServer) ensureImage(ctx context.Context, r resolved) (*state.Image, error) {
	start := time.Now()
	s.mu.Lock()
	im := s.images[r.Digest]
	s.mu.Unlock()
	if im != nil && im.Backend != "" {
		if r.Strict && string(r.Mode) != im.Backend {
			return nil, grpccode.With(codes.FailedPrecondition,
				fmt.Errorf("image %s is already mounted with %s on this node; mount=%s cannot be honoured", r.Digest, im.Backend, r.Mode))
		}
		err := s.imageHealthy(im)
		if err == nil {
			err = s.execUnserved(ctx, im, r)
			if err == nil {
				s.touch(im)
				return im, nil
			}
			if s.usersOf(r.Digest) > 0 {
				return nil, err
			}
			// Only the cache holds it: remount for this volume.
		}
		klog.InfoS("Image mount cannot serve, remounting", "digest", r.Digest, "err", err)
		if err := s.unmountImage(im); err != nil {
			return nil, err
		}
	}
	fresh := im == nil
	if fresh {
		im = &state.Image{Digest: r.Digest, Size: r.Size, Source: r.URI, LastUsed: time.Now()}
		// Record first: a crash after Stage must not leave an extent owned
		// by this node that no record names.
		if err := s.store.SaveImage(im); err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.images[r.Digest] = im
		s.mu.Unlock()
	}
	if _, ok := s.pool.Lookup(r.Digest); fresh || !ok {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stageTimeout)
		_, err := s.stageWithEviction(sctx, r)
		cancel()
		if err != nil {
			s.forgetIfUnused(im)
			return nil, err
		}
	}
	if err := s.mountImage(ctx, im, r.Mode, r.NeedExec || s.execNeeded(r.Digest)); err != nil {
		s.forgetIfUnused(im)
		return nil, err
	}
	if s.opts.OnStage != nil {
		s.opts.OnStage(r.Digest, im.Backend, time.Since(start))
	}
	// Volumes bound to the previous mount of this image are dead: rebind.
	s.repairOthers(r.Digest)
	klog.InfoS("Image staged", "digest", r.Digest, "size", r.Size, "backend", im.Backend, "duration", time.Since(start))
	return im, nil
}

// forgetIfUnused drops an image a failed stage left behind, unless volumes use it.
func (s *NodeServer) forgetIfUnused(im *state.Image) {
	s.mu.Lock()
	refs := s.refsLocked(im.Digest)
	s.mu.Unlock()
	if refs == 0 {
		if err := s.dropImage(im); err != nil {
			klog.ErrorS(err, "Clean up after failed stage", "digest", im.Digest)
		}
	}
}

// stageWithEviction stages r, evicting unused cached images (KeepUnused)
// while the pool has no room.
func (s *NodeServer) stageWithEviction(ctx context.Context, r resolved) (daxdev.Extent, error) {
	for {
		e, err := s.pool.Stage(ctx, r.Digest, r.Size, s.owner, s.fill(ctx, r))
		if err == nil {
			return e, nil
		}
		if errors.Is(err, daxdev.ErrNoSpace) {
			if s.opts.KeepUnused && s.evictOne(r.Digest) {
				continue
			}
			st := s.pool.Status()
			return e, grpccode.With(codes.ResourceExhausted,
				fmt.Errorf("stage %s (%d bytes): %w (pool has %d of %d bytes free)", r.Digest, r.Size, err, st.Free, st.DataSize))
		}
		return e, poolError(fmt.Errorf("stage %s: %w", r.Digest, err))
	}
}

// poolError gives pool failures their gRPC code.
func poolError(err error) error {
	var c grpccode.Coded
	switch {
	case errors.As(err, &c):
		return err // a fill error keeps its own code
	case errors.Is(err, daxdev.ErrTableFull), errors.Is(err, daxdev.ErrTooManyOwners):
		return grpccode.With(codes.ResourceExhausted, err)
	case errors.Is(err, daxdev.ErrLengthMismatch), errors.Is(err, daxdev.ErrBadArgument):
		return grpccode.With(codes.InvalidArgument, err)
	case errors.Is(err, daxdev.ErrClosed), errors.Is(err, daxdev.ErrReclaimed), errors.Is(err, daxdev.ErrBusy):
		return grpccode.With(codes.Unavailable, err)
	}
	return err
}

// fill streams the source into the extent while hashing it, then validates
// the image: a returned error frees the extent, so nothing half-staged or
// corrupt ever becomes ready.
func (s *NodeServer) fill(ctx context.Context, r resolved) func(dst []byte) error {
	return func(dst []byte) error {
		if int64(len(dst)) != r.Size {
			return fmt.Errorf("fill %s: extent holds %d bytes, image has %d", r.Digest, len(dst), r.Size)
		}
		rc, size, err := s.opts.Fetcher.Open(source.WithPullSecret(ctx, r.PullSecret), r.URI)
		if err != nil {
			return fmt.Errorf("fill %s: %w", r.Digest, err)
		}
		defer rc.Close()
		if size >= 0 && size != r.Size {
			return fmt.Errorf("fill %s: %w: source now has %d bytes, resolved %d", r.Digest, source.ErrFetch, size, r.Size)
		}
		v, err := source.NewVerifier(ctx, rc, r.Digest)
		if err != nil {
			return grpccode.With(codes.InvalidArgument, err)
		}
		if _, err := io.ReadFull(v, dst); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return fmt.Errorf("fill %s: %w: source ended after %d of %d bytes", r.Digest, source.ErrFetch, v.N(), r.Size)
			}
			return fmt.Errorf("fill %s: %w", r.Digest, err)
		}
		// One more byte would be content the digest did not cover.
		if n, _ := io.Copy(io.Discard, io.LimitReader(v, 1)); n > 0 {
			return fmt.Errorf("fill %s: %w: source is longer than %d bytes", r.Digest, source.ErrDigestMismatch, r.Size)
		}
		if err := v.Check(); err != nil {
			return fmt.Errorf("image %s: %w", r.URI, err)
		}
		im, err := image.OpenBytes(dst)
		if err == nil {
			err = im.Validate()
		}
		if err != nil {
			return grpccode.With(codes.InvalidArgument,
				fmt.Errorf("image %s (%s) is not a valid daxfs image: %w", r.URI, r.Digest, err))
		}
		return nil
	}
}

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
		var pid int
		pid, err = s.fuse.start(im.Digest, dir, filepath.Join(s.store.ImageDir(im.Digest), "fuse.log"))
		s.mu.Lock()
		im.PID = pid
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
		err = stopFuse(im.PID, im.Digest, dir)
	}
	if err != nil {
		return fmt.Errorf("unmount image %s: %w", im.Digest, err)
	}
	s.mu.Lock()
	im.Backend, im.PID, im.Reason, im.ReasonMessage = "", 0, "", ""
	s.mu.Unlock()
	return s.store.SaveImage(im)
}

// dropImage unmounts the image, releases this node's hold on the region and
// forgets it. The caller holds the digest lock and knows no volume uses it.
func (s *NodeServer) dropImage(im *state.Image) error {
	if err := s.unmountImage(im); err != nil {
		return err
	}
	freed, err := s.pool.Release(im.Digest, s.owner)
	if err != nil && !errors.Is(err, daxdev.ErrNotFound) {
		return fmt.Errorf("release %s: %w", im.Digest, err)
	}
	if err := s.store.DeleteImage(im.Digest); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.images, im.Digest)
	s.mu.Unlock()
	klog.InfoS("Image released", "digest", im.Digest, "regionFreed", freed)
	return nil
}

// releaseImage is called after a volume stopped using digest: the last one
// out unmounts and releases, unless unused images are kept as cache.
func (s *NodeServer) releaseImage(digest string) error {
	unlock := s.imgLocks.Lock(digest)
	defer unlock()
	s.mu.Lock()
	refs, im := s.refsLocked(digest), s.images[digest]
	s.mu.Unlock()
	if refs > 0 || im == nil {
		return nil
	}
	if s.opts.KeepUnused && im.Backend != "" {
		s.touch(im)
		return nil
	}
	return s.dropImage(im)
}

// evictOne drops the least recently used unreferenced image other than
// except; false when there is none to drop.
func (s *NodeServer) evictOne(except string) bool {
	s.mu.Lock()
	var cand []*state.Image
	for d, im := range s.images {
		if d != except && s.refsLocked(d) == 0 {
			cand = append(cand, im)
		}
	}
	s.mu.Unlock()
	sort.Slice(cand, func(i, j int) bool { return cand[i].LastUsed.Before(cand[j].LastUsed) })
	for _, im := range cand {
		unlock, ok := s.imgLocks.TryLock(im.Digest)
		if !ok {
			continue // being staged or published right now
		}
		s.mu.Lock()
		refs := s.refsLocked(im.Digest)
		s.mu.Unlock()
		if refs == 0 {
			err := s.dropImage(im)
			unlock()
			if err == nil {
				klog.InfoS("Evicted unused image to make room", "digest", im.Digest, "size", im.Size)
				return true
			}
			klog.ErrorS(err, "Evict image", "digest", im.Digest)
			continue
		}
		unlock()
	}
	return false
}

func (s *NodeServer) touch(im *state.Image) {
	s.mu.Lock()
	im.LastUsed = time.Now()
	s.mu.Unlock()
	if s.opts.KeepUnused {
		// Only the LRU order depends on it: worth a write only with a cache.
		if err := s.store.SaveImage(im); err != nil {
			klog.ErrorS(err, "Record image use", "digest", im.Digest)
		}
	}
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
