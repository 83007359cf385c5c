package envtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/daxfs-csi/daxfs-csi/internal/controller"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

// Four nodes see one CXL pool (same SharedPoolID, their own device ids) and
// each has a roomier local pool: the image gets one copy, in the CXL pool,
// reaching all four; when a node reports the copy ready it turns Ready.
func TestSharedCXLPoolStagesOneCopy(t *testing.T) {
	ctx := setup(t)
	clk := newClock()
	startController(t, ctx, controller.Options{HeartbeatTTL: time.Minute, Now: clk.Now})
	sel := map[string]string{"test": "shared"}
	cxl := func(node string, images ...daxv1.StagedImage) daxv1.PoolStatus {
		return daxv1.PoolStatus{ID: "dax-" + node, Kind: daxv1.PoolKindCXL, Size: 1024 * mib, Free: 512 * mib, Align: 2 * mib, NUMANode: 1, SharedPoolID: "cxl-region0", Images: images}
	}
	local := func(node string) daxv1.PoolStatus {
		return daxv1.PoolStatus{ID: "local-" + node, Kind: daxv1.PoolKindMemfile, Size: 1024 * mib, Free: 900 * mib, Align: 4096, NUMANode: 0}
	}
	nodes := []string{"c1", "c2", "c3", "c4"}
	for _, n := range nodes {
		putNode(t, ctx, n, sel, clk.Now(), cxl(n), local(n))
	}
	if err := k8sClient.Create(ctx, newImage("shared-img", digestOf(1), 100*mib, daxv1.PolicyAllMatching, 0, sel)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "one copy in the shared pool", func() error {
		img, err := getImage(ctx, "shared-img")
		if err != nil {
			return err
		}
		st := img.Status
		if len(st.Placements) != 1 {
			return fmt.Errorf("placements %+v, want 1", st.Placements)
		}
		p := st.Placements[0]
		if p.PoolID != "cxl-region0" || strings.Join(p.Nodes, ",") != "c1,c2,c3,c4" || p.Node != "c1" || p.State != daxv1.PlacementPending {
			return fmt.Errorf("placement %+v, want pending copy in cxl-region0 staged by c1 for c1..c4", p)
		}
		if st.NodeCount != 4 || st.ObservedGeneration != img.Generation || condition(img, daxv1.ConditionPlaced).Status != metav1.ConditionTrue {
			return fmt.Errorf("status %+v: want 4 nodes, observed generation %d, Placed=True", st, img.Generation)
		}
		return nil
	})

	// c1 staged it: every node sees it in the shared memory.
	staged := daxv1.StagedImage{Digest: digestOf(1), Size: 100 * mib, Prestaged: true, State: daxv1.StagedReady}
	putNode(t, ctx, "c1", sel, clk.Now(), cxl("c1", staged), local("c1"))
	eventually(t, "copy Ready", func() error {
		img, err := getImage(ctx, "shared-img")
		if err != nil {
			return err
		}
		if len(img.Status.Placements) != 1 || img.Status.Placements[0].State != daxv1.PlacementReady || img.Status.ReadyCount != 1 {
			return fmt.Errorf("placements %+v, want the one copy Ready", img.Status.Placements)
		}
		if c := condition(img, daxv1.ConditionReady); c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Ready condition %+v", c)
		}
		return nil
	})
}

