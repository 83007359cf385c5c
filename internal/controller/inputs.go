package controller

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/daxfs-csi/daxfs-csi/internal/placement"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

// PoolKey is the identity placement uses for a pool: its shared identity,
// so every node seeing the same memory names it the same.
func PoolKey(p *daxv1.PoolStatus) string {
	if p.SharedPoolID != "" {
		return p.SharedPoolID
	}
	return p.ID
}

// Live reports whether the node's heartbeat is younger than ttl at now.
func Live(n *daxv1.DaxNode, ttl time.Duration, now time.Time) bool {
	hb := n.Status.Heartbeat.Time
	return !hb.IsZero() && now.Sub(hb) < ttl
}

// liveNodes filters nodes by heartbeat and says when the first live one
// expires (zero when none is live).
func liveNodes(all []daxv1.DaxNode, ttl time.Duration, now time.Time) (live []*daxv1.DaxNode, nextExpiry time.Time) {
	for i := range all {
		n := &all[i]
		if !Live(n, ttl, now) {
			continue
		}
		live = append(live, n)
		if exp := n.Status.Heartbeat.Add(ttl); nextExpiry.IsZero() || exp.Before(nextExpiry) {
			nextExpiry = exp
		}
	}
	return live, nextExpiry
}

// poolInputs turns live nodes' reports into placement input: one Pool per
// node per pool (Place merges shared ones). Failed copies hold no space.
func poolInputs(live []*daxv1.DaxNode) ([]placement.Node, []placement.Pool) {
	nodes := make([]placement.Node, 0, len(live))
	var pools []placement.Pool
	for _, n := range live {
		nodes = append(nodes, placement.Node{Name: n.Name})
		for i := range n.Status.Pools {
			ps := &n.Status.Pools[i]
			p := placement.Pool{ID: PoolKey(ps), Nodes: []string{n.Name}, Free: ps.Free, Align: ps.Align}
			for _, im := range ps.Images {
				if im.State == daxv1.StagedFailed {
					continue
				}
				p.Copies = append(p.Copies, placement.Copy{Digest: im.Digest, Size: im.Size, References: im.References, Prestaged: im.Prestaged})
			}
			pools = append(pools, p)
		}
	}
	return nodes, pools
}

// matchingNodes lists the live nodes whose labels the image's selector matches.
func matchingNodes(img *daxv1.DaxImage, live []*daxv1.DaxNode) ([]string, error) {
	sel := labels.Everything()
	if s := img.Spec.Placement.NodeSelector; s != nil {
		var err error
		if sel, err = metav1.LabelSelectorAsSelector(s); err != nil {
			return nil, fmt.Errorf("node selector of DaxImage %s: %w", img.Name, err)
		}
	}
	var names []string
	for _, n := range live {
		if sel.Matches(labels.Set(n.Labels)) {
			names = append(names, n.Name)
		}
	}
	return names, nil
}

// copyState finds how the live nodes report digest in pool key: the state
// and message of the copy, or "" when no node has it.
func copyState(live []*daxv1.DaxNode, key, digest string) (daxv1.StagedState, string) {
	var st daxv1.StagedState
	var msg string
	for _, n := range live {
		for i := range n.Status.Pools {
			ps := &n.Status.Pools[i]
			if PoolKey(ps) != key {
				continue
			}
			for _, im := range ps.Images {
				if im.Digest != digest {
					continue
				}
				// Ready anywhere wins; Failed only if nobody has better.
				switch {
				case im.State == daxv1.StagedReady || im.State == "":
					return daxv1.StagedReady, ""
				case im.State == daxv1.StagedStaging:
					st = daxv1.StagedStaging
				case st == "":
					st, msg = daxv1.StagedFailed, im.Message
				}
			}
		}
	}
	return st, msg
}

// stagedSize is the size some node reports for digest, 0 when none does.
func stagedSize(all []daxv1.DaxNode, digest string) int64 {
	for i := range all {
		for _, ps := range all[i].Status.Pools {
			for _, im := range ps.Images {
				if im.Digest == digest && im.Size > 0 {
					return im.Size
				}
			}
		}
	}
	return 0
}
