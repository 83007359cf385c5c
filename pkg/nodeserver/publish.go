package nodeserver

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

// NodePublishVolume mounts the volume at the target: a read-only bind of
// the staged image, or an overlay for writable views. Inline ephemeral
// volumes (no stage call) stage their image here.
func (s *NodeServer) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	a, err := checkMountRequest(id, "target path", target, req.GetVolumeCapability(), req.GetVolumeContext())
	if err != nil {
		return nil, err
	}
	unlock, err := s.lockVolumePath(ctx, id, target)
	if err != nil {
		return nil, grpccode.ToStatus(err)
	}
	defer unlock()
	if a.Ephemeral {
		return s.publishEphemeral(ctx, req, a)
	}
	return s.publishStaged(ctx, req, a)
}

func (s *NodeServer) publishStaged(ctx context.Context, req *csi.NodePublishVolumeRequest, a volume.Attributes) (*csi.NodePublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	if err := checkPath("staging target path", req.GetStagingTargetPath()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	rec := s.volumes[state.VolumeKey(id, "")]
	s.mu.Unlock()
	if rec == nil {
		return nil, notStaged(id)
	}
	if rec.StagingPath != req.GetStagingTargetPath() {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is staged at %s, not %s", id, rec.StagingPath, req.GetStagingTargetPath())
	}
	flags, err := parseMountFlags(req.GetVolumeCapability().GetMount().GetMountFlags())
	if err != nil {
		return nil, err
	}
	want := state.Target{Writable: a.Writable && !req.GetReadonly(), Flags: flags}
	if t, ok := rec.Targets[target]; ok {
		if t != want {
			return nil, status.Errorf(codes.AlreadyExists, "volume %s is already published at %s with writable=%v flags=%q", id, target, t.Writable, t.Flags)
		}
		if err := s.ensureTargetMount(ctx, rec, target); err != nil {
			return nil, grpccode.ToStatus(err)
		}
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if err := s.checkFreePath("target path", target); err != nil {
		return nil, err
	}
	// The target binds the staging mount: make sure that one serves.
	if !s.stagingServes(rec) {
		if err := s.repairVolume(ctx, rec); err != nil {
			return nil, grpccode.ToStatus(err)
		}
	}
	s.mu.Lock()
	rec = s.volumes[state.VolumeKey(id, "")]
	s.mu.Unlock()
	// Record the target before mounting: after a crash the record names
	// every mount we may have made. Not synced: see package state.
	next := cloneVolume(rec)
	next.Targets[target] = want
	if err := s.store.SaveTarget(next, target); err != nil {
		return nil, grpccode.ToStatus(err)
	}
	s.setVolume(next)
	if err := s.mountTarget(next, target); err != nil {
		back := cloneVolume(next)
		delete(back.Targets, target)
		if serr := s.store.DeleteTarget(back, target); serr != nil {
			klog.ErrorS(serr, "Forget failed publish", "volume", id, "target", target)
		}
		s.setVolume(back)
		return nil, grpccode.ToStatus(err)
	}
	klog.InfoS("Volume published", "volume", id, "target", target, "writable", want.Writable)
	return &csi.NodePublishVolumeResponse{}, nil
}

func (s *NodeServer) publishEphemeral(ctx context.Context, req *csi.NodePublishVolumeRequest, a volume.Attributes) (*csi.NodePublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	key := state.VolumeKey(id, target)
	flags, err := parseMountFlags(req.GetVolumeCapability().GetMount().GetMountFlags())
	if err != nil {
		return nil, err
	}
	want := state.Target{Writable: a.Writable && !req.GetReadonly(), Flags: flags}
	s.mu.Lock()
	rec := s.volumes[key]
	s.mu.Unlock()
	if rec != nil {
		if !maps.Equal(rec.Context, a.Context()) || rec.Targets[target] != want {
			return nil, status.Errorf(codes.AlreadyExists, "inline volume %s is already published at %s with %v", id, target, rec.Context)
		}
		if err := s.ensureTargetMount(ctx, rec, target); err != nil {
			return nil, grpccode.ToStatus(err)
		}
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if err := s.checkFreePath("target path", target); err != nil {
		return nil, err
	}
	r, err := s.resolve(ctx, a)
	if err != nil {
		return nil, grpccode.ToStatus(err)
	}
	rec = &state.Volume{VolumeID: id, Digest: r.Digest, Ephemeral: true, Context: recordedContext(a),
		Targets: map[string]state.Target{target: want}}
	if err := s.addVolume(ctx, r, rec); err != nil {
		return nil, grpccode.ToStatus(err)
	}
	if err := s.mountTarget(rec, target); err != nil {
		if rerr := s.removeVolume(rec); rerr != nil {
			klog.ErrorS(rerr, "Roll back failed inline publish", "volume", id)
		}
		return nil, grpccode.ToStatus(err)
	}
	klog.InfoS("Inline volume published", "volume", id, "target", target, "digest", r.Digest, "writable", want.Writable)
	return &csi.NodePublishVolumeResponse{}, nil
}

// NodeUnpublishVolume unmounts and removes the target; an inline volume
// also drops its image reference. It touches only a target recorded for
// this volume id: any other (an unknown id, or another volume's target)
// answers OK and is left alone. OK, not NotFound: the spec wants unpublish
// idempotent, and a retry after a successful unpublish finds no record
// either; NotFound would have the kubelet retry forever.
func (s *NodeServer) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	if err := checkUnmountRequest(id, "target path", target); err != nil {
		return nil, err
	}
	unlock, err := s.lockVolumePath(ctx, id, target)
	if err != nil {
		return nil, grpccode.ToStatus(err)
	}
	defer unlock()

	s.mu.Lock()
	pv, eph := s.volumes[state.VolumeKey(id, "")], s.volumes[state.VolumeKey(id, target)]
	s.mu.Unlock()
	switch {
	case eph != nil:
		if err := cleanupTarget(target); err != nil {
			return nil, status.Errorf(codes.Internal, "unpublish %s: %v", id, err)
		}
		if err := s.removeVolume(eph); err != nil {
			return nil, grpccode.ToStatus(err)
		}
	case pv != nil && hasTarget(pv, target):
		if err := cleanupTarget(target); err != nil {
			return nil, status.Errorf(codes.Internal, "unpublish %s: %v", id, err)
		}
		if err := os.RemoveAll(s.layerDir(pv, target)); err != nil {
			return nil, status.Errorf(codes.Internal, "remove writable layer of %s: %v", id, err)
		}
		next := cloneVolume(pv)
		delete(next.Targets, target)
		if err := s.store.DeleteTarget(next, target); err != nil {
			return nil, grpccode.ToStatus(err)
		}
		s.setVolume(next)
	default:
		klog.InfoS("Unpublish of a target this volume does not hold; left alone", "volume", id, "target", target)
		return &csi.NodeUnpublishVolumeResponse{}, nil
	}
	klog.InfoS("Volume unpublished", "volume", id, "target", target)
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

func hasTarget(v *state.Volume, target string) bool {
	_, ok := v.Targets[target]
	return ok
}

// mountTarget makes the target's mount: an overlay over the shared image
// mount for writable views, else a read-only bind (from the staging path
// for PVs).
func (s *NodeServer) mountTarget(rec *state.Volume, target string) error {
	if err := makeDir("target path", target); err != nil {
		return err
	}
	if rec.Targets[target].Writable {
		dir := s.layerDir(rec, target)
		upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
		for _, d := range []string{upper, work} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("create writable layer: %w", err)
			}
		}
		return overlayMount(s.store.ImageMount(rec.Digest), upper, work, target, flagBits(rec.Targets[target].Flags))
	}
	src := s.store.ImageMount(rec.Digest)
	if !rec.Ephemeral {
		src = rec.StagingPath
	}
	// Each target in a peer group of its own, never the source's (mounts
	// recovered from older versions may still be shared).
	if err := makePrivate(src); err != nil {
		return err
	}
	return bindMount(src, target, true, flagBits(rec.Targets[target].Flags))
}

// ensureTargetMount repairs a recorded volume and (re)makes the target's
// mount when it is missing or stale.
func (s *NodeServer) ensureTargetMount(ctx context.Context, rec *state.Volume, target string) error {
	if err := s.repairVolume(ctx, rec); err != nil {
		return err
	}
	if mountHealthy(target) == nil {
		return nil
	}
	if err := unmountAll(target); err != nil {
		return err
	}
	s.mu.Lock()
	cur := s.volumes[rec.Key()]
	s.mu.Unlock()
	if cur == nil {
		return fmt.Errorf("volume %s vanished during repair", rec.VolumeID)
	}
	return s.mountTarget(cur, target)
}

// layerDir holds a writable target's upper and work dirs, on node disk and
// removed with the volume.
func (s *NodeServer) layerDir(rec *state.Volume, target string) string {
	return filepath.Join(s.store.VolumeDir(rec.Key()), "rw", state.TargetKey(target))
}

func (s *NodeServer) setVolume(v *state.Volume) {
	s.mu.Lock()
	s.putVolumeLocked(v)
	s.mu.Unlock()
}

// cloneVolume copies a record so readers of the old one (Snapshot, stats)
// never see a half-updated map.
func cloneVolume(v *state.Volume) *state.Volume {
	c := *v
	c.Context = maps.Clone(v.Context)
	c.Targets = maps.Clone(v.Targets)
	if c.Targets == nil {
		c.Targets = map[string]state.Target{}
	}
	return &c
}
