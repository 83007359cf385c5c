package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// Progress of one conversion, for metrics and logs.
type Progress struct {
	Source       string // redacted source
	Layer        int    // layers fully stacked so far
	Layers       int
	Bytes        int64 // uncompressed layer bytes read so far
	LayerBytes   int64 // compressed bytes of all layers, as the manifest says
	ImageBytes   int64 // DAXFS bytes written so far (after the last layer)
	WrittenTotal int64 // DAXFS image size, once known
}

// stacker feeds an image's layers into a Builder and counts progress.
type stacker struct {
	p     atomic.Pointer[Progress]
	bytes atomic.Int64
	sized bool // layer sizes are cheap to ask (not a docker archive)
}

func (s *stacker) snapshot() Progress {
	p := *s.p.Load()
	p.Bytes = s.bytes.Load()
	return p
}

func (s *stacker) update(f func(*Progress)) {
	p := s.snapshot()
	f(&p)
	s.p.Store(&p)
}

// Stack streams the layers of img, bottom first, through b.AddTar: each
// layer is read once and never held whole in memory (the builder spools
// file data to disk). Every layer is read to its end so its digest is
// checked even when the tar ends before the blob does.
func Stack(ctx context.Context, b *image.Builder, img v1.Image) error {
	s := stacker{sized: true}
	s.p.Store(&Progress{})
	return s.stack(ctx, b, img)
}

func (s *stacker) stack(ctx context.Context, b *image.Builder, img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("image layers: %w", err)
	}
	// Sizes come from the manifest, except for docker archives, where
	// asking would gzip every layer first.
	var total int64
	if s.sized {
		for _, l := range layers {
			if n, err := l.Size(); err == nil {
				total += n
			}
		}
	}
	s.update(func(p *Progress) { p.Layers, p.LayerBytes = len(layers), total })
	for i, l := range layers {
		if err := s.addLayer(ctx, b, l); err != nil {
			d, _ := l.Digest()
			return fmt.Errorf("layer %d/%d (%s): %w", i+1, len(layers), d, err)
		}
		s.update(func(p *Progress) { p.Layer = i + 1 })
	}
	return nil
}

func (s *stacker) addLayer(ctx context.Context, b *image.Builder, l v1.Layer) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	r := &countReader{ctx: ctx, r: rc, n: &s.bytes}
	err = b.AddTar(r)
	if err == nil {
		_, err = io.Copy(io.Discard, r)
	}
	return errors.Join(err, rc.Close())
}

// countReader counts bytes and stops once ctx is done.
type countReader struct {
	ctx context.Context
	r   io.Reader
	n   *atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
