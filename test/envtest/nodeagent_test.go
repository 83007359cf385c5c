package envtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/daxfs-csi/daxfs-csi/internal/controller"
	"github.com/daxfs-csi/daxfs-csi/internal/nodeagent"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// buildImage writes a DAXFS image holding hello.txt and returns its path,
// digest and bytes.
func buildImage(t *testing.T, content string) (string, string, []byte) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	b := image.NewBuilder(image.BuildOptions{})
	defer b.Close()
	if err := b.AddDir(root); err != nil {
		t.Fatalf("add dir: %v", err)
	}
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatalf("build image: %v", err)
	}
	path := filepath.Join(dir, "hello.daxfs")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, fmt.Sprintf("sha256:%x", sha256.Sum256(buf.Bytes())), buf.Bytes()
}

// A node agent on a memfile pool pre-stages the image the controller placed
// on it (real bytes in the pool, readable as a DAXFS image), reports it in
// its DaxNode, and releases it when the DaxImage goes, keeping a copy a
// volume still references.
func TestNodeAgentPrestagesPlacedImage(t *testing.T) {
	ctx := setup(t)
	startController(t, ctx, controller.Options{HeartbeatTTL: time.Minute})

	// The Kubernetes Node's labels reach the DaxNode, where selectors match them.
	kn := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "agent-node", Labels: map[string]string{"topology.kubernetes.io/zone": "z1"}}}
	if err := k8sClient.Create(ctx, kn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), kn) })

	pool, err := daxdev.OpenPool("memfile:"+filepath.Join(t.TempDir(), "pool"), daxdev.PoolOptions{Size: 64 * mib, Init: true})
	if err != nil {
		t.Fatalf("open memfile pool: %v", err)
	}
	t.Cleanup(func() { pool.Close() })
	poolID := pool.Info().ID
	stager := &poolStager{pools: map[string]*daxdev.Pool{poolID: pool}, owner: "prestage-agent-node"}
	agent := &nodeagent.Agent{
		Client: k8sClient, NodeName: "agent-node", Pools: []*daxdev.Pool{pool}, Stager: stager,
		Labels: map[string]string{"test": "agent"}, CopyNodeLabels: true, Interval: 200 * time.Millisecond,
	}
	actx, stop := context.WithCancel(ctx)
	agentDone := make(chan error, 1)
	go func() { agentDone <- agent.Run(actx) }()
	t.Cleanup(func() { stop(); <-agentDone })

	path, digest, content := buildImage(t, "hello from device memory\n")
	// No size in the spec: the controller resolves it from the source.
	img := newImage("agent-img", digest, 0, daxv1.PolicyAllMatching, 0, map[string]string{"topology.kubernetes.io/zone": "z1"})
	img.Spec.Source.Image = "file://" + path
	if err := k8sClient.Create(ctx, img); err != nil {
		t.Fatal(err)
	}

	eventually(t, "placement Ready", func() error {
		got, err := getImage(ctx, "agent-img")
		if err != nil {
			return err
		}
		st := got.Status
		if daxv1.Value(st.Size) != int64(len(content)) || len(st.Placements) != 1 || st.Placements[0].PoolID != poolID ||
			st.Placements[0].Node != "agent-node" || st.Placements[0].State != daxv1.PlacementReady {
			return fmt.Errorf("status %+v: want size %d, one Ready copy in %s by agent-node", st, len(content), poolID)
		}
		return nil
	})
	// The bytes are in the pool and read back as the image.
	e, ok := pool.Lookup(digest)
	if !ok {
		t.Fatal("digest not staged in the pool")
	}
	data, err := pool.Data(e)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, content) {
		t.Fatal("pool bytes differ from the image file")
	}
	im, err := image.OpenBytes(data)
	if err != nil {
		t.Fatalf("open staged image: %v", err)
	}
	if b, err := im.FS().ReadFile("hello.txt"); err != nil || string(b) != "hello from device memory\n" {
		t.Fatalf("hello.txt from the staged image: %q, %v", b, err)
	}
	// The DaxNode reports the pool and the pre-staged copy.
	reported := func(want daxv1.StagedImage, wantFree int64) func() error {
		return func() error {
			var n daxv1.DaxNode
			if err := k8sClient.Get(ctx, client.ObjectKey{Name: "agent-node"}, &n); err != nil {
				return err
			}
			if n.Labels["test"] != "agent" || n.Labels["topology.kubernetes.io/zone"] != "z1" || len(n.Status.Pools) != 1 {
				return fmt.Errorf("DaxNode labels %v, pools %+v", n.Labels, n.Status.Pools)
			}
			p := n.Status.Pools[0]
			if p.ID != poolID || p.Kind != daxv1.PoolKindMemfile || p.Free != wantFree {
				return fmt.Errorf("pool %+v, want memfile %s with %d free", p, poolID, wantFree)
			}
			var got []daxv1.StagedImage
			got = append(got, p.Images...)
			if want.Digest == "" && len(got) == 0 {
				return nil
			}
			if len(got) != 1 || got[0] != want {
				return fmt.Errorf("images %+v, want [%+v]", got, want)
			}
			if time.Since(n.Status.Heartbeat.Time) > time.Minute {
				return fmt.Errorf("stale heartbeat %v", n.Status.Heartbeat)
			}
			return nil
		}
	}
	freeWith := pool.Status().Free
	eventually(t, "DaxNode reports the copy", reported(daxv1.StagedImage{Digest: digest, Size: int64(len(content)), Prestaged: true, State: daxv1.StagedReady}, freeWith))

	// A volume starts using the copy; then the DaxImage goes.
	if _, err := pool.Stage(ctx, digest, int64(len(content)), "volume-1", func([]byte) error { return fmt.Errorf("must not refill") }); err != nil {
		t.Fatalf("volume reference: %v", err)
	}
	if err := k8sClient.Delete(ctx, img); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pre-stage hold released, volume's kept", reported(daxv1.StagedImage{Digest: digest, Size: int64(len(content)), References: 1, State: daxv1.StagedReady}, freeWith))
	if e, ok := pool.Lookup(digest); !ok || len(e.Owners) != 1 || e.Owners[0].Name != "volume-1" {
		t.Fatalf("extent %+v, want kept for volume-1 only", e)
	}
	if _, err := pool.Release(digest, "volume-1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "DaxNode reports the empty pool", reported(daxv1.StagedImage{}, pool.Status().Free))
}
