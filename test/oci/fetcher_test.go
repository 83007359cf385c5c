package oci_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daxfs-csi/daxfs-csi/internal/oci"
	"github.com/daxfs-csi/daxfs-csi/internal/source"
)

// Importing internal/oci registers nothing: source.Default refuses oci://.
// A Fetcher given the handler (as cmd/daxfs-csi builds it from its flags)
// resolves and opens oci:// sources; oci.Lazy makes its cache dir, the one
// in its Options, on first use only.
func TestFetcherHandlesOCIWhenGiven(t *testing.T) {
	r := newRegistry(t)
	src := r.push(t, "team/app", appImage(t))
	dir := filepath.Join(t.TempDir(), "oci")
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // anonymous
	ctx := context.Background()
	if _, err := source.Resolve(ctx, src, ""); !errors.Is(err, source.ErrUnsupported) {
		t.Fatalf("source.Default resolved oci:// (something registered a handler): %v", err)
	}
	f := &source.Fetcher{Schemes: map[string]source.SchemeHandler{"oci": oci.Lazy(oci.Options{Dir: dir})}}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("oci.Lazy made %s before first use: %v", dir, err)
	}
	res, err := f.Resolve(ctx, src, "")
	if err != nil {
		t.Fatal(err)
	}
	want, err := oci.New(oci.Options{Dir: t.TempDir(), Keychain: anon{}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := want.Convert(ctx, src)
	if err != nil || e.Digest != res.Digest || e.Size != res.Size {
		t.Fatalf("fetcher resolved %+v; a converter gives %+v, %v", res, e, err)
	}
	rc, n, err := f.Open(ctx, src)
	if err != nil || n != res.Size {
		t.Fatalf("Open = %d, %v", n, err)
	}
	v, _ := source.NewVerifier(ctx, rc, res.Digest)
	io.Copy(io.Discard, v)
	rc.Close()
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, en := range ents {
		names = append(names, en.Name())
	}
	if !strings.Contains(strings.Join(names, " "), ".daxfs") {
		t.Fatalf("cache dir %s holds %v", dir, names)
	}
}
