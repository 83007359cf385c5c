package oci

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/daxfs-csi/daxfs-csi/pkg/volume"
)

// Kind says where a source's image comes from.
type Kind int

const (
	KindRegistry Kind = iota // oci://REGISTRY/REPO[:TAG][@sha256:DIGEST]
	KindLayout               // oci-layout:DIR[@sha256:DIGEST]
	KindArchive              // docker-archive:FILE.tar[:REPO:TAG]
)

// Source is a parsed source string.
type Source struct {
	Kind   Kind
	Raw    string
	Ref    name.Reference // KindRegistry
	Digest string         // manifest (or index) digest named by the source; "" for tag-only
	Path   string         // KindLayout, KindArchive
	Tag    string         // KindArchive: which image of a multi-image archive
}

// IsSource reports whether s is one of the forms this package reads.
func IsSource(s string) bool {
	return strings.HasPrefix(s, volume.OCIScheme) || strings.HasPrefix(s, "oci-layout:") || strings.HasPrefix(s, "docker-archive:")
}

// ParseSource parses oci://, oci-layout: and docker-archive: sources.
func ParseSource(s string) (Source, error) {
	switch {
	case strings.HasPrefix(s, volume.OCIScheme):
		r, err := volume.ParseOCI(s)
		if err != nil {
			return Source{}, err
		}
		ref, err := name.ParseReference(strings.TrimPrefix(s, volume.OCIScheme), name.StrictValidation)
		if err != nil {
			return Source{}, fmt.Errorf("%q: %w", s, err)
		}
		return Source{Kind: KindRegistry, Raw: s, Ref: ref, Digest: r.Digest}, nil
	case strings.HasPrefix(s, "oci-layout:"):
		p, d, _ := strings.Cut(strings.TrimPrefix(s, "oci-layout:"), "@")
		if p == "" {
			return Source{}, fmt.Errorf("%q: oci-layout:DIR needs a directory", s)
		}
		if d != "" {
			if _, err := v1.NewHash(d); err != nil {
				return Source{}, fmt.Errorf("%q: %w", s, err)
			}
		}
		return Source{Kind: KindLayout, Raw: s, Path: p, Digest: d}, nil
	case strings.HasPrefix(s, "docker-archive:"):
		rest := strings.TrimPrefix(s, "docker-archive:")
		p, tag := rest, ""
		// FILE.tar:REPO:TAG picks one image, as skopeo spells it.
		if i := strings.Index(rest, ".tar:"); i >= 0 {
			p, tag = rest[:i+4], rest[i+5:]
		}
		if p == "" {
			return Source{}, fmt.Errorf("%q: docker-archive:FILE.tar needs a file", s)
		}
		return Source{Kind: KindArchive, Raw: s, Path: p, Tag: tag}, nil
	}
	return Source{}, fmt.Errorf("%q: not an oci://, oci-layout: or docker-archive: reference", s)
}

// NodePlatform is the platform images are converted for.
func NodePlatform() v1.Platform {
	return v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
}
