package driver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/daxfs-csi/daxfs-csi/internal/source"
	"github.com/daxfs-csi/daxfs-csi/internal/topology"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

const imageBytes = 3<<20 + 123 // needs two 2 MiB extents

type ctrlFixture struct {
	*testServer
	pool   *daxdev.Pool
	uri    string
	digest string
	dir    string
}

func newCtrl(t *testing.T) *ctrlFixture {
	t.Helper()
	dir := t.TempDir()
	uri, digest := writeImage(t, dir, imageBytes)
	pool := openPool(t, 64<<20)
	ts := start(t, Options{Pool: PoolOf(pool), AllowSources: []string{"file://" + dir}})
	return &ctrlFixture{testServer: ts, pool: pool, uri: uri, digest: digest, dir: dir}
}

func (f *ctrlFixture) create(name string, params map[string]string, cr *csi.CapacityRange, caps ...*csi.VolumeCapability) (*csi.Volume, error) {
	if len(caps) == 0 {
		caps = []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY)}
	}
	resp, err := f.ctrl.CreateVolume(bg, &csi.CreateVolumeRequest{Name: name, Parameters: params, CapacityRange: cr, VolumeCapabilities: caps})
	return resp.GetVolume(), err
}

func TestCreateVolumeSizesTopologyContext(t *testing.T) {
	f := newCtrl(t)
	params := map[string]string{
		"image": f.uri,
		// What external-provisioner adds; must be ignored, not rejected.
		"csi.storage.k8s.io/pv/name":                 "pv-1",
		"csi.storage.k8s.io/provisioner-secret-name": "x",
	}
	v, err := f.create("pvc-1", params, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.GetCapacityBytes() != 4<<20 {
		t.Fatalf("capacity = %d, want the image rounded up to the 2 MiB align (%d)", v.GetCapacityBytes(), 4<<20)
	}
	if got := v.GetVolumeContext(); got["image"] != f.uri || got["digest"] != f.digest || len(got) != 2 {
		t.Fatalf("volume context = %v, want image and resolved digest only", got)
	}
	if !strings.HasPrefix(v.GetVolumeId(), "daxfs-"+strings.TrimPrefix(f.digest, "sha256:")[:16]) {
		t.Fatalf("volume id %q is not derived from the digest", v.GetVolumeId())
	}
	topo := v.GetAccessibleTopology()
	if len(topo) != 1 || topo[0].Segments[topology.NodeKey] != "node-a" || topo[0].Segments[topology.PoolKey] != f.pool.Info().ID {
		t.Fatalf("topology = %v", topo)
	}

	// required above the need: granted as asked (CSI: at least required).
	v2, err := f.create("pvc-2", params, &csi.CapacityRange{RequiredBytes: 10 << 30})
	if err != nil || v2.GetCapacityBytes() != 10<<30 {
		t.Fatalf("required 10Gi: %v, %v", v2, err)
	}
	// A limit below what the image needs.
	_, err = f.create("pvc-3", params, &csi.CapacityRange{LimitBytes: 3 << 20})
	wantCode(t, err, codes.OutOfRange)
	_, err = f.create("pvc-4", params, &csi.CapacityRange{RequiredBytes: 2, LimitBytes: 1})
	wantCode(t, err, codes.InvalidArgument)
	// Exactly the need as limit is fine.
	if _, err := f.create("pvc-5", params, &csi.CapacityRange{LimitBytes: 4 << 20}); err != nil {
		t.Fatal(err)
	}
}

func TestCreateVolumeIdempotence(t *testing.T) {
	f := newCtrl(t)
	params := map[string]string{"image": f.uri}
	v1, err := f.create("vol", params, &csi.CapacityRange{RequiredBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := f.create("vol", params, &csi.CapacityRange{RequiredBytes: 8 << 20})
	if err != nil || v2.GetVolumeId() != v1.GetVolumeId() || v2.GetCapacityBytes() != v1.GetCapacityBytes() {
		t.Fatalf("repeat: %v, %v; want %v", v2, err, v1)
	}
	// A smaller request is still satisfied by the volume.
	if v3, err := f.create("vol", params, nil); err != nil || v3.GetVolumeId() != v1.GetVolumeId() {
		t.Fatalf("repeat without range: %v, %v", v3, err)
	}
	_, err = f.create("vol", params, &csi.CapacityRange{RequiredBytes: 16 << 20})
	wantCode(t, err, codes.AlreadyExists)
	_, err = f.create("vol", params, &csi.CapacityRange{LimitBytes: 4 << 20})
	wantCode(t, err, codes.AlreadyExists)
	_, err = f.create("vol", map[string]string{"image": f.uri, "mount": "fuse"}, nil)
	wantCode(t, err, codes.AlreadyExists)

	// Another name with the same parameters is another volume.
	v4, err := f.create("vol-b", params, nil)
	if err != nil || v4.GetVolumeId() == v1.GetVolumeId() {
		t.Fatalf("second name: %v, %v", v4, err)
	}

	// The journal survives a restart: same id, and the name still conflicts.
	f.d.Stop()
	ts := start(t, Options{Pool: PoolOf(f.pool), StateDir: f.opts.StateDir, AllowSources: f.opts.AllowSources})
	f.testServer = ts
	v5, err := f.create("vol", params, &csi.CapacityRange{RequiredBytes: 8 << 20})
	if err != nil || v5.GetVolumeId() != v1.GetVolumeId() {
		t.Fatalf("after restart: %v, %v", v5, err)
	}
	_, err = f.create("vol", map[string]string{"image": f.uri, "writable": "true"}, nil)
	wantCode(t, err, codes.AlreadyExists)
}

func TestCreateVolumeRejects(t *testing.T) {
	f := newCtrl(t)
	ok := map[string]string{"image": f.uri}
	block := &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
	}
	other := t.TempDir()
	outside, _ := writeImage(t, other, 100)
	for _, c := range []struct {
		name   string
		params map[string]string
		caps   []*csi.VolumeCapability
		want   codes.Code
		say    string
	}{
		{"", ok, nil, codes.InvalidArgument, "name"},
		{"no-image", map[string]string{"mount": "fuse"}, nil, codes.InvalidArgument, "image is required"},
		{"unknown-key", map[string]string{"image": f.uri, "colour": "red"}, nil, codes.InvalidArgument, "colour"},
		{"bad-digest", map[string]string{"image": f.uri, "digest": "md5:1"}, nil, codes.InvalidArgument, "digest"},
		{"block", ok, []*csi.VolumeCapability{block}, codes.InvalidArgument, "block"},
		{"writer", ok, []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)}, codes.InvalidArgument, "writable"},
		{"multi-writer", map[string]string{"image": f.uri, "writable": "true"}, []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)}, codes.InvalidArgument, "MULTI_NODE_MULTI_WRITER"},
		{"no-mode", ok, []*csi.VolumeCapability{{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}}}, codes.InvalidArgument, "access mode"},
		{"not-allowed", map[string]string{"image": outside}, nil, codes.PermissionDenied, "allow-source"},
		{"missing", map[string]string{"image": "file://" + filepath.Join(f.dir, "nope.daxfs")}, nil, codes.NotFound, "nope.daxfs"},
	} {
		_, err := f.create(c.name, c.params, nil, c.caps...)
		if c.want == codes.OK {
			continue
		}
		wantCode(t, err, c.want)
		if !strings.Contains(err.Error(), c.say) {
			t.Errorf("%s: error %q does not say %q", c.name, err, c.say)
		}
	}
	// A file that is not a DAXFS image.
	junk := filepath.Join(f.dir, "junk.daxfs")
	if err := os.WriteFile(junk, make([]byte, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := f.create("junk", map[string]string{"image": "file://" + junk}, nil)
	wantCode(t, err, codes.InvalidArgument)
	if !strings.Contains(err.Error(), "not a usable DAXFS image") {
		t.Errorf("junk image error %q", err)
	}

	// No capabilities at all.
	_, err = f.ctrl.CreateVolume(bg, &csi.CreateVolumeRequest{Name: "x", Parameters: ok})
	wantCode(t, err, codes.InvalidArgument)

	// Writer access on a writable volume is fine.
	if _, err := f.create("w", map[string]string{"image": f.uri, "writable": "true"}, nil,
		mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)); err != nil {
		t.Fatal(err)
	}

	// A requisite topology that is not ours.
	_, err = f.ctrl.CreateVolume(bg, &csi.CreateVolumeRequest{
		Name: "elsewhere", Parameters: ok,
		VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY)},
		AccessibilityRequirements: &csi.TopologyRequirement{Requisite: []*csi.Topology{
			{Segments: map[string]string{topology.NodeKey: "node-b"}},
		}},
	})
	wantCode(t, err, codes.ResourceExhausted)
	_, err = f.ctrl.CreateVolume(bg, &csi.CreateVolumeRequest{
		Name: "here", Parameters: ok,
		VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY)},
		AccessibilityRequirements: &csi.TopologyRequirement{Requisite: []*csi.Topology{
			{Segments: map[string]string{topology.NodeKey: "node-b"}},
			{Segments: map[string]string{topology.NodeKey: "node-a"}},
		}},
	})
	if err != nil {
		t.Fatalf("requisite naming this node: %v", err)
	}
}

