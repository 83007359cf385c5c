// Pipeline driver: a resolved image, staged in the pool and mounted once.

package nodeserver

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

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
		var err error
		if !s.imageServesCheap(im) {
			err = s.imageHealthy(im)
		}
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
