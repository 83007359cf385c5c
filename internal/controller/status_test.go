package controller

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/daxfs-csi/daxfs-csi/internal/placement"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

func node(name string, hb time.Time, pools ...daxv1.PoolStatus) daxv1.DaxNode {
	n := daxv1.DaxNode{ObjectMeta: metav1.ObjectMeta{Name: name}}
	n.Status.Heartbeat = metav1.NewTime(hb)
	n.Status.Pools = pools
	return n
}

func TestLiveNodesAndNextExpiry(t *testing.T) {
	now := time.Unix(1000, 0)
	ttl := time.Minute
	all := []daxv1.DaxNode{
		node("fresh", now.Add(-10*time.Second)),
		node("old", now.Add(-30*time.Second)),
		node("dead", now.Add(-2*time.Minute)),
		node("never", time.Time{}),
	}
	live, next := liveNodes(all, ttl, now)
	var names []string
	for _, n := range live {
		names = append(names, n.Name)
	}
	if strings.Join(names, ",") != "fresh,old" {
		t.Errorf("live %v, want fresh,old", names)
	}
	if want := now.Add(30 * time.Second); !next.Equal(want) {
		t.Errorf("next expiry %v, want %v (old's heartbeat + ttl)", next, want)
	}
}

// Placement states follow what nodes report for the pool; a shared pool
// reported Ready by any node is Ready.
func TestBuildStatusStatesAndConditions(t *testing.T) {
	now := time.Unix(1000, 0)
	d := "sha256:" + strings.Repeat("a", 64)
	n1 := node("n1", now,
		daxv1.PoolStatus{ID: "x1", SharedPoolID: "cxl", Images: []daxv1.StagedImage{{Digest: d, State: daxv1.StagedStaging}}},
		daxv1.PoolStatus{ID: "l1", Images: []daxv1.StagedImage{{Digest: d, State: daxv1.StagedFailed, Message: "no space"}}})
	n2 := node("n2", now, daxv1.PoolStatus{ID: "x2", SharedPoolID: "cxl", Images: []daxv1.StagedImage{{Digest: d, State: daxv1.StagedReady}}},
		daxv1.PoolStatus{ID: "l2"})
	live := []*daxv1.DaxNode{&n1, &n2}
	img := &daxv1.DaxImage{ObjectMeta: metav1.ObjectMeta{Name: "i", Generation: 3}}
	in := &placement.Image{Name: "i", Digest: d, Size: 10, Nodes: []string{"n1", "n2"}}
	res := placement.Assignments{
		ByImage: map[string][]placement.Assignment{"i": {{PoolID: "cxl", Node: "n1"}, {PoolID: "l1", Node: "n1"}, {PoolID: "l2", Node: "n2"}}},
		Covered: map[string]int{"i": 2},
		Unmet:   map[string]string{"i": "1 of 3 pools lack room"},
	}
	st := buildStatus(img, in, res, live, "")
	var states []string
	for _, p := range st.Placements {
		states = append(states, string(p.State)+":"+p.Reason)
	}
	if got := strings.Join(states, ","); got != "Ready:,Failed:no space,Pending:" {
		t.Errorf("states %s", got)
	}
	if st.ObservedGeneration != 3 || st.PlacedCount != 3 || st.ReadyCount != 1 || st.NodeCount != 2 {
		t.Errorf("status %+v", st)
	}
	if c := meta.FindStatusCondition(st.Conditions, daxv1.ConditionPlaced); c == nil || c.Status != metav1.ConditionFalse || c.Reason != "InsufficientSpace" {
		t.Errorf("Placed %+v", c)
	}
	if c := meta.FindStatusCondition(st.Conditions, daxv1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Ready %+v", c)
	}
	// Unchanged inputs give an equal status, so no write happens.
	img.Status = st
	if again := buildStatus(img, in, res, live, ""); !statusEqual(img.Status, again) {
		t.Error("rebuilding the same status differs: the reconciler would write every pass")
	}
	if st := buildStatus(img, in, res, live, "resolve: boom"); meta.FindStatusCondition(st.Conditions, daxv1.ConditionPlaced).Reason != "SourceError" {
		t.Error("a source problem must show as SourceError")
	}
}
