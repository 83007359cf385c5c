package driver

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/source"
	"github.com/daxfs-csi/daxfs-csi/internal/topology"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// controllerServer runs per node (external-provisioner --node-deployment:
// capacity and topology are this node's pool) or, with Options.Cluster, for
// the whole cluster from DaxNode reports. See docs/controller.md.
type controllerServer struct {
	csi.UnimplementedControllerServer
	opts    *Options
	allow   volume.AllowList
	journal *journal
	hashes  hashCache
}

func newControllerServer(opts *Options) (*controllerServer, error) {
	j, err := openJournal(opts.StateDir)
	if err != nil {
		return nil, err
	}
	return &controllerServer{opts: opts, allow: volume.AllowList(opts.AllowSources), journal: j}, nil
}

func (s *controllerServer) ControllerGetCapabilities(ctx context.Context, req *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, t := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES,
		csi.ControllerServiceCapability_RPC_GET_CAPACITY,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{
			Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: t}},
		})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

// parseParams reads StorageClass parameters: the node's attribute set;
// external-provisioner's csi.storage.k8s.io/* keys are ignored.
func parseParams(params map[string]string) (volume.Attributes, error) {
	clean := make(map[string]string, len(params))
	for k, v := range params {
		if !strings.HasPrefix(k, "csi.storage.k8s.io/") {
			clean[k] = v
		}
	}
	a, err := volume.Parse(clean)
	if err != nil {
		return volume.Attributes{}, status.Error(codes.InvalidArgument, err.Error())
	}
	return a, nil
}

// capsProblem says why caps cannot be served, "" when they can. Volumes
// are filesystems; writers are allowed only on a writable volume, whose
// writes stay on the node that makes them (so no multi-node writers).
func capsProblem(caps []*csi.VolumeCapability, writable bool) string {
	for _, c := range caps {
		if c.GetBlock() != nil {
			return "block access is not supported: daxfs volumes are read-only filesystems"
		}
		switch m := c.GetAccessMode().GetMode(); m {
		case csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
			csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY:
		case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
			csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER:
			if !writable {
				return fmt.Sprintf("access mode %s needs parameter %s: \"true\"", m, volume.AttrWritable)
			}
		default:
			return fmt.Sprintf("access mode %s is not supported (reader modes, or single-node writer with %s: \"true\")", m, volume.AttrWritable)
		}
	}
	return ""
}

// checkCaps rejects malformed capabilities with InvalidArgument.
func checkCaps(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return status.Error(codes.InvalidArgument, "volume capabilities are required")
	}
	for i, c := range caps {
		if c == nil || c.GetAccessMode() == nil {
			return status.Errorf(codes.InvalidArgument, "volume capability %d has no access mode", i)
		}
		if c.GetMount() == nil && c.GetBlock() == nil {
			return status.Errorf(codes.InvalidArgument, "volume capability %d has no access type", i)
		}
	}
	return nil
}

func (s *controllerServer) topology(space PoolSpace) *csi.Topology {
	return &csi.Topology{Segments: map[string]string{
		topology.NodeKey: s.opts.NodeID,
		topology.PoolKey: space.ID,
	}}
}

// reachable: a topology constraint names us when every key it sets that we
// know has our value, and it sets no key we do not know.
func (s *controllerServer) reachable(t *csi.Topology, space PoolSpace) bool {
	ours := s.topology(space).Segments
	for k, v := range t.GetSegments() {
		if ours[k] != v {
			return false
		}
	}
	return true
}

func roundUp(n, align int64) int64 {
	if align <= 1 {
		return n
	}
	return (n + align - 1) / align * align
}

func (s *controllerServer) existing(e *journalEntry, params map[string]string, reqBytes, limBytes int64) (*csi.CreateVolumeResponse, error) {
	if !maps.Equal(e.Params, params) {
		return nil, status.Errorf(codes.AlreadyExists, "volume %q exists with other parameters (%v)", e.Name, e.Params)
	}
	if (reqBytes > 0 && e.Capacity < reqBytes) || (limBytes > 0 && e.Capacity > limBytes) {
		return nil, status.Errorf(codes.AlreadyExists, "volume %q exists with capacity %d, outside [%d, %d]", e.Name, e.Capacity, reqBytes, limBytes)
	}
	space, err := s.space()
	if err != nil {
		return nil, err
	}
	return &csi.CreateVolumeResponse{Volume: s.csiVolume(e, space)}, nil
}

