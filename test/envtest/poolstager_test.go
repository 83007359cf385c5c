package envtest

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/daxfs-csi/daxfs-csi/internal/nodeagent"
	"github.com/daxfs-csi/daxfs-csi/internal/source"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

// poolStager is a small real Stager: it stages image bytes into daxdev pools
// under one owner name, and reads back what the pools hold. The node plugin
// implements the production one on its own stage path.
type poolStager struct {
	pools map[string]*daxdev.Pool // by pool id
	owner string
}

func (s *poolStager) Prestage(ctx context.Context, poolID string, a volume.Attributes) error {
	p, ok := s.pools[poolID]
	if !ok {
		return fmt.Errorf("no pool %s", poolID)
	}
	if e, ok := p.Lookup(a.Digest); ok && slices.Contains(e.OwnerNames(), s.owner) {
		return nil
	}
	rc, size, err := source.Open(ctx, a.Image)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = p.Stage(ctx, a.Digest, size, s.owner, func(dst []byte) error {
		_, err := io.ReadFull(rc, dst)
		return err
	})
	return err
}

func (s *poolStager) ReleasePrestaged(_ context.Context, poolID, digest string) error {
	p, ok := s.pools[poolID]
	if !ok {
		return fmt.Errorf("no pool %s", poolID)
	}
	_, err := p.Release(digest, s.owner)
	return err
}

func (s *poolStager) Staged() []nodeagent.StagedImage {
	var out []nodeagent.StagedImage
	for id, p := range s.pools {
		for _, e := range p.Status().Extents {
			im := nodeagent.StagedImage{PoolID: id, Digest: e.Digest, Size: e.Length, Staging: e.State != daxdev.StateReady}
			for _, o := range e.OwnerNames() {
				switch {
				case o == s.owner:
					im.Prestaged = true
				case !strings.HasPrefix(o, "prestage-"): // another node's pre-stage hold is no reference
					im.References++
				}
			}
			out = append(out, im)
		}
	}
	return out
}
