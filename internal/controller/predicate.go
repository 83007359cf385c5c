package controller

import (
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

// heartbeatOnly drops DaxNode updates that only refresh the heartbeat of a
// node that was live anyway: with thousands of nodes beating every 20 s they
// would keep the reconciler busy for nothing. Expiry needs no event (the
// reconciler requeues itself for it); a node coming back does pass.
func heartbeatOnly(ttl time.Duration, now func() time.Time) predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		oldN, ok1 := e.ObjectOld.(*daxv1.DaxNode)
		newN, ok2 := e.ObjectNew.(*daxv1.DaxNode)
		if !ok1 || !ok2 {
			return true
		}
		if !Live(oldN, ttl, now()) || !equality.Semantic.DeepEqual(oldN.Labels, newN.Labels) {
			return true
		}
		a, b := oldN.Status, newN.Status
		a.Heartbeat, b.Heartbeat = newN.Status.Heartbeat, newN.Status.Heartbeat
		a.Conditions, b.Conditions = nil, nil // only their heartbeat times move
		return !equality.Semantic.DeepEqual(a, b) || !conditionsSame(oldN, newN)
	}}
}

// conditionsSame compares condition types and statuses, not times.
func conditionsSame(a, b *daxv1.DaxNode) bool {
	key := func(n *daxv1.DaxNode) sets.Set[string] {
		s := sets.New[string]()
		for _, c := range n.Status.Conditions {
			s.Insert(c.Type + "=" + string(c.Status))
		}
		return s
	}
	return key(a).Equal(key(b))
}
