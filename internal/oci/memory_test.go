package oci

import (
	"archive/tar"
	"context"
	"io"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// noiseReader yields n incompressible bytes without holding them.
type noiseReader struct {
	n int64
	x uint32
}

func (r *noiseReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	for i := range p {
		r.x ^= r.x << 13
		r.x ^= r.x >> 17
		r.x ^= r.x << 5
		p[i] = byte(r.x)
	}
	r.n -= int64(len(p))
	return len(p), nil
}

// streamedLayer is a tar of one big file, generated on every open.
func streamedLayer(size int64) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: epoch})
			io.Copy(tw, &noiseReader{n: size, x: 1})
			pw.CloseWithError(tw.Close())
		}()
		return pr, nil
	}
}

// Converting a 64 MiB layer keeps the heap far below the layer size: the
// layer streams through the builder, which spools file data to disk.
func TestConversionStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 64 MiB layer")
	}
	const size = 64 << 20
	l, err := tarball.LayerFromOpener(streamedLayer(size))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	lp := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(lp, empty.Index)
	if err == nil {
		err = p.AppendImage(img)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := newConverter(t, t.TempDir(), nil)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	e, err := c.Convert(context.Background(), "oci-layout:"+lp)
	close(done)
	if err != nil {
		t.Fatal(err)
	}
	if e.Size < size {
		t.Fatalf("image of %d bytes for a %d-byte file", e.Size, size)
	}
	grew := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("heap in use grew by %d KiB converting a %d MiB layer", grew>>10, size>>20)
	if grew > size/4 {
		t.Fatalf("heap grew by %d bytes converting a %d-byte layer: not streaming", grew, size)
	}
}
