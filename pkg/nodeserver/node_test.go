package nodeserver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
)

// The whole PV path with real mounts: stage → publish → read every file
// through the bind mount → unpublish → unstage, and everything is released.
func TestStagePublishRead(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	staging, target := e.path("kubelet", "staging"), e.path("kubelet", "pods", "p1", "vol")
	os.MkdirAll(staging, 0o750)

	must(t, e.stage("vol-1", uri, dg, staging, nil))
	must(t, e.stage("vol-1", uri, dg, staging, nil)) // idempotent
	must(t, e.publish("vol-1", uri, dg, staging, target, nil))
	must(t, e.publish("vol-1", uri, dg, staging, target, nil)) // idempotent
	checkTree(t, target, "tree1.manifest.json")
	checkTree(t, staging, "tree1.manifest.json")

	// Read-only, nosuid, nodev at the target.
	var sfs unix.Statfs_t
	must(t, unix.Statfs(target, &sfs))
	if sfs.Flags&unix.ST_RDONLY == 0 || sfs.Flags&unix.ST_NOSUID == 0 || sfs.Flags&unix.ST_NODEV == 0 {
		t.Errorf("target flags %#x: want ro,nosuid,nodev", sfs.Flags)
	}
	if err := os.WriteFile(filepath.Join(target, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write to target: %v, want EROFS", err)
	}
	snap := e.ns.Snapshot()
	if len(snap) != 1 || snap[0].Digest != dg || snap[0].References != 1 || !snap[0].Healthy || snap[0].Backend != backendFUSE {
		t.Fatalf("snapshot %+v", snap)
	}
	if e.pool.fills.Load() != 1 {
		t.Errorf("fills = %d, want 1", e.pool.fills.Load())
	}

	st, err := e.ns.NodeGetVolumeStats(context.Background(), &csi.NodeGetVolumeStatsRequest{VolumeId: "vol-1", VolumePath: target})
	must(t, err)
	if len(st.Usage) != 2 || st.Usage[0].Total != snap[0].Size || st.Usage[0].Available != 0 || st.Usage[1].Total == 0 {
		t.Errorf("stats %v", st.Usage)
	}
	h, err := e.ns.NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{VolumeId: "vol-1"})
	must(t, err)
	if len(h.VolumeHealth.HealthStatuses) != 0 {
		t.Errorf("healthy volume reports %v", h.VolumeHealth.HealthStatuses)
	}

	must(t, e.unpublish("vol-1", target))
	must(t, e.unpublish("vol-1", target)) // idempotent
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target still exists after unpublish: %v", err)
	}
	must(t, e.unstage("vol-1", staging))
	must(t, e.unstage("vol-1", staging))
	e.checkReleased(t, dg, "after the last unstage")
	if pids := fuseServePIDs(e.root); len(pids) != 0 {
		t.Errorf("fuse-serve still running: %v", pids)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.opts.StateDir, "images")); len(ents) != 0 {
		t.Errorf("image state left: %v", ents)
	}
}
