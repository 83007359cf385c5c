// Pool room: release images no volume uses, evict cached ones by LRU.

package nodeserver

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

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
