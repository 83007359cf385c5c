package envtest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daxfs-csi/daxfs-csi/internal/controller"
	"github.com/daxfs-csi/daxfs-csi/internal/nodeagent"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

// A pre-stage that fails on the node (here: the source file is gone) shows
// up as a Failed placement with the node's message.
func TestFailedPrestageIsReported(t *testing.T) {
	ctx := setup(t)
	startController(t, ctx, controller.Options{HeartbeatTTL: time.Minute})
	pool := openPool(t, filepath.Join(t.TempDir(), "pool"), 16*mib, true)
	sel := map[string]string{"test": "failure"}
	st := &poolStager{pools: map[string]*daxdev.Pool{pool.Info().ID: pool}, owner: "prestage-fail-node"}
	ag := &nodeagent.Agent{Client: k8sClient, NodeName: "fail-node", Pools: []*daxdev.Pool{pool}, Stager: st, Labels: sel, Interval: 200 * time.Millisecond}
	actx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ag.Run(actx) }()
	t.Cleanup(func() { stop(); <-done })

	// Digest and size given, so the controller places it without reading the source.
	img := newImage("gone-src", digestOf(12), mib, daxv1.PolicyAllMatching, 0, sel)
	img.Spec.Source.Image = "file://" + filepath.Join(t.TempDir(), "gone.daxfs")
	if err := k8sClient.Create(ctx, img); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Failed placement with the node's reason", func() error {
		got, err := getImage(ctx, "gone-src")
		if err != nil {
			return err
		}
		ps := got.Status.Placements
		if len(ps) != 1 || ps[0].State != daxv1.PlacementFailed || !strings.Contains(ps[0].Reason, "gone.daxfs") {
			return fmt.Errorf("placements %+v", ps)
		}
		return nil
	})
	if n := len(pool.Status().Extents); n != 0 {
		t.Errorf("pool holds %d extents after a failed fill, want 0", n)
	}
}
