package nodeserver

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

// After a reboot no mount survives, and publish records (written without
// fsync) may name targets unpublished since: recovery forgets the targets
// of an earlier boot instead of binding them again, keeps the synced
// staging, and the kubelet's publishes after the reboot work.
func TestRecoveryForgetsTargetsOfEarlierBoot(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	staging, target, inline := e.path("staging"), e.path("pods", "1"), e.path("pods", "i")
	must(t, e.stage("pv", uri, dg, staging, nil))
	must(t, e.publish("pv", uri, dg, staging, target, nil))
	must(t, e.publish("inline", uri, dg, "", inline, nil))
	e.ns = nil

	// The reboot: every mount is gone (the kubelet's target dirs stay) and
	// the records are another boot's.
	killFuseServe(t, e)
	for _, p := range []string{target, inline, staging} {
		must(t, unix.Unmount(p, unix.MNT_DETACH))
	}
	earlier := &state.Store{Dir: e.opts.StateDir, Boot: "earlier-boot"}
	vols, _, err := earlier.Volumes()
	must(t, err)
	for _, v := range vols {
		if v.Ephemeral {
			must(t, earlier.SavePublish(v))
		}
		for p := range v.Targets {
			if !v.Ephemeral {
				must(t, earlier.SaveTarget(v, p))
			}
		}
	}

	e.ns = e.newServer()
	for _, p := range []string{target, inline} {
		if m, err := isMountPoint(p); err != nil || m {
			t.Errorf("%s of an earlier boot mounted again by recovery (%v)", p, err)
		}
	}
	checkTree(t, staging, "tree1.manifest.json")
	if s := e.ns.Snapshot(); len(s) != 1 || s[0].References != 1 {
		t.Errorf("snapshot %+v, want the PV's reference only", s)
	}
	// The kubelet publishes again what its pods need.
	must(t, e.publish("pv", uri, dg, staging, target, nil))
	must(t, e.publish("inline", uri, dg, "", inline, nil))
	checkTree(t, target, "tree1.manifest.json")
	checkTree(t, inline, "tree1.manifest.json")
	must(t, e.unpublish("inline", inline))
	must(t, e.unpublish("pv", target))
	must(t, e.unstage("pv", staging))
	e.checkReleased(t, dg, "after the last unstage")
}

// An inline volume, the image's only user, lost its target while the
// plugin was down and its image server died: recovery forgets the volume
// and releases the image, and does not stage it again for the volume it
// just forgot.
func TestRecoveryReleasesImageOfRemovedInlineVolume(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	inline := e.path("pods", "i")
	must(t, e.publish("inline", uri, dg, "", inline, nil))
	e.ns = nil
	killFuseServe(t, e)
	must(t, unix.Unmount(inline, unix.MNT_DETACH))
	must(t, os.Remove(inline))

	e.ns = e.newServer()
	if s := e.ns.Snapshot(); len(s) != 0 {
		t.Errorf("images after recovery %+v, want none", s)
	}
	e.checkReleased(t, dg, "after recovery")
}

// A new target's publish checks its staging cheaply (no round trip to the
// image server); a killed server still sends it through the full repair,
// so the new target, the staging and the older target all serve.
func TestPublishNewTargetAfterServerKilled(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	staging, t1, t2 := e.path("staging"), e.path("pods", "1"), e.path("pods", "2")
	must(t, e.stage("pv", uri, dg, staging, nil))
	must(t, e.publish("pv", uri, dg, staging, t1, nil))
	killFuseServe(t, e)
	must(t, e.publish("pv", uri, dg, staging, t2, nil))
	for _, p := range []string{t2, staging, t1} {
		checkTree(t, p, "tree1.manifest.json")
	}
	must(t, e.unpublish("pv", t1))
	must(t, e.unpublish("pv", t2))
	must(t, e.unstage("pv", staging))
	e.checkReleased(t, dg, "after the unstage")
}