func TestImageLargerThanPool(t *testing.T) {
	dir := t.TempDir()
	uri, _ := writeImage(t, dir, 20<<20)
	ts := start(t, Options{Pool: PoolOf(openPool(t, 16<<20)), AllowSources: []string{"file://" + dir + "/"}})
	_, err := ts.ctrl.CreateVolume(bg, &csi.CreateVolumeRequest{Name: "big", Parameters: map[string]string{"image": uri},
		VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY)}})
	wantCode(t, err, codes.ResourceExhausted)
}

func TestDeleteValidateList(t *testing.T) {
	f := newCtrl(t)
	params := map[string]string{"image": f.uri}
	var ids []string
	for i := range 5 {
		v, err := f.create(fmt.Sprintf("v%d", i), params, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.GetVolumeId())
	}

	// Pagination: pages of 2 cover all 5 exactly once.
	seen := map[string]int{}
	var deleted []string
	tok := ""
	pages := 0
	for {
		resp, err := f.ctrl.ListVolumes(bg, &csi.ListVolumesRequest{MaxEntries: 2, StartingToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(resp.GetEntries()) > 2 {
			t.Fatalf("page of %d entries, max 2", len(resp.GetEntries()))
		}
		for _, e := range resp.GetEntries() {
			seen[e.GetVolume().GetVolumeId()]++
			if e.GetVolume().GetVolumeContext()["digest"] != f.digest {
				t.Fatalf("listed volume lacks its context: %v", e.GetVolume())
			}
		}
		if tok = resp.GetNextToken(); tok == "" {
			break
		}
		// A deleted volume between pages does not break the token.
		if pages == 1 {
			for id := range seen {
				deleted = append(deleted, id)
				if _, err := f.ctrl.DeleteVolume(bg, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if len(seen) != 5 || pages != 3 {
		t.Fatalf("saw %v in %d pages", seen, pages)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s listed %d times", id, n)
		}
	}
	all, err := f.ctrl.ListVolumes(bg, &csi.ListVolumesRequest{})
	if err != nil || len(all.GetEntries()) != 3 || all.GetNextToken() != "" {
		t.Fatalf("after deleting 2: %v, %v", all, err)
	}
	_, err = f.ctrl.ListVolumes(bg, &csi.ListVolumesRequest{StartingToken: "invalid-token"})
	wantCode(t, err, codes.Aborted)
	_, err = f.ctrl.ListVolumes(bg, &csi.ListVolumesRequest{MaxEntries: -1})
	wantCode(t, err, codes.InvalidArgument)

	live := all.GetEntries()[0].GetVolume().GetVolumeId()
	gone := deleted[0]
	if len(ids) != 5 {
		t.Fatal(ids)
	}

	// Delete: idempotent, unknown ids fine, empty id not.
	for range 2 {
		if _, err := f.ctrl.DeleteVolume(bg, &csi.DeleteVolumeRequest{VolumeId: gone}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.ctrl.DeleteVolume(bg, &csi.DeleteVolumeRequest{VolumeId: "no-such-volume"}); err != nil {
		t.Fatal(err)
	}
	_, err = f.ctrl.DeleteVolume(bg, &csi.DeleteVolumeRequest{})
	wantCode(t, err, codes.InvalidArgument)

	// Validate.
	reader := []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY)}
	r, err := f.ctrl.ValidateVolumeCapabilities(bg, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: live, VolumeCapabilities: reader})
	if err != nil || len(r.GetConfirmed().GetVolumeCapabilities()) != 1 {
		t.Fatalf("validate reader: %v, %v", r, err)
	}
	r, err = f.ctrl.ValidateVolumeCapabilities(bg, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: live,
		VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)}})
	if err != nil || r.GetConfirmed() != nil || !strings.Contains(r.GetMessage(), "writable") {
		t.Fatalf("validate writer on a read-only volume: %v, %v", r, err)
	}
	r, err = f.ctrl.ValidateVolumeCapabilities(bg, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: live, VolumeCapabilities: reader,
		Parameters: map[string]string{"image": f.uri, "mount": "kernel"}})
	if err != nil || r.GetConfirmed() != nil {
		t.Fatalf("validate with other parameters: %v, %v", r, err)
	}
	_, err = f.ctrl.ValidateVolumeCapabilities(bg, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: gone, VolumeCapabilities: reader})
	wantCode(t, err, codes.NotFound)
	_, err = f.ctrl.ValidateVolumeCapabilities(bg, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: live})
	wantCode(t, err, codes.InvalidArgument)
	_, err = f.ctrl.ValidateVolumeCapabilities(bg, &csi.ValidateVolumeCapabilitiesRequest{VolumeCapabilities: reader})
	wantCode(t, err, codes.InvalidArgument)
}

