// Package scale times the controller (`daxfs-csi controller`, the
// placement manager) at cluster size against a real kube-apiserver and etcd
// (the envtest binaries of hack/envtest-assets.sh):
//
//	export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)
//	flock /tmp/daxfs-bench.lock go test -run '^$' -bench ControllerScale -benchtime 1x -timeout 30m ./test/scale
//
// Each size starts its own apiserver, runs the controller as a child
// process (its RSS and CPU are its own), registers the nodes and images
// while it runs, and waits until every DaxImage has a status and the
// controller is quiet. Then one node's pool shrinks, one node's DaxNode is
// deleted, one node stops its heartbeat (timed from when it expires), and
// the controller restarts; each phase reports its time and the status
// writes it caused, counted both on a watch and by the apiserver's own
// apiserver_request_total. Results: docs/benchmarks.md, "Controller at scale".
package scale

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/daxfs-csi/daxfs-csi/internal/controller"
	"github.com/daxfs-csi/daxfs-csi/internal/nodeagent"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

func BenchmarkControllerScale(b *testing.B) {
	for _, sz := range []struct{ nodes, images int }{{100, 50}, {1000, 500}} {
		b.Run(fmt.Sprintf("nodes=%d/images=%d", sz.nodes, sz.images), func(b *testing.B) {
			for range b.N {
				runScale(b, sz.nodes, sz.images)
			}
		})
	}
}

// The generated cluster is what the benchmark claims: shared pools seen
// by several nodes, every policy, valid digests, free space consistent.
func TestClusterShape(t *testing.T) {
	c := newCluster(100, 50)
	if len(c.nodes) != 100 || len(c.images) != 50 {
		t.Fatalf("%d nodes, %d images", len(c.nodes), len(c.images))
	}
	seen := map[string]int{}
	for _, n := range c.nodes {
		for _, p := range n.Status.Pools {
			if p.SharedPoolID != "" {
				seen[p.SharedPoolID]++
			}
			if p.Free < 0 || p.Free != p.Size-used(p.Images, p.Align) {
				t.Errorf("%s pool %s: free %d of %d", n.Name, p.ID, p.Free, p.Size)
			}
		}
	}
	if len(seen) != sharedGroups {
		t.Errorf("%d shared pools, want %d", len(seen), sharedGroups)
	}
	for id, n := range seen {
		if n != sharedGroupSize {
			t.Errorf("shared pool %s seen by %d nodes, want %d", id, n, sharedGroupSize)
		}
	}
	policies := map[daxv1.PlacementPolicy]int{}
	for _, img := range c.images {
		policies[img.Spec.Placement.Policy]++
		if len(img.Spec.Source.Digest) != len("sha256:")+64 {
			t.Errorf("%s: digest %q", img.Name, img.Spec.Source.Digest)
		}
	}
	if len(policies) != 3 {
		t.Errorf("policies %v, want all three", policies)
	}
}

type scaleEnv struct {
	cfg        *rest.Config
	c          client.WithWatch
	kubeconfig string
}

func startAPIServer(b *testing.B) scaleEnv {
	b.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		b.Fatal("KUBEBUILDER_ASSETS is unset: export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	logf.SetLogger(klog.NewKlogr())
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "..", "deploy", "crds")}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		b.Fatalf("start control plane: %v", err)
	}
	b.Cleanup(func() {
		if err := env.Stop(); err != nil {
			b.Errorf("stop control plane: %v", err)
		}
	})
	scheme, err := controller.Scheme()
	if err != nil {
		b.Fatal(err)
	}
	gen := rest.CopyConfig(cfg)
	gen.QPS, gen.Burst = 2000, 4000
	c, err := client.NewWithWatch(gen, client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(b.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		b.Fatal(err)
	}
	return scaleEnv{cfg: cfg, c: c, kubeconfig: path}
}

// parallel runs f(i) for i in [0,n) on 8 workers, failing on the first error.
func parallel(b *testing.B, n int, f func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// heartbeats refreshes every remaining node's heartbeat once per
// nodeagent.DefaultInterval, spread evenly, as the node agents would.
func heartbeats(ctx context.Context, c client.Client, names []string, gone *sync.Map) {
	tick := time.NewTicker(nodeagent.DefaultInterval / time.Duration(len(names)))
	defer tick.Stop()
	for i := 0; ; i = (i + 1) % len(names) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, ok := gone.Load(names[i]); ok {
			continue
		}
		patch, _ := json.Marshal(map[string]any{"status": map[string]any{"heartbeat": metav1.Now()}})
		n := &daxv1.DaxNode{ObjectMeta: metav1.ObjectMeta{Name: names[i]}}
		if err := c.Status().Patch(ctx, n, client.RawPatch(types.MergePatchType, patch)); err != nil && ctx.Err() == nil && !apierrors.IsNotFound(err) {
			fmt.Fprintf(os.Stderr, "heartbeat %s: %v\n", names[i], err)
		}
	}
}

