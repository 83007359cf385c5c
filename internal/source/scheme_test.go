package source

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

type fakeScheme struct{ calls []string }

func (f *fakeScheme) Resolve(ctx context.Context, uri, digest string) (Resolved, error) {
	f.calls = append(f.calls, "resolve "+uri+" "+digest+" "+PullSecret(ctx))
	return Resolved{URI: uri, Digest: "sha256:x", Size: 3}, nil
}

func (f *fakeScheme) Open(ctx context.Context, uri string) (io.ReadCloser, int64, error) {
	f.calls = append(f.calls, "open "+uri)
	return io.NopCloser(strings.NewReader("abc")), 3, nil
}

func TestRegisterScheme(t *testing.T) {
	ctx := context.Background()
	if _, _, err := Open(ctx, "fake://h/a"); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("unregistered scheme: %v", err)
	}
	h := &fakeScheme{}
	RegisterScheme("fake", h)
	defer RegisterScheme("fake", nil)
	r, err := Resolve(WithPullSecret(ctx, "regcred"), "fake://h/a", "")
	if err != nil || r.Digest != "sha256:x" || r.Size != 3 {
		t.Fatalf("Resolve = %+v, %v", r, err)
	}
	rc, n, err := Open(ctx, "fake://h/a")
	if err != nil || n != 3 {
		t.Fatalf("Open = %d, %v", n, err)
	}
	rc.Close()
	if got := strings.Join(h.calls, "|"); got != "resolve fake://h/a  regcred|open fake://h/a" {
		t.Fatalf("calls = %q", got)
	}
	// Built-in schemes cannot be taken over.
	RegisterScheme("file", h)
	defer RegisterScheme("file", nil)
	if _, _, err := Open(ctx, "file:///nonexistent/x"); err == nil || len(h.calls) != 2 {
		t.Fatalf("file:// went to the handler: %v %q", err, h.calls)
	}
	// A Fetcher's own handler wins over the registry.
	own := &fakeScheme{}
	f := &Fetcher{Schemes: map[string]SchemeHandler{"fake": own}}
	if _, err := f.Resolve(ctx, "fake://h/b", "d"); err != nil || len(own.calls) != 1 || len(h.calls) != 2 {
		t.Fatalf("Fetcher.Schemes not used: %v %q %q", err, own.calls, h.calls)
	}
}
