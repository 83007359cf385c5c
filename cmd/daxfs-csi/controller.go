package main

import (
	"flag"
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/daxfs-csi/daxfs-csi/internal/controller"
	"github.com/daxfs-csi/daxfs-csi/internal/oci"
)

func init() {
	register("controller", "run the cluster controller: place DaxImages onto DaxNode pools", runController)
}

// parseControllerFlags reads the controller's flags; its Resolver fetches
// oci:// DaxImages through a converter configured by them alone.
func parseControllerFlags(args []string) (controller.Options, string, error) {
	fs := flag.NewFlagSet("daxfs-csi controller", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file; empty: in-cluster config")
	o := controller.Options{}
	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "elect a leader so only one replica places at a time")
	fs.StringVar(&o.LeaderElectionNS, "leader-election-namespace", "", "namespace of the leader Lease (default: the pod's namespace)")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":8080", "address of /metrics; 0 disables")
	fs.StringVar(&o.HealthAddr, "health-addr", ":8081", "address of /healthz and /readyz; 0 disables")
	fs.DurationVar(&o.HeartbeatTTL, "heartbeat-ttl", controller.DefaultHeartbeatTTL, "a node whose DaxNode heartbeat is older loses its placements")
	// An oci:// DaxImage is converted once to learn its digest and size; the
	// converter is made on the first such image (oci.Lazy).
	ociDir := fs.String("oci-cache-dir", "/var/lib/daxfs-csi/oci", "where oci:// DaxImages are converted to learn their digest and size (made on first use)")
	ociSize := fs.String("oci-cache-size", "0", "cap on --oci-cache-dir (Ki/Mi/Gi/Ti); 0: no cap")
	qps := fs.Float64("kube-api-qps", controller.DefaultKubeAPIQPS, "API requests per second the controller may make (client-side limit)")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", controller.DefaultKubeAPIBurst, "burst of API requests above --kube-api-qps")
	klog.InitFlags(fs)
	if err := fs.Parse(args); err != nil {
		return o, "", err
	}
	o.KubeAPIQPS = float32(*qps)
	if fs.NArg() > 0 {
		return o, "", usageError{fmt.Sprintf("unexpected arguments: %v", fs.Args())}
	}
	maxBytes, err := ociCacheBytes(*ociSize)
	if err != nil {
		return o, "", usageError{err.Error()}
	}
	o.Resolver = controller.SourceResolver{Fetcher: fetcherWith(oci.Lazy(oci.Options{Dir: *ociDir, MaxBytes: maxBytes}))}
	return o, *kubeconfig, nil
}

func runController(args []string) error {
	o, kubeconfig, err := parseControllerFlags(args)
	if err != nil {
		return err
	}
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return err
	}
	mgr, err := controller.NewManager(cfg, o)
	if err != nil {
		return err
	}
	klog.InfoS("starting controller", "leaderElect", o.LeaderElect, "heartbeatTTL", o.HeartbeatTTL, "metrics", o.MetricsAddr, "health", o.HealthAddr)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	return nil
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("no --kubeconfig and not in a cluster: %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}
