package nodeserver

import (
	"testing"

	"k8s.io/mount-utils"
)

// The kubelet calls NodeUnstageVolume only when GetDeviceMountRefs finds no
// other mount with the staging path's device and root (besides the pods'
// own bind mounts, gone by then). Two PVs of one image, both staged and
// unpublished, must not reference each other or the shared image mount.
func TestStagingHasNoForeignMountRefs(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	s1, s2 := e.path("kubelet", "pv1", "globalmount"), e.path("kubelet", "pv2", "globalmount")
	must(t, e.stage("pv-1", uri, dg, s1, nil))
	must(t, e.stage("pv-2", uri, dg, s2, nil))
	checkTree(t, s1, "tree1.manifest.json")

	m := mount.New("")
	for _, staging := range []string{s1, s2} {
		refs, err := m.GetMountRefs(staging)
		if err != nil {
			t.Fatalf("GetMountRefs(%s): %v", staging, err)
		}
		if len(refs) != 0 {
			t.Errorf("GetMountRefs(%s) = %v: the kubelet would never unstage this PV", staging, refs)
		}
	}
	if n := len(fuseMounts(e.opts.StateDir)); n != 1 {
		t.Errorf("%d FUSE image mounts, want the one shared mount", n)
	}
	if st := e.pool.Status(); len(st.Extents) != 1 {
		t.Errorf("%d extents for two PVs of one image, want 1", len(st.Extents))
	}
	must(t, e.unstage("pv-1", s1))
	must(t, e.unstage("pv-2", s2))
	if _, ok := e.pool.Lookup(dg); ok {
		t.Error("region kept after both PVs were unstaged")
	}
}
