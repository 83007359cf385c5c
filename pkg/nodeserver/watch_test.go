package nodeserver

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
)

// With the health watch on, a dead fuse-serve is replaced and every volume
// (PV staging and target, inline, writable overlay) is bound to the new
// mount without any RPC.
func TestHealthWatchRepairsWithoutRPC(t *testing.T) {
	e := newEnv(t, 64<<20, func(o *Options) { o.HealthInterval = 50 * time.Millisecond })
	t.Cleanup(e.ns.Shutdown)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	staging, target, inline, rw := e.path("staging"), e.path("pods", "a"), e.path("pods", "b"), e.path("pods", "rw")
	must(t, e.stage("pv", uri, dg, staging, nil))
	must(t, e.publish("pv", uri, dg, staging, target, nil))
	must(t, e.publish("inline", uri, dg, "", inline, nil))
	must(t, e.publish("inline-rw", uri, dg, "", rw, map[string]string{"writable": "true"}))
	must(t, os.WriteFile(filepath.Join(rw, "mine"), []byte("x"), 0o644))

	for round := 0; round < 3; round++ {
		killFuseServe(t, e)
		// Cached file pages stay readable on a dead FUSE mount, so ask
		// the health RPC (statfs always reaches the server).
		waitFor(t, "volumes to serve again", func() bool {
			for _, id := range []string{"pv", "inline", "inline-rw"} {
				h, err := e.ns.NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{VolumeId: id})
				if err != nil || len(h.VolumeHealth.HealthStatuses) != 0 {
					return false
				}
			}
			return len(fuseMounts(e.opts.StateDir)) == 1
		})
		checkTree(t, target, "tree1.manifest.json")
		checkTree(t, rw, "tree1.manifest.json")
		if b, err := os.ReadFile(filepath.Join(rw, "mine")); err != nil || string(b) != "x" {
			t.Fatalf("round %d: writable layer: %q %v", round, b, err)
		}
		if m := fuseMounts(e.opts.StateDir); len(m) != 1 {
			t.Fatalf("round %d: image mounts %v", round, m)
		}
	}
	e.ns.Shutdown()
	for _, v := range []struct{ id, p string }{{"pv", target}, {"inline", inline}, {"inline-rw", rw}} {
		must(t, e.unpublish(v.id, v.p))
	}
	must(t, e.unstage("pv", staging))
	if m := mountsUnder(e.root); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
}

// The retried publish repairs the volume and its siblings, round after round
// (this once failed when stat of a dead mount's root was answered from the
// FUSE attribute cache).
func TestRetriedPublishRepairsSiblings(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	staging, target, inline := e.path("staging"), e.path("pods", "a"), e.path("pods", "b")
	must(t, e.stage("pv", uri, dg, staging, nil))
	must(t, e.publish("pv", uri, dg, staging, target, nil))
	must(t, e.publish("inline", uri, dg, "", inline, nil))
	for round := 0; round < 5; round++ {
		killFuseServe(t, e)
		must(t, e.publish("pv", uri, dg, staging, target, nil))
		// statfs always reaches the server (cached pages would not tell).
		for _, p := range []string{staging, target, inline} {
			var st unix.Statfs_t
			if err := unix.Statfs(p, &st); err != nil {
				t.Fatalf("round %d: %s: %v", round, p, err)
			}
		}
		for _, id := range []string{"pv", "inline"} {
			h, err := e.ns.NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{VolumeId: id})
			if err != nil || len(h.VolumeHealth.HealthStatuses) != 0 {
				t.Fatalf("round %d: %s health %v %v", round, id, h, err)
			}
		}
	}
	must(t, e.unpublish("inline", inline))
	must(t, e.unpublish("pv", target))
	must(t, e.unstage("pv", staging))
	if m := mountsUnder(e.root); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
}
