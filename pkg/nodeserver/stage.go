package nodeserver

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

// NodeStageVolume stages the PV's image (once per digest) and mounts it
// read-only at the staging path as an overlay of the shared image mount.
func (s *NodeServer) NodeStageVolume(ctx context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	id, staging := req.GetVolumeId(), req.GetStagingTargetPath()
	a, err := checkMountRequest(id, "staging target path", staging, req.GetVolumeCapability(), req.GetVolumeContext())
	if err != nil {
		return nil, err
	}
	if a.Ephemeral {
		return nil, status.Error(codes.InvalidArgument, "an ephemeral inline volume is never staged")
	}
	unlock, err := s.lockVolumePath(ctx, id, staging)
	if err != nil {
		return nil, grpccode.ToStatus(err)
	}
	defer unlock()

	key := state.VolumeKey(id, "")
	s.mu.Lock()
	rec := s.volumes[key]
	s.mu.Unlock()
	if rec != nil {
		if rec.StagingPath != staging || !maps.Equal(rec.Context, a.Context()) {
			return nil, status.Errorf(codes.AlreadyExists,
				"volume %s is already staged at %s with %v; asked for %s with %v", id, rec.StagingPath, rec.Context, staging, a.Context())
		}
		// Idempotent retry: make sure the staging mount is (still) there.
		if err := s.repairVolume(ctx, rec); err != nil {
			return nil, grpccode.ToStatus(err)
		}
		return &csi.NodeStageVolumeResponse{}, nil
	}

	if err := s.checkFreePath("staging target path", staging); err != nil {
		return nil, err
	}
	r, err := s.resolve(ctx, a)
	if err != nil {
		return nil, grpccode.ToStatus(err)
	}
	rec = &state.Volume{VolumeID: id, Digest: r.Digest, StagingPath: staging, Context: recordedContext(a)}
	if err := s.addVolume(ctx, r, rec); err != nil {
		return nil, grpccode.ToStatus(err)
	}
	if err := s.mountStaging(rec); err != nil {
		s.removeVolume(rec)
		return nil, grpccode.ToStatus(err)
	}
	klog.InfoS("Volume staged", "volume", id, "digest", r.Digest, "stagingPath", staging)
	return &csi.NodeStageVolumeResponse{}, nil
}

// NodeUnstageVolume undoes NodeStageVolume; the last user of the image
// releases it. A volume not staged at that path answers OK and nothing is
// touched (the spec's words; retries are idempotent): the path may be
// another volume's.
func (s *NodeServer) NodeUnstageVolume(ctx context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	id, staging := req.GetVolumeId(), req.GetStagingTargetPath()
	if err := checkUnmountRequest(id, "staging target path", staging); err != nil {
		return nil, err
	}
	unlock, err := s.lockVolumePath(ctx, id, staging)
	if err != nil {
		return nil, grpccode.ToStatus(err)
	}
	defer unlock()

	s.mu.Lock()
	rec := s.volumes[state.VolumeKey(id, "")]
	s.mu.Unlock()
	if rec == nil || rec.StagingPath != staging {
		klog.InfoS("Unstage of a path this volume is not staged at; left alone", "volume", id, "stagingPath", staging)
		return &csi.NodeUnstageVolumeResponse{}, nil
	}
	// Targets whose directory is gone (removed behind our back) do not
	// hold the volume; live ones do.
	for t := range rec.Targets {
		if _, err := os.Lstat(t); os.IsNotExist(err) {
			s.forgetTarget(rec, t)
		}
	}
	s.mu.Lock()
	rec = s.volumes[state.VolumeKey(id, "")]
	s.mu.Unlock()
	if len(rec.Targets) > 0 {
		ts := make([]string, 0, len(rec.Targets))
		for t := range rec.Targets {
			ts = append(ts, t)
		}
		sort.Strings(ts)
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is still published at %v; unpublish first", id, ts)
	}
	if err := unmountAll(staging); err != nil {
		return nil, status.Errorf(codes.Internal, "unstage %s: %v", id, err)
	}
	if err := s.removeVolume(rec); err != nil {
		return nil, grpccode.ToStatus(err)
	}
	klog.InfoS("Volume unstaged", "volume", id, "digest", rec.Digest)
	return &csi.NodeUnstageVolumeResponse{}, nil
}

