package oci

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/daxfs-csi/daxfs-csi/internal/source"
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

// Lazy returns a handler that makes its Converter from opts on first use,
// so a process that never meets an oci:// source creates no cache dir (the
// placement controller, whose root filesystem may be read-only).
func Lazy(opts Options) source.SchemeHandler { return &lazy{opts: opts} }

type lazy struct {
	opts Options
	once sync.Once
	c    *Converter
	err  error
}

func (l *lazy) get() (*Converter, error) {
	l.once.Do(func() { l.c, l.err = New(l.opts) })
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