func (s *controllerServer) csiVolume(e *journalEntry, space PoolSpace) *csi.Volume {
	topo := []*csi.Topology{s.topology(space)}
	if len(e.Topology) > 0 || s.opts.Pool == nil {
		topo = topo[:0]
		for _, seg := range e.Topology {
			topo = append(topo, &csi.Topology{Segments: maps.Clone(seg)})
		}
	}
	return &csi.Volume{
		VolumeId:           e.ID,
		CapacityBytes:      e.Capacity,
		VolumeContext:      maps.Clone(e.Context),
		AccessibleTopology: topo,
	}
}

// space is this node's pool; a cluster-mode controller without one gets
// a zero PoolSpace (its volumes carry their own topology).
func (s *controllerServer) space() (PoolSpace, error) {
	if s.opts.Pool == nil {
		return PoolSpace{}, nil
	}
	space, err := s.opts.Pool.Space()
	if err != nil {
		return PoolSpace{}, status.Errorf(codes.Unavailable, "device pool: %v", err)
	}
	return space, nil
}

// clusterTopology lists the segments whose pools can hold need bytes of
// digest and that a requisite topology (if any) allows: those holding a
// copy first; when none fits, any pool with room (the node stages on
// first use).
func (s *controllerServer) clusterTopology(ctx context.Context, requisite []*csi.Topology, digest string, need int64) ([]map[string]string, error) {
	for _, d := range []string{digest, ""} {
		segs, err := s.opts.Cluster.Topology(ctx, d)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "cluster topology: %v", err)
		}
		var fit []map[string]string
		for _, seg := range segs {
			if len(requisite) > 0 && !slices.ContainsFunc(requisite, func(t *csi.Topology) bool { return segmentIn(t.GetSegments(), seg) }) {
				continue
			}
			c, err := s.opts.Cluster.Capacity(ctx, seg, digest)
			if err != nil {
				return nil, status.Errorf(codes.Unavailable, "cluster capacity: %v", err)
			}
			if c >= need {
				fit = append(fit, seg)
			}
		}
		if len(fit) > 0 {
			return fit, nil
		}
	}
	return nil, status.Errorf(codes.ResourceExhausted,
		"no live node pool (DaxNode) allowed by the requisite topology has %d bytes free for image %s", need, digest)
}

// segmentIn: every key the constraint sets has the segment's value.
func segmentIn(constraint, seg map[string]string) bool {
	for k, v := range constraint {
		if seg[k] != v {
			return false
		}
	}
	return true
}

// DeleteVolume forgets the volume; the image's extent is freed by the node
// when its last user unstages, not here.
func (s *controllerServer) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is required")
	}
	if err := s.journal.remove(req.GetVolumeId()); err != nil {
		return nil, status.Errorf(codes.Internal, "delete volume %s: %v", req.GetVolumeId(), err)
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (s *controllerServer) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is required")
	}
	if err := checkCaps(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	e, ok := s.journal.byID(req.GetVolumeId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "volume %s does not exist", req.GetVolumeId())
	}
	writable := e.Params[volume.AttrWritable] == "true"
	if p := capsProblem(req.GetVolumeCapabilities(), writable); p != "" {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: p}, nil
	}
	if len(req.GetParameters()) > 0 {
		a, err := parseParams(req.GetParameters())
		if err != nil {
			return nil, err
		}
		if !maps.Equal(a.Context(), e.Params) {
			return &csi.ValidateVolumeCapabilitiesResponse{Message: "parameters differ from the volume's"}, nil
		}
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}

// listTokenPrefix marks our tokens: "after:<last volume id returned>".
// Resuming after an id (not an index) survives deletions between pages.
const listTokenPrefix = "after:"

func (s *controllerServer) ListVolumes(ctx context.Context, req *csi.ListVolumesRequest) (*csi.ListVolumesResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "max_entries %d is negative", req.GetMaxEntries())
	}
	after := ""
	if tok := req.GetStartingToken(); tok != "" {
		var ok bool
		after, ok = strings.CutPrefix(tok, listTokenPrefix)
		if !ok || after == "" {
			return nil, status.Errorf(codes.Aborted, "starting_token %q was not issued by this plugin", tok)
		}
	}
	space, err := s.space()
	if err != nil {
		return nil, err
	}
	resp := &csi.ListVolumesResponse{}
	for _, e := range s.journal.list() {
		if e.ID <= after {
			continue
		}
		if max := int(req.GetMaxEntries()); max > 0 && len(resp.Entries) == max {
			resp.NextToken = listTokenPrefix + resp.Entries[len(resp.Entries)-1].Volume.VolumeId
			break
		}
		resp.Entries = append(resp.Entries, &csi.ListVolumesResponse_Entry{Volume: s.csiVolume(e, space)})
	}
	return resp, nil
}

