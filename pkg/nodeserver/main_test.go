package nodeserver

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// daxfsCSIBin is the real `daxfs-csi` binary, built once here; the tests
// launch its fuse-serve, fuse-host and serve commands.
var daxfsCSIBin string

// fuseServeArgv is the argv prefix the tests give the node for fuse-serve.
var fuseServeArgv []string

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "plugin-child" {
		os.Exit(runPluginChild())
	}
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "nodeserver tests mount filesystems: run them as root")
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "nodeserver-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	daxfsCSIBin = filepath.Join(dir, "daxfs-csi")
	cmd := exec.Command("go", "build", "-o", daxfsCSIBin, "./cmd/daxfs-csi")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/daxfs-csi: %v\n%s\n", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	fuseServeArgv = []string{daxfsCSIBin}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
