package nodeserver

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daxfs-csi/daxfs-csi/internal/fusehost"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
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

// With fuse-host serving images itself, a corrupt extent or a missing pool
// is refused with fuse-host's reason and leaves nothing mounted.
func TestFuseHostServeFailures(t *testing.T) {
	root := t.TempDir()
	t.Cleanup(func() { cleanupRoot(t, root) })
	sock := filepath.Join(root, "fh.sock")
	startFuseHost(t, sock, filepath.Join(root, "fuse-host.log"))
	host := fusehost.Client{Socket: sock}
	dir := filepath.Join(root, "mnt")
	must(t, os.MkdirAll(dir, 0o755))

	// Bytes that fail ValidateMetadata, staged without the fill's checks:
	// device memory that changed under a staged image.
	bad := readFile(t, samplePath(t, "tree5-q1-overflow.static.daxfs"))
	sum := sha256.Sum256(bad)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	spec := "memfile:" + filepath.Join(root, "pool")
	p, err := daxdev.OpenPool(spec, daxdev.PoolOptions{Size: 16 << 20, Init: true})
	must(t, err)
	_, err = p.Stage(context.Background(), digest, int64(len(bad)), "test", func(dst []byte) error { copy(dst, bad); return nil })
	must(t, err)
	must(t, p.Close())

	f := fuseServe{poolSpec: spec, host: &host}
	if srv, err := f.start(digest, dir, filepath.Join(root, "fuse.log")); err == nil || !strings.Contains(err.Error(), "corrupt, refusing to mount") {
		t.Errorf("corrupt extent: %+v, %v; want refused as corrupt", srv, err)
	}
	f.poolSpec = "memfile:" + filepath.Join(root, "no-such-pool")
	if srv, err := f.start(digest, dir, filepath.Join(root, "fuse.log")); err == nil || !strings.Contains(err.Error(), "open pool") {
		t.Errorf("missing pool: %+v, %v; want open pool error", srv, err)
	}
	if m := mountsUnder(root); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	if hs, _ := host.Served(context.Background()); len(hs) != 0 {
		t.Errorf("fuse-host serves %v after refusals", hs)
	}
}

// A fuse-host that predates the serve op (it is updated OnDelete, the
// plugin first) still gets the image mounted: through a launched fuse-serve.
func TestFuseHostWithoutServeOpLaunches(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	e.ns.Shutdown()
	realSock := e.path("fh.sock")
	host := startFuseHost(t, realSock, e.path("fuse-host.log"))
	e.opts.FuseHostSocket = oldFuseHost(t, e.path("old-fh.sock"), realSock)
	e.ns = e.newServer()
	uri, digest := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	target := e.path("pods", "p", "vol")
	must(t, e.publish("inline-old", uri, digest, "", target, nil))
	checkTree(t, target, "tree1.manifest.json")
	im := e.ns.images[digest]
	if pids := fuseServePIDs(e.root); len(pids) != 1 || im.PID != pids[0] || im.FuseHost != "" {
		t.Fatalf("fuse-serve %v, record pid %d handle %q; want one launched fuse-serve in the record", pids, im.PID, im.FuseHost)
	}
	if pp := parentPID(im.PID); pp != host.Process.Pid {
		t.Errorf("fuse-serve %d has parent %d, want fuse-host %d", im.PID, pp, host.Process.Pid)
	}
	must(t, e.unpublish("inline-old", target))
	if pids := fuseServePIDs(e.root); len(pids) != 0 {
		t.Errorf("fuse-serve left running: %v", pids)
	}
	if m := mountsUnder(e.root); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
}

// oldFuseHost answers at sock as a fuse-host without the serve op would,
// passing every other request to the real one at upstream.
func oldFuseHost(t *testing.T, sock, upstream string) string {
	t.Helper()
	ln, err := net.Listen("unix", sock)
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, err := bufio.NewReader(c).ReadBytes('\n')
				if err != nil {
					return
				}
				var req struct{ Op string }
				json.Unmarshal(line, &req)
				if req.Op == "serve" {
					fmt.Fprintf(c, "{\"error\":%q}\n", `unknown op "serve"`)
					return
				}
				u, err := net.Dial("unix", upstream)
				if err != nil {
					return
				}
				defer u.Close()
				u.Write(line)
				io.Copy(c, u)
			}()
		}
	}()
	return sock
}
