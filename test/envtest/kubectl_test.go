package envtest

import (
	"io"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/daxfs-csi/daxfs-csi/internal/controller"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

// `kubectl get daxnodes,daximages` shows the printer columns.
func TestKubectlGetIsReadable(t *testing.T) {
	ctx := setup(t)
	clk := newClock()
	startController(t, ctx, controller.Options{HeartbeatTTL: time.Minute, Now: clk.Now})
	sel := map[string]string{"test": "kubectl"}
	putNode(t, ctx, "k1", sel, clk.Now(), daxv1.PoolStatus{ID: "pk1", Kind: daxv1.PoolKindDevDAX, Size: 512 * mib, Free: 400 * mib, Align: 2 * mib})
	if err := k8sClient.Create(ctx, newImage("kimg", digestOf(9), 10*mib, daxv1.PolicyAllMatching, 3, sel)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "placed", func() error {
		img, err := getImage(ctx, "kimg")
		if err != nil {
			return err
		}
		if img.Status.PlacedCount != 1 {
			return io.ErrNoProgress
		}
		return nil
	})
	admin, err := testEnv.ControlPlane.AddUser(envtest.User{Name: "kubectl-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubectl, err := admin.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := kubectl.Run("get", "daxnodes,daximages")
	if err != nil {
		e, _ := io.ReadAll(stderr)
		t.Fatalf("kubectl: %v: %s", err, e)
	}
	out, _ := io.ReadAll(stdout)
	t.Logf("kubectl get daxnodes,daximages:\n%s", out)
	for _, want := range []string{"POOLS", "FREE", "HEARTBEAT", "daxnode.daxfs.csi.io/k1", "512Mi", "400Mi", "10Mi",
		"POLICY", "PRIORITY", "COPIES", "READY", "PLACED", "daximage.daxfs.csi.io/kimg", "AllMatching", "True"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kubectl output lacks %q", want)
		}
	}
}
