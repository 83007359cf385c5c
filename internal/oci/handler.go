package oci

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/daxfs-csi/daxfs-csi/internal/source"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

// Resolve implements source.SchemeHandler: it converts uri (or finds the
// cached conversion) and names the DAXFS image. A digest given is the
// DAXFS digest the caller expects (recorded by the controller or the node);
// a conversion that differs is refused.
func (c *Converter) Resolve(ctx context.Context, uri, digest string) (source.Resolved, error) {
	e, err := c.Convert(ctx, uri)
	if err != nil {
		return source.Resolved{}, err
	}
	if digest != "" && digest != e.Digest {
		return source.Resolved{}, fmt.Errorf("%w: %s converts to %s, expected %s",
			source.ErrDigestMismatch, source.Redact(uri), e.Digest, digest)
	}
	return source.Resolved{URI: uri, Digest: e.Digest, Size: e.Size}, nil
}

// Open implements source.SchemeHandler: it streams the converted image,
// converting again if the cache evicted it meanwhile.
func (c *Converter) Open(ctx context.Context, uri string) (io.ReadCloser, int64, error) {
	e, err := c.Convert(ctx, uri)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(e.Path)
	if err != nil {
		return nil, 0, fmt.Errorf("open converted %s: %w", source.Redact(uri), err)
	}
	return f, e.Size, nil
}

// DefaultDir is where the converter that importing this package registers
// keeps its cache: $DAXFS_CSI_OCI_DIR, else the node's default state dir.
// That converter also reads $DAXFS_CSI_OCI_CACHE_SIZE (cap, e.g. 20Gi) and
// $DAXFS_CSI_PULL_SECRET_DIR (mounted secrets), and in a cluster reads
// NAMESPACE/NAME pull secrets through the API.
func DefaultDir() string {
	if d := os.Getenv("DAXFS_CSI_OCI_DIR"); d != "" {
		return d
	}
	return "/var/lib/daxfs-csi/oci"
}

// lazy is registered at init; it makes its Converter on first use so that
// importing the package creates no directories.
type lazy struct {
	once sync.Once
	c    *Converter
	err  error
}

func (l *lazy) get() (*Converter, error) {
	l.once.Do(func() {
		opts := Options{Dir: DefaultDir(), PullSecretDir: os.Getenv("DAXFS_CSI_PULL_SECRET_DIR")}
		if v := os.Getenv("DAXFS_CSI_OCI_CACHE_SIZE"); v != "" {
			if opts.MaxBytes, l.err = daxdev.ParseSize(v); l.err != nil {
				l.err = fmt.Errorf("DAXFS_CSI_OCI_CACHE_SIZE: %w", l.err)
				return
			}
		}
		// In a cluster, pull secrets are read with the plugin's service account.
		if cfg, err := rest.InClusterConfig(); err == nil {
			if cs, err := kubernetes.NewForConfig(cfg); err == nil {
				opts.PullSecrets = KubeSecrets(cs)
			}
		}
		l.c, l.err = New(opts)
	})
	return l.c, l.err
}

func (l *lazy) Resolve(ctx context.Context, uri, digest string) (source.Resolved, error) {
	c, err := l.get()
	if err != nil {
		return source.Resolved{}, err
	}
	return c.Resolve(ctx, uri, digest)
}

func (l *lazy) Open(ctx context.Context, uri string) (io.ReadCloser, int64, error) {
	c, err := l.get()
	if err != nil {
		return nil, 0, err
	}
	return c.Open(ctx, uri)
}

func init() { source.RegisterScheme("oci", &lazy{}) }

// Register makes c the handler of oci:// sources for every source.Fetcher
// that has none of its own (the node configures its cache dir this way).
func Register(c *Converter) { source.RegisterScheme("oci", c) }
