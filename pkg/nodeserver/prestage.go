package nodeserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
	"github.com/daxfs-csi/daxfs-csi/internal/nodeagent"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

// Pre-staging (nodeagent.Stager): the controller places an image on this
// node's pool before any pod asks for it. The bytes go through the same
// resolve, allow-list, digest check and validation as a volume's, held by a
// separate pool owner so volumes and placements release independently; a
// volume that arrives later finds the extent ready and copies nothing.

const prestagePrefix = "prestage-"

var _ nodeagent.Stager = (*NodeServer)(nil)

func (s *NodeServer) prestageOwner() string { return ownerName(prestagePrefix + s.opts.NodeID) }

func (s *NodeServer) checkPoolID(poolID string) error {
	if id := s.pool.Info().ID; poolID != id {
		return grpccode.With(codes.NotFound, fmt.Errorf("pool %q is not on this node (it has %q)", poolID, id))
	}
	return nil
}

// Prestage stages a's image into the pool under the pre-stage hold.
func (s *NodeServer) Prestage(ctx context.Context, poolID string, a volume.Attributes) error {
	if err := s.checkPoolID(poolID); err != nil {
		return err
	}
	r, err := s.resolve(ctx, a)
	if err != nil {
		return fmt.Errorf("prestage %s: %w", a.Image, err)
	}
	owner := s.prestageOwner()
	if e, ok := s.pool.Lookup(r.Digest); ok && e.State == daxdev.StateReady && slices.Contains(e.OwnerNames(), owner) {
		return nil
	}
	unlock, err := s.imgLocks.LockCtx(ctx, r.Digest)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.pool.Stage(ctx, r.Digest, r.Size, owner, s.fill(ctx, r)); err != nil {
		return poolError(fmt.Errorf("prestage %s: %w", r.Digest, err))
	}
	klog.InfoS("Image pre-staged", "digest", r.Digest, "size", r.Size, "pool", poolID)
	return nil
}

// ReleasePrestaged drops the pre-stage hold; volumes keep theirs.
func (s *NodeServer) ReleasePrestaged(ctx context.Context, poolID, digest string) error {
	if err := s.checkPoolID(poolID); err != nil {
		return err
	}
	unlock, err := s.imgLocks.LockCtx(ctx, digest)
	if err != nil {
		return err
	}
	defer unlock()
	freed, err := s.pool.Release(digest, s.prestageOwner())
	if errors.Is(err, daxdev.ErrNotFound) {
		return nil // not staged, or not held by us: nothing to release
	}
	if err != nil {
		return poolError(fmt.Errorf("release pre-staged %s: %w", digest, err))
	}
	klog.InfoS("Pre-staged image released", "digest", digest, "freed", freed)
	return nil
}

// Staged lists the pool's extents. References count volume holds only: this
// node's volumes, and other nodes' volume owners on a shared pool; pre-stage
// holds are not references, else they would pin copies against eviction.
func (s *NodeServer) Staged() []nodeagent.StagedImage {
	poolID := s.pool.Info().ID
	st := s.pool.Status()
	ours, pre := s.owner, s.prestageOwner()
	out := make([]nodeagent.StagedImage, 0, len(st.Extents))
	for _, e := range st.Extents {
		im := nodeagent.StagedImage{PoolID: poolID, Digest: e.Digest, Size: e.Length, Staging: e.State != daxdev.StateReady}
		for _, o := range e.OwnerNames() {
			switch {
			case o == pre:
				im.Prestaged = true
			case o == ours:
				s.mu.Lock()
				im.References += int32(s.refsLocked(e.Digest))
				s.mu.Unlock()
			case !strings.HasPrefix(o, prestagePrefix):
				im.References++
			}
		}
		out = append(out, im)
	}
	return out
}
