package nodeserver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/daxfs-csi/daxfs-csi/internal/topology"
)

func TestNodeInfoAndCapabilities(t *testing.T) {
	var mu sync.Mutex
	var staged []string
	e := newEnv(t, 16<<20, func(o *Options) {
		o.MaxVolumes = 42
		o.OnStage = func(digest, backend string, d time.Duration) {
			mu.Lock()
			staged = append(staged, digest+" "+backend)
			mu.Unlock()
		}
	})
	info, err := e.ns.NodeGetInfo(context.Background(), &csi.NodeGetInfoRequest{})
	must(t, err)
	seg := info.GetAccessibleTopology().GetSegments()
	if info.NodeId != "node-1" || info.MaxVolumesPerNode != 42 || seg[topology.NodeKey] != "node-1" ||
		seg[topology.PoolKey] == "" || seg[topology.PoolKey] != e.pool.Info().SharedID {
		t.Errorf("NodeGetInfo = %v", info)
	}
	caps, err := e.ns.NodeGetCapabilities(context.Background(), &csi.NodeGetCapabilitiesRequest{})
	must(t, err)
	got := map[csi.NodeServiceCapability_RPC_Type]bool{}
	for _, c := range caps.Capabilities {
		got[c.GetRpc().GetType()] = true
	}
	for _, want := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
	} {
		if !got[want] {
			t.Errorf("capability %v missing", want)
		}
	}

	uri, dg := e.addImage("tree4.static.daxfs", "tree4.daxfs")
	must(t, e.publish("a", uri, dg, "", e.path("a"), nil))
	must(t, e.publish("b", uri, dg, "", e.path("b"), nil))
	mu.Lock()
	if len(staged) != 1 || staged[0] != dg+" fuse" {
		t.Errorf("OnStage calls %v, want one for %s with fuse", staged, dg)
	}
	mu.Unlock()
	must(t, e.unpublish("a", e.path("a")))
	must(t, e.unpublish("b", e.path("b")))
}