// addVolume makes r's image ready and records rec as one more user of it,
// both under the digest lock so a concurrent last-user release cannot drop
// the image in between.
func (s *NodeServer) addVolume(ctx context.Context, r resolved, rec *state.Volume) error {
	unlock, err := s.imgLocks.LockCtx(ctx, r.Digest)
	if err != nil {
		return err
	}
	defer unlock()
	im, err := s.ensureImage(ctx, r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	rec.ImageGen = im.Generation
	s.mu.Unlock()
	save := s.store.SaveVolume
	if rec.Ephemeral {
		save = s.store.SavePublish // an inline volume's record is its publish
	}
	if err := save(rec); err != nil {
		s.forgetImageIfUnused(r.Digest)
		return err
	}
	s.mu.Lock()
	s.putVolumeLocked(rec)
	s.mu.Unlock()
	return nil
}

// removeVolume forgets rec (its writable layers too) and releases its image
// when it was the last user.
func (s *NodeServer) removeVolume(rec *state.Volume) error {
	key := rec.Key()
	if err := s.store.DeleteVolume(key); err != nil {
		return err
	}
	s.mu.Lock()
	s.deleteVolumeLocked(key)
	s.mu.Unlock()
	return s.releaseImage(rec.Digest)
}

// forgetImageIfUnused drops digest's image if no volume uses it. The caller
// holds imgLocks for digest; s.mu is taken here.
func (s *NodeServer) forgetImageIfUnused(digest string) {
	s.mu.Lock()
	im := s.images[digest]
	s.mu.Unlock()
	if im != nil {
		s.forgetIfUnused(im)
	}
}

// mountStaging mounts the image read-only at the staging path as an
// overlay of the shared image mount, not a bind of it. The kubelet unstages
// only when no other mount has the staging path's device and root
// (GetDeviceMountRefs); a bind would share both with the image mount and
// with every other volume of the image, so no PV would ever be unstaged.
// An overlay has a device of its own, and its reads go to the image's
// inodes, so the page cache stays shared.
func (s *NodeServer) mountStaging(rec *state.Volume) error {
	if err := makeDir("staging target path", rec.StagingPath); err != nil {
		return err
	}
	// A lower-only overlay needs two layers; the second is always empty.
	empty := filepath.Join(s.opts.StateDir, "empty")
	if err := os.MkdirAll(empty, 0o555); err != nil {
		return fmt.Errorf("create empty overlay layer: %w", err)
	}
	if err := readOnlyOverlay([]string{s.store.ImageMount(rec.Digest), empty}, rec.StagingPath); err != nil {
		return err
	}
	// Targets bind the staging mount; see makePrivate.
	if err := makePrivate(rec.StagingPath); err != nil {
		if uerr := unmountAll(rec.StagingPath); uerr != nil {
			klog.ErrorS(uerr, "Undo staging mount", "path", rec.StagingPath)
		}
		return err
	}
	return nil
}

// ensureImageFor makes the image of a recorded volume mounted and serving.
func (s *NodeServer) ensureImageFor(ctx context.Context, rec *state.Volume) error {
	a, err := volume.Parse(rec.Context)
	if err != nil {
		return fmt.Errorf("recorded context of %s: %w", rec.VolumeID, err)
	}
	unlock, err := s.imgLocks.LockCtx(ctx, rec.Digest)
	if err != nil {
		return err
	}
	defer unlock()
	s.mu.Lock()
	im := s.images[rec.Digest]
	s.mu.Unlock()
	if im != nil && im.Backend != "" && s.imageHealthy(im) == nil {
		return nil
	}
	mode, strict := s.effectiveMode(a.Mount)
	size := int64(0)
	if im != nil {
		size = im.Size
	} else if e, ok := s.pool.Lookup(rec.Digest); ok {
		size = e.Length
	} else {
		// Gone from the pool and from our records: fetch it again.
		a.Digest = rec.Digest // keeps the pull secret and everything else the volume said
		r, err := s.resolve(ctx, a)
		if err != nil {
			return err
		}
		size = r.Size
	}
	_, err = s.ensureImage(ctx, resolved{URI: a.Image, Digest: rec.Digest, Size: size, Mode: mode, Strict: strict, PullSecret: a.PullSecretRef()})
	return err
}

// recordedContext is what the state dir keeps of a volume's attributes: the
// canonical context with the pull secret qualified by the pod's namespace,
// which the kubelet does not send again after a restart.
func recordedContext(a volume.Attributes) map[string]string {
	m := a.Context()
	if ref := a.PullSecretRef(); ref != "" {
		m[volume.AttrPullSecret] = ref
	}
	return m
}
