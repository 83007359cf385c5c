package oci

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/daxfs-csi/daxfs-csi/internal/source"
)

func TestConvertShowsRuntimeView(t *testing.T) {
	reg := newRegistry(t)
	img := imageOf(t, runtimeLayers(t)...)
	src := reg.push(t, "team/app", "v1", img)
	c := newConverter(t, t.TempDir(), nil)
	e, err := c.Convert(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if got := treeOf(t, e.Path); !slices.Equal(got, wantRuntimeTree) {
		t.Fatalf("converted tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantRuntimeTree, "\n"))
	}
	if a, b := inoOf(t, e.Path, "/bin/busybox"), inoOf(t, e.Path, "/bin/ls"); a == 0 || a != b {
		t.Fatalf("hard link across layers: busybox ino %d, ls ino %d", a, b)
	}
	md, _ := img.Digest()
	if e.OCIDigest != md.String() || e.ManifestDigest != md.String() || !strings.HasPrefix(e.Digest, "sha256:") {
		t.Fatalf("entry = %+v", e)
	}
	// The entry is recorded beside the image and found without the registry.
	reg.srv.Close()
	again, err := newConverter(t, c.opts.Dir, nil).Convert(context.Background(), src)
	if err != nil || again.Digest != e.Digest {
		t.Fatalf("cached convert = %+v, %v", again, err)
	}
}

func TestIndexPicksNodePlatform(t *testing.T) {
	reg := newRegistry(t)
	mine := imageOf(t, runtimeLayers(t)...)
	other := imageOf(t, tarOf(t, file("wrong-platform", "x", 0o644)))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "plan9", Architecture: "mips"}}},
		mutate.IndexAddendum{Add: mine, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: NodePlatform().OS, Architecture: NodePlatform().Architecture}}},
	)
	src := reg.pushIndex(t, "multi", "v1", idx)
	e, err := newConverter(t, t.TempDir(), nil).Convert(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := mine.Digest()
	id, _ := idx.Digest()
	if e.ManifestDigest != md.String() || e.OCIDigest != id.String() {
		t.Fatalf("entry = %+v; want manifest %s of index %s", e, md, id)
	}
	if got := treeOf(t, e.Path); !slices.Equal(got, wantRuntimeTree) {
		t.Fatalf("converted tree:\n%s", strings.Join(got, "\n"))
	}
}