func TestGetCapacity(t *testing.T) {
	f := newCtrl(t)
	capacity := func(req *csi.GetCapacityRequest) int64 {
		t.Helper()
		resp, err := f.ctrl.GetCapacity(bg, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetAvailableCapacity()
	}
	free := f.pool.Status().Free
	if free <= 0 {
		t.Fatalf("fresh pool free = %d", free)
	}
	if got := capacity(&csi.GetCapacityRequest{}); got != free {
		t.Fatalf("capacity = %d, want pool free %d", got, free)
	}
	withImage := &csi.GetCapacityRequest{Parameters: map[string]string{"image": f.uri, "csi.storage.k8s.io/fstype": "x"}}
	if got := capacity(withImage); got != free {
		t.Fatalf("capacity for an unstaged image = %d, want %d", got, free)
	}

	// Stage the image into the real pool, as the node would.
	img, err := os.ReadFile(strings.TrimPrefix(f.uri, "file://"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Stage(context.Background(), f.digest, int64(len(img)), "node/test", func(dst []byte) error {
		copy(dst, img)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	free2 := f.pool.Status().Free
	if free2 != free-4<<20 {
		t.Fatalf("free after staging %d bytes = %d, want %d", len(img), free2, free-4<<20)
	}
	if got := capacity(&csi.GetCapacityRequest{}); got != free2 {
		t.Fatalf("plain capacity = %d, want %d", got, free2)
	}
	// The staged extent counts as free for volumes of its digest: by
	// hashing the file, by a given digest, and via the journal.
	if got := capacity(withImage); got != free {
		t.Fatalf("capacity for the staged image = %d, want %d", got, free)
	}
	byDigest := &csi.GetCapacityRequest{Parameters: map[string]string{"image": "file:///elsewhere/x.daxfs", "digest": f.digest}}
	if got := capacity(byDigest); got != 0 {
		t.Fatalf("capacity for an image outside the allow-list = %d, want 0", got)
	}
	byDigest.Parameters["image"] = "file://" + f.dir + "/renamed.daxfs"
	if got := capacity(byDigest); got != free {
		t.Fatalf("capacity by digest = %d, want %d", got, free)
	}

	// Other topology, or capabilities we cannot serve: nothing here.
	if got := capacity(&csi.GetCapacityRequest{AccessibleTopology: &csi.Topology{Segments: map[string]string{topology.NodeKey: "node-b"}}}); got != 0 {
		t.Fatalf("capacity for another node = %d", got)
	}
	if got := capacity(&csi.GetCapacityRequest{AccessibleTopology: &csi.Topology{Segments: map[string]string{
		topology.NodeKey: "node-a", topology.PoolKey: f.pool.Info().ID}}}); got != free2 {
		t.Fatalf("capacity for this node's segment = %d, want %d", got, free2)
	}
	if got := capacity(&csi.GetCapacityRequest{VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)}}); got != 0 {
		t.Fatalf("capacity for writers of a read-only class = %d", got)
	}
	_, err = f.ctrl.GetCapacity(bg, &csi.GetCapacityRequest{Parameters: map[string]string{"colour": "red"}})
	wantCode(t, err, codes.InvalidArgument)
}

func TestGetCapacityHashesAnImageOnce(t *testing.T) {
	dir := t.TempDir()
	uri, _ := writeImage(t, dir, 1<<20)
	calls := 0
	ts := start(t, Options{Pool: PoolOf(openPool(t, 16<<20)), AllowSources: []string{"file://" + dir},
		Resolve: func(ctx context.Context, uri, digest string) (source.Resolved, error) {
			calls++
			return source.Resolve(ctx, uri, digest)
		}})
	req := &csi.GetCapacityRequest{Parameters: map[string]string{"image": uri}}
	for range 3 {
		if _, err := ts.ctrl.GetCapacity(bg, req); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 {
		t.Fatalf("3 polls resolved the image %d times, want 1", calls)
	}
	// A changed file is hashed again.
	path := strings.TrimPrefix(uri, "file://")
	if err := os.WriteFile(path, []byte("other content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.ctrl.GetCapacity(bg, req); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("after the file changed: %d resolves, want 2", calls)
	}
}

func TestCorruptJournalIsMovedAside(t *testing.T) {
	state := t.TempDir()
	if err := os.WriteFile(filepath.Join(state, journalFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	uri, _ := writeImage(t, dir, 1000)
	ts := start(t, Options{Pool: PoolOf(openPool(t, 16<<20)), StateDir: state, AllowSources: []string{"file://" + dir}})
	if _, err := ts.ctrl.CreateVolume(bg, &csi.CreateVolumeRequest{Name: "v", Parameters: map[string]string{"image": uri},
		VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY)}}); err != nil {
		t.Fatal(err)
	}
	aside, _ := filepath.Glob(filepath.Join(state, journalFile+".corrupt-*"))
	if len(aside) != 1 {
		t.Fatalf("corrupt journal not kept aside: %v", aside)
	}
	if b, _ := os.ReadFile(aside[0]); string(b) != "{not json" {
		t.Fatalf("kept journal = %q", b)
	}
	b, err := os.ReadFile(filepath.Join(state, journalFile))
	if err != nil || !strings.Contains(string(b), `"name": "v"`) {
		t.Fatalf("new journal = %s, %v", b, err)
	}
}

// An oci:// volume's pullSecret reaches the fetcher through the context.
func TestCreateVolumePassesPullSecret(t *testing.T) {
	var secret, uri string
	ts := start(t, Options{Pool: PoolOf(openPool(t, 16<<20)), AllowSources: []string{"oci://registry.example/team/"},
		Resolve: func(ctx context.Context, u, digest string) (source.Resolved, error) {
			secret, uri = source.PullSecret(ctx), u
			return source.Resolved{}, fmt.Errorf("registry down: %w", source.ErrFetch)
		}})
	img := "oci://registry.example/team/app@sha256:" + strings.Repeat("ab", 32)
	_, err := ts.ctrl.CreateVolume(bg, &csi.CreateVolumeRequest{Name: "v",
		Parameters:         map[string]string{"image": img, "pullSecret": "apps/regcred"},
		VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY)}})
	wantCode(t, err, codes.Unavailable)
	if uri != img || secret != "apps/regcred" {
		t.Fatalf("resolver saw uri %q secret %q", uri, secret)
	}
}
