package volume

import (
	"strings"

	"github.com/daxfs-csi/daxfs-csi/internal/ociref"
)

// OCI sources: image: oci://REGISTRY/REPO[:TAG]@sha256:DIGEST, or the
// tag-only oci://REGISTRY/REPO:TAG when an "oci+tags://" allow-list entry
// admits it. The OCI digest lives in the reference; the digest attribute,
// when given, is the digest of the converted DAXFS image (what the
// controller records after resolving) and a conversion that does not hash
// to it is refused.
const (
	ociTagsScheme = "oci+tags://"
	// AttrPullSecret names a kubernetes.io/dockerconfigjson secret used to
	// pull an oci:// image.
	AttrPullSecret = "pullSecret"
)

// checkOCIAllowed matches an oci:// source against one allow-list entry:
// same registry, and the repository equal to or under the entry's path.
// Digest-pinned references need an oci:// or oci+tags:// entry; tag-only
// ones (mutable) need oci+tags://.
func checkOCIAllowed(src ociref.Ref, entry string) bool {
	var rest string
	switch {
	case strings.HasPrefix(entry, ociref.Scheme):
		if src.Digest == "" {
			return false
		}
		rest = strings.TrimPrefix(entry, ociref.Scheme)
	case strings.HasPrefix(entry, ociTagsScheme):
		rest = strings.TrimPrefix(entry, ociTagsScheme)
	default:
		return false
	}
	host, repo, _ := strings.Cut(strings.TrimSuffix(rest, "/"), "/")
	if ociref.CanonicalRegistry(host) != src.Registry {
		return false
	}
	return repo == "" || src.Repository == repo || strings.HasPrefix(src.Repository, repo+"/")
}
