package oci_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daxfs-csi/daxfs-csi/internal/oci"
	"github.com/daxfs-csi/daxfs-csi/internal/source"
)

// Importing internal/oci (as cmd/daxfs-csi does) is enough for source.Default,
// the node's default fetcher, to resolve and open oci:// sources; the
// cache goes to $DAXFS_CSI_OCI_DIR.
func TestDefaultFetcherHandlesOCI(t *testing.T) {
	r := newRegistry(t)
	src := r.push(t, "team/app", appImage(t))
	dir := filepath.Join(t.TempDir(), "oci")
	t.Setenv("DAXFS_CSI_OCI_DIR", dir)
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // anonymous
	ctx := context.Background()
	res, err := source.Resolve(ctx, src, "")
	if err != nil {
		t.Fatal(err)
	}
	want, err := oci.New(oci.Options{Dir: t.TempDir(), Keychain: anon{}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := want.Convert(ctx, src)
	if err != nil || e.Digest != res.Digest || e.Size != res.Size {
		t.Fatalf("default fetcher resolved %+v; a converter gives %+v, %v", res, e, err)
	}
	rc, n, err := source.Open(ctx, src)
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
