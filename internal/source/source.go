package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

var (
	// ErrDigestMismatch: the bytes read do not hash to the expected digest.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrUnsupported: a scheme this package cannot fetch.
	ErrUnsupported = errors.New("unsupported image source")
	// ErrFetch: the source answered, but not with the image.
	ErrFetch = errors.New("fetch failed")
)

// Resolved names an image by content.
type Resolved struct {
	URI    string
	Digest string // "sha256:<hex>"
	Size   int64
}

// Fetcher opens sources; the zero value uses http.DefaultClient.
type Fetcher struct {
	HTTPClient *http.Client
	// Schemes handles the URI schemes beyond file, http and https (the
	// caller adds "oci": cmd/daxfs-csi builds that handler from its flags).
	Schemes map[string]SchemeHandler
	// CheckFile, when set, vets the path a file:// source actually opened
	// (symlinks resolved) before a byte is read; the node passes its
	// allow-list. Its error is returned as is.
	CheckFile func(realPath string) error
}

// Default is the Fetcher behind the package-level functions.
var Default = &Fetcher{HTTPClient: &http.Client{Timeout: 0, Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	TLSHandshakeTimeout:   15 * time.Second,
	ResponseHeaderTimeout: 30 * time.Second,
}}}

// Open streams the source. size is -1 when the server does not say.
func Open(ctx context.Context, uri string) (io.ReadCloser, int64, error) {
	return Default.Open(ctx, uri)
}

// Resolve returns the digest and size of the source; see Fetcher.Resolve.
func Resolve(ctx context.Context, uri, digest string) (Resolved, error) {
	return Default.Resolve(ctx, uri, digest)
}

func (f *Fetcher) client() *http.Client {
	if f.HTTPClient != nil {
		return f.HTTPClient
	}
	return http.DefaultClient
}

// Open streams the source.
func (f *Fetcher) Open(ctx context.Context, uri string) (io.ReadCloser, int64, error) {
	if h := f.handler(uri); h != nil {
		return h.Open(ctx, uri)
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil, 0, fmt.Errorf("open %q: %w", uri, err)
	}
	switch u.Scheme {
	case "file":
		return f.openFile(ctx, u.Path)
	case "https", "http":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
		if err != nil {
			return nil, 0, fmt.Errorf("fetch %s: %w", redact(u), err)
		}
		resp, err := f.client().Do(req)
		if err != nil {
			return nil, 0, fmt.Errorf("fetch %s: %w", redact(u), err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("fetch %s: %w: HTTP %s", redact(u), ErrFetch, resp.Status)
		}
		return resp.Body, resp.ContentLength, nil
	default:
		return nil, 0, fmt.Errorf("open %q: %w %q", uri, ErrUnsupported, u.Scheme)
	}
}

// Resolve returns digest and size. With a digest given, only the size is
// looked up (stat, or an HTTP HEAD); without one the source is hashed by
// streaming it once.
func (f *Fetcher) Resolve(ctx context.Context, uri, digest string) (Resolved, error) {
	if h := f.handler(uri); h != nil {
		return h.Resolve(ctx, uri, digest)
	}
	if digest != "" {
		size, err := f.size(ctx, uri)
		if err != nil {
			return Resolved{}, err
		}
		return Resolved{URI: uri, Digest: digest, Size: size}, nil
	}
	rc, size, err := f.Open(ctx, uri)
	if err != nil {
		return Resolved{}, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx, rc})
	if err != nil {
		return Resolved{}, fmt.Errorf("hash %s: %w", uri, err)
	}
	if size >= 0 && n != size {
		return Resolved{}, fmt.Errorf("hash %s: %w: read %d bytes, expected %d", uri, ErrFetch, n, size)
	}
	return Resolved{URI: uri, Digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

func (f *Fetcher) size(ctx context.Context, uri string) (int64, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return 0, fmt.Errorf("resolve %q: %w", uri, err)
	}
	if u.Scheme == "file" {
		rc, size, err := f.Open(ctx, uri)
		if err != nil {
			return 0, err
		}
		rc.Close()
		return size, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, uri, nil)
	if err != nil {
		return 0, fmt.Errorf("resolve %s: %w", redact(u), err)
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return 0, fmt.Errorf("resolve %s: %w", redact(u), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("resolve %s: %w: HTTP %s", redact(u), ErrFetch, resp.Status)
	}
	if resp.ContentLength < 0 {
		return 0, fmt.Errorf("resolve %s: %w: server sent no Content-Length", redact(u), ErrFetch)
	}
	return resp.ContentLength, nil
}

// redact drops the query, which may carry a signed-URL token, from logs and errors.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	if c.RawQuery != "" {
		c.RawQuery = "REDACTED"
	}
	return c.String()
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Verifier hashes what passes through it; Check compares with the digest.
type Verifier struct {
	r    io.Reader
	want string
	hash hashState
	n    int64
	ctx  context.Context
}

type hashState interface {
	io.Writer
	Sum([]byte) []byte
}

// NewVerifier wraps r; reads fail once ctx is done.
func NewVerifier(ctx context.Context, r io.Reader, digest string) (*Verifier, error) {
	if !strings.HasPrefix(digest, "sha256:") {
		return nil, fmt.Errorf("verify: %q is not a sha256 digest", digest)
	}
	return &Verifier{r: r, want: digest, hash: sha256.New(), ctx: ctx}, nil
}

func (v *Verifier) Read(p []byte) (int, error) {
	if err := v.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := v.r.Read(p)
	v.hash.Write(p[:n])
	v.n += int64(n)
	return n, err
}

// N is the number of bytes read so far.
func (v *Verifier) N() int64 { return v.n }

// Digest of the bytes read so far.
func (v *Verifier) Digest() string { return "sha256:" + hex.EncodeToString(v.hash.Sum(nil)) }

// Check reports ErrDigestMismatch unless the bytes read hash to the digest.
func (v *Verifier) Check() error {
	if got := v.Digest(); got != v.want {
		return fmt.Errorf("%w: expected %s, got %s (%d bytes)", ErrDigestMismatch, v.want, got, v.n)
	}
	return nil
}
