package oci

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/daxfs-csi/daxfs-csi/internal/ociref"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// AddSource stacks the layers of a container image source (oci://,
// oci-layout:, docker-archive:) of the node's platform onto b, for offline
// builds; no cache is involved. kc nil means authn.DefaultKeychain.
func AddSource(ctx context.Context, b *image.Builder, src string, kc authn.Keychain) error {
	s, err := ociref.ParseSource(src)
	if err != nil {
		return err
	}
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	po := pullOptions{Keychain: kc, Platform: NodePlatform()}
	var ref name.Reference
	if s.Kind == ociref.KindRegistry {
		if ref, err = pinned(ctx, s, po); err != nil {
			return err
		}
	}
	im, err := openImage(ctx, s, ref, po)
	if err != nil {
		return err
	}
	return wrap(src, Stack(ctx, b, im))
}

func wrap(src string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	return nil
}
