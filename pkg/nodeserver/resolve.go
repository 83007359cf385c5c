// Pipeline step 1: resolve a volume's image source to a digest and size.

package nodeserver

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
	"github.com/daxfs-csi/daxfs-csi/internal/source"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
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
