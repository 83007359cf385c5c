package source

import (
	"context"
	"io"
	"net/url"
	"strings"
)

// SchemeHandler fetches sources of one URI scheme that need more than a
// byte stream (oci:// images are pulled and converted first). Resolve
// returns the digest and size of the DAXFS image the URI stands for; with a
// digest given it must refuse content that does not hash to it
// (ErrDigestMismatch). Open streams that same image.
type SchemeHandler interface {
	Resolve(ctx context.Context, uri, digest string) (Resolved, error)
	Open(ctx context.Context, uri string) (io.ReadCloser, int64, error)
}

// handler finds the Fetcher's handler for uri's scheme; file, http and
// https stay built in and cannot be overridden.
func (f *Fetcher) handler(uri string) SchemeHandler {
	scheme, _, ok := strings.Cut(uri, ":")
	if !ok {
		return nil
	}
	scheme = strings.ToLower(scheme)
	switch scheme {
	case "file", "http", "https":
		return nil
	}
	return f.Schemes[scheme]
}

type pullSecretKey struct{}

// WithPullSecret names the volume's pullSecret for the handler that fetches
// under ctx (the value is a reference to a secret, never its content).
func WithPullSecret(ctx context.Context, name string) context.Context {
	if name == "" {
		return ctx
	}
	return context.WithValue(ctx, pullSecretKey{}, name)
}

// PullSecret returns the name WithPullSecret put in ctx, or "".
func PullSecret(ctx context.Context) string {
	s, _ := ctx.Value(pullSecretKey{}).(string)
	return s
}

// Redact strips credentials and query strings from a URI for logs and errors.
func Redact(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "<unparsable URI>"
	}
	return redact(u)
}
