package controller

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/daxfs-csi/daxfs-csi/internal/placement"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

// buildStatus turns the placement of one image into its status. Placement
// states come from what the nodes report for the pool: Ready, Staging,
// Failed (with the node's message) or Pending when nobody has it yet.
func buildStatus(img *daxv1.DaxImage, in *placement.Image, res placement.Assignments, live []*daxv1.DaxNode, problem string) daxv1.DaxImageStatus {
	st := daxv1.DaxImageStatus{
		ObservedGeneration: img.Generation,
		Digest:             in.Digest,
		Size:               daxv1.Bytes(in.Size),
		Conditions:         append([]metav1.Condition(nil), img.Status.Conditions...),
	}
	for _, a := range res.ByImage[img.Name] {
		p := daxv1.Placement{PoolID: a.PoolID, Node: a.Node, Nodes: a.Nodes, State: daxv1.PlacementPending}
		switch state, msg := copyState(live, a.PoolID, in.Digest); state {
		case daxv1.StagedReady:
			p.State = daxv1.PlacementReady
			st.ReadyCount++
		case daxv1.StagedStaging:
			p.State = daxv1.PlacementStaging
		case daxv1.StagedFailed:
			p.State, p.Reason = daxv1.PlacementFailed, msg
		}
		st.Placements = append(st.Placements, p)
	}
	st.PlacedCount = int32(len(st.Placements))
	st.NodeCount = int32(res.Covered[img.Name])

	placed := metav1.Condition{Type: daxv1.ConditionPlaced, Status: metav1.ConditionTrue, Reason: "Placed",
		Message: fmt.Sprintf("%d copies reach %d matching nodes", st.PlacedCount, st.NodeCount), ObservedGeneration: img.Generation}
	switch unmet, isUnmet := res.Unmet[img.Name]; {
	case problem != "":
		placed.Status, placed.Reason, placed.Message = metav1.ConditionFalse, "SourceError", problem
	case isUnmet:
		placed.Status, placed.Reason, placed.Message = metav1.ConditionFalse, "InsufficientSpace", unmet
		if st.PlacedCount == 0 && len(in.Nodes) == 0 {
			placed.Reason = "NoMatchingNodes"
		}
	}
	meta.SetStatusCondition(&st.Conditions, placed)

	ready := metav1.Condition{Type: daxv1.ConditionReady, Status: metav1.ConditionFalse, Reason: "Staging",
		Message: fmt.Sprintf("%d of %d copies ready", st.ReadyCount, st.PlacedCount), ObservedGeneration: img.Generation}
	if st.PlacedCount > 0 && st.ReadyCount == st.PlacedCount {
		ready.Status, ready.Reason = metav1.ConditionTrue, "Ready"
	}
	meta.SetStatusCondition(&st.Conditions, ready)
	return st
}

// statusEqual compares statuses, condition transition times aside (SetStatusCondition
// keeps them when nothing else changed).
func statusEqual(a, b daxv1.DaxImageStatus) bool {
	return equality.Semantic.DeepEqual(a, b)
}

// sameButTimes compares statuses with condition transition times aside: a
// pass on a cache that has not seen the last write rebuilds its
// conditions from the older ones, with a new time for the same transition.
func sameButTimes(a, b daxv1.DaxImageStatus) bool {
	strip := func(s daxv1.DaxImageStatus) daxv1.DaxImageStatus {
		s.Conditions = append([]metav1.Condition(nil), s.Conditions...)
		for i := range s.Conditions {
			s.Conditions[i].LastTransitionTime = metav1.Time{}
		}
		return s
	}
	return equality.Semantic.DeepEqual(strip(a), strip(b))
}
