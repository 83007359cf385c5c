package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

func TestHeartbeatOnlyPredicate(t *testing.T) {
	now := time.Unix(1000, 0)
	ttl := time.Minute
	p := heartbeatOnly(ttl, func() time.Time { return now })
	base := node("n", now.Add(-10*time.Second), daxv1.PoolStatus{ID: "p", Free: 100})
	beat := func(n daxv1.DaxNode) *daxv1.DaxNode {
		n = *n.DeepCopy()
		n.Status.Heartbeat = metav1.NewTime(now)
		return &n
	}
	if p.Update(event.UpdateEvent{ObjectOld: &base, ObjectNew: beat(base)}) {
		t.Error("a heartbeat-only update of a live node must not wake the reconciler")
	}
	dead := node("n", now.Add(-2*time.Minute), daxv1.PoolStatus{ID: "p", Free: 100})
	if !p.Update(event.UpdateEvent{ObjectOld: &dead, ObjectNew: beat(dead)}) {
		t.Error("a node coming back must wake the reconciler")
	}
	filled := beat(base)
	filled.Status.Pools[0].Free = 50
	if !p.Update(event.UpdateEvent{ObjectOld: &base, ObjectNew: filled}) {
		t.Error("a pool filling must wake the reconciler")
	}
	relabeled := beat(base)
	relabeled.Labels = map[string]string{"zone": "a"}
	if !p.Update(event.UpdateEvent{ObjectOld: &base, ObjectNew: relabeled}) {
		t.Error("a label change must wake the reconciler")
	}
}
