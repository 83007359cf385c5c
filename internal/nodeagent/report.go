package nodeagent

import (
	"context"
	"fmt"
	"maps"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

// Report writes the node's pools, their images and a fresh heartbeat into
// its DaxNode, creating it first if needed.
func (a *Agent) Report(ctx context.Context) error {
	if err := a.ensureNode(ctx); err != nil {
		return err
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var n daxv1.DaxNode
		if err := a.Client.Get(ctx, client.ObjectKey{Name: a.NodeName}, &n); err != nil {
			return fmt.Errorf("get DaxNode %s: %w", a.NodeName, err)
		}
		st := a.status(n.Status.Conditions)
		n.Status = st
		if err := a.Client.Status().Update(ctx, &n); err != nil {
			return fmt.Errorf("update DaxNode %s status: %w", a.NodeName, err)
		}
		return nil
	})
}

// labels are the DaxNode's wanted labels.
func (a *Agent) labels(ctx context.Context) (map[string]string, error) {
	if !a.CopyNodeLabels {
		return a.Labels, nil
	}
	var node corev1.Node
	if err := a.Client.Get(ctx, client.ObjectKey{Name: a.NodeName}, &node); err != nil {
		if apierrors.IsNotFound(err) {
			return a.Labels, nil
		}
		return nil, fmt.Errorf("get Node %s: %w", a.NodeName, err)
	}
	out := maps.Clone(node.Labels)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, a.Labels)
	return out, nil
}

// ensureNode creates the DaxNode or brings its labels up to date.
func (a *Agent) ensureNode(ctx context.Context) error {
	want, err := a.labels(ctx)
	if err != nil {
		return err
	}
	var n daxv1.DaxNode
	err = a.Client.Get(ctx, client.ObjectKey{Name: a.NodeName}, &n)
	if apierrors.IsNotFound(err) {
		n = daxv1.DaxNode{
			ObjectMeta: metav1.ObjectMeta{Name: a.NodeName, Labels: maps.Clone(want)},
			Spec:       daxv1.DaxNodeSpec{NodeName: a.NodeName},
		}
		if err := a.Client.Create(ctx, &n); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create DaxNode %s: %w", a.NodeName, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get DaxNode %s: %w", a.NodeName, err)
	}
	if maps.Equal(n.Labels, want) {
		return nil
	}
	n.Labels = maps.Clone(want)
	if err := a.Client.Update(ctx, &n); err != nil {
		return fmt.Errorf("update DaxNode %s labels: %w", a.NodeName, err)
	}
	return nil
}

// status builds the DaxNode status from the pools and the Stager.
func (a *Agent) status(conds []metav1.Condition) daxv1.DaxNodeStatus {
	byPool := map[string][]daxv1.StagedImage{}
	for _, s := range a.Stager.Staged() {
		im := daxv1.StagedImage{Digest: s.Digest, Size: s.Size, References: s.References, Prestaged: s.Prestaged, State: daxv1.StagedReady}
		if s.Staging {
			im.State = daxv1.StagedStaging
		}
		byPool[s.PoolID] = append(byPool[s.PoolID], im)
	}
	a.mu.Lock()
	for k, msg := range a.failures {
		byPool[k.pool] = append(byPool[k.pool], daxv1.StagedImage{Digest: k.digest, State: daxv1.StagedFailed, Message: msg, Prestaged: true})
	}
	a.mu.Unlock()

	st := daxv1.DaxNodeStatus{Heartbeat: metav1.NewTime(a.now()), Conditions: conds}
	var total, free int64
	for _, p := range a.Pools {
		info, ps := p.Info(), p.Status()
		images := byPool[info.ID]
		sort.Slice(images, func(i, j int) bool { return images[i].Digest < images[j].Digest })
		st.Pools = append(st.Pools, daxv1.PoolStatus{
			ID: info.ID, Kind: daxv1.PoolKind(info.Kind), Size: ps.Size, Free: ps.Free, Align: ps.Align,
			NUMANode: int32(info.NUMANode), SharedPoolID: info.SharedID, Images: images,
		})
		total += ps.Size
		free += ps.Free
		st.ImageCount += int32(len(images))
	}
	st.PoolCount = int32(len(st.Pools))
	st.TotalSize, st.TotalFree = daxv1.Bytes(total), daxv1.Bytes(free)
	sort.Slice(st.Pools, func(i, j int) bool { return st.Pools[i].ID < st.Pools[j].ID })
	ready := metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: "PoolsOpen", Message: fmt.Sprintf("%d pools", len(st.Pools))}
	if len(st.Pools) == 0 {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, "NoPools", "no device-memory pool is open"
	}
	meta.SetStatusCondition(&st.Conditions, ready)
	return st
}