// A node whose heartbeat is older than the TTL loses its placements with no
// event (the controller wakes itself at the expiry); when it reports again
// it gets them back. Real time: TTL 3 s.
func TestHeartbeatExpiryDropsPlacements(t *testing.T) {
	ctx := setup(t)
	ttl := 3 * time.Second
	startController(t, ctx, controller.Options{HeartbeatTTL: ttl})
	sel := map[string]string{"test": "heartbeat"}
	pool := func(n string) daxv1.PoolStatus {
		return daxv1.PoolStatus{ID: "pool-" + n, Kind: daxv1.PoolKindDevDAX, Size: 512 * mib, Free: 400 * mib, Align: 2 * mib, NUMANode: 0}
	}
	putNode(t, ctx, "h1", sel, time.Now(), pool("h1"))
	putNode(t, ctx, "h2", sel, time.Now(), pool("h2"))
	// h2 keeps beating; its heartbeat-only updates do not wake the controller.
	beat, stopBeat := context.WithCancel(ctx)
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		for beat.Err() == nil {
			var n daxv1.DaxNode
			if err := k8sClient.Get(beat, client.ObjectKey{Name: "h2"}, &n); err == nil {
				n.Status.Heartbeat = metav1.Now()
				_ = k8sClient.Status().Update(beat, &n) // a conflict just waits for the next beat
			}
			time.Sleep(300 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { stopBeat(); <-beating })
	if err := k8sClient.Create(ctx, newImage("hb-img", digestOf(2), 50*mib, daxv1.PolicyAllMatching, 0, sel)); err != nil {
		t.Fatal(err)
	}
	wantPools := func(want string) func() error {
		return func() error {
			img, err := getImage(ctx, "hb-img")
			if err != nil {
				return err
			}
			var got []string
			for _, p := range img.Status.Placements {
				got = append(got, p.PoolID)
			}
			if strings.Join(got, ",") != want {
				return fmt.Errorf("placed in %v, want %s", got, want)
			}
			return nil
		}
	}
	eventually(t, "both nodes placed", wantPools("pool-h1,pool-h2"))
	eventually(t, "h1's placement dropped after its heartbeat expired", wantPools("pool-h2"))
	putNode(t, ctx, "h1", sel, time.Now(), pool("h1"))
	eventually(t, "h1 placed again after it came back", wantPools("pool-h1,pool-h2"))
}

// A full pool gets nothing more: the second image stays unplaced with a
// reason, also once the first copy is staged; raising its priority evicts
// the unreferenced pre-staged copy of the first.
func TestFullPoolGetsNothingMore(t *testing.T) {
	ctx := setup(t)
	clk := newClock()
	startController(t, ctx, controller.Options{HeartbeatTTL: time.Minute, Now: clk.Now})
	sel := map[string]string{"test": "full"}
	pool := daxv1.PoolStatus{ID: "small", Kind: daxv1.PoolKindPmem, Size: 128 * mib, Free: 100 * mib, Align: 2 * mib, NUMANode: 0}
	putNode(t, ctx, "f1", sel, clk.Now(), pool)
	if err := k8sClient.Create(ctx, newImage("first", digestOf(3), 80*mib, daxv1.PolicyAllMatching, 1, sel)); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Create(ctx, newImage("second", digestOf(4), 80*mib, daxv1.PolicyAllMatching, 0, sel)); err != nil {
		t.Fatal(err)
	}
	unplaced := func(name string) func() error {
		return func() error {
			img, err := getImage(ctx, name)
			if err != nil {
				return err
			}
			c := condition(img, daxv1.ConditionPlaced)
			if len(img.Status.Placements) != 0 || c.Status != metav1.ConditionFalse || c.Reason != "InsufficientSpace" {
				return fmt.Errorf("%s: placements %+v, Placed %+v; want none, InsufficientSpace", name, img.Status.Placements, c)
			}
			return nil
		}
	}
	placedIn := func(name string, state daxv1.PlacementState) func() error {
		return func() error {
			img, err := getImage(ctx, name)
			if err != nil {
				return err
			}
			if len(img.Status.Placements) != 1 || img.Status.Placements[0].PoolID != "small" || img.Status.Placements[0].State != state {
				return fmt.Errorf("%s: placements %+v, want one %s in small", name, img.Status.Placements, state)
			}
			return nil
		}
	}
	eventually(t, "first placed", placedIn("first", daxv1.PlacementPending))
	eventually(t, "second not placed", unplaced("second"))

	// The node staged the first: 20 MiB left.
	pool.Free = 20 * mib
	pool.Images = []daxv1.StagedImage{{Digest: digestOf(3), Size: 80 * mib, Prestaged: true, State: daxv1.StagedReady}}
	putNode(t, ctx, "f1", sel, clk.Now(), pool)
	eventually(t, "first Ready", placedIn("first", daxv1.PlacementReady))
	eventually(t, "second still not placed", unplaced("second"))

	// Now the second matters more: the pre-staged, unreferenced first is evicted.
	second, err := getImage(ctx, "second")
	if err != nil {
		t.Fatal(err)
	}
	second.Spec.Placement.Priority = 5
	if err := k8sClient.Update(ctx, second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "second placed by eviction", placedIn("second", daxv1.PlacementPending))
	eventually(t, "first evicted", unplaced("first"))
}

// A source the controller cannot resolve leaves the image unplaced with the
// reason in its Placed condition.
func TestUnresolvableSourceIsReported(t *testing.T) {
	ctx := setup(t)
	startController(t, ctx, controller.Options{HeartbeatTTL: time.Minute})
	sel := map[string]string{"test": "source"}
	putNode(t, ctx, "s1", sel, time.Now(), daxv1.PoolStatus{ID: "ps1", Kind: daxv1.PoolKindDevDAX, Size: 64 * mib, Free: 60 * mib, Align: 2 * mib})
	img := newImage("missing-src", "", 0, daxv1.PolicyAllMatching, 0, sel)
	img.Spec.Source.Image = "file://" + t.TempDir() + "/absent.daxfs"
	if err := k8sClient.Create(ctx, img); err != nil {
		t.Fatal(err)
	}
	eventually(t, "SourceError reported", func() error {
		got, err := getImage(ctx, "missing-src")
		if err != nil {
			return err
		}
		c := condition(got, daxv1.ConditionPlaced)
		if c.Status != metav1.ConditionFalse || c.Reason != "SourceError" || !strings.Contains(c.Message, "absent.daxfs") || len(got.Status.Placements) != 0 {
			return fmt.Errorf("Placed %+v, placements %+v", c, got.Status.Placements)
		}
		return nil
	})
}
