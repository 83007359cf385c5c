package nodeserver

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/pkg/fusefs"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// fuseServeArgv is the argv prefix the tests give the node for fuse-serve:
// the real `daxfs-csi` binary built once here, or, while that command does
// not exist yet, this test binary, whose TestMain serves with pkg/fusefs in
// the same way (a separate process, in its own session).
var fuseServeArgv []string

// daxfsCSIBin is the built binary, "" when the build failed.
var daxfsCSIBin string

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "fuse-serve" {
		os.Exit(testFuseServe(os.Args[2:]))
	}
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
	fuseServeArgv, err = buildDaxfsCSI(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildDaxfsCSI builds ./cmd/daxfs-csi; when it has no fuse-serve command
// the test binary stands in.
func buildDaxfsCSI(dir string) ([]string, error) {
	bin := filepath.Join(dir, "daxfs-csi")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/daxfs-csi")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/daxfs-csi failed (%v):\n%s\n", err, out)
	} else {
		out, _ = exec.Command(bin, "fuse-serve", "--help").CombinedOutput()
	}
	if err != nil || strings.Contains(string(out), "unknown command") {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		fmt.Fprintln(os.Stderr, "daxfs-csi has no fuse-serve command yet; the test binary serves FUSE instead")
		return []string{self}, nil
	}
	daxfsCSIBin = bin
	return []string{bin}, nil
}

// testFuseServe mirrors `daxfs-csi fuse-serve`: map the extent, serve it,
// unmount and exit on SIGTERM.
func testFuseServe(args []string) int {
	fs := flag.NewFlagSet("fuse-serve", flag.ContinueOnError)
	pool := fs.String("pool", "", "")
	digest := fs.String("digest", "", "")
	mnt := fs.String("mountpoint", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	p, err := daxdev.OpenPool(*pool, daxdev.PoolOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	e, ok := p.Lookup(*digest)
	if !ok {
		fmt.Fprintln(os.Stderr, "not in pool:", *digest)
		return 1
	}
	b, err := p.Data(e)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	im, err := image.OpenBytes(b)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv, err := fusefs.Mount(*mnt, im, fusefs.Options{FSName: "daxfs:" + *digest})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		if err := srv.Unmount(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	srv.Wait()
	return 0
}
