package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
	// Importing internal/oci also registers the oci:// source scheme, so the
	// node stages container images (cache: $DAXFS_CSI_OCI_DIR, default
	// /var/lib/daxfs-csi/oci).
	"github.com/daxfs-csi/daxfs-csi/internal/oci"
	"github.com/daxfs-csi/daxfs-csi/internal/ociref"
)

// addImageSource lets image build stack container images (oci://REF,
// oci-layout:DIR, docker-archive:FILE.tar) with the node's docker config
// for credentials. It reports false for other sources.
var addImageSource = func(b *image.Builder, src string) (bool, error) {
	if !ociref.IsSource(src) {
		return false, nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return true, oci.AddSource(ctx, b, src, nil)
}
