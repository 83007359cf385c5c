package nodeagent

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/volume"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

// Sync makes the pools match the placements: first drops the pre-stage hold
// on copies no placement wants (so evictions free room; a copy volumes still
// use stays for them), then pre-stages the copies this node is the stager of.
func (a *Agent) Sync(ctx context.Context) error {
	var images daxv1.DaxImageList
	if err := a.Client.List(ctx, &images); err != nil {
		return fmt.Errorf("list DaxImages: %w", err)
	}
	ours := map[string]string{} // pool key (shared id or id) -> pool id
	for _, p := range a.Pools {
		info := p.Info()
		key := info.SharedID
		if key == "" {
			key = info.ID
		}
		ours[key] = info.ID
	}
	wanted := map[poolDigest]bool{} // placed in one of our pools, any stager
	todo := map[poolDigest]volume.Attributes{}
	for i := range images.Items {
		img := &images.Items[i]
		if !img.DeletionTimestamp.IsZero() || img.Status.Digest == "" {
			continue
		}
		for _, pl := range img.Status.Placements {
			id, ok := ours[pl.PoolID]
			if !ok {
				continue
			}
			k := poolDigest{id, img.Status.Digest}
			wanted[k] = true
			if pl.Node == a.NodeName && pl.State != daxv1.PlacementReady {
				todo[k] = attributes(img)
			}
		}
	}
	var errs []error
	for _, s := range a.Stager.Staged() {
		k := poolDigest{s.PoolID, s.Digest}
		if !s.Prestaged || wanted[k] {
			continue
		}
		if err := a.Stager.ReleasePrestaged(ctx, s.PoolID, s.Digest); err != nil {
			errs = append(errs, fmt.Errorf("release pre-staged %s in pool %s: %w", s.Digest, s.PoolID, err))
			continue
		}
		klog.InfoS("released pre-staged image", "node", a.NodeName, "pool", s.PoolID, "digest", s.Digest)
	}
	a.forgetFailures(wanted)
	for k, attrs := range todo {
		if err := a.Stager.Prestage(ctx, k.pool, attrs); err != nil {
			a.setFailure(k, err.Error())
			errs = append(errs, fmt.Errorf("pre-stage %s in pool %s: %w", k.digest, k.pool, err))
			continue
		}
		a.setFailure(k, "")
		klog.V(1).InfoS("pre-staged image", "node", a.NodeName, "pool", k.pool, "digest", k.digest, "image", attrs.Image)
	}
	if len(errs) > 0 {
		return fmt.Errorf("sync placements (%d errors): %w", len(errs), errs[0])
	}
	return nil
}

// attributes are the volume attributes of a DaxImage's source.
func attributes(img *daxv1.DaxImage) volume.Attributes {
	s := img.Spec.Source
	a := volume.Attributes{Image: s.Image, Digest: img.Status.Digest, Mount: volume.MountMode(s.Mount), Writable: s.Writable}
	if a.Mount == "" {
		a.Mount = volume.MountAuto
	}
	return a
}

func (a *Agent) setFailure(k poolDigest, msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if msg == "" {
		delete(a.failures, k)
		return
	}
	if a.failures == nil {
		a.failures = map[poolDigest]string{}
	}
	a.failures[k] = msg
}

// forgetFailures drops failures of copies no longer placed.
func (a *Agent) forgetFailures(wanted map[poolDigest]bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.failures {
		if !wanted[k] {
			delete(a.failures, k)
		}
	}
}
