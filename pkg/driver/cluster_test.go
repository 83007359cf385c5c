package driver

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/daxfs-csi/daxfs-csi/internal/topology"
)

// fakeCluster is a fixed DaxNode view: free bytes and staged digests per
// {node, pool} segment.
type fakeCluster struct {
	free    map[string]int64          // "node/pool" -> free bytes
	staged  map[string]map[string]int // "node/pool" -> digest -> region bytes
	align   int64
	healthy error
}

func key(seg map[string]string) string { return seg[topology.NodeKey] + "/" + seg[topology.PoolKey] }

func (f *fakeCluster) segs() []map[string]string {
	var out []map[string]string
	for k := range f.free {
		n, p, _ := strings.Cut(k, "/")
		out = append(out, map[string]string{topology.NodeKey: n, topology.PoolKey: p})
	}
	return out
}

func (f *fakeCluster) Capacity(ctx context.Context, seg map[string]string, digest string) (int64, error) {
	var best int64
	for _, s := range f.segs() {
		if !segmentIn(seg, s) {
			continue
		}
		best = max(best, f.free[key(s)]+int64(f.staged[key(s)][digest]))
	}
	return best, nil
}

func (f *fakeCluster) Topology(ctx context.Context, digest string) ([]map[string]string, error) {
	var with []map[string]string
	for _, s := range f.segs() {
		if _, ok := f.staged[key(s)][digest]; ok {
			with = append(with, s)
		}
	}
	if len(with) > 0 {
		return with, nil
	}
	return f.segs(), nil
}

func (f *fakeCluster) Align(ctx context.Context) (int64, error) { return f.align, nil }
func (f *fakeCluster) Healthy(ctx context.Context) error        { return f.healthy }

func topoKeys(v *csi.Volume) []string {
	var out []string
	for _, t := range v.GetAccessibleTopology() {
		out = append(out, key(t.GetSegments()))
	}
	return out
}

// A cluster-mode controller needs no pool: sizes with the cluster's align,
// places on segments with room (a staged copy first, falling back to any
// pool with room when the staged ones are excluded), and keeps the
// topology in its journal.
func TestClusterModeController(t *testing.T) {
	dir := t.TempDir()
	img, digest := writeImage(t, dir, 3<<20) // > 2 MiB: needs two 2 MiB extents
	fc := &fakeCluster{
		free:   map[string]int64{"a/p1": 64 << 20, "b/p2": 1 << 20, "c/p3": 2 << 20},
		staged: map[string]map[string]int{"b/p2": {digest: 4 << 20}},
		align:  testAlign,
	}
	s := start(t, Options{Cluster: fc, AllowSources: []string{"file://" + dir + "/"}})

	create := func(name string, requisite ...string) (*csi.CreateVolumeResponse, error) {
		req := &csi.CreateVolumeRequest{Name: name, Parameters: map[string]string{"image": img},
			VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY)}}
		if len(requisite) > 0 {
			req.AccessibilityRequirements = &csi.TopologyRequirement{}
			for _, n := range requisite {
				req.AccessibilityRequirements.Requisite = append(req.AccessibilityRequirements.Requisite,
					&csi.Topology{Segments: map[string]string{topology.NodeKey: n}})
			}
		}
		return s.ctrl.CreateVolume(bg, req)
	}
	r, err := create("staged")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(topoKeys(r.GetVolume()), ","); got != "b/p2" {
		t.Errorf("topology %s, want b/p2 (holds the copy)", got)
	}
	if r.GetVolume().GetCapacityBytes() != 4<<20 {
		t.Errorf("capacity %d, want 4 MiB (3 MiB image rounded to the cluster align)", r.GetVolume().GetCapacityBytes())
	}
	// b excluded: only a has 4 MiB free (c has 2).
	r, err = create("elsewhere", "a", "c")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(topoKeys(r.GetVolume()), ","); got != "a/p1" {
		t.Errorf("topology %s, want a/p1", got)
	}
	_, err = create("nowhere", "c")
	wantCode(t, err, codes.ResourceExhausted)

	l, err := s.ctrl.ListVolumes(bg, &csi.ListVolumesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, e := range l.GetEntries() {
		listed = append(listed, strings.Join(topoKeys(e.GetVolume()), ","))
	}
	slices.Sort(listed)
	if strings.Join(listed, " ") != "a/p1 b/p2" {
		t.Errorf("ListVolumes topologies %v, want the journal's a/p1 and b/p2", listed)
	}

	capacity := func(node string, params map[string]string) int64 {
		t.Helper()
		req := &csi.GetCapacityRequest{Parameters: params}
		if node != "" {
			req.AccessibleTopology = &csi.Topology{Segments: map[string]string{topology.NodeKey: node}}
		}
		c, err := s.ctrl.GetCapacity(bg, req)
		if err != nil {
			t.Fatal(err)
		}
		return c.GetAvailableCapacity()
	}
	for _, c := range []struct {
		node   string
		params map[string]string
		want   int64
	}{
		{"b", nil, 1 << 20},
		{"b", map[string]string{"image": img, "digest": digest}, 5 << 20},
		{"b", map[string]string{"image": img}, 5 << 20}, // digest from the journal
		{"", nil, 64 << 20},
		{"a", map[string]string{"image": "file:///elsewhere/x.daxfs"}, 0}, // not allowed
	} {
		if got := capacity(c.node, c.params); got != c.want {
			t.Errorf("GetCapacity(%s, %v) = %d, want %d", c.node, c.params, got, c.want)
		}
	}

	if _, err := s.ident.Probe(bg, &csi.ProbeRequest{}); err != nil {
		t.Fatalf("Probe with the API server up: %v", err)
	}
	fc.healthy = errors.New("connection refused")
	_, err = s.ident.Probe(bg, &csi.ProbeRequest{})
	wantCode(t, err, codes.FailedPrecondition)
}

// Only a cluster-mode controller may run without a pool.
func TestClusterModeNeedsPoolElsewhere(t *testing.T) {
	for _, c := range []struct {
		mode    Mode
		cluster Cluster
		ok      bool
	}{
		{ModeController, &fakeCluster{}, true},
		{ModeController, nil, false},
		{ModeAll, &fakeCluster{}, false},
	} {
		_, err := New(Options{DriverName: "d", NodeID: "n", Endpoint: "unix:///x.sock", Mode: c.mode, Cluster: c.cluster,
			StateDir: t.TempDir(), Node: csi.UnimplementedNodeServer{}})
		if (err == nil) != c.ok {
			t.Errorf("mode %s cluster %v: err %v, want ok=%v", c.mode, c.cluster != nil, err, c.ok)
		}
	}
}
