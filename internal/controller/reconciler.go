package controller

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/daxfs-csi/daxfs-csi/internal/placement"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

// DefaultHeartbeatTTL is how long a node's placements outlive its last heartbeat.
const DefaultHeartbeatTTL = 60 * time.Second

// placementKey is the one request the reconciler works on: placement is a
// global decision, so every DaxNode or DaxImage event asks for a full pass
// and the work queue folds bursts of them into one.
var placementKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "placement"}}

// PlacementReconciler places DaxImages onto the pools of live DaxNodes and
// writes the result into each DaxImage's status.
type PlacementReconciler struct {
	Client       client.Client
	HeartbeatTTL time.Duration
	Resolver     Resolver         // nil: SourceResolver
	Now          func() time.Time // nil: time.Now

	mu       sync.Mutex
	failures map[string]resolveFailure // by DaxImage name

	// written is what the last passes wrote, by DaxImage name; only the
	// reconcile goroutine touches it (MaxConcurrentReconciles is 1).
	written map[string]writtenStatus
}

// writtenStatus is one status write: from is the resourceVersion it
// replaced. A cached object still at that version has not seen the write yet.
type writtenStatus struct {
	from   string
	status daxv1.DaxImageStatus
}

// SetupWithManager registers the reconciler with watches on both kinds.
func (r *PlacementReconciler) SetupWithManager(mgr ctrl.Manager) error {
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{placementKey}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("daxfs-placement").
		Watches(&daxv1.DaxNode{}, all, builder.WithPredicates(heartbeatOnly(r.ttl(), r.now))).
		Watches(&daxv1.DaxImage{}, all).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(r)
}

func (r *PlacementReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *PlacementReconciler) ttl() time.Duration {
	if r.HeartbeatTTL > 0 {
		return r.HeartbeatTTL
	}
	return DefaultHeartbeatTTL
}

// Reconcile runs one placement pass over the whole cluster.
func (r *PlacementReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var nodes daxv1.DaxNodeList
	if err := r.Client.List(ctx, &nodes); err != nil {
		return reconcile.Result{}, fmt.Errorf("list DaxNodes: %w", err)
	}
	var images daxv1.DaxImageList
	if err := r.Client.List(ctx, &images); err != nil {
		return reconcile.Result{}, fmt.Errorf("list DaxImages: %w", err)
	}
	now := r.now()
	live, nextExpiry := liveNodes(nodes.Items, r.ttl(), now)
	pnodes, ppools := poolInputs(live)

	sort.Slice(images.Items, func(a, b int) bool { return images.Items[a].Name < images.Items[b].Name })
	pimages := make([]placement.Image, 0, len(images.Items))
	byName := make(map[string]int, len(images.Items))
	problems := map[string]string{} // image -> why it cannot be placed at all
	for i := range images.Items {
		img := &images.Items[i]
		if !img.DeletionTimestamp.IsZero() {
			continue
		}
		pi, problem := r.imageInput(ctx, img, nodes.Items, live)
		if problem != "" {
			problems[img.Name] = problem
		}
		byName[img.Name] = len(pimages)
		pimages = append(pimages, pi)
	}
	start := time.Now()
	result := placement.Place(pimages, pnodes, ppools)
	placementSeconds.Observe(time.Since(start).Seconds())
	imagesUnmet.Set(float64(len(result.Unmet)))
	liveNodesGauge.Set(float64(len(live)))
	for _, e := range result.Evictions {
		evictionsTotal.Inc()
		klog.V(1).InfoS("evicting pre-staged copy", "pool", e.PoolID, "digest", e.Digest, "for", e.For)
	}
	klog.V(2).InfoS("placement pass", "images", len(pimages), "liveNodes", len(live), "nodes", len(nodes.Items),
		"pools", len(ppools), "evictions", len(result.Evictions), "took", time.Since(start))

	var errs []error
	for i := range images.Items {
		img := &images.Items[i]
		if !img.DeletionTimestamp.IsZero() {
			continue
		}
		st := buildStatus(img, &pimages[byName[img.Name]], result, live, problems[img.Name])
		if err := r.writeStatus(ctx, img, st); err != nil {
			errs = append(errs, err)
		}
	}
	for name := range r.written {
		if _, ok := byName[name]; !ok {
			delete(r.written, name)
		}
	}
	if len(errs) > 0 {
		return reconcile.Result{}, fmt.Errorf("write DaxImage status (%d failed): %w", len(errs), errs[0])
	}
	// Come back when the first live node's heartbeat would expire.
	if !nextExpiry.IsZero() {
		return reconcile.Result{RequeueAfter: nextExpiry.Sub(now) + time.Second}, nil
	}
	return reconcile.Result{}, nil
}

