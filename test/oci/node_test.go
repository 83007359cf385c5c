package oci_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/daxfs-csi/daxfs-csi/internal/oci"
	"github.com/daxfs-csi/daxfs-csi/internal/source"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver"
)

type node struct {
	root  string
	pool  *countingPool
	conv  *oci.Converter
	convs atomic.Int32
	ns    *nodeserver.NodeServer
}

func newNode(t *testing.T, allow volume.AllowList) *node {
	root := t.TempDir()
	n := &node{root: root}
	spec := "memfile:" + filepath.Join(root, "pool")
	p, err := daxdev.OpenPool(spec, daxdev.PoolOptions{Size: 64 << 20, Init: true})
	if err != nil {
		t.Fatal(err)
	}
	n.pool = &countingPool{Pool: p}
	t.Cleanup(func() { cleanupRoot(t, root); p.Close() })
	stateDir := filepath.Join(root, "state")
	n.conv, err = oci.New(oci.Options{Dir: filepath.Join(stateDir, "oci"), Keychain: anon{},
		OnConversion: func(oci.Conversion) { n.convs.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	n.ns, err = nodeserver.New(nodeserver.Options{
		NodeID: "node-1", Pool: n.pool, PoolSpec: spec, StateDir: stateDir,
		AllowSources: allow, MountMode: volume.MountFUSE,
		FuseServeCommand: []string{daxfsCSI}, HealthInterval: -1,
		Fetcher: &source.Fetcher{Schemes: map[string]source.SchemeHandler{"oci": n.conv}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.ns.Shutdown)
	return n
}

func mountCap() *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY},
	}
}

func (n *node) stage(id, staging string, vc map[string]string) error {
	return n.stageCtx(context.Background(), id, staging, vc)
}

func (n *node) stageCtx(ctx context.Context, id, staging string, vc map[string]string) error {
	_, err := n.ns.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{
		VolumeId: id, StagingTargetPath: staging, VolumeCapability: mountCap(), VolumeContext: vc})
	return err
}

func (n *node) publish(id, staging, target string, vc map[string]string) error {
	_, err := n.ns.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{
		VolumeId: id, StagingTargetPath: staging, TargetPath: target, Readonly: true,
		VolumeCapability: mountCap(), VolumeContext: vc})
	return err
}

// checkRuntimeView reads appImage through a mount as a pod would see it.
func checkRuntimeView(t *testing.T, dir string) {
	t.Helper()
	files := map[string]string{"bin/busybox": "BUSYBOX", "bin/ls": "BUSYBOX", "etc/passwd": "root\nuser\n",
		"etc/hostname": "node\n", "usr/lib/c.so": "c", "lib/c.so": "c"}
	for p, want := range files {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", p, b, err, want)
		}
	}
	for _, gone := range []string{"etc/old", "bin/sh", "usr/lib/a.so"} {
		if _, err := os.Lstat(filepath.Join(dir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want it gone (whiteout / opaque dir)", gone, err)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "etc/passwd")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("etc/passwd mode: %v, %v", st, err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "lib")); err != nil || l != "usr/lib" {
		t.Errorf("lib -> %q, %v", l, err)
	}
	a, err1 := os.Stat(filepath.Join(dir, "bin/busybox"))
	b, err2 := os.Stat(filepath.Join(dir, "bin/ls"))
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		t.Errorf("bin/ls is not a hard link of bin/busybox: %v %v", err1, err2)
	}
}

