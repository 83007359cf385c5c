package controller

import (
	"context"

	"github.com/daxfs-csi/daxfs-csi/internal/source"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

// Resolver finds the digest and size of an image source the spec does not
// give. The controller calls it once per image; the result is kept in status.
type Resolver interface {
	Resolve(ctx context.Context, src daxv1.ImageSource) (digest string, size int64, err error)
}

// SourceResolver resolves through a source.Fetcher (file:// as seen by the
// controller's own filesystem, https://, and the schemes the Fetcher was
// given: cmd/daxfs-csi adds oci://). A nil Fetcher is source.Default.
type SourceResolver struct{ Fetcher *source.Fetcher }

// Resolve implements Resolver.
func (r SourceResolver) Resolve(ctx context.Context, src daxv1.ImageSource) (string, int64, error) {
	f := r.Fetcher
	if f == nil {
		f = source.Default
	}
	res, err := f.Resolve(ctx, src.Image, src.Digest)
	if err != nil {
		return "", 0, err
	}
	return res.Digest, res.Size, nil
}
