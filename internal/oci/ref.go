package oci

import (
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// NodePlatform is the platform images are converted for.
func NodePlatform() v1.Platform {
	return v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
}