// A PV and an inline volume of one OCI image: converted once, staged into
// one region, served by one image mount, read back as a runtime shows it.
func TestTwoVolumesOfOneOCIImageShareARegion(t *testing.T) {
	r := newRegistry(t)
	src := r.push(t, "team/app", appImage(t))
	n := newNode(t, volume.AllowList{"oci://" + r.host + "/team"})
	staging, t1, t2 := filepath.Join(n.root, "staging"), filepath.Join(n.root, "pods/a/vol"), filepath.Join(n.root, "pods/b/vol")
	vc := map[string]string{"image": src}
	if err := n.stage("pv-1", staging, vc); err != nil {
		t.Fatal(err)
	}
	if err := n.publish("pv-1", staging, t1, vc); err != nil {
		t.Fatal(err)
	}
	inline := map[string]string{"image": src, volume.AttrEphemeral: "true"}
	if err := n.publish("csi-inline-1", "", t2, inline); err != nil {
		t.Fatal(err)
	}
	checkRuntimeView(t, t1)
	checkRuntimeView(t, t2)
	st := n.pool.Status()
	if len(st.Extents) != 1 || n.pool.fills.Load() != 1 || n.convs.Load() != 1 {
		t.Fatalf("%d extents, %d fills, %d conversions; want one of each", len(st.Extents), n.pool.fills.Load(), n.convs.Load())
	}
	e, err := n.conv.Convert(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if st.Extents[0].Digest != e.Digest {
		t.Fatalf("staged %s, converted %s", st.Extents[0].Digest, e.Digest)
	}
	if s := n.ns.Snapshot(); len(s) != 1 || s[0].References != 2 {
		t.Fatalf("snapshot %+v, want one image with 2 references", s)
	}
	// The digest attribute is the DAXFS digest: the right one stages, a
	// wrong one is refused.
	if err := n.stage("pv-2", filepath.Join(n.root, "staging2"), map[string]string{"image": src, "digest": e.Digest}); err != nil {
		t.Fatalf("stage with the DAXFS digest: %v", err)
	}
	wrong := map[string]string{"image": src, "digest": "sha256:" + strings.Repeat("ab", 32)}
	if err := n.stage("pv-3", filepath.Join(n.root, "staging3"), wrong); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("stage with a wrong digest: %v", err)
	}
	// Outside the allow-list.
	other := strings.Replace(src, "/team/app@", "/other/app@", 1)
	if err := n.stage("pv-4", filepath.Join(n.root, "staging4"), map[string]string{"image": other}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("stage outside the allow-list: %v", err)
	}
	if len(n.pool.Status().Extents) != 1 || n.convs.Load() != 1 {
		t.Fatalf("extents %d, conversions %d after the extra volumes", len(n.pool.Status().Extents), n.convs.Load())
	}
}

// A registry that drops the connection mid-layer: the stage fails and
// leaves no extent, no image record, no cache file; a retry then works.
func TestMidPullFailureLeavesNothingStaged(t *testing.T) {
	r := newRegistry(t)
	img := appImage(t)
	src := r.push(t, "team/app", img)
	layers, _ := img.Layers()
	d, _ := layers[1].Digest()
	r.failBlob.Store(d.String())
	n := newNode(t, volume.AllowList{"oci://" + r.host})
	staging := filepath.Join(n.root, "staging")
	vc := map[string]string{"image": src}
	if err := n.stage("pv-1", staging, vc); err == nil {
		t.Fatal("stage over a failing registry succeeded")
	}
	if ex := n.pool.Status().Extents; len(ex) != 0 {
		t.Fatalf("extents left: %+v", ex)
	}
	if s := n.ns.Snapshot(); len(s) != 0 {
		t.Fatalf("images recorded: %+v", s)
	}
	ents, _ := os.ReadDir(filepath.Join(n.root, "state", "oci"))
	for _, e := range ents {
		if !e.IsDir() {
			t.Errorf("cache file left: %s", e.Name())
		}
	}
	r.failBlob.Store("")
	if err := n.stage("pv-1", staging, vc); err != nil {
		t.Fatalf("retry: %v", err)
	}
	checkRuntimeView(t, staging)
}

// A pull slower than the CSI call's deadline: the call fails with
// DeadlineExceeded, the conversion goes on, and the kubelet's retry stages
// its result without pulling again.
func TestSlowPullFinishesForTheRetry(t *testing.T) {
	r := newRegistry(t)
	src := r.push(t, "team/app", appImage(t))
	gate := make(chan struct{})
	r.gate.Store(&gate)
	n := newNode(t, volume.AllowList{"oci://" + r.host})
	staging := filepath.Join(n.root, "staging")
	vc := map[string]string{"image": src}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := n.stageCtx(ctx, "pv-1", staging, vc); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("stage past its deadline: %v", err)
	}
	if a := n.conv.Active(); len(a) != 1 {
		t.Fatalf("conversions under way: %+v", a)
	}
	close(gate)
	if err := n.stage("pv-1", staging, vc); err != nil {
		t.Fatalf("retry: %v", err)
	}
	checkRuntimeView(t, staging)
	if c := n.convs.Load(); c != 1 {
		t.Fatalf("%d conversions, want the first one finished and reused", c)
	}
}
