package controller

import (
	"context"
	"fmt"
	"sort"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/daxfs-csi/daxfs-csi/internal/topology"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

// ClusterReader answers the CSI controller service's cluster-mode questions
// from DaxNodes: which topology segments can serve an image and how much
// room a segment has. Nodes whose heartbeat is older than TTL count for nothing.
type ClusterReader struct {
	Client client.Reader
	TTL    time.Duration    // 0: DefaultHeartbeatTTL
	Now    func() time.Time // nil: time.Now
}

func (r *ClusterReader) live(ctx context.Context) ([]*daxv1.DaxNode, error) {
	var nodes daxv1.DaxNodeList
	if err := r.Client.List(ctx, &nodes); err != nil {
		return nil, fmt.Errorf("list DaxNodes: %w", err)
	}
	ttl, now := r.TTL, time.Now()
	if ttl <= 0 {
		ttl = DefaultHeartbeatTTL
	}
	if r.Now != nil {
		now = r.Now()
	}
	live, _ := liveNodes(nodes.Items, ttl, now)
	return live, nil
}

// segmentMatches: every key the segment sets must match the node or pool;
// the pool key matches the pool's id or its shared identity.
func segmentMatches(seg map[string]string, n *daxv1.DaxNode, p *daxv1.PoolStatus) bool {
	for k, v := range seg {
		switch k {
		case topology.NodeKey:
			if v != n.Name {
				return false
			}
		case topology.PoolKey:
			if v != p.ID && v != p.SharedPoolID {
				return false
			}
		default:
			return false // a key we do not serve
		}
	}
	return true
}

// Capacity is the largest image of digest that one pool in the segment can
// still take: the pool's free bytes, plus the copy's own size where the
// digest is already staged (a volume of it costs nothing there). A pool
// shared by several nodes counts once. digest may be empty.
func (r *ClusterReader) Capacity(ctx context.Context, segment map[string]string, digest string) (int64, error) {
	live, err := r.live(ctx)
	if err != nil {
		return 0, err
	}
	var best int64
	for _, n := range live {
		for i := range n.Status.Pools {
			p := &n.Status.Pools[i]
			if !segmentMatches(segment, n, p) {
				continue
			}
			c := p.Free
			for _, im := range p.Images {
				if digest != "" && im.Digest == digest && im.State != daxv1.StagedFailed {
					c += roundUpAlign(im.Size, p.Align)
				}
			}
			best = max(best, c)
		}
	}
	return best, nil
}

// Topology lists the segments ({node, pool}) where a volume of digest can be
// published at once: live nodes whose pools hold a Ready copy. When no node
// has one yet, every live node's pools are listed (the node stages on first
// use). Sorted by node, then pool.
func (r *ClusterReader) Topology(ctx context.Context, digest string) ([]map[string]string, error) {
	live, err := r.live(ctx)
	if err != nil {
		return nil, err
	}
	var staged, all []map[string]string
	for _, n := range live {
		for i := range n.Status.Pools {
			p := &n.Status.Pools[i]
			seg := map[string]string{topology.NodeKey: n.Name, topology.PoolKey: p.ID}
			all = append(all, seg)
			for _, im := range p.Images {
				if im.Digest == digest && (im.State == daxv1.StagedReady || im.State == "") {
					staged = append(staged, seg)
					break
				}
			}
		}
	}
	out := staged
	if len(out) == 0 {
		out = all
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a][topology.NodeKey] != out[b][topology.NodeKey] {
			return out[a][topology.NodeKey] < out[b][topology.NodeKey]
		}
		return out[a][topology.PoolKey] < out[b][topology.PoolKey]
	})
	return out, nil
}

func roundUpAlign(n, align int64) int64 {
	if align <= 1 {
		return n
	}
	return (n + align - 1) / align * align
}
