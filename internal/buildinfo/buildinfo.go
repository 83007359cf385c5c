// Package buildinfo reports the version and commit the binary was built from.
package buildinfo

import "runtime/debug"

// Set by `make build` (and the image build) with
//
//	-ldflags "-X github.com/daxfs-csi/daxfs-csi/internal/buildinfo.version=$(git describe --always --dirty)
//	          -X github.com/daxfs-csi/daxfs-csi/internal/buildinfo.commit=$(git rev-parse HEAD)"
var (
	version = ""
	commit  = ""
)

// Version is the release version, else the module version or VCS revision
// recorded by the Go toolchain, else "devel".
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	if rev := setting(bi, "vcs.revision"); len(rev) >= 12 {
		return "devel-" + rev[:12]
	}
	return "devel"
}

// Commit is the full commit id the binary was built from, else the VCS
// revision the Go toolchain recorded (with "-dirty" for a modified tree),
// else "unknown" (e.g. built with -buildvcs=false and no -ldflags).
func Commit() string {
	if commit != "" {
		return commit
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev := setting(bi, "vcs.revision")
	if rev == "" {
		return "unknown"
	}
	if setting(bi, "vcs.modified") == "true" {
		rev += "-dirty"
	}
	return rev
}

func setting(bi *debug.BuildInfo, key string) string {
	for _, s := range bi.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}
