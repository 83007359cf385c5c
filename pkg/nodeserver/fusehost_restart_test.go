package nodeserver

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/internal/fusehost"
)

// Restarting the fuse-host container does end the mounts it serves (as
// documented); the new fuse-host takes over the stale socket and the
// plugin's health watch remounts the image through it and rebinds the volume.
func TestFuseHostRestartHeals(t *testing.T) {
	cg := newCgroup(t)
	e := newEnv(t, 64<<20, nil)
	e.ns.Shutdown()
	sock := e.path("fuse-host.sock")
	e.opts.FuseHostSocket = sock
	host := startFuseHost(t, sock, e.path("fuse-host.log"))
	must(t, cg.add(host.Process.Pid))
	e.ns = e.newServer()
	uri, digest := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	target := e.path("pods", "p", "vol")
	must(t, e.publish("inline-fh", uri, digest, "", target, nil))
	hc := fusehost.Client{Socket: sock}
	handle := servedHandle(t, hc)
	if im := e.ns.images[digest]; im.FuseHost != handle {
		t.Fatalf("image record serves by %q, want %s", im.FuseHost, handle)
	}

	cg.killAll()
	host.Wait()
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("statfs of the volume with fuse-host gone: %v, want ENOTCONN", err)
	}

	startFuseHost(t, sock, e.path("fuse-host2.log")) // over the stale socket
	e.ns.heal()
	checkTree(t, target, "tree1.manifest.json")
	now := servedHandle(t, hc)
	if now == handle || e.ns.images[digest].FuseHost != now {
		t.Errorf("after heal: fuse-host serves %s, record says %s; want a new handle in place of %s", now, e.ns.images[digest].FuseHost, handle)
	}
	must(t, e.unpublish("inline-fh", target))
	if hs, _ := hc.Served(context.Background()); len(hs) != 0 {
		t.Errorf("fuse-host still serves %v", hs)
	}
	if m := mountsUnder(e.root); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
}
