package envtest

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/daxfs-csi/daxfs-csi/internal/controller"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

// laggingCache is the real client whose DaxImage lists come from an older
// snapshot when one is set, as the manager's cache does before the watch
// event of the controller's own last write arrives. Status writes are counted.
type laggingCache struct {
	client.Client
	images *daxv1.DaxImageList
	writes int
}

func (l *laggingCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if il, ok := list.(*daxv1.DaxImageList); ok && l.images != nil {
		l.images.DeepCopyInto(il)
		return nil
	}
	return l.Client.List(ctx, list, opts...)
}

func (l *laggingCache) Status() client.SubResourceWriter {
	return countingStatus{l.Client.Status(), &l.writes}
}

type countingStatus struct {
	client.SubResourceWriter
	n *int
}

func (c countingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	*c.n++
	return c.SubResourceWriter.Update(ctx, obj, opts...)
}

// A pass on a cache that has not seen the controller's last status write
// neither sends the same status again nor fails on the conflict (the old
// code did both: a 409 per image and the whole pass retried with backoff);
// a pass that wants a different status on such a cache leaves it to the
// next pass, which writes it.
func TestStaleCacheNoRepeatedWriteNoConflictError(t *testing.T) {
	ctx := setup(t)
	clk := newClock()
	sel := map[string]string{"test": "stale-cache"}
	local := func(free int64) daxv1.PoolStatus {
		return daxv1.PoolStatus{ID: "local-s1", Kind: daxv1.PoolKindMemfile, Size: 1024 * mib, Free: free, Align: 4096}
	}
	putNode(t, ctx, "s1", sel, clk.Now(), local(900*mib))
	if err := k8sClient.Create(ctx, newImage("stale-img", digestOf(7), 100*mib, daxv1.PolicyAllMatching, 0, sel)); err != nil {
		t.Fatal(err)
	}
	var before daxv1.DaxImageList
	if err := k8sClient.List(ctx, &before); err != nil {
		t.Fatal(err)
	}
	c := &laggingCache{Client: k8sClient}
	r := &controller.PlacementReconciler{Client: c, HeartbeatTTL: time.Minute, Now: clk.Now}
	if _, err := r.Reconcile(ctx, reconcile.Request{}); err != nil {
		t.Fatalf("first pass: %v", err)
	}
	if c.writes != 1 {
		t.Fatalf("first pass wrote %d statuses, want 1", c.writes)
	}

	c.images = &before // the cache still holds the image without status
	if _, err := r.Reconcile(ctx, reconcile.Request{}); err != nil {
		t.Errorf("pass on a lagging cache: %v", err)
	}
	if c.writes != 1 {
		t.Errorf("pass on a lagging cache sent %d more status writes, want none", c.writes-1)
	}

	// The node fills up: the wanted status differs, the stale write conflicts.
	putNode(t, ctx, "s1", sel, clk.Now(), local(10*mib))
	if _, err := r.Reconcile(ctx, reconcile.Request{}); err != nil {
		t.Errorf("conflicting pass on a lagging cache: %v", err)
	}
	c.images = nil // the watch caught up
	if _, err := r.Reconcile(ctx, reconcile.Request{}); err != nil {
		t.Fatalf("pass on a current cache: %v", err)
	}
	img, err := getImage(ctx, "stale-img")
	if err != nil {
		t.Fatal(err)
	}
	placed := meta.FindStatusCondition(img.Status.Conditions, daxv1.ConditionPlaced)
	if placed == nil || placed.Status != metav1.ConditionFalse || placed.Reason != "InsufficientSpace" || len(img.Status.Placements) != 0 {
		t.Errorf("status after the node filled up: %+v, want Placed=False InsufficientSpace and no placement", img.Status)
	}
}
