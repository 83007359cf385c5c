package nodeserver

import (
	"errors"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/internal/proc"
)

// Restarting the fuse-host container does kill its servers (as documented);
// the new fuse-host takes over the stale socket and the plugin's health
// watch remounts the image through it and rebinds the volume.
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
	servers := fuseServePIDs(e.root)
	if len(servers) != 1 || !cg.has(servers[0]) {
		t.Fatalf("fuse-serve %v, want one in fuse-host's cgroup %v", servers, cg.pids())
	}

	cg.killAll()
	host.Wait()
	waitFor(t, "fuse-serve to die with fuse-host", func() bool { return !proc.Alive(servers[0]) })
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("statfs of the volume with fuse-host gone: %v, want ENOTCONN", err)
	}

	host = startFuseHost(t, sock, e.path("fuse-host2.log")) // over the stale socket
	e.ns.heal()
	checkTree(t, target, "tree1.manifest.json")
	now := fuseServePIDs(e.root)
	if len(now) != 1 || now[0] == servers[0] || parentPID(now[0]) != host.Process.Pid {
		t.Errorf("fuse-serve %v after heal, want one new child of fuse-host %d", now, host.Process.Pid)
	}
	must(t, e.unpublish("inline-fh", target))
	if pids := fuseServePIDs(e.root); len(pids) != 0 {
		t.Errorf("fuse-serve left running: %v", pids)
	}
	if m := mountsUnder(e.root); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
}