// The same image from a registry, an OCI layout and a docker archive
// converts to the same bytes.
func TestLocalSourcesConvertIdentically(t *testing.T) {
	reg := newRegistry(t)
	img := imageOf(t, runtimeLayers(t)...)
	src := reg.push(t, "app", "v1", img)
	c := newConverter(t, t.TempDir(), nil)
	ctx := context.Background()
	want, err := c.Convert(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	lp := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(lp, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	ap := filepath.Join(t.TempDir(), "app.tar")
	tag, _ := name.NewTag("example.com/app:v1")
	if err := tarball.WriteToFile(ap, tag, img); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"oci-layout:" + lp, "docker-archive:" + ap, "docker-archive:" + ap + ":example.com/app:v1"} {
		e, err := c.Convert(ctx, s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if e.Digest != want.Digest || e.Size != want.Size {
			t.Errorf("%s converts to %s (%d bytes), registry to %s (%d)", s, e.Digest, e.Size, want.Digest, want.Size)
		}
	}
	if _, err := c.Convert(ctx, "oci-layout:"+filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("missing layout converted")
	}
}

func TestDigestMismatchRefused(t *testing.T) {
	reg := newRegistry(t)
	img := imageOf(t, runtimeLayers(t)...)
	src := reg.push(t, "app", "v1", img)
	dir := t.TempDir()
	c := newConverter(t, dir, nil)
	ctx := context.Background()
	wrong := "sha256:" + strings.Repeat("0", 64)
	if _, err := c.Resolve(ctx, src, wrong); !errors.Is(err, source.ErrDigestMismatch) {
		t.Fatalf("Resolve with a wrong DAXFS digest = %v", err)
	}
	r, err := c.Resolve(ctx, src, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resolve(ctx, src, r.Digest); err != nil {
		t.Fatalf("Resolve with the right digest: %v", err)
	}
	// A manifest digest the registry does not have (or has other bytes
	// for) is never converted.
	other := strings.Replace(src, "@sha256:", "@sha256:0", 1)
	other = other[:len(other)-1]
	if _, err := c.Convert(ctx, other); err == nil {
		t.Fatal("unknown manifest digest converted")
	}
	// A layer whose bytes do not match its digest fails the pull.
	img2 := imageOf(t, tarOf(t, file("a", strings.Repeat("payload", 1000), 0o644)))
	src2 := reg.push(t, "tampered", "v1", img2)
	layers, _ := img2.Layers()
	ld, _ := layers[0].Digest()
	reg.set(func() { reg.breakBlob = nil })
	tamper(t, reg, ld)
	before := cacheFiles(t, dir)
	if _, err := c.Convert(ctx, src2); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("tampered layer: %v, want a checksum error", err)
	}
	if after := cacheFiles(t, dir); !slices.Equal(before, after) {
		t.Fatalf("failed conversion left files: %v -> %v", before, after)
	}
}

// tamper makes the registry serve blob d with one byte of its gzip
// header's MTIME changed: the layer still decompresses to the same tar,
// so only the digest check can notice.
func tamper(t *testing.T, reg *testRegistry, d v1.Hash) {
	inner := reg.srv.Config.Handler
	reg.srv.Config.Handler = httpHandlerFunc(func(w httpResponseWriter, r *httpRequest) {
		if strings.HasSuffix(r.URL.Path, "/blobs/"+d.String()) && r.Method == "GET" {
			rec := httptest.NewRecorder()
			inner.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			body[4] ^= 0xff
			w.Write(body)
			return
		}
		inner.ServeHTTP(w, r)
	})
}

func TestFailedPullLeavesNothing(t *testing.T) {
	reg := newRegistry(t)
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB, incompressible enough not to matter
	img := imageOf(t, tarOf(t, file("base", "base", 0o644)), tarOf(t, file("big", big, 0o644)))
	src := reg.push(t, "app", "v1", img)
	layers, _ := img.Layers()
	bad, _ := layers[1].Digest()
	var broken atomic.Bool
	broken.Store(true)
	reg.set(func() { reg.breakBlob = func(d string) bool { return broken.Load() && d == bad.String() } })
	dir := t.TempDir()
	var convs []Conversion
	c := newConverter(t, dir, func(o *Options) { o.OnConversion = func(cv Conversion) { convs = append(convs, cv) } })
	ctx := context.Background()
	if _, err := c.Convert(ctx, src); err == nil {
		t.Fatal("conversion over a broken registry succeeded")
	}
	if files := cacheFiles(t, dir); len(files) != 0 {
		t.Fatalf("failed pull left %v in the cache", files)
	}
	if files := cacheFiles(t, c.spool); len(files) != 0 {
		t.Fatalf("failed pull left spool files %v", files)
	}
	if len(convs) != 1 || convs[0].Err == nil {
		t.Fatalf("conversions reported: %+v", convs)
	}
	// The next attempt starts clean and succeeds.
	broken.Store(false)
	e, err := c.Convert(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if got := treeOf(t, e.Path); len(got) != 3 {
		t.Fatalf("tree = %v", got)
	}
	if len(convs) != 2 || convs[1].Err != nil || convs[1].Digest != e.Digest || convs[1].Layers != 2 || convs[1].Bytes < int64(len(big)) {
		t.Fatalf("conversions reported: %+v", convs)
	}
}

// Concurrent callers, in this process and through a second Converter on
// the same directory (another process's view), pull each layer once.
func TestConcurrentConvertsOnce(t *testing.T) {
	reg := newRegistry(t)
	img := imageOf(t, runtimeLayers(t)...)
	src := reg.push(t, "app", "v1", img)
	gate := make(chan struct{})
	reg.set(func() { reg.gate = gate })
	dir := t.TempDir()
	var n atomic.Int32
	count := func(o *Options) { o.OnConversion = func(Conversion) { n.Add(1) } }
	cs := []*Converter{newConverter(t, dir, count), newConverter(t, dir, count)}
	var wg sync.WaitGroup
	digests := make([]string, 16)
	errs := make([]error, 16)
	for i := range digests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := cs[i%2].Convert(context.Background(), src)
			digests[i], errs[i] = e.Digest, err
		}()
	}
	time.Sleep(200 * time.Millisecond)
	close(gate)
	wg.Wait()
	for i := range digests {
		if errs[i] != nil || digests[i] != digests[0] {
			t.Fatalf("caller %d: %s, %v (caller 0: %s)", i, digests[i], errs[i], digests[0])
		}
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		if g := reg.gets(d); g != 1 {
			t.Errorf("layer %s fetched %d times", d, g)
		}
	}
	if n.Load() != 1 {
		t.Errorf("%d conversions ran", n.Load())
	}
}

// A caller that gives up leaves the conversion running; the next call
// gets its result without pulling again.
func TestConversionOutlivesCaller(t *testing.T) {
	reg := newRegistry(t)
	img := imageOf(t, runtimeLayers(t)...)
	src := reg.push(t, "app", "v1", img)
	gate := make(chan struct{})
	reg.set(func() { reg.gate = gate })
	c := newConverter(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Convert(ctx, src); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Convert past its deadline = %v", err)
	}
	if a := c.Active(); len(a) != 1 || a[0].Layers != 3 || a[0].Layer != 0 {
		t.Fatalf("Active = %+v", a)
	}
	close(gate)
	e, err := c.Convert(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if got := treeOf(t, e.Path); !slices.Equal(got, wantRuntimeTree) {
		t.Fatalf("tree = %v", got)
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	if g := reg.gets(d); g != 1 {
		t.Fatalf("first layer fetched %d times: the conversion restarted", g)
	}
	if a := c.Active(); len(a) != 0 {
		t.Fatalf("Active after = %+v", a)
	}
}

func TestLRUEviction(t *testing.T) {
	reg := newRegistry(t)
	ctx := context.Background()
	dir := t.TempDir()
	var srcs []string
	for _, n := range []string{"a", "b", "c"} {
		srcs = append(srcs, reg.push(t, n, "v1", imageOf(t, tarOf(t, file(n, strings.Repeat(n, 100<<10), 0o644)))))
	}
	probe := newConverter(t, t.TempDir(), nil)
	e, err := probe.Convert(ctx, srcs[0])
	if err != nil {
		t.Fatal(err)
	}
	c := newConverter(t, dir, func(o *Options) { o.MaxBytes = e.Size*2 + e.Size/2 })
	ea, _ := c.Convert(ctx, srcs[0])
	eb, _ := c.Convert(ctx, srcs[1])
	old := time.Now().Add(-time.Hour)
	os.Chtimes(c.cache.meta(keyOf(eb.Path)), old, old)
	if _, err := c.Convert(ctx, srcs[0]); err != nil { // a is used again: b is now the LRU
		t.Fatal(err)
	}
	ec, err := c.Convert(ctx, srcs[2])
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		e    Entry
		kept bool
	}{{ea, true}, {eb, false}, {ec, true}} {
		if _, err := os.Stat(x.e.Path); (err == nil) != x.kept {
			t.Errorf("%s: kept=%v, want %v", x.e.Source, err == nil, x.kept)
		}
	}
	// An evicted image is converted again on demand.
	rc, n, err := c.Open(ctx, srcs[1])
	if err != nil || n != eb.Size {
		t.Fatalf("Open evicted = %d, %v", n, err)
	}
	rc.Close()
}

func keyOf(path string) string { return strings.TrimSuffix(filepath.Base(path), ".daxfs") }

// A tag is resolved once per node: moving it does not change what the
// node converts, even after a restart.
func TestTagResolvedOnce(t *testing.T) {
	reg := newRegistry(t)
	ctx := context.Background()
	reg.push(t, "app", "stable", imageOf(t, tarOf(t, file("v", "1", 0o644))))
	src := "oci://" + reg.host + "/app:stable"
	dir := t.TempDir()
	first, err := newConverter(t, dir, nil).Convert(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	moved := imageOf(t, tarOf(t, file("v", "2", 0o644)))
	reg.push(t, "app", "stable", moved)
	again, err := newConverter(t, dir, nil).Convert(ctx, src)
	if err != nil || again.Digest != first.Digest {
		t.Fatalf("after the tag moved: %s, %v; first %s", again.Digest, err, first.Digest)
	}
	fresh, err := newConverter(t, t.TempDir(), nil).Convert(ctx, src)
	md, _ := moved.Digest()
	if err != nil || fresh.OCIDigest != md.String() {
		t.Fatalf("a new node gets %+v, %v; want %s", fresh, err, md)
	}
}

func TestPullSecret(t *testing.T) {
	reg := newRegistry(t)
	reg.set(func() { reg.auth = "puller:s3cr3t-pa55" })
	src := reg.push(t, "private", "v1", imageOf(t, tarOf(t, file("x", "x", 0o644))))
	secrets := t.TempDir()
	os.MkdirAll(filepath.Join(secrets, "regcred"), 0o700)
	cfg := `{"auths":{"http://` + reg.host + `/v2/":{"auth":"cHVsbGVyOnMzY3IzdC1wYTU1"}}}`
	os.WriteFile(filepath.Join(secrets, "regcred", ".dockerconfigjson"), []byte(cfg), 0o600)
	c := newConverter(t, t.TempDir(), func(o *Options) { o.PullSecretDir = secrets })
	ctx := context.Background()
	_, err := c.Convert(ctx, src)
	if err == nil {
		t.Fatal("anonymous pull of a private image succeeded")
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error leaks the password: %v", err)
	}
	e, err := c.Convert(source.WithPullSecret(ctx, "regcred"), src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newConverter(t, t.TempDir(), func(o *Options) { o.PullSecretDir = secrets }).Convert(source.WithPullSecret(ctx, "../etc"), src); err == nil {
		t.Fatal("path in pullSecret accepted")
	}
	// A cached conversion of a pinned image is served without asking for
	// credentials, as a node's image store does...
	if _, err := c.Convert(source.WithPullSecret(ctx, "missing"), src); err != nil {
		t.Fatalf("cached image with an unreadable secret: %v", err)
	}
	// ...while a node that must pull reports the missing secret.
	fresh := newConverter(t, t.TempDir(), func(o *Options) { o.PullSecretDir = secrets })
	if _, err := fresh.Convert(source.WithPullSecret(ctx, "missing"), src); err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("missing secret: %v", err)
	}
	if e.Digest == "" {
		t.Fatal("no digest")
	}
}

// The converter plugs into internal/source: Resolve names the DAXFS image and
// Open streams exactly those bytes.
func TestSchemeHandler(t *testing.T) {
	reg := newRegistry(t)
	src := reg.push(t, "app", "v1", imageOf(t, runtimeLayers(t)...))
	c := newConverter(t, t.TempDir(), nil)
	f := &source.Fetcher{Schemes: map[string]source.SchemeHandler{"oci": c}}
	ctx := context.Background()
	r, err := f.Resolve(ctx, src, "")
	if err != nil {
		t.Fatal(err)
	}
	rc, n, err := f.Open(ctx, src)
	if err != nil || n != r.Size {
		t.Fatalf("Open = %d, %v (resolved %d)", n, err, r.Size)
	}
	defer rc.Close()
	v, _ := source.NewVerifier(ctx, rc, r.Digest)
	if m, err := io.Copy(io.Discard, v); err != nil || m != r.Size {
		t.Fatalf("read %d, %v", m, err)
	}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
}