// busiestPool finds the node and local pool that most placements use.
func busiestPool(w *imageWatch, c cluster, skip ...string) (node string, poolID string) {
	perPool := map[string]int{}
	w.each(func(img *daxv1.DaxImage) {
		for _, p := range img.Status.Placements {
			perPool[p.Node+"/"+p.PoolID]++
		}
	})
	best := -1
	for _, n := range c.nodes {
		if slices.Contains(skip, n.Name) {
			continue
		}
		id := n.Status.Pools[0].ID
		if k := perPool[n.Name+"/"+id]; k > best {
			best, node, poolID = k, n.Name, id
		}
	}
	return node, poolID
}

type phase struct {
	name string
	settled
	api     writeTally
	touched int // images whose status named the changed pool or node before
}

// touching counts the images whose placements name pool (when not "") or node.
func touching(w *imageWatch, pool, node string) int {
	n := 0
	w.each(func(img *daxv1.DaxImage) {
		hit := false
		for _, p := range img.Status.Placements {
			if p.PoolID == pool || p.Node == node {
				hit = true
			}
			for _, x := range p.Nodes {
				hit = hit || x == node
			}
		}
		if hit {
			n++
		}
	})
	return n
}

func runScale(b *testing.B, nNodes, nImages int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := startAPIServer(b)
	c := newCluster(nNodes, nImages)
	w, err := watchImages(ctx, e.c)
	if err != nil {
		b.Fatal(err)
	}
	scrapeAPI := func() counts {
		m, err := apiRequests(ctx, e.cfg)
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	var phases []phase
	measure := func(name string, m *manager, from mark, before counts, touched int) {
		s := settle(b, ctx, w, m, nImages, from, 5*time.Minute)
		phases = append(phases, phase{name: name, settled: s, api: writesBetween(before, scrapeAPI()), touched: touched})
	}

	m := startManager(b, e.kubeconfig)
	defer func() { m.stop(b) }()
	if _, _, err := waitMetrics(ctx, m); err != nil {
		b.Fatalf("controller metrics: %v\n%s", err, m.logs.String())
	}

	// Bring-up: nodes register (create, then status, as the agent does),
	// then users create the images; the controller runs throughout.
	before := scrapeAPI()
	b.ResetTimer()
	from := markNow(b, ctx, w, m)
	parallel(b, nNodes, func(i int) error {
		n := c.nodes[i].DeepCopy()
		st := n.Status
		if err := e.c.Create(ctx, n); err != nil {
			return fmt.Errorf("create DaxNode %s: %w", n.Name, err)
		}
		n.Status = st
		n.Status.Heartbeat = metav1.Now()
		return e.c.Status().Update(ctx, n)
	})
	parallel(b, nImages, func(i int) error { return e.c.Create(ctx, c.images[i].DeepCopy()) })
	created := time.Since(from.at)
	names := make([]string, nNodes)
	for i := range names {
		names[i] = c.nodes[i].Name
	}
	var gone sync.Map
	go heartbeats(ctx, e.c, names, &gone)
	measure("bring-up", m, from, before, nImages)
	rss, hwm, cpu, err := procStats(m.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}

	// A pool shrinks: the busiest local pool loses all its free space.
	shrunkNode, shrunkPool := busiestPool(w, c)
	touched := touching(w, shrunkPool, "\x00")
	before = scrapeAPI()
	from = markNow(b, ctx, w, m)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var n daxv1.DaxNode
		if err := e.c.Get(ctx, client.ObjectKey{Name: shrunkNode}, &n); err != nil {
			return err
		}
		p := &n.Status.Pools[0]
		p.Size -= p.Free
		p.Free = 0
		n.Status = nodeStatus(n.Status.Pools)
		n.Status.Heartbeat = metav1.Now()
		return e.c.Status().Update(ctx, &n)
	}); err != nil {
		b.Fatal(err)
	}
	measure("pool shrinks", m, from, before, touched)
	staged := map[string]bool{}
	for _, im := range c.nodes[nodeIndex(shrunkNode)].Status.Pools[0].Images {
		staged[im.Digest] = true
	}
	w.each(func(img *daxv1.DaxImage) {
		for _, p := range img.Status.Placements {
			if p.PoolID == shrunkPool && !staged[img.Status.Digest] {
				b.Errorf("%s still placed in shrunk pool %s of %s", img.Name, shrunkPool, shrunkNode)
			}
		}
	})

	// A node goes away.
	goneNode, _ := busiestPool(w, c, shrunkNode)
	gone.Store(goneNode, true)
	touched = touching(w, "\x00", goneNode)
	before = scrapeAPI()
	from = markNow(b, ctx, w, m)
	if err := e.c.Delete(ctx, &daxv1.DaxNode{ObjectMeta: metav1.ObjectMeta{Name: goneNode}}); err != nil {
		b.Fatal(err)
	}
	measure("node goes away", m, from, before, touched)
	w.each(func(img *daxv1.DaxImage) {
		for _, p := range img.Status.Placements {
			for _, n := range append([]string{p.Node}, p.Nodes...) {
				if n == goneNode {
					b.Errorf("%s still placed on deleted node %s", img.Name, goneNode)
				}
			}
		}
	})

	// A node goes silent: its agent stops, and its placements go when its
	// heartbeat is older than the TTL, with no event (the controller's own
	// requeue for the first expiry). Timed from the expiry.
	silentNode, _ := busiestPool(w, c, shrunkNode, goneNode)
	gone.Store(silentNode, true)
	before = scrapeAPI()
	time.Sleep(time.Second) // a heartbeat in flight lands
	var sn daxv1.DaxNode
	if err := e.c.Get(ctx, client.ObjectKey{Name: silentNode}, &sn); err != nil {
		b.Fatal(err)
	}
	expiry := sn.Status.Heartbeat.Add(controller.DefaultHeartbeatTTL)
	touched = touching(w, "\x00", silentNode)
	time.Sleep(time.Until(expiry))
	from = markNow(b, ctx, w, m)
	from.at = expiry
	measure("node goes silent", m, from, before, touched)
	w.each(func(img *daxv1.DaxImage) {
		for _, p := range img.Status.Placements {
			for _, n := range append([]string{p.Node}, p.Nodes...) {
				if n == silentNode {
					b.Errorf("%s still placed on silent node %s", img.Name, silentNode)
				}
			}
		}
	})

	// The controller restarts on the full cluster (a new leader).
	m.stop(b)
	before = scrapeAPI()
	start := time.Now()
	m = startManager(b, e.kubeconfig)
	if _, _, err := waitMetrics(ctx, m); err != nil {
		b.Fatalf("controller metrics: %v\n%s", err, m.logs.String())
	}
	from = markNow(b, ctx, w, m)
	from.at, from.passes = start, 0 // a new process counts from 0
	measure("restart", m, from, before, 0)
	_, hwm2, cpu2, err := procStats(m.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()

	b.Logf("%d nodes, %d images: generator registered them in %.1f s", nNodes, nImages, created.Seconds())
	b.Logf("manager after bring-up: RSS %.0f MiB (peak %.0f MiB), CPU %.1f s; after restart: peak %.0f MiB, CPU %.1f s",
		rss, hwm, cpu, hwm2, cpu2)
	for _, p := range phases {
		b.Logf("%-15s %6.2f s  %4d status writes (watch)  %4d DaxImage status writes (apiserver)  %4d images touched  %3d passes  all writes: %s",
			p.name, p.took.Seconds(), p.writes, p.api.sum("daximages/status"), p.touched, p.passes, p.api)
	}
	b.Logf("shrunk %s pool %s; deleted %s; silenced %s", shrunkNode, shrunkPool, goneNode, silentNode)
	b.ReportMetric(phases[0].took.Seconds(), "converge-s")
	b.ReportMetric(float64(phases[0].api.sum("daximages/status")), "converge-writes")
	b.ReportMetric(hwm, "peak-rss-MiB")
	b.ReportMetric(phases[1].took.Seconds(), "shrink-s")
	b.ReportMetric(float64(phases[1].api.sum("daximages/status")), "shrink-writes")
	b.ReportMetric(float64(phases[1].touched), "shrink-touched")
	b.ReportMetric(phases[2].took.Seconds(), "gone-s")
	b.ReportMetric(float64(phases[2].api.sum("daximages/status")), "gone-writes")
	b.ReportMetric(float64(phases[2].touched), "gone-touched")
	b.ReportMetric(phases[3].took.Seconds(), "silent-s")
	b.ReportMetric(float64(phases[3].api.sum("daximages/status")), "silent-writes")
	b.ReportMetric(float64(phases[3].touched), "silent-touched")
	b.ReportMetric(phases[4].took.Seconds(), "restart-s")
	b.ReportMetric(float64(phases[4].api.sum("daximages/status")), "restart-writes")
	b.ReportMetric(0, "ns/op")
}

func nodeIndex(name string) int {
	var i int
	fmt.Sscanf(name, "node-%d", &i)
	return i
}

// waitMetrics waits for the controller's /metrics to answer.
func waitMetrics(ctx context.Context, m *manager) (int, bool, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		done, busy, err := m.passes(ctx)
		if err == nil {
			return done, busy, nil
		}
		select {
		case <-m.done:
			return 0, false, fmt.Errorf("controller exited")
		default:
		}
		if time.Now().After(deadline) {
			return 0, false, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
