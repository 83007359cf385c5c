// Package oci turns container images into DAXFS images: it pulls
// oci://REGISTRY/REPO[:TAG]@sha256:DIGEST with go-containerregistry (or
// reads oci-layout:DIR and docker-archive:FILE.tar), streams the layers of
// the node's platform in order through image.Builder.AddTar, and keeps the
// result in an on-disk cache keyed by OCI digest, so each image is
// converted once per node. Registered as the "oci" scheme of pkg/source, it
// lets the node stage container images like any other image source.
package oci
