package envtest

import (
	"reflect"
	"testing"
	"time"

	"github.com/daxfs-csi/daxfs-csi/internal/controller"
	"github.com/daxfs-csi/daxfs-csi/internal/topology"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

// ClusterReader answers GetCapacity and AccessibleTopology from DaxNodes:
// the largest room in one pool of the segment (a staged copy counts as room
// for its own digest), and the segments holding the digest; dead nodes
// count for nothing.
func TestClusterReaderCapacityAndTopology(t *testing.T) {
	ctx := setup(t)
	clk := newClock()
	ttl := time.Minute
	r := &controller.ClusterReader{Client: k8sClient, TTL: ttl, Now: clk.Now}
	staged := daxv1.StagedImage{Digest: digestOf(7), Size: 50*mib + 1, State: daxv1.StagedReady}
	putNode(t, ctx, "r1", nil, clk.Now(),
		daxv1.PoolStatus{ID: "pa", Kind: daxv1.PoolKindDevDAX, Size: 512 * mib, Free: 100 * mib, Align: 2 * mib},
		daxv1.PoolStatus{ID: "pb", Kind: daxv1.PoolKindDevDAX, Size: 512 * mib, Free: 300 * mib, Align: 2 * mib, Images: []daxv1.StagedImage{staged}})
	putNode(t, ctx, "r2", nil, clk.Now(),
		daxv1.PoolStatus{ID: "dax-r2", SharedPoolID: "cxl0", Kind: daxv1.PoolKindCXL, Size: 1024 * mib, Free: 200 * mib, Align: 2 * mib})
	putNode(t, ctx, "r3", nil, clk.Now().Add(-2*ttl),
		daxv1.PoolStatus{ID: "pdead", Kind: daxv1.PoolKindDevDAX, Size: 4096 * mib, Free: 4000 * mib, Align: 2 * mib})

	capCases := []struct {
		seg    map[string]string
		digest string
		want   int64
	}{
		{map[string]string{topology.NodeKey: "r1"}, "", 300 * mib},
		{map[string]string{topology.NodeKey: "r1"}, digestOf(7), 300*mib + 52*mib}, // size rounded to 2 MiB
		{map[string]string{topology.NodeKey: "r1", topology.PoolKey: "pa"}, "", 100 * mib},
		{map[string]string{topology.PoolKey: "cxl0"}, "", 200 * mib}, // shared identity
		{map[string]string{}, "", 300 * mib},                         // the dead node's 4000 MiB do not count
		{map[string]string{topology.NodeKey: "r3"}, "", 0},
		{map[string]string{"topology.kubernetes.io/zone": "a"}, "", 0}, // a key we do not serve
	}
	for _, c := range capCases {
		got, err := r.Capacity(ctx, c.seg, c.digest)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("Capacity(%v, %q) = %d MiB, want %d MiB", c.seg, c.digest, got/mib, c.want/mib)
		}
	}

	seg := func(node, pool string) map[string]string {
		return map[string]string{topology.NodeKey: node, topology.PoolKey: pool}
	}
	topo, err := r.Topology(ctx, digestOf(7))
	if err != nil {
		t.Fatal(err)
	}
	if want := []map[string]string{seg("r1", "pb")}; !reflect.DeepEqual(topo, want) {
		t.Errorf("Topology(staged digest) = %v, want %v", topo, want)
	}
	topo, err = r.Topology(ctx, digestOf(8))
	if err != nil {
		t.Fatal(err)
	}
	if want := []map[string]string{seg("r1", "pa"), seg("r1", "pb"), seg("r2", "dax-r2")}; !reflect.DeepEqual(topo, want) {
		t.Errorf("Topology(unstaged digest) = %v, want every live pool %v", topo, want)
	}
}
