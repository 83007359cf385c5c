// Package oci_test runs container images end to end: an in-process
// registry on loopback, internal/oci converting, pkg/nodeserver staging into a
// memfile pool and serving through the real daxfs-csi fuse-serve, and the
// daxfs-csi image build command.
package oci_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// daxfsCSI is the binary built once for this run.
var daxfsCSI string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "test/oci mounts filesystems: run it as root")
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "test-oci-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	daxfsCSI = filepath.Join(dir, "daxfs-csi")
	cmd := exec.Command("go", "build", "-o", daxfsCSI, "./cmd/daxfs-csi")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/daxfs-csi: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