// GetCapacity reports the free device memory of this node's pool. With
// parameters naming an image whose digest is already staged, that extent
// counts as free too: a volume of that digest needs no new memory.
//
// In cluster mode the answer is the DaxNode view of the requested segment
// (all pools when none is given): the best single pool, by the same rule.
func (s *controllerServer) GetCapacity(ctx context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	space, err := s.space()
	if err != nil {
		return nil, err
	}
	zero := &csi.GetCapacityResponse{AvailableCapacity: 0}
	if t := req.GetAccessibleTopology(); s.opts.Cluster == nil && t != nil && !s.reachable(t, space) {
		return zero, nil
	}
	var a volume.Attributes
	if len(req.GetParameters()) > 0 {
		if a, err = parseParams(req.GetParameters()); err != nil {
			return nil, err
		}
	}
	if len(req.GetVolumeCapabilities()) > 0 {
		if err := checkCaps(req.GetVolumeCapabilities()); err != nil {
			return nil, err
		}
		if capsProblem(req.GetVolumeCapabilities(), a.Writable) != "" {
			return zero, nil
		}
	}
	if a.Image != "" && s.allow.Check(a.Image) != nil {
		return zero, nil
	}
	avail := space.Free
	if s.opts.Cluster != nil {
		digest := ""
		if a.Image != "" {
			digest = s.digestOf(ctx, a)
		}
		if avail, err = s.opts.Cluster.Capacity(ctx, req.GetAccessibleTopology().GetSegments(), digest); err != nil {
			return nil, status.Errorf(codes.Unavailable, "cluster capacity: %v", err)
		}
	} else if a.Image != "" {
		if n, ok := s.opts.Pool.Staged(s.digestOf(ctx, a)); ok {
			avail += n
		}
	}
	return &csi.GetCapacityResponse{
		AvailableCapacity: avail,
		MaximumVolumeSize: wrapperspb.Int64(avail),
	}, nil
}

// digestOf finds the image's digest without hashing when it can (given,
// or resolved by an earlier CreateVolume); "" when it cannot be resolved.
func (s *controllerServer) digestOf(ctx context.Context, a volume.Attributes) string {
	digest := a.Digest
	if digest == "" {
		digest, _ = s.journal.findDigest(a.Image)
	}
	if digest == "" {
		digest = s.hashes.get(a.Image)
	}
	if digest == "" {
		fi, _ := fileStat(a.Image) // before hashing: a change meanwhile misses the cache next time
		res, err := s.opts.Resolve(source.WithPullSecret(ctx, a.PullSecret), a.Image, "")
		if err != nil {
			klog.InfoS("GetCapacity: cannot resolve image, counting plain free memory", "image", a.Image, "err", err)
			return ""
		}
		digest = res.Digest
		s.hashes.put(a.Image, fi, digest)
	}
	return digest
}

// hashCache remembers the digest of file:// images by size and mtime, so
// external-provisioner's periodic GetCapacity does not hash the same file
// every poll. Only capacity uses it; CreateVolume always resolves.
type hashCache struct {
	mu sync.Mutex
	m  map[string]hashEntry
}

type hashEntry struct {
	size   int64
	mtime  time.Time
	digest string
}

func fileStat(uri string) (os.FileInfo, bool) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "file" {
		return nil, false
	}
	fi, err := os.Stat(u.Path)
	return fi, err == nil && fi.Mode().IsRegular()
}

func (c *hashCache) get(uri string) string {
	fi, ok := fileStat(uri)
	if !ok {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[uri]; ok && e.size == fi.Size() && e.mtime.Equal(fi.ModTime()) {
		return e.digest
	}
	return ""
}

func (c *hashCache) put(uri string, fi os.FileInfo, digest string) {
	if fi == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]hashEntry{}
	}
	if len(c.m) > 1024 { // bounded: a StorageClass names one image
		clear(c.m)
	}
	c.m[uri] = hashEntry{size: fi.Size(), mtime: fi.ModTime(), digest: digest}
}

// checkImageFile reads the headers of a file:// image, so a StorageClass
// naming something that is not a DAXFS image fails at CreateVolume (an
// event on the PVC) rather than at every pod start. https images are
// checked by the node when it stages them.
func checkImageFile(uri string, size int64) error {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "file" {
		return nil
	}
	f, err := os.Open(u.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := image.Open(f, size); err != nil {
		return fmt.Errorf("not a usable DAXFS image: %w", err)
	}
	return nil
}