// imageInput builds placement input for one image, resolving its digest and
// size when neither spec, status nor any node knows them.
func (r *PlacementReconciler) imageInput(ctx context.Context, img *daxv1.DaxImage, all []daxv1.DaxNode, live []*daxv1.DaxNode) (placement.Image, string) {
	src := img.Spec.Source
	pi := placement.Image{
		Name:     img.Name,
		Priority: img.Spec.Placement.Priority,
		Policy:   placement.Policy(img.Spec.Placement.Policy),
		Replicas: int(img.Spec.Placement.Replicas),
		Digest:   src.Digest,
		Size:     daxv1.Value(src.Size),
	}
	// What an earlier pass resolved holds while the spec is unchanged.
	current := img.Status.ObservedGeneration == img.Generation
	if pi.Digest == "" && current {
		pi.Digest = img.Status.Digest
	}
	if pi.Size == 0 && pi.Digest != "" && img.Status.Digest == pi.Digest && current {
		pi.Size = daxv1.Value(img.Status.Size)
	}
	if pi.Size == 0 && pi.Digest != "" {
		pi.Size = stagedSize(all, pi.Digest)
	}
	var problem string
	if pi.Digest == "" || pi.Size == 0 {
		var d string
		var size int64
		d, size, problem = r.resolve(ctx, img)
		if problem == "" {
			pi.Digest, pi.Size = d, size
		}
	}
	for _, p := range img.Status.Placements {
		if p.State != daxv1.PlacementFailed {
			pi.Prefer = append(pi.Prefer, p.PoolID)
		}
	}
	nodes, err := matchingNodes(img, live)
	if err != nil {
		problem = err.Error()
	}
	pi.Nodes = nodes
	return pi, problem
}

// writeStatus updates the image's status when it changed. The cache may
// not have caught up with this controller's own last write yet: a status
// equal to that write is not sent again, and a conflict is not an error,
// since the newer version's watch event brings another pass.
func (r *PlacementReconciler) writeStatus(ctx context.Context, img *daxv1.DaxImage, st daxv1.DaxImageStatus) error {
	if w, ok := r.written[img.Name]; ok && w.from == img.ResourceVersion && sameButTimes(w.status, st) {
		return nil
	}
	if statusEqual(img.Status, st) {
		return nil
	}
	from := img.ResourceVersion
	img.Status = st
	if err := r.Client.Status().Update(ctx, img); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case apierrors.IsConflict(err):
			klog.V(2).InfoS("DaxImage changed since the cache saw it; the next pass writes it", "daximage", img.Name)
			return nil
		}
		return fmt.Errorf("update status of DaxImage %s: %w", img.Name, err)
	}
	if r.written == nil {
		r.written = map[string]writtenStatus{}
	}
	r.written[img.Name] = writtenStatus{from: from, status: st}
	klog.V(1).InfoS("DaxImage placed", "daximage", img.Name, "copies", st.PlacedCount, "ready", st.ReadyCount, "nodes", st.NodeCount)
	return nil
}

// resolveRetry is how long a failed resolve of an unchanged DaxImage is
// remembered, so a bad source does not stall every pass.
const resolveRetry = time.Minute

type resolveFailure struct {
	generation int64
	at         time.Time
	problem    string
}

// resolve asks the Resolver for the image's digest and size, remembering
// failures for resolveRetry.
func (r *PlacementReconciler) resolve(ctx context.Context, img *daxv1.DaxImage) (string, int64, string) {
	r.mu.Lock()
	f, failed := r.failures[img.Name]
	r.mu.Unlock()
	if failed && f.generation == img.Generation && r.now().Sub(f.at) < resolveRetry {
		return "", 0, f.problem
	}
	res := r.Resolver
	if res == nil {
		res = SourceResolver{}
	}
	src := img.Spec.Source
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d, size, err := res.Resolve(rctx, src)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		klog.ErrorS(err, "resolve image source", "daximage", img.Name, "image", src.Image)
		if r.failures == nil {
			r.failures = map[string]resolveFailure{}
		}
		p := fmt.Sprintf("resolve %s: %v", src.Image, err)
		r.failures[img.Name] = resolveFailure{generation: img.Generation, at: r.now(), problem: p}
		return "", 0, p
	}
	delete(r.failures, img.Name)
	return d, size, ""
}
