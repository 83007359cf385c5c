// Package ociref parses OCI image references: the oci:// volume source
// (Parse, checked against the allow-list by internal/volume) and the forms internal/oci
// converts (ParseSource: oci://, oci-layout:, docker-archive:). One home so
// the node's checks and the converter read a reference the same way.
package ociref

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Scheme prefixes a registry source: oci://REGISTRY/REPO[:TAG][@sha256:DIGEST].
const Scheme = "oci://"

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// IsDigest reports whether s is a content digest in the one form the driver
// accepts everywhere (image digests of volumes, oci:// pins): sha256:<64
// lowercase hex>.
func IsDigest(s string) bool { return digestRE.MatchString(s) }

// Ref is a parsed oci:// source.
type Ref struct {
	Registry   string // "registry.example:5000"
	Repository string // "team/app"
	Tag        string // "" when absent
	Digest     string // "" for a tag-only reference
}

// Parse parses an oci:// source. The registry must be explicit (a host
// with a dot or port, or localhost): implicit Docker Hub names would make
// allow-list prefixes ambiguous.
func Parse(src string) (Ref, error) {
	rest, ok := strings.CutPrefix(src, Scheme)
	if !ok {
		return Ref{}, fmt.Errorf("%q is not an oci:// reference", src)
	}
	host, _, _ := strings.Cut(rest, "/")
	if !strings.ContainsAny(host, ".:") && host != "localhost" {
		return Ref{}, fmt.Errorf("%q: name the registry host (oci://REGISTRY/REPO...)", src)
	}
	if !strings.Contains(rest, "/") {
		return Ref{}, fmt.Errorf("%q: no repository after the registry", src)
	}
	base, digest, pinned := strings.Cut(rest, "@")
	var r Ref
	if pinned {
		d, err := name.NewDigest(rest, name.StrictValidation)
		if err != nil {
			return Ref{}, fmt.Errorf("%q: %w", src, err)
		}
		r.Registry, r.Repository, r.Digest = d.Context().RegistryStr(), d.Context().RepositoryStr(), digest
		if !IsDigest(digest) {
			return Ref{}, fmt.Errorf("%q: digest must be sha256:<64 lowercase hex>", src)
		}
	}
	// A tag is whatever follows the last ':' after the last '/'.
	if i := strings.LastIndex(base, ":"); i > strings.LastIndex(base, "/") {
		t, err := name.NewTag(base, name.StrictValidation)
		if err != nil {
			return Ref{}, fmt.Errorf("%q: %w", src, err)
		}
		r.Registry, r.Repository, r.Tag = t.Context().RegistryStr(), t.Context().RepositoryStr(), t.TagStr()
	} else if !pinned {
		return Ref{}, fmt.Errorf("%q: give a tag or a digest (oci://REGISTRY/REPO:TAG or ...@sha256:DIGEST)", src)
	} else {
		repo, err := name.NewRepository(base, name.StrictValidation)
		if err != nil {
			return Ref{}, fmt.Errorf("%q: %w", src, err)
		}
		r.Registry, r.Repository = repo.RegistryStr(), repo.RepositoryStr()
	}
	if r.Registry != CanonicalRegistry(host) {
		return Ref{}, fmt.Errorf("%q: registry %q is not in canonical form (%q)", src, host, r.Registry)
	}
	return r, nil
}

// CanonicalRegistry spells a registry host as go-containerregistry does
// ("docker.io" is "index.docker.io").
func CanonicalRegistry(host string) string {
	r, err := name.NewRegistry(host, name.StrictValidation)
	if err != nil {
		return host
	}
	return r.RegistryStr()
}

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

// IsSource reports whether s is one of the forms internal/oci reads.
func IsSource(s string) bool {
	return strings.HasPrefix(s, Scheme) || strings.HasPrefix(s, "oci-layout:") || strings.HasPrefix(s, "docker-archive:")
}

// ParseSource parses oci://, oci-layout: and docker-archive: sources.
func ParseSource(s string) (Source, error) {
	switch {
	case strings.HasPrefix(s, Scheme):
		r, err := Parse(s)
		if err != nil {
			return Source{}, err
		}
		ref, err := name.ParseReference(strings.TrimPrefix(s, Scheme), name.StrictValidation)
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
