package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func TestFileResolveAndOpen(t *testing.T) {
	data := []byte(strings.Repeat("daxfs", 10000))
	p := filepath.Join(t.TempDir(), "img.daxfs")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := Resolve(ctx, "file://"+p, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Digest != digestOf(data) || r.Size != int64(len(data)) {
		t.Fatalf("Resolve = %+v", r)
	}
	rc, size, err := Open(ctx, "file://"+p)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	v, err := NewVerifier(ctx, rc, r.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, v); err != nil || n != size {
		t.Fatalf("copy = %d, %v; size %d", n, err, size)
	}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}

	if _, _, err := Open(ctx, "file://"+filepath.Dir(p)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Open(dir) = %v, want ErrUnsupported", err)
	}
	if _, _, err := Open(ctx, "file:///nonexistent/x"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want not exist", err)
	}
	if _, _, err := Open(ctx, "gopher://x/y"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Open(gopher) = %v", err)
	}
}

func TestVerifierMismatch(t *testing.T) {
	v, err := NewVerifier(context.Background(), strings.NewReader("tampered"), digestOf([]byte("original")))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, v)
	if err := v.Check(); !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), digestOf([]byte("tampered"))) {
		t.Fatalf("Check = %v", err)
	}
	if _, err := NewVerifier(context.Background(), nil, "md5:x"); err == nil {
		t.Fatal("non-sha256 digest accepted")
	}
}

func TestHTTPS(t *testing.T) {
	data := []byte("image bytes over https")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/img" {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	defer srv.Close()
	f := &Fetcher{HTTPClient: srv.Client()}
	ctx := context.Background()
	r, err := f.Resolve(ctx, srv.URL+"/img", digestOf(data))
	if err != nil || r.Size != int64(len(data)) {
		t.Fatalf("Resolve = %+v, %v", r, err)
	}
	rc, _, err := f.Open(ctx, srv.URL+"/img")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != string(data) {
		t.Fatalf("got %q", got)
	}
	_, _, err = f.Open(ctx, srv.URL+"/missing?token=secret")
	if !errors.Is(err, ErrFetch) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("Open(missing) = %v; want ErrFetch without the token", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := f.Open(cctx, srv.URL+"/img"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open(cancelled) = %v", err)
	}
}
