package controller

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

// Options configure the controller manager.
type Options struct {
	LeaderElect      bool
	LeaderElectionNS string // where the Lease lives; required out of cluster
	MetricsAddr      string // "0" disables
	HealthAddr       string // "0" disables
	HeartbeatTTL     time.Duration
	Resolver         Resolver
	LeaseDuration    time.Duration // 0: controller-runtime default
	// Client-side rate limit on API requests; 0: DefaultKubeAPIQPS/Burst.
	KubeAPIQPS   float32
	KubeAPIBurst int
	// For tests: a clock, and several managers in one process.
	Now                func() time.Time
	SkipNameValidation bool
}

// Default client-side rate limit (kube-scheduler's). client-go's own, 5 QPS,
// made 500 status writes at 1,000 nodes take 2 minutes (docs/benchmarks.md).
const (
	DefaultKubeAPIQPS   = 50
	DefaultKubeAPIBurst = 100
)

// Scheme knows the core types and ours.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("add client-go types to scheme: %w", err)
	}
	if err := daxv1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("add daxfs.csi.io types to scheme: %w", err)
	}
	return s, nil
}

// NewManager builds a manager with the placement reconciler, leader
// election, /healthz and /readyz, and /metrics. Logs go through klog.
func NewManager(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	ctrl.SetLogger(klog.NewKlogr())
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = o.KubeAPIQPS, o.KubeAPIBurst
	if cfg.QPS <= 0 {
		cfg.QPS = DefaultKubeAPIQPS
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultKubeAPIBurst
	}
	mo := ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:        o.HealthAddr,
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              "daxfs-csi-controller",
		LeaderElectionNamespace:       o.LeaderElectionNS,
		LeaderElectionReleaseOnCancel: true,
	}
	if o.SkipNameValidation {
		skip := true
		mo.Controller.SkipNameValidation = &skip
	}
	if o.LeaseDuration > 0 {
		mo.LeaseDuration = &o.LeaseDuration
	}
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		return nil, fmt.Errorf("new controller manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add healthz check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add readyz check: %w", err)
	}
	r := &PlacementReconciler{Client: mgr.GetClient(), HeartbeatTTL: o.HeartbeatTTL, Resolver: o.Resolver, Now: o.Now}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up placement reconciler: %w", err)
	}
	return mgr, nil
}
