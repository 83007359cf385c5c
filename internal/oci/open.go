package oci

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/daxfs-csi/daxfs-csi/internal/ociref"
)

// pullOptions are what a pull needs besides the source.
type pullOptions struct {
	Keychain  authn.Keychain
	Transport http.RoundTripper
	Platform  v1.Platform
}

func (o pullOptions) remote(ctx context.Context) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithPlatform(o.Platform)}
	if o.Keychain != nil {
		opts = append(opts, remote.WithAuthFromKeychain(o.Keychain))
	}
	if o.Transport != nil {
		opts = append(opts, remote.WithTransport(o.Transport))
	}
	return opts
}

// pinned returns the digest reference of a registry source, asking the
// registry (HEAD) for a tag-only one.
func pinned(ctx context.Context, src ociref.Source, o pullOptions) (name.Digest, error) {
	if d, ok := src.Ref.(name.Digest); ok {
		return d, nil
	}
	desc, err := remote.Head(src.Ref, o.remote(ctx)...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("resolve tag %s: %w", src.Ref, err)
	}
	return src.Ref.Context().Digest(desc.Digest.String()), nil
}

// openImage returns the image of the node's platform for src (a registry
// source must be pinned first). Nothing is downloaded beyond manifests and
// the config until layers are read.
func openImage(ctx context.Context, src ociref.Source, ref name.Reference, o pullOptions) (v1.Image, error) {
	switch src.Kind {
	case ociref.KindRegistry:
		img, err := remote.Image(ref, o.remote(ctx)...)
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
		return img, nil
	case ociref.KindLayout:
		idx, err := layout.ImageIndexFromPath(src.Path)
		if err != nil {
			return nil, fmt.Errorf("oci-layout %s: %w", src.Path, err)
		}
		var want *v1.Hash
		if src.Digest != "" {
			h, _ := v1.NewHash(src.Digest)
			want = &h
		}
		img, err := pickImage(idx, want, o.Platform)
		if err != nil {
			return nil, fmt.Errorf("oci-layout %s: %w", src.Path, err)
		}
		return img, nil
	case ociref.KindArchive:
		var tag *name.Tag
		if src.Tag != "" {
			t, err := name.NewTag(src.Tag)
			if err != nil {
				return nil, fmt.Errorf("docker-archive %s: %w", src.Path, err)
			}
			tag = &t
		}
		img, err := tarball.ImageFromPath(src.Path, tag)
		if err != nil {
			return nil, fmt.Errorf("docker-archive %s: %w", src.Path, err)
		}
		return img, nil
	}
	return nil, fmt.Errorf("unknown source kind %d", src.Kind)
}

// pickImage walks an index (nested ones too) for the image with digest
// want, or else the one image of the platform.
func pickImage(idx v1.ImageIndex, want *v1.Hash, plat v1.Platform) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var found []v1.Image
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			if want != nil && d.Digest == *want {
				return pickImage(child, nil, plat)
			}
			if img, err := pickImage(child, want, plat); err == nil {
				found = append(found, img)
			}
		case d.MediaType.IsImage():
			if want != nil && d.Digest != *want {
				continue
			}
			if want == nil && d.Platform != nil && !d.Platform.Satisfies(plat) {
				continue
			}
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, err
			}
			found = append(found, img)
		}
	}
	switch len(found) {
	case 0:
		if want != nil {
			return nil, fmt.Errorf("no image %s in the index", want)
		}
		return nil, fmt.Errorf("no image for %s/%s in the index", plat.OS, plat.Architecture)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%d images match %s/%s: name one with @sha256:DIGEST", len(found), plat.OS, plat.Architecture)
}
