package envtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/daxfs-csi/daxfs-csi/internal/controller"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpGet(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// The manager elects a leader through a Lease, serves /healthz, /readyz and
// /metrics, and places once it leads.
func TestManagerLeaderElectionHealthMetrics(t *testing.T) {
	ctx := setup(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "daxfs-system"}}
	if err := k8sClient.Create(ctx, ns); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	health, metricsAddr := freeAddr(t), freeAddr(t)
	mgr, err := controller.NewManager(cfg, controller.Options{
		LeaderElect: true, LeaderElectionNS: "daxfs-system", HealthAddr: health, MetricsAddr: metricsAddr,
		HeartbeatTTL: time.Minute, SkipNameValidation: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() { cancel(); <-done })

	eventually(t, "Lease held", func() error {
		var l coordinationv1.Lease
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: "daxfs-system", Name: "daxfs-csi-controller"}, &l); err != nil {
			return err
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			return fmt.Errorf("lease has no holder")
		}
		return nil
	})
	for _, path := range []string{"/healthz", "/readyz"} {
		eventually(t, path, func() error {
			code, body, err := httpGet("http://" + health + path)
			if err != nil || code != http.StatusOK {
				return fmt.Errorf("GET %s: %d %q %v", path, code, body, err)
			}
			return nil
		})
	}
	sel := map[string]string{"test": "leader"}
	putNode(t, ctx, "l1", sel, time.Now(), daxv1.PoolStatus{ID: "pl1", Kind: daxv1.PoolKindDevDAX, Size: 64 * mib, Free: 60 * mib, Align: 2 * mib})
	if err := k8sClient.Create(ctx, newImage("leader-img", digestOf(11), mib, daxv1.PolicyAllMatching, 0, sel)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "placed by the leader", func() error {
		img, err := getImage(ctx, "leader-img")
		if err != nil {
			return err
		}
		if img.Status.PlacedCount != 1 {
			return fmt.Errorf("placed %d copies", img.Status.PlacedCount)
		}
		return nil
	})
	eventually(t, "/metrics counts reconciles", func() error {
		code, body, err := httpGet("http://" + metricsAddr + "/metrics")
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("GET /metrics: %d %v", code, err)
		}
		for _, want := range []string{`controller_runtime_reconcile_total{controller="daxfs-placement",result="success"}`,
			"daxfs_controller_placement_seconds_count", "daxfs_controller_live_nodes 1"} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("/metrics lacks %s", want)
			}
		}
		return nil
	})
}
