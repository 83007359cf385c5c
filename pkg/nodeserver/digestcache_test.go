package nodeserver

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/daxfs-csi/daxfs-csi/internal/volume"
)

func TestDigestCache(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree4.static.daxfs", "img.daxfs")
	a := volume.Attributes{Image: uri, Mount: volume.MountAuto}
	r, err := e.ns.resolve(context.Background(), a)
	must(t, err)
	if r.Digest != dg {
		t.Fatalf("digest %s, want %s", r.Digest, dg)
	}
	k, ok := fileKeyOf(uri)
	if !ok || e.ns.digests.get(k) != dg {
		t.Fatal("digest not cached")
	}
	// Replace the content: the key changes, the digest is computed again.
	time.Sleep(10 * time.Millisecond)
	b := readFile(t, samplePath(t, "tree2.static.daxfs"))
	must(t, os.WriteFile(filepath.Join(e.images, "img.daxfs"), b, 0o644))
	_, dg2 := e.writeImage("copy", b)
	r, err = e.ns.resolve(context.Background(), a)
	must(t, err)
	if r.Digest != dg2 {
		t.Fatalf("after rewrite: digest %s, want %s", r.Digest, dg2)
	}
	if _, ok := fileKeyOf("https://x/y"); ok {
		t.Error("https source keyed")
	}
}
