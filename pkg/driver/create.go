package driver

import (
	"context"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
	"github.com/daxfs-csi/daxfs-csi/internal/source"
	"github.com/daxfs-csi/daxfs-csi/internal/topology"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
)

// createRequest is a CreateVolumeRequest once checked.
type createRequest struct {
	name               string
	attrs              volume.Attributes
	params             map[string]string // attrs.Context(): what the journal compares a repeat with
	reqBytes, limBytes int64
	requisite          []*csi.Topology
}

// CreateVolume follows the pipeline's controller half: check the request,
// admit the image source, resolve (and so verify) the image, fit it into a
// pool, record the volume.
func (s *controllerServer) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	r, err := checkCreate(req)
	if err != nil {
		return nil, err
	}
	// Same name: the same request again gets the same volume.
	if e, ok := s.journal.get(r.name); ok {
		return s.existing(e, r.params, r.reqBytes, r.limBytes)
	}
	space, err := s.admit(r)
	if err != nil {
		return nil, err
	}
	res, err := s.resolveImage(ctx, r.attrs)
	if err != nil {
		return nil, err
	}
	need, segs, err := s.fit(ctx, r, res, &space)
	if err != nil {
		return nil, err
	}
	return s.record(r, res, need, segs, space)
}

// checkCreate refuses what no image volume can be: InvalidArgument.
func checkCreate(req *csi.CreateVolumeRequest) (*createRequest, error) {
	name := req.GetName()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "volume name is required")
	}
	if err := checkCaps(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	if req.GetVolumeContentSource() != nil {
		return nil, status.Error(codes.InvalidArgument, "volume content sources are not supported: the content is the image")
	}
	if len(req.GetMutableParameters()) > 0 {
		return nil, status.Error(codes.InvalidArgument, "mutable parameters are not supported")
	}
	a, err := parseParams(req.GetParameters())
	if err != nil {
		return nil, err
	}
	if p := capsProblem(req.GetVolumeCapabilities(), a.Writable); p != "" {
		return nil, status.Error(codes.InvalidArgument, p)
	}
	reqBytes, limBytes := req.GetCapacityRange().GetRequiredBytes(), req.GetCapacityRange().GetLimitBytes()
	if reqBytes < 0 || limBytes < 0 || (limBytes > 0 && reqBytes > limBytes) {
		return nil, status.Errorf(codes.InvalidArgument, "capacity range: required %d, limit %d", reqBytes, limBytes)
	}
	return &createRequest{name: name, attrs: a, params: a.Context(), reqBytes: reqBytes, limBytes: limBytes,
		requisite: req.GetAccessibilityRequirements().GetRequisite()}, nil
}

// admit checks the source against --allow-source and, per node, that the
// requisite topology reaches this node's pool; it returns the pool's space.
func (s *controllerServer) admit(r *createRequest) (PoolSpace, error) {
	if err := s.allow.Check(r.attrs.Image); err != nil {
		return PoolSpace{}, err
	}
	space, err := s.space()
	if err != nil {
		return PoolSpace{}, err
	}
	if s.opts.Cluster == nil && len(r.requisite) > 0 {
		ok := false
		for _, t := range r.requisite {
			ok = ok || s.reachable(t, space)
		}
		if !ok {
			return PoolSpace{}, status.Errorf(codes.ResourceExhausted,
				"requisite topology excludes this node's pool (%s=%s, %s=%s)", topology.NodeKey, s.opts.NodeID, topology.PoolKey, space.ID)
		}
	}
	return space, nil
}

// resolveImage names the image by content (an oci:// one is pulled and
// converted, reading the volume's pullSecret reference from ctx) and reads
// a file:// image's headers, so a file that is no DAXFS image fails here.
func (s *controllerServer) resolveImage(ctx context.Context, a volume.Attributes) (source.Resolved, error) {
	res, err := s.opts.Resolve(source.WithPullSecret(ctx, a.PullSecret), a.Image, a.Digest)
	if err != nil {
		return source.Resolved{}, status.Errorf(grpccode.Of(err), "resolve image %s: %v", a.Image, err)
	}
	if err := checkImageFile(a.Image, res.Size); err != nil {
		return source.Resolved{}, status.Errorf(codes.InvalidArgument, "image %s: %v", a.Image, err)
	}
	return res, nil
}

// fit sizes the volume (need: the image rounded up to the pool align, the
// cluster's largest in cluster mode, which it stores in space) and finds
// where it fits: the cluster's pool segments, or this node's pool.
func (s *controllerServer) fit(ctx context.Context, r *createRequest, res source.Resolved, space *PoolSpace) (int64, []map[string]string, error) {
	a := r.attrs
	if s.opts.Cluster != nil {
		align, err := s.opts.Cluster.Align(ctx)
		if err != nil {
			return 0, nil, status.Errorf(codes.Unavailable, "cluster pools: %v", err)
		}
		space.Align = align
	}
	need := roundUp(res.Size, space.Align)
	if r.limBytes > 0 && need > r.limBytes {
		return 0, nil, status.Errorf(codes.OutOfRange,
			"image %s needs %d bytes of device memory (%d rounded to the pool align %d), above the limit %d",
			a.Image, need, res.Size, space.Align, r.limBytes)
	}
	if s.opts.Cluster != nil {
		segs, err := s.clusterTopology(ctx, r.requisite, res.Digest, need)
		return need, segs, err
	}
	if _, staged := s.opts.Pool.Staged(res.Digest); !staged && need > space.Size {
		return 0, nil, status.Errorf(codes.ResourceExhausted, "image %s needs %d bytes, the pool holds %d", a.Image, need, space.Size)
	}
	return need, nil, nil
}

// record journals the volume; a concurrent create of the same name that
// won is answered as a repeat.
func (s *controllerServer) record(r *createRequest, res source.Resolved, need int64, segs []map[string]string, space PoolSpace) (*csi.CreateVolumeResponse, error) {
	resolved := r.attrs
	resolved.Digest = res.Digest
	e := &journalEntry{
		Name:      r.name,
		ID:        volume.VolumeID(r.name, resolved, res.Digest),
		Params:    r.params,
		Context:   resolved.Context(),
		Digest:    res.Digest,
		ImageSize: res.Size,
		Capacity:  max(r.reqBytes, need),
		Created:   time.Now().UTC(),
		Topology:  segs,
	}
	got, err := s.journal.add(e)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "record volume %s: %v", r.name, err)
	}
	if got != e {
		return s.existing(got, r.params, r.reqBytes, r.limBytes)
	}
	klog.InfoS("Created volume", "name", r.name, "volumeID", e.ID, "image", r.attrs.Image, "digest", e.Digest, "capacity", e.Capacity)
	return &csi.CreateVolumeResponse{Volume: s.csiVolume(e, space)}, nil
}
