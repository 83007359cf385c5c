package nodeserver

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
	"github.com/daxfs-csi/daxfs-csi/internal/nodeagent"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
)

// A pre-staged image is copied once; a volume arriving later reuses it
// without a second fill, and volume and placement holds release apart.
func TestPrestageThenPublish(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	poolID := e.pool.Info().ID
	ctx := context.Background()

	must(t, e.ns.Prestage(ctx, poolID, volume.Attributes{Image: uri, Digest: dg}))
	must(t, e.ns.Prestage(ctx, poolID, volume.Attributes{Image: uri, Digest: dg})) // idempotent
	if n := e.pool.fills.Load(); n != 1 {
		t.Fatalf("fills after two prestages = %d, want 1", n)
	}
	st := e.ns.Staged()
	if len(st) != 1 || st[0].Digest != dg || !st[0].Prestaged || st[0].References != 0 || st[0].PoolID != poolID {
		t.Fatalf("Staged = %+v, want one pre-staged copy with no references", st)
	}

	target := e.path("pods", "a", "vol")
	must(t, e.publish("csi-inline-1", uri, dg, "", target, nil))
	checkTree(t, target, "tree1.manifest.json")
	if n := e.pool.fills.Load(); n != 1 {
		t.Fatalf("publish of a pre-staged image filled again (fills %d)", n)
	}
	if st := e.ns.Staged(); len(st) != 1 || !st[0].Prestaged || st[0].References != 1 {
		t.Fatalf("Staged = %+v, want pre-staged with 1 reference", st)
	}

	// The placement goes: the volume keeps the bytes.
	must(t, e.ns.ReleasePrestaged(ctx, poolID, dg))
	must(t, e.ns.ReleasePrestaged(ctx, poolID, dg)) // idempotent
	if _, ok := e.pool.Lookup(dg); !ok {
		t.Fatal("releasing the pre-stage hold freed an image a volume uses")
	}
	checkTree(t, target, "tree1.manifest.json")
	if st := e.ns.Staged(); len(st) != 1 || st[0].Prestaged || st[0].References != 1 {
		t.Fatalf("Staged = %+v, want a volume-held copy", st)
	}
	must(t, e.unpublish("csi-inline-1", target))
	if _, ok := e.pool.Lookup(dg); ok {
		t.Error("image kept after both holds were released")
	}
}

// Pre-staging goes through the volume checks: the allow-list, the digest and
// the pool it names.
func TestPrestageRefusals(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	poolID := e.pool.Info().ID
	ctx := context.Background()

	wantPlainCode(t, "other pool", e.ns.Prestage(ctx, "no-such-pool", volume.Attributes{Image: uri, Digest: dg}), codes.NotFound)
	wantPlainCode(t, "disallowed", e.ns.Prestage(ctx, poolID, volume.Attributes{Image: "file:///etc/passwd"}), codes.PermissionDenied)
	bad := "sha256:" + dg[len("sha256:"):len(dg)-1] + "0"
	if bad == dg {
		bad = "sha256:" + dg[len("sha256:"):len(dg)-1] + "1"
	}
	wantPlainCode(t, "digest mismatch", e.ns.Prestage(ctx, poolID, volume.Attributes{Image: uri, Digest: bad}), codes.InvalidArgument)
	if st := e.pool.Status(); len(st.Extents) != 0 {
		t.Fatalf("refused pre-stages left extents: %+v", st.Extents)
	}
	if got := e.ns.Staged(); slices.ContainsFunc(got, func(s nodeagent.StagedImage) bool { return s.Prestaged }) {
		t.Fatalf("Staged = %+v", got)
	}
}

// wantPlainCode checks the code volume.Code gives a (non-gRPC) error.
func wantPlainCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if got := grpccode.Of(err); got != code {
		t.Errorf("%s: got %v (%v), want %v", what, got, err, code)
	}
}
