package nodeserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daxfs-csi/daxfs-csi/internal/fusehost"
)

// Through fuse-host, a server that dies before mounting still gives an
// error with its log tail, and a command fuse-host refuses is an error.
func TestFuseHostLaunchFailures(t *testing.T) {
	root := t.TempDir()
	t.Cleanup(func() { cleanupRoot(t, root) })
	sock := filepath.Join(root, "fh.sock")
	startFuseHost(t, sock, filepath.Join(root, "fuse-host.log"))
	l := hostLauncher{client: fusehost.Client{Socket: sock}}
	dir := filepath.Join(root, "mnt")
	must(t, os.MkdirAll(dir, 0o755))
	digest := "sha256:" + strings.Repeat("ab", 32)

	f := fuseServe{argv: []string{daxfsCSIBin}, poolSpec: "memfile:" + filepath.Join(root, "no-such-pool"), launcher: l}
	_, err := f.start(digest, dir, filepath.Join(root, "fuse.log"))
	if err == nil || !strings.Contains(err.Error(), "exited before mounting (exit status 1)") ||
		!strings.Contains(err.Error(), "daxfs-csi fuse-serve:") {
		t.Errorf("dead server: %v; want its exit status and log tail", err)
	}
	f.argv = []string{"/bin/true"}
	if _, err := f.start(digest, dir, filepath.Join(root, "fuse.log")); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("foreign binary: %v; want refused", err)
	}
	if m := mountsUnder(root); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
}
