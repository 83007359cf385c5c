// Package buildinfo reports the version the binary was built as.
package buildinfo

import "runtime/debug"

// version can be set with -ldflags "-X github.com/daxfs-csi/daxfs-csi/internal/buildinfo.version=v1.2.3".
var version = ""

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
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "devel-" + s.Value[:12]
		}
	}
	return "devel"
}
