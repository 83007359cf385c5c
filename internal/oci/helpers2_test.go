package oci

import (
	"io"
	"log"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
)

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }

type anonymousKeychain struct{}

func (anonymousKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.Anonymous, nil
}

func basicAuth(u, p string) authn.Authenticator { return &authn.Basic{Username: u, Password: p} }

type (
	httpResponseWriter = http.ResponseWriter
	httpRequest        = http.Request
	httpHandlerFunc    = http.HandlerFunc
)
