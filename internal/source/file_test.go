package source

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// within runs f and fails the test if it has not returned in d: the old
// open() of a FIFO blocked forever.
func within(t *testing.T, d time.Duration, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s: still blocked after %v", what, d)
		return nil
	}
}

// Anything but a regular file is refused at once, and a symlink is never
// followed at the last component.
func TestFileSourceRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img.daxfs")
	if err := os.WriteFile(img, []byte("image"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.daxfs")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// Unblock an open() the old code left waiting for a writer.
	t.Cleanup(func() {
		if fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			unix.Close(fd)
		}
	})
	sock := filepath.Join(dir, "sock.daxfs")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	link := filepath.Join(dir, "link.daxfs")
	if err := os.Symlink(img, link); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, p := range []string{fifo, sock, link, "/dev/null", dir} {
		err := within(t, 5*time.Second, "Open "+p, func() error {
			rc, _, err := Open(ctx, "file://"+p)
			if err == nil {
				rc.Close()
			}
			return err
		})
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("Open(%s) = %v, want ErrUnsupported", p, err)
		}
		err = within(t, 5*time.Second, "Resolve "+p, func() error {
			_, err := Resolve(ctx, "file://"+p, "")
			return err
		})
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("Resolve(%s) = %v, want ErrUnsupported", p, err)
		}
	}
	if _, err := Resolve(ctx, "file://"+img, ""); err != nil {
		t.Errorf("regular file: %v", err)
	}
}

// CheckFile sees the path the open reached, so a directory symlink out of
// the allowed dir cannot carry the open elsewhere.
func TestFileSourceCheckFile(t *testing.T) {
	root := t.TempDir()
	allowed, outside := filepath.Join(root, "images"), filepath.Join(root, "outside")
	for _, d := range []string{allowed, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "o.daxfs"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(allowed, "in.daxfs"), []byte("image"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(allowed, "sub")); err != nil {
		t.Fatal(err)
	}
	errOut := errors.New("outside")
	var seen []string
	f := &Fetcher{CheckFile: func(real string) error {
		seen = append(seen, real)
		if !strings.HasPrefix(real, allowed+"/") {
			return errOut
		}
		return nil
	}}
	ctx := context.Background()
	_, err := f.Resolve(ctx, "file://"+filepath.Join(allowed, "sub", "o.daxfs"), "")
	if !errors.Is(err, errOut) || strings.Contains(err.Error(), "sha256") {
		t.Errorf("through a directory symlink: %v", err)
	}
	if _, err := f.Resolve(ctx, "file://"+filepath.Join(allowed, "in.daxfs"), ""); err != nil {
		t.Errorf("inside: %v", err)
	}
	want := []string{filepath.Join(outside, "o.daxfs"), filepath.Join(allowed, "in.daxfs")}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Errorf("CheckFile saw %q, want %q", seen, want)
	}
}

// Every fetch ends when the call's context does: file reads, and https
// servers that stall before the headers or in the body.
func TestFetchHonoursDeadline(t *testing.T) {
	p := filepath.Join(t.TempDir(), "img.daxfs")
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc, _, err := Open(ctx, "file://"+p)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.Copy(io.Discard, rc); !errors.Is(err, context.Canceled) {
		t.Errorf("file read after cancel = %v", err)
	}
	rc.Close()
	if _, _, err := Open(ctx, "file://"+p); !errors.Is(err, context.Canceled) {
		t.Errorf("file open after cancel = %v", err)
	}

	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			w.Header().Set("Content-Length", "1048576")
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
		}
		<-release
	}))
	defer srv.Close()
	defer close(release)
	f := &Fetcher{HTTPClient: srv.Client()}
	for _, c := range []struct {
		what string
		call func(ctx context.Context) error
	}{
		{"resolve stalled in body", func(ctx context.Context) error { _, err := f.Resolve(ctx, srv.URL+"/body", ""); return err }},
		{"resolve stalled before headers", func(ctx context.Context) error { _, err := f.Resolve(ctx, srv.URL+"/head", ""); return err }},
		{"HEAD stalled", func(ctx context.Context) error {
			_, err := f.Resolve(ctx, srv.URL+"/head", "sha256:00")
			return err
		}},
		{"open stalled", func(ctx context.Context) error { _, _, err := f.Open(ctx, srv.URL+"/head"); return err }},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := within(t, 5*time.Second, c.what, func() error { return c.call(ctx) })
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v, want DeadlineExceeded", c.what, err)
		}
	}
}
