package nodeserver

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
)

// Each bad input gets its code, and the volume already published keeps
// serving with nothing extra left in the pool or the state dir.
func TestBadInputs(t *testing.T) {
	e := newEnv(t, 16<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	staging, target := e.path("staging"), e.path("pods", "ok", "vol")
	must(t, e.stage("good", uri, dg, staging, nil))
	must(t, e.publish("good", uri, dg, staging, target, nil))

	sample, err := os.ReadFile(samplePath(t, "tree1.static.daxfs"))
	must(t, err)
	corrupt := append([]byte(nil), sample...)
	copy(corrupt[0:8], "garbage!")
	corruptURI, corruptDG := e.writeImage("corrupt.daxfs", corrupt)
	overflowURI, overflowDG := e.addImage("tree5-q1-overflow.static.daxfs", "overflow.daxfs")
	big := make([]byte, 32<<20) // larger than the whole pool
	bigURI, bigDG := e.writeImage("big.daxfs", big)
	_, otherDG := e.writeImage("other", []byte("other"))
	outside := e.path("elsewhere.daxfs")
	must(t, os.WriteFile(outside, sample, 0o644))

	tgt := func(n string) string { return e.path("pods", n, "vol") }
	wantCode(t, "corrupt image", e.publish("c1", corruptURI, corruptDG, "", tgt("c1"), nil), codes.InvalidArgument)
	wantCode(t, "image failing validation", e.publish("c2", overflowURI, overflowDG, "", tgt("c2"), nil), codes.InvalidArgument)
	wantCode(t, "digest mismatch", e.publish("c3", uri, otherDG, "", tgt("c3"), nil), codes.InvalidArgument)
	wantCode(t, "image larger than the pool", e.publish("c4", bigURI, bigDG, "", tgt("c4"), nil), codes.ResourceExhausted)
	wantCode(t, "disallowed source", e.publish("c5", "file://"+outside, "", "", tgt("c5"), nil), codes.PermissionDenied)
	wantCode(t, "disallowed https source", e.publish("c5b", "https://evil.example/x.daxfs", dg, "", tgt("c5b"), nil), codes.PermissionDenied)
	wantCode(t, "unknown attribute", e.publish("c6", uri, dg, "", tgt("c6"), map[string]string{"colour": "blue"}), codes.InvalidArgument)
	wantCode(t, "missing image file", e.publish("c7", "file://"+e.images+"/nope.daxfs", "", "", tgt("c7"), nil), codes.NotFound)
	t4URI, t4DG := e.addImage("tree4.static.daxfs", "tree4.daxfs")
	err = e.publish("c8", t4URI, t4DG, "", tgt("c8"), map[string]string{"mount": "kernel"})
	wantCode(t, "mount=kernel without the module", err, codes.FailedPrecondition)
	if err == nil || !strings.Contains(err.Error(), "not loaded") {
		t.Errorf("mount=kernel error does not say the module is missing: %v", err)
	}
	wantCode(t, "publish of an unstaged PV", e.publish("c9", uri, dg, e.path("nostage"), tgt("c9"), nil), codes.FailedPrecondition)
	wantCode(t, "stage same volume elsewhere", e.stage("good", uri, dg, e.path("staging2"), nil), codes.AlreadyExists)
	wantCode(t, "unstage with a live publish", e.unstage("good", staging), codes.FailedPrecondition)

	ctx := context.Background()
	_, err = e.ns.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{TargetPath: tgt("x"), VolumeCapability: roCap()})
	wantCode(t, "no volume id", err, codes.InvalidArgument)
	_, err = e.ns.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "x", VolumeCapability: roCap()})
	wantCode(t, "no target", err, codes.InvalidArgument)
	_, err = e.ns.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "x", TargetPath: tgt("x")})
	wantCode(t, "no capability", err, codes.InvalidArgument)
	block := &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY}}
	_, err = e.ns.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "x", StagingTargetPath: staging, VolumeCapability: block,
		VolumeContext: map[string]string{"image": uri}})
	wantCode(t, "block access", err, codes.InvalidArgument)
	_, err = e.ns.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "x", VolumeCapability: roCap()})
	wantCode(t, "no staging path", err, codes.InvalidArgument)
	_, err = e.ns.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "x", StagingTargetPath: e.path("s-eph"), VolumeCapability: roCap(),
		VolumeContext: map[string]string{"image": uri, "csi.storage.k8s.io/ephemeral": "true"}})
	wantCode(t, "stage of an inline volume", err, codes.InvalidArgument)
	_, err = e.ns.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "mw", TargetPath: tgt("mw"),
		VolumeCapability: mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER),
		VolumeContext:    map[string]string{"image": uri, "digest": dg, "csi.storage.k8s.io/ephemeral": "true"}})
	wantCode(t, "multi-node writer", err, codes.FailedPrecondition)
	_, err = e.ns.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: "good", VolumePath: "some/path"})
	wantCode(t, "stats on an unknown path", err, codes.NotFound)
	_, err = e.ns.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{})
	wantCode(t, "health without id", err, codes.InvalidArgument)

	// Missing target dir: the plugin creates it.
	must(t, e.publish("fresh", uri, dg, "", e.path("does", "not", "exist", "yet"), nil))
	checkTree(t, e.path("does", "not", "exist", "yet"), "tree1.manifest.json")
	must(t, e.unpublish("fresh", e.path("does", "not", "exist", "yet")))

	// Nothing lost, nothing left over.
	checkTree(t, target, "tree1.manifest.json")
	if st := e.pool.Status(); len(st.Extents) != 1 || st.Extents[0].Digest != dg {
		t.Errorf("pool after bad inputs: %+v", st.Extents)
	}
	if s := e.ns.Snapshot(); len(s) != 1 || s[0].References != 1 || !s[0].Healthy {
		t.Errorf("snapshot after bad inputs: %+v", s)
	}
	if ents, _ := os.ReadDir(e.opts.StateDir + "/images"); len(ents) != 1 {
		t.Errorf("image state dirs %d, want 1", len(ents))
	}
	for _, n := range []string{"c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "mw"} {
		if m := mountsUnder(tgt(n)); len(m) != 0 {
			t.Errorf("%s: left mounted %v", n, m)
		}
	}
	// A publish that fails to mount leaves no phantom target behind.
	file := e.path("afile")
	must(t, os.WriteFile(file, nil, 0o644))
	if err := e.publish("good", uri, dg, staging, file+"/vol", nil); err == nil {
		t.Error("publish under a regular file succeeded")
	}
	_, err = e.ns.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: "good", VolumePath: file + "/vol"})
	wantCode(t, "stats of the failed target", err, codes.NotFound)
	// A target removed behind the plugin's back no longer blocks unstage.
	gone := e.path("pods", "gone")
	must(t, e.publish("good", uri, dg, staging, gone, nil))
	must(t, unix.Unmount(gone, 0))
	must(t, os.Remove(gone))
	must(t, e.unpublish("good", target))
	must(t, e.unstage("good", staging))
	if _, ok := e.pool.Lookup(dg); ok {
		t.Error("image kept after unstage")
	}
}
