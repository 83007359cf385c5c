package volume

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// OCI sources: image: oci://REGISTRY/REPO[:TAG]@sha256:DIGEST, or the
// tag-only oci://REGISTRY/REPO:TAG when an "oci+tags://" allow-list entry
// admits it. The OCI digest lives in the reference; the digest attribute,
// when given, is the digest of the converted DAXFS image (what the
// controller records after resolving) and a conversion that does not hash
// to it is refused.
const (
	OCIScheme     = "oci://"
	ociTagsScheme = "oci+tags://"
	// AttrPullSecret names a kubernetes.io/dockerconfigjson secret used to
	// pull an oci:// image.
	AttrPullSecret = "pullSecret"
)

// OCIRef is a parsed oci:// source.
type OCIRef struct {
	Registry   string // "registry.example:5000"
	Repository string // "team/app"
	Tag        string // "" when absent
	Digest     string // "" for a tag-only reference
}

// ParseOCI parses an oci:// source. The registry must be explicit (a host
// with a dot or port, or localhost): implicit Docker Hub names would make
// allow-list prefixes ambiguous.
func ParseOCI(src string) (OCIRef, error) {
	rest, ok := strings.CutPrefix(src, OCIScheme)
	if !ok {
		return OCIRef{}, fmt.Errorf("%q is not an oci:// reference", src)
	}
	host, _, _ := strings.Cut(rest, "/")
	if !strings.ContainsAny(host, ".:") && host != "localhost" {
		return OCIRef{}, fmt.Errorf("%q: name the registry host (oci://REGISTRY/REPO...)", src)
	}
	if !strings.Contains(rest, "/") {
		return OCIRef{}, fmt.Errorf("%q: no repository after the registry", src)
	}
	base, digest, pinned := strings.Cut(rest, "@")
	var r OCIRef
	if pinned {
		d, err := name.NewDigest(rest, name.StrictValidation)
		if err != nil {
			return OCIRef{}, fmt.Errorf("%q: %w", src, err)
		}
		r.Registry, r.Repository, r.Digest = d.Context().RegistryStr(), d.Context().RepositoryStr(), digest
		if !digestRE.MatchString(digest) {
			return OCIRef{}, fmt.Errorf("%q: digest must be sha256:<64 lowercase hex>", src)
		}
	}
	// A tag is whatever follows the last ':' after the last '/'.
	if i := strings.LastIndex(base, ":"); i > strings.LastIndex(base, "/") {
		t, err := name.NewTag(base, name.StrictValidation)
		if err != nil {
			return OCIRef{}, fmt.Errorf("%q: %w", src, err)
		}
		r.Registry, r.Repository, r.Tag = t.Context().RegistryStr(), t.Context().RepositoryStr(), t.TagStr()
	} else if !pinned {
		return OCIRef{}, fmt.Errorf("%q: give a tag or a digest (oci://REGISTRY/REPO:TAG or ...@sha256:DIGEST)", src)
	} else {
		repo, err := name.NewRepository(base, name.StrictValidation)
		if err != nil {
			return OCIRef{}, fmt.Errorf("%q: %w", src, err)
		}
		r.Registry, r.Repository = repo.RegistryStr(), repo.RepositoryStr()
	}
	if r.Registry != canonicalRegistry(host) {
		return OCIRef{}, fmt.Errorf("%q: registry %q is not in canonical form (%q)", src, host, r.Registry)
	}
	return r, nil
}

// checkOCIAllowed matches an oci:// source against one allow-list entry:
// same registry, and the repository equal to or under the entry's path.
// Digest-pinned references need an oci:// or oci+tags:// entry; tag-only
// ones (mutable) need oci+tags://.
func checkOCIAllowed(src OCIRef, entry string) bool {
	var rest string
	switch {
	case strings.HasPrefix(entry, OCIScheme):
		if src.Digest == "" {
			return false
		}
		rest = strings.TrimPrefix(entry, OCIScheme)
	case strings.HasPrefix(entry, ociTagsScheme):
		rest = strings.TrimPrefix(entry, ociTagsScheme)
	default:
		return false
	}
	host, repo, _ := strings.Cut(strings.TrimSuffix(rest, "/"), "/")
	if canonicalRegistry(host) != src.Registry {
		return false
	}
	return repo == "" || src.Repository == repo || strings.HasPrefix(src.Repository, repo+"/")
}

// canonicalRegistry spells a registry host as go-containerregistry does
// ("docker.io" is "index.docker.io").
func canonicalRegistry(host string) string {
	r, err := name.NewRegistry(host, name.StrictValidation)
	if err != nil {
		return host
	}
	return r.RegistryStr()
}
