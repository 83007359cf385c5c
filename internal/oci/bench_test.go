package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// Conversion throughput of a 4-layer image (gzip layers, ~100 MiB of
// incompressible file data) against a plain build of its flattened tree:
//
//	go test ./internal/oci -run '^$' -bench . -benchtime 5x
const (
	benchLayers     = 4
	benchSmallFiles = 500
	benchBigFiles   = 2
	benchBigSize    = 8 << 20
)

type benchFixture struct {
	img    v1.Image
	layout string // oci-layout dir
	tree   string // the flattened tree
	bytes  int64  // file bytes in the tree
}

var (
	fixtureOnce sync.Once
	fixture     benchFixture
	fixtureErr  error
	fixtureRoot string
)

// TestMain removes the benchmark fixture (~260 MB) after the run.
// It also serves as the "other process" of TestConvertOnceAcrossProcesses.
func TestMain(m *testing.M) {
	if src := os.Getenv("OCI_TEST_CONVERT_SRC"); src != "" {
		os.Exit(convertInChild(src, os.Getenv("OCI_TEST_CONVERT_DIR")))
	}
	code := m.Run()
	if fixtureRoot != "" {
		os.RemoveAll(fixtureRoot)
	}
	os.Exit(code)
}

func benchFileData(layer, i int) []byte {
	n := (i * 7919) % (64 << 10)
	if i < benchBigFiles {
		n = benchBigSize
	}
	b := make([]byte, n)
	x := uint32(layer*100000+i)*2654435761 + 1
	for j := 0; j+4 <= n; j += 4 { // xorshift: not compressible, not sparse
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[j], b[j+1], b[j+2], b[j+3] = byte(x), byte(x>>8), byte(x>>16), byte(x>>24)
	}
	return b
}

func makeFixture(b *testing.B) benchFixture {
	fixtureOnce.Do(func() {
		root, err := os.MkdirTemp("", "oci-bench-")
		if err != nil {
			fixtureErr = err
			return
		}
		fixtureRoot = root
		fixture.tree = filepath.Join(root, "tree")
		var layers [][]byte
		for l := range benchLayers {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			d := fmt.Sprintf("layer%d", l)
			tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch})
			os.MkdirAll(filepath.Join(fixture.tree, d), 0o755)
			for i := range benchSmallFiles + benchBigFiles {
				data := benchFileData(l, i)
				p := fmt.Sprintf("%s/f%04d", d, i)
				tw.WriteHeader(&tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data)), ModTime: epoch})
				tw.Write(data)
				if err := os.WriteFile(filepath.Join(fixture.tree, p), data, 0o644); err != nil {
					fixtureErr = err
					return
				}
				fixture.bytes += int64(len(data))
			}
			tw.Close()
			layers = append(layers, buf.Bytes())
		}
		fixture.img = imageOf(b, layers...)
		fixture.layout = filepath.Join(root, "layout")
		p, err := layout.Write(fixture.layout, empty.Index)
		if err == nil {
			err = p.AppendImage(fixture.img)
		}
		fixtureErr = err
	})
	if fixtureErr != nil {
		b.Fatal(fixtureErr)
	}
	return fixture
}

func benchConvert(b *testing.B, src func(b *testing.B, f benchFixture) string) {
	f := makeFixture(b)
	s := src(b, f)
	b.SetBytes(f.bytes)
	b.ResetTimer()
	for b.Loop() {
		c := newConverter(b, b.TempDir(), nil)
		if _, err := c.Convert(context.Background(), s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConvertOCILayout(b *testing.B) {
	benchConvert(b, func(b *testing.B, f benchFixture) string { return "oci-layout:" + f.layout })
}

func BenchmarkConvertRegistry(b *testing.B) {
	benchConvert(b, func(b *testing.B, f benchFixture) string {
		return newRegistry(b).push(b, "bench", "v1", f.img)
	})
}

// BenchmarkBuildFlattenedTree does what `image build DIR -o OUT` does
// with the flattened tree: AddDir, then write, hash and sync the image.
func BenchmarkBuildFlattenedTree(b *testing.B) {
	f := makeFixture(b)
	b.SetBytes(f.bytes)
	for b.Loop() {
		out := filepath.Join(b.TempDir(), "img.daxfs")
		bl := image.NewBuilder(image.BuildOptions{TempDir: filepath.Dir(out)})
		if err := bl.AddDir(f.tree); err != nil {
			b.Fatal(err)
		}
		fh, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		if _, err := bl.WriteTo(io.MultiWriter(fh, h)); err != nil {
			b.Fatal(err)
		}
		if err := fh.Sync(); err != nil {
			b.Fatal(err)
		}
		fh.Close()
		bl.Close()
	}
}
