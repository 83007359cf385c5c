package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// member is one tar entry of a test layer.
type member struct {
	name, body, link string
	typ              byte
	mode             int64
}

func file(name, body string, mode int64) member {
	return member{name: name, body: body, typ: tar.TypeReg, mode: mode}
}
func dir(name string, mode int64) member { return member{name: name, typ: tar.TypeDir, mode: mode} }
func symlink(name, target string) member {
	return member{name: name, link: target, typ: tar.TypeSymlink, mode: 0o777}
}
func hardlink(name, target string) member {
	return member{name: name, link: target, typ: tar.TypeLink, mode: 0o644}
}

var epoch = time.Unix(1700000000, 0)

func tarOf(t testing.TB, ms ...member) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range ms {
		h := &tar.Header{Name: m.name, Typeflag: m.typ, Mode: m.mode, Linkname: m.link, ModTime: epoch, Format: tar.FormatPAX}
		if m.typ == tar.TypeReg {
			h.Size = int64(len(m.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(m.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// imageOf makes a gzip-layered image from uncompressed tars.
func imageOf(t testing.TB, layers ...[]byte) v1.Image {
	img := empty.Image
	for _, l := range layers {
		b := l
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			t.Fatal(err)
		}
		img, err = mutate.AppendLayers(img, layer)
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = NodePlatform().OS, NodePlatform().Architecture
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// The three layers every runtime-semantics test stacks: whiteouts, an
// opaque dir, hard links (one across layers), symlinks, replacements.
func runtimeLayers(t testing.TB) [][]byte {
	return [][]byte{
		tarOf(t,
			dir("etc", 0o755), file("etc/passwd", "root:x:0:0\n", 0o644), file("etc/old", "old", 0o644),
			dir("bin", 0o755), file("bin/busybox", "BUSYBOX", 0o755), hardlink("bin/sh", "bin/busybox"),
			dir("usr", 0o755), dir("usr/lib", 0o755), file("usr/lib/a.so", "a", 0o644), file("usr/lib/b.so", "b", 0o644),
			symlink("lib", "usr/lib"), dir("var", 0o755), dir("var/cache", 0o755), file("var/cache/x", "x", 0o644)),
		tarOf(t,
			file("etc/.wh.old", "", 0o644),
			file("usr/lib/.wh..wh..opq", "", 0o644), file("usr/lib/c.so", "c", 0o644),
			file("etc/passwd", "root:x:0:0\nuser:x:1000:1000\n", 0o600),
			hardlink("bin/ls", "bin/busybox"),
			file("var/cache", "now a file", 0o644),
			symlink("lib2", "lib")),
		tarOf(t,
			file("bin/.wh.sh", "", 0o644),
			file("etc/hostname", "node\n", 0o644),
			dir("tmp", 0o1777)),
	}
}

// wantRuntimeTree is what a container runtime shows for runtimeLayers.
var wantRuntimeTree = []string{
	"/ d755",
	"/bin d755",
	"/bin/busybox -755 nlink=2 \"BUSYBOX\"",
	"/bin/ls -755 nlink=2 \"BUSYBOX\"",
	"/etc d755",
	"/etc/hostname -644 nlink=1 \"node\\n\"",
	"/etc/passwd -600 nlink=1 \"root:x:0:0\\nuser:x:1000:1000\\n\"",
	"/lib L777 -> usr/lib",
	"/lib2 L777 -> lib",
	"/tmp d777 sticky",
	"/usr d755",
	"/usr/lib d755",
	"/usr/lib/c.so -644 nlink=1 \"c\"",
	"/var d755",
	"/var/cache -644 nlink=1 \"now a file\"",
}

// treeOf lists an image as wantRuntimeTree spells it.
func treeOf(t testing.TB, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	im, err := image.OpenBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := im.Validate(); err != nil {
		t.Fatalf("converted image does not validate: %v", err)
	}
	var out []string
	err = im.Walk(func(p string, in image.Inode) error {
		m := image.FileMode(in.Mode)
		var s string
		switch {
		case m.IsDir():
			s = fmt.Sprintf("%s d%o", p, m.Perm())
			if m&os.ModeSticky != 0 {
				s += " sticky"
			}
		case m&os.ModeSymlink != 0:
			target, err := im.ReadLink(in.Ino)
			if err != nil {
				return err
			}
			s = fmt.Sprintf("%s L%o -> %s", p, m.Perm(), target)
		default:
			data := make([]byte, in.Size)
			if _, err := im.ReadAt(in.Ino, data, 0); err != nil && err != io.EOF {
				return err
			}
			s = fmt.Sprintf("%s -%o nlink=%d %q", p, m.Perm(), in.Nlink, data)
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func inoOf(t testing.TB, path, p string) uint32 {
	b, _ := os.ReadFile(path)
	im, err := image.OpenBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	var ino uint32
	im.Walk(func(q string, in image.Inode) error {
		if q == p {
			ino = in.Ino
		}
		return nil
	})
	return ino
}

// testRegistry is an in-process registry on loopback whose requests a
// test can watch and break.
type testRegistry struct {
	srv  *httptest.Server
	host string

	// mu guards the fields below: the handlers read them while a test
	// changes them (with set).
	mu       sync.Mutex
	blobGets map[string]int // digest -> GETs
	// breakBlob, when it returns true for a blob digest, makes the GET
	// send half the body and then drop the connection.
	breakBlob func(digest string) bool
	// gate, when set, is waited on before a blob GET is answered.
	gate chan struct{}
	auth string // "user:pass" required when set
}

func newRegistry(t testing.TB) *testRegistry {
	r := &testRegistry{blobGets: map[string]int{}}
	inner := registry.New(registry.Logger(nopLogger()))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		auth, brk, gate := r.auth, r.breakBlob, r.gate
		r.mu.Unlock()
		if auth != "" {
			u, p, ok := req.BasicAuth()
			if !ok || u+":"+p != auth {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		if i := strings.Index(req.URL.Path, "/blobs/sha256:"); i >= 0 && req.Method == http.MethodGet {
			d := req.URL.Path[i+len("/blobs/"):]
			r.mu.Lock()
			r.blobGets[d]++
			r.mu.Unlock()
			if gate != nil {
				<-gate
			}
			if brk != nil && brk(d) {
				rec := httptest.NewRecorder()
				inner.ServeHTTP(rec, req)
				body := rec.Body.Bytes()
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				w.WriteHeader(rec.Code)
				w.Write(body[:len(body)/2])
				panic(http.ErrAbortHandler)
			}
		}
		inner.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

// set runs change (which sets gate, breakBlob or auth) under the lock.
func (r *testRegistry) set(change func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	change()
}

func (r *testRegistry) gets(d v1.Hash) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobGets[d.String()]
}

// push uploads img as repo:tag and returns its oci:// source pinned by digest.
func (r *testRegistry) push(t testing.TB, repo, tag string, img v1.Image) string {
	ref, err := name.NewTag(r.host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, r.opts()...); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return "oci://" + r.host + "/" + repo + "@" + d.String()
}

func (r *testRegistry) pushIndex(t testing.TB, repo, tag string, idx v1.ImageIndex) string {
	ref, err := name.NewTag(r.host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx, r.opts()...); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	return "oci://" + r.host + "/" + repo + "@" + d.String()
}

func (r *testRegistry) opts() []remote.Option {
	opts := []remote.Option{remote.WithContext(context.Background())}
	if r.auth != "" {
		u, p, _ := strings.Cut(r.auth, ":")
		opts = append(opts, remote.WithAuth(basicAuth(u, p)))
	}
	return opts
}

func newConverter(t testing.TB, dir string, mod func(*Options)) *Converter {
	o := Options{Dir: dir, Keychain: anonymousKeychain{}}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// cacheFiles lists the files in the cache dir (not locks/ or tags/).
func cacheFiles(t testing.TB, dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}
