package oci_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/daxfs-csi/daxfs-csi/internal/mounttest"
	"github.com/daxfs-csi/daxfs-csi/internal/oci"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func layer(t testing.TB, es ...entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, ModTime: time.Unix(1700000000, 0), Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

func reg(n, body string, mode int64) entry {
	return entry{name: n, body: body, typ: tar.TypeReg, mode: mode}
}
func dir(n string) entry      { return entry{name: n, typ: tar.TypeDir, mode: 0o755} }
func sym(n, to string) entry  { return entry{name: n, link: to, typ: tar.TypeSymlink, mode: 0o777} }
func hard(n, to string) entry { return entry{name: n, link: to, typ: tar.TypeLink, mode: 0o644} }

// appImage: three layers with a whiteout, an opaque dir, a hard link
// across layers, symlinks and replaced files.
func appImage(t testing.TB) v1.Image {
	return imageOf(t,
		layer(t, dir("etc"), reg("etc/passwd", "root\n", 0o644), reg("etc/old", "old", 0o644),
			dir("bin"), reg("bin/busybox", "BUSYBOX", 0o755), hard("bin/sh", "bin/busybox"),
			dir("usr"), dir("usr/lib"), reg("usr/lib/a.so", "a", 0o644), sym("lib", "usr/lib")),
		layer(t, reg("etc/.wh.old", "", 0o644), reg("usr/lib/.wh..wh..opq", "", 0o644), reg("usr/lib/c.so", "c", 0o644),
			reg("etc/passwd", "root\nuser\n", 0o600), hard("bin/ls", "bin/busybox")),
		layer(t, reg("bin/.wh.sh", "", 0o644), reg("etc/hostname", "node\n", 0o644)),
	)
}

func imageOf(t testing.TB, layers ...[]byte) v1.Image {
	img := empty.Image
	for _, l := range layers {
		b := l
		ly, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, ly); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = oci.NodePlatform().OS, oci.NodePlatform().Architecture
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// loopRegistry serves pkg/registry on 127.0.0.1; failBlob, when set,
// makes GETs of that blob send half the body and drop the connection.
type loopRegistry struct {
	host     string
	failBlob atomic.Value                  // string
	auth     atomic.Value                  // "user:pass" required when not ""
	gate     atomic.Pointer[chan struct{}] // blob GETs wait for it when set
}

func newRegistry(t testing.TB) *loopRegistry {
	r := &loopRegistry{}
	r.failBlob.Store("")
	r.auth.Store("")
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if a := r.auth.Load().(string); a != "" {
			if u, p, ok := req.BasicAuth(); !ok || u+":"+p != a {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		if g := r.gate.Load(); g != nil && req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
			<-*g
		}
		if f := r.failBlob.Load().(string); f != "" && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/blobs/"+f) {
			rec := httptest.NewRecorder()
			inner.ServeHTTP(rec, req)
			body := rec.Body.Bytes()
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body[:len(body)/2])
			panic(http.ErrAbortHandler)
		}
		inner.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

func (r *loopRegistry) push(t testing.TB, repo string, img v1.Image) string {
	ref, err := name.NewTag(r.host + "/" + repo + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(context.Background())); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return "oci://" + r.host + "/" + repo + "@" + d.String()
}

type anon struct{}

func (anon) Resolve(authn.Resource) (authn.Authenticator, error) { return authn.Anonymous, nil }

// countingPool counts fills, so "staged once" is observable.
type countingPool struct {
	*daxdev.Pool
	fills atomic.Int32
}

func (c *countingPool) Stage(ctx context.Context, digest string, n int64, owner string, fill func([]byte) error) (daxdev.Extent, error) {
	return c.Pool.Stage(ctx, digest, n, owner, func(b []byte) error {
		c.fills.Add(1)
		return fill(b)
	})
}

func cleanupRoot(t testing.TB, root string) { mounttest.CleanupRoot(t, root) }
