package envtest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/daxfs-csi/daxfs-csi/internal/controller"
	"github.com/daxfs-csi/daxfs-csi/internal/nodeagent"
	"github.com/daxfs-csi/daxfs-csi/internal/topology"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

func openPool(t *testing.T, path string, size int64, init bool) *daxdev.Pool {
	t.Helper()
	p, err := daxdev.OpenPool("memfile:"+path, daxdev.PoolOptions{Size: size, Init: init})
	if err != nil {
		t.Fatalf("open pool %s: %v", path, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Two real node agents open the same memory file (standing in for one CXL
// region both hosts map) plus a larger local pool each: the controller
// places one copy in the shared pool, one agent stages it, both report it,
// and no local pool gets a copy.
func TestTwoAgentsShareOnePoolOneCopy(t *testing.T) {
	ctx := setup(t)
	startController(t, ctx, controller.Options{HeartbeatTTL: time.Minute})
	dir := t.TempDir()
	sharedA := openPool(t, filepath.Join(dir, "cxl"), 32*mib, true)
	sharedB := openPool(t, filepath.Join(dir, "cxl"), 0, false)
	if sharedA.Info().SharedID != sharedB.Info().SharedID || sharedA.Info().SharedID == "" {
		t.Fatalf("shared ids %q, %q: want equal", sharedA.Info().SharedID, sharedB.Info().SharedID)
	}
	localA := openPool(t, filepath.Join(dir, "local-a"), 64*mib, true)
	localB := openPool(t, filepath.Join(dir, "local-b"), 64*mib, true)
	sel := map[string]string{"test": "two-agents"}
	for _, n := range []struct {
		name   string
		shared *daxdev.Pool
		local  *daxdev.Pool
	}{{"node-a", sharedA, localA}, {"node-b", sharedB, localB}} {
		st := &poolStager{pools: map[string]*daxdev.Pool{n.shared.Info().ID: n.shared, n.local.Info().ID: n.local}, owner: "prestage-" + n.name}
		ag := &nodeagent.Agent{Client: k8sClient, NodeName: n.name, Pools: []*daxdev.Pool{n.shared, n.local}, Stager: st, Labels: sel, Interval: 200 * time.Millisecond}
		actx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- ag.Run(actx) }()
		t.Cleanup(func() { stop(); <-done })
	}
	path, digest, _ := buildImage(t, "one copy for two hosts\n")
	img := newImage("two-agents-img", digest, 0, daxv1.PolicyAllMatching, 0, sel)
	img.Spec.Source.Image = "file://" + path
	if err := k8sClient.Create(ctx, img); err != nil {
		t.Fatal(err)
	}
	sharedID := sharedA.Info().SharedID
	eventually(t, "one Ready copy in the shared pool for both nodes", func() error {
		got, err := getImage(ctx, "two-agents-img")
		if err != nil {
			return err
		}
		ps := got.Status.Placements
		if len(ps) != 1 || ps[0].PoolID != sharedID || ps[0].State != daxv1.PlacementReady || len(ps[0].Nodes) != 2 || got.Status.NodeCount != 2 {
			return fmt.Errorf("placements %+v, nodes %d", ps, got.Status.NodeCount)
		}
		return nil
	})
	if n := len(sharedA.Status().Extents); n != 1 {
		t.Errorf("shared pool holds %d extents, want 1", n)
	}
	for _, p := range []*daxdev.Pool{localA, localB} {
		if n := len(p.Status().Extents); n != 0 {
			t.Errorf("local pool %s holds %d extents, want 0", p.Info().ID, n)
		}
	}
	e, ok := sharedB.Lookup(digest)
	if !ok || len(e.Owners) != 1 {
		t.Fatalf("node-b's view of the shared pool: %+v, %v; want one copy with one pre-stage hold", e, ok)
	}
}

// Two nodes report one shared pool (the same pool id from NodeGetInfo, as
// two hosts on one CXL memory do) holding one copy, and a bigger local pool
// each: GetCapacity counts the copy once, and a volume of the digest is
// offered only on the shared pool, from both nodes.
func TestSharedPoolCapacityCountsOneCopyAndIsPreferred(t *testing.T) {
	ctx := setup(t)
	clk := newClock()
	r := &controller.ClusterReader{Client: k8sClient, TTL: time.Minute, Now: clk.Now}
	copyOf := daxv1.StagedImage{Digest: digestOf(41), Size: 50 * mib, State: daxv1.StagedReady}
	shared := daxv1.PoolStatus{ID: "pool-uuid-1", SharedPoolID: "pool-uuid-1", Kind: daxv1.PoolKindCXL,
		Size: 512 * mib, Free: 100 * mib, Align: 2 * mib, Images: []daxv1.StagedImage{copyOf}}
	for _, n := range []string{"share-a", "share-b"} {
		putNode(t, ctx, n, nil, clk.Now(), shared,
			daxv1.PoolStatus{ID: "local-" + n, Kind: daxv1.PoolKindDevDAX, Size: 512 * mib, Free: 120 * mib, Align: 2 * mib})
	}
	for _, c := range []struct {
		seg  map[string]string
		want int64
	}{
		// 100 free + the copy once (150), not twice (200), beats a local 120.
		{map[string]string{}, 150 * mib},
		{map[string]string{topology.PoolKey: "pool-uuid-1"}, 150 * mib},
		{map[string]string{topology.NodeKey: "share-b"}, 150 * mib},
	} {
		got, err := r.Capacity(ctx, c.seg, copyOf.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("Capacity(%v) = %d MiB, want %d MiB", c.seg, got/mib, c.want/mib)
		}
	}
	topo, err := r.Topology(ctx, copyOf.Digest)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range topo {
		got = append(got, s[topology.NodeKey]+"/"+s[topology.PoolKey])
	}
	if fmt.Sprint(got) != "[share-a/pool-uuid-1 share-b/pool-uuid-1]" {
		t.Errorf("Topology = %v, want the shared pool from both nodes, no local pool", got)
	}
}
