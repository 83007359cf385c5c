package nodeserver

import (
	"context"
	"sort"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/daxfs-csi/daxfs-csi/internal/topology"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

// NodeGetInfo reports the node id, its topology and the volume limit.
func (s *NodeServer) NodeGetInfo(ctx context.Context, req *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	seg := map[string]string{topology.NodeKey: s.opts.NodeID}
	info := s.pool.Info()
	if id := info.SharedID; id != "" {
		seg[topology.PoolKey] = id
	} else if info.ID != "" {
		seg[topology.PoolKey] = info.ID
	}
	return &csi.NodeGetInfoResponse{
		NodeId:             s.opts.NodeID,
		MaxVolumesPerNode:  s.opts.MaxVolumes,
		AccessibleTopology: &csi.Topology{Segments: seg},
	}, nil
}

// NodeGetCapabilities: stage/unstage (stage once, publish many), stats and
// volume health (CSI 1.13 replaced VOLUME_CONDITION with GET_VOLUME_HEALTH).
func (s *NodeServer) NodeGetCapabilities(ctx context.Context, req *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	var caps []*csi.NodeServiceCapability
	for _, t := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
	} {
		caps = append(caps, &csi.NodeServiceCapability{
			Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: t}},
		})
	}
	return &csi.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

// NodeGetVolumeStats reports the image's bytes and inodes: all used, none
// available (the image is full by construction).
func (s *NodeServer) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	id, path := req.GetVolumeId(), req.GetVolumePath()
	if err := requireID(id); err != nil {
		return nil, err
	}
	if path == "" {
		return nil, status.Error(codes.InvalidArgument, "volume path is required")
	}
	rec := s.findVolumePath(id, path)
	if rec == nil {
		return nil, status.Errorf(codes.NotFound, "volume %s is not mounted at %s on this node", id, path)
	}
	resp := &csi.NodeGetVolumeStatsResponse{}
	s.mu.Lock()
	if im := s.images[rec.Digest]; im != nil && im.Size > 0 {
		resp.Usage = append(resp.Usage, &csi.VolumeUsage{Unit: csi.VolumeUsage_BYTES, Total: im.Size, Used: im.Size})
	}
	s.mu.Unlock()
	if n := s.inodeCount(rec.Digest); n > 0 {
		resp.Usage = append(resp.Usage, &csi.VolumeUsage{Unit: csi.VolumeUsage_INODES, Total: n, Used: n})
	}
	return resp, nil
}

// NodeGetVolumeHealth reports INACCESSIBLE when the image mount, its FUSE
// server or the volume's own mount is gone; no entries when all serve.
func (s *NodeServer) NodeGetVolumeHealth(ctx context.Context, req *csi.NodeGetVolumeHealthRequest) (*csi.NodeGetVolumeHealthResponse, error) {
	id := req.GetVolumeId()
	if err := requireID(id); err != nil {
		return nil, err
	}
	var paths []string
	var digest string
	stale := false
	s.mu.Lock()
	for _, v := range s.volumes {
		if v.VolumeID != id {
			continue
		}
		digest = v.Digest
		if im := s.images[v.Digest]; im != nil && im.Generation != v.ImageGen {
			stale = true
		}
		if v.StagingPath != "" && (req.GetStagingTargetPath() == "" || req.GetStagingTargetPath() == v.StagingPath) {
			paths = append(paths, v.StagingPath)
		}
		for t := range v.Targets {
			if req.GetVolumePublishPath() == "" || req.GetVolumePublishPath() == t {
				paths = append(paths, t)
			}
		}
	}
	var im state.Image
	if p := s.images[digest]; p != nil {
		im = *p
	}
	s.mu.Unlock()
	if digest == "" {
		return nil, status.Errorf(codes.NotFound, "volume %s is not staged or published on this node", id)
	}
	h := &csi.VolumeHealth{VolumeId: id}
	bad := func(reason, msg string) {
		h.HealthStatuses = append(h.HealthStatuses, &csi.VolumeHealth_VolumeHealthEntry{
			Status: csi.VolumeHealthErrorType_INACCESSIBLE, Reason: reason, Message: msg})
	}
	if im.Backend == "" {
		bad("ImageNotMounted", "image "+digest+" is not mounted on this node")
	} else if err := s.imageHealthy(&im); err != nil {
		bad("ImageMountFailed", err.Error())
	}
	if stale {
		bad("StaleImageMount", "the volume's mounts still point at a previous, dead image mount")
	}
	// CSI 1.13 has no volume condition in NodeGetVolumeStats: a loaded
	// kernel module that cannot serve the volume is said here.
	if im.Backend == backendFUSE && kernelDeclined(im.Reason) {
		h.HealthStatuses = append(h.HealthStatuses, &csi.VolumeHealth_VolumeHealthEntry{
			Status: csi.VolumeHealthErrorType_DEGRADED, Reason: im.Reason, Message: im.ReasonMessage})
	}
	sort.Strings(paths)
	var broken []string
	for _, p := range paths {
		if err := mountHealthy(p); err != nil {
			broken = append(broken, err.Error())
		}
	}
	if len(broken) > 0 {
		bad("VolumeMountFailed", strings.Join(broken, "; "))
	}
	return &csi.NodeGetVolumeHealthResponse{VolumeHealth: h}, nil
}

// findVolumePath finds the record of id that has path as staging path or target.
func (s *NodeServer) findVolumePath(id, path string) *state.Volume {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.volumes {
		if v.VolumeID != id {
			continue
		}
		if _, ok := v.Targets[path]; ok || (v.StagingPath != "" && v.StagingPath == path) {
			return v
		}
	}
	return nil
}

// inodeCount reads the header of the staged image; 0 when unknown.
func (s *NodeServer) inodeCount(digest string) int64 {
	e, ok := s.pool.Lookup(digest)
	if !ok {
		return 0
	}
	b, err := s.pool.Data(e)
	if err != nil {
		return 0
	}
	im, err := image.OpenBytes(b)
	if err != nil {
		return 0
	}
	return int64(im.Info().InodeCount)
}

// ImageStatus is one staged image, for the metrics collector.
type ImageStatus struct {
	Digest      string
	Size        int64 // image bytes
	RegionBytes int64 // pool bytes the extent holds
	References  int   // volumes using it
	Backend     string
	// Reason (CamelCase) and ReasonMessage say why Backend was chosen.
	Reason, ReasonMessage string
	MountPath             string
	Healthy               bool
}

// Snapshot lists the staged images, sorted by digest. It checks each mount,
// so call it at scrape time, not in a loop.
func (s *NodeServer) Snapshot() []ImageStatus {
	s.mu.Lock()
	var out []ImageStatus
	var ims []state.Image
	for d, im := range s.images {
		out = append(out, ImageStatus{Digest: d, Size: im.Size, References: s.refsLocked(d), Backend: im.Backend,
			Reason: im.Reason, ReasonMessage: im.ReasonMessage, MountPath: s.store.ImageMount(d)})
		ims = append(ims, *im)
	}
	s.mu.Unlock()
	for i := range out {
		if e, ok := s.pool.Lookup(out[i].Digest); ok {
			out[i].RegionBytes = e.Reserved
			if e.Reserved == 0 {
				out[i].RegionBytes = e.Length
			}
		}
		out[i].Healthy = ims[i].Backend != "" && s.imageHealthy(&ims[i]) == nil
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out
}
