package main

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func opts(t *testing.T, bin []byte) options {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "daxfs-csi")
	if err := os.WriteFile(p, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return options{binary: p, ref: "example.com/daxfs-csi:v1", version: "v1", revision: "abc", created: 1700000000, arch: "amd64"}
}

func digestOf(t *testing.T, o options) string {
	t.Helper()
	img, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// The same binary and options give the same digest; another binary or
// another time does not.
func TestReproducible(t *testing.T) {
	a := opts(t, []byte("binary one"))
	b := opts(t, []byte("binary one")) // another path, same bytes
	if da, db := digestOf(t, a), digestOf(t, b); da != db {
		t.Fatalf("same binary, digests %s and %s", da, db)
	}
	c := opts(t, []byte("binary two"))
	if digestOf(t, a) == digestOf(t, c) {
		t.Fatal("another binary gave the same digest")
	}
	a2 := a
	a2.created++
	if digestOf(t, a) == digestOf(t, a2) {
		t.Fatal("another creation time gave the same digest")
	}
}

func TestImageContent(t *testing.T) {
	o := opts(t, []byte("#!/bin/true\n"))
	img, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := img.MediaType()
	if mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s", mt)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.Entrypoint[0] != "/daxfs-csi" || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("config %+v", cf.Config)
	}
	want := time.Unix(o.created, 0).UTC()
	if !cf.Created.Time.Equal(want) {
		t.Errorf("created %v, want %v", cf.Created, want)
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.version":  "v1",
		"org.opencontainers.image.revision": "abc",
		"org.opencontainers.image.title":    "daxfs-csi",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.created":  want.Format(time.RFC3339),
	} {
		if cf.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cf.Config.Labels[k], v)
		}
	}
	layers, _ := img.Layers()
	if len(layers) != 1 {
		t.Fatalf("%d layers", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	seen := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[h.Name] = h
		if !h.ModTime.Equal(want) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: mtime %v uid %d gid %d", h.Name, h.ModTime, h.Uid, h.Gid)
		}
	}
	if h := seen["daxfs-csi"]; h == nil || h.Mode != 0o755 || h.Size != int64(len("#!/bin/true\n")) {
		t.Errorf("binary entry %+v", h)
	}
	if h := seen["tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp entry %+v", h)
	}
}

// run writes an OCI layout and a tarball holding the same image.
func TestRunWritesLayoutAndTarball(t *testing.T) {
	o := opts(t, []byte("bin"))
	dir := t.TempDir()
	o.ociLayout, o.tarball = filepath.Join(dir, "oci"), filepath.Join(dir, "img.tar")
	if err := run(o); err != nil {
		t.Fatal(err)
	}
	want := digestOf(t, o)
	idx, err := layout.ImageIndexFromPath(o.ociLayout)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != want ||
		im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "example.com/daxfs-csi:v1" {
		t.Errorf("layout index %+v, want one manifest %s", im.Manifests, want)
	}
	tag, _ := name.NewTag(o.ref)
	img, err := tarball.ImageFromPath(o.tarball, &tag)
	if err != nil {
		t.Fatal(err)
	}
	// The tarball keeps config and layers; the config digest must match.
	cn, _ := img.ConfigName()
	built, _ := build(o)
	bn, _ := built.ConfigName()
	if cn != bn {
		t.Errorf("tarball config %s, built %s", cn, bn)
	}
}
