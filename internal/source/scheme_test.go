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

// A Fetcher fetches the schemes it was given through their handler, and
// no others: there is no package-wide registry an import could fill.
func TestFetcherSchemes(t *testing.T) {
	ctx := context.Background()
	if _, _, err := Open(ctx, "fake://h/a"); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("scheme of no handler: %v", err)
	}
	h := &fakeScheme{}
	f := &Fetcher{Schemes: map[string]SchemeHandler{"fake": h, "file": h}}
	r, err := f.Resolve(WithPullSecret(ctx, "regcred"), "fake://h/a", "")
	if err != nil || r.Digest != "sha256:x" || r.Size != 3 {
		t.Fatalf("Resolve = %+v, %v", r, err)
	}
	rc, n, err := f.Open(ctx, "fake://h/a")
	if err != nil || n != 3 {
		t.Fatalf("Open = %d, %v", n, err)
	}
	rc.Close()
	if got := strings.Join(h.calls, "|"); got != "resolve fake://h/a  regcred|open fake://h/a" {
		t.Fatalf("calls = %q", got)
	}
	// Built-in schemes cannot be taken over.
	if _, _, err := f.Open(ctx, "file:///nonexistent/x"); err == nil || len(h.calls) != 2 {
		t.Fatalf("file:// went to the handler: %v %q", err, h.calls)
	}
	// Another Fetcher does not see this one's handlers.
	if _, _, err := (&Fetcher{}).Open(ctx, "fake://h/b"); !errors.Is(err, ErrUnsupported) || len(h.calls) != 2 {
		t.Fatalf("handler leaked to another Fetcher: %v %q", err, h.calls)
	}
}
