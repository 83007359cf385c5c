// Package envtest runs the controller and the node agent against a real
// kube-apiserver and etcd (sigs.k8s.io/controller-runtime/pkg/envtest).
// Set KUBEBUILDER_ASSETS to the directory hack/envtest-assets.sh prints.
package envtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/daxfs-csi/daxfs-csi/internal/controller"
	"github.com/daxfs-csi/daxfs-csi/internal/machine"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	skipWhy   string
)

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		skipWhy = "KUBEBUILDER_ASSETS is unset: run `export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)` to test against a real kube-apiserver"
		fmt.Fprintln(os.Stderr, "envtest: skipping:", skipWhy)
		os.Exit(m.Run())
	}
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "deploy", "crds")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	if cfg, err = testEnv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "envtest: start control plane:", err)
		os.Exit(1)
	}
	scheme, err := controller.Scheme()
	if err == nil {
		k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	}
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "envtest: client:", err)
	} else {
		code = m.Run()
	}
	if err := testEnv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "envtest: stop control plane:", err)
	}
	os.Exit(code)
}

// setup needs a control plane (see machine.Lacks) and leaves no DaxNode or
// DaxImage behind.
func setup(t *testing.T) context.Context {
	t.Helper()
	if skipWhy != "" {
		machine.Lacks(t, "%s", skipWhy)
	}
	ctx, cancel := context.WithCancel(context.Background())
	clean := func() {
		for _, obj := range []client.Object{&daxv1.DaxImage{}, &daxv1.DaxNode{}} {
			if err := k8sClient.DeleteAllOf(context.Background(), obj); err != nil {
				t.Errorf("delete all %T: %v", obj, err)
			}
		}
	}
	clean()
	t.Cleanup(func() { cancel(); clean() })
	return ctx
}

// clock is a settable time source shared by the controller and the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// startController runs a controller manager until the test ends.
func startController(t *testing.T, ctx context.Context, o controller.Options) {
	t.Helper()
	o.MetricsAddr, o.HealthAddr, o.SkipNameValidation = "0", "0", true
	mgr, err := controller.NewManager(cfg, o)
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

// eventually polls f until it returns nil, failing with its last error.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const mib = 1 << 20

// putNode creates or replaces a DaxNode with the given pools and heartbeat,
// as a node plugin would.
func putNode(t *testing.T, ctx context.Context, name string, labels map[string]string, hb time.Time, pools ...daxv1.PoolStatus) {
	t.Helper()
	var n daxv1.DaxNode
	err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, &n)
	if err != nil {
		n = daxv1.DaxNode{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Spec: daxv1.DaxNodeSpec{NodeName: name}}
		if err := k8sClient.Create(ctx, &n); err != nil {
			t.Fatalf("create DaxNode %s: %v", name, err)
		}
	}
	n.Status = daxv1.DaxNodeStatus{Pools: pools, Heartbeat: metav1.NewTime(hb), PoolCount: int32(len(pools))}
	var total, free int64
	for _, p := range pools {
		total += p.Size
		free += p.Free
		n.Status.ImageCount += int32(len(p.Images))
	}
	n.Status.TotalSize, n.Status.TotalFree = daxv1.Bytes(total), daxv1.Bytes(free)
	if err := k8sClient.Status().Update(ctx, &n); err != nil {
		t.Fatalf("update DaxNode %s status: %v", name, err)
	}
}

func newImage(name, digest string, size int64, policy daxv1.PlacementPolicy, prio int32, selector map[string]string) *daxv1.DaxImage {
	return &daxv1.DaxImage{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: daxv1.DaxImageSpec{
			Source:    daxv1.ImageSource{Image: "https://images.example/" + name + ".daxfs", Digest: digest, Size: daxv1.Bytes(size)},
			Placement: daxv1.PlacementSpec{Policy: policy, Priority: prio, NodeSelector: &metav1.LabelSelector{MatchLabels: selector}},
		},
	}
}

func getImage(ctx context.Context, name string) (*daxv1.DaxImage, error) {
	var img daxv1.DaxImage
	if err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, &img); err != nil {
		return nil, err
	}
	return &img, nil
}

func condition(img *daxv1.DaxImage, typ string) metav1.Condition {
	for _, c := range img.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

func digestOf(n int) string { return fmt.Sprintf("sha256:%064x", n) }
