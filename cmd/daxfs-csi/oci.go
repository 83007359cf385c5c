package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/daxfs-csi/daxfs-csi/internal/oci"
	"github.com/daxfs-csi/daxfs-csi/internal/ociref"
	"github.com/daxfs-csi/daxfs-csi/internal/source"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// The oci:// converter is configured by flags only (docs/architecture.md):
// serve and controller build it here and hand it to their source.Fetcher;
// internal/oci registers nothing and reads no environment.

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

// ociCacheBytes parses --oci-cache-size: Ki/Mi/Gi/Ti, or 0 for no cap.
func ociCacheBytes(size string) (int64, error) {
	if size == "0" {
		return 0, nil
	}
	n, err := daxdev.ParseSize(size)
	if err != nil {
		return 0, fmt.Errorf("--oci-cache-size: %w", err)
	}
	return n, nil
}

// fetcherWith is a source.Fetcher like source.Default that also fetches
// oci:// sources through h.
func fetcherWith(h source.SchemeHandler) *source.Fetcher {
	return &source.Fetcher{HTTPClient: source.Default.HTTPClient, Schemes: map[string]source.SchemeHandler{"oci": h}}
}
