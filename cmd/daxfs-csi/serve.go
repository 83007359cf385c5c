package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/daxfs-csi/daxfs-csi/internal/metrics"
	"github.com/daxfs-csi/daxfs-csi/internal/nodeagent"
	"github.com/daxfs-csi/daxfs-csi/internal/source"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/pkg/driver"
	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver"
)

func init() {
	register("serve", "run the CSI server (node, controller or both) on a unix socket", serve)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*l = append(*l, v)
	return nil
}

type serveConfig struct {
	mode            string
	endpoint        string
	driverName      string
	nodeID          string
	pool            string
	poolSize        string
	poolForce       bool
	poolTuning      poolTuning
	stateDir        string
	allowSources    stringList
	metricsAddress  string
	keepUnused      bool
	maxVolumes      int64
	maxImageSize    int64 // parsed --max-image-size
	mountMode       string
	shutdownTimeout time.Duration
	registrationDir string
	kubeletRegPath  string
	fuseHostSocket  string

	poolSet        bool // --pool given: a cluster-mode controller opens it only then
	kubeconfig     string
	cluster        bool
	heartbeatTTL   time.Duration
	reportInterval time.Duration

	// The oci:// converter (serve_oci.go).
	ociCacheSize       string
	ociCacheDir        string
	pullSecretDir      string
	pullSecretsFromAPI bool
}

// serveFlags defines serve's flags into c; the names are the acceptance
// contract. It returns the flag set and the raw --max-image-size.
func (c *serveConfig) serveFlags() (*flag.FlagSet, *string) {
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("daxfs-csi serve", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.StringVar(&c.mode, "mode", "all", "CSI services to serve: node, controller or all")
	fs.StringVar(&c.endpoint, "endpoint", "unix:///csi/csi.sock", "gRPC endpoint, unix:///path.sock")
	fs.StringVar(&c.driverName, "driver-name", "daxfs.csi.io", "CSI driver name")
	fs.StringVar(&c.nodeID, "node-id", host, "this node's id: the Kubernetes node name (defaults to the hostname)")
	fs.StringVar(&c.pool, "pool", "memfile:"+daxdev.DefaultMemfile, "device pool spec: memfile:PATH, devdax:/dev/daxX.Y, pmem:/dev/pmemN, dmaheap:NAME or auto")
	fs.StringVar(&c.poolSize, "pool-size", "1Gi", "size of a memfile or dmaheap pool when created (Ki/Mi/Gi/Ti)")
	fs.BoolVar(&c.poolForce, "pool-force", false, "format the device even if it holds something that is not a daxfs pool (destroys it)")
	c.poolTuning.register(fs)
	fs.StringVar(&c.stateDir, "state-dir", "/var/lib/daxfs-csi", "where the node and controller keep their records")
	fs.Var(&c.allowSources, "allow-source", "image URI prefix volumes may use (repeatable), e.g. file:///var/lib/daxfs/images/")
	fs.StringVar(&c.metricsAddress, "metrics-address", "", "serve /metrics and /healthz on this address (e.g. :9808); empty disables")
	fs.BoolVar(&c.keepUnused, "keep-unused", false, "keep images with no volumes staged as a cache (evicted when space is needed)")
	fs.Int64Var(&c.maxVolumes, "max-volumes", 0, "volumes this node accepts (NodeGetInfo max_volumes_per_node); 0 = no limit")
	maxImageSize := fs.String("max-image-size", nodeserver.DefaultMaxImageSize, "largest image a volume may stage on this node (Ki/Mi/Gi/Ti); larger ones are refused with ResourceExhausted before anything is written to the pool; 0: no limit but the pool")
	fs.StringVar(&c.mountMode, "mount-mode", "auto", "image mount backend when a volume says auto: auto (kernel daxfs where it can serve the volume, else fuse; docs/kernel-mount.md), kernel or fuse")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, wait this long for in-flight calls")
	fs.StringVar(&c.registrationDir, "registration-dir", "", "serve kubelet plugin registration in this dir (the kubelet's plugins_registry), in place of node-driver-registrar; empty disables")
	fs.StringVar(&c.kubeletRegPath, "kubelet-registration-path", "", "the CSI socket path as the kubelet sees it (default: the --endpoint path)")
	fs.StringVar(&c.fuseHostSocket, "fuse-host-socket", "", "have the fuse-host sidecar (daxfs-csi fuse-host --socket) serve FUSE image mounts in its own process, so they outlive a restart of this container; empty: launch a fuse-serve process per image ourselves")
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "cluster mode with this kubeconfig: the controller answers topology and capacity from DaxNodes, the node keeps its DaxNode and pre-stages placed images")
	fs.BoolVar(&c.cluster, "cluster", false, "cluster mode with the in-cluster config (or $KUBECONFIG); without it or --kubeconfig the server is per node")
	fs.DurationVar(&c.heartbeatTTL, "heartbeat-ttl", 0, "cluster mode: a DaxNode whose heartbeat is older counts for no capacity (default: the controller's)")
	fs.DurationVar(&c.reportInterval, "node-report-interval", 0, "cluster mode: how often the node reports its DaxNode and syncs placements (default 20s)")
	fs.StringVar(&c.ociCacheSize, "oci-cache-size", "10Gi", "cap on converted oci:// images kept in the oci cache dir (Ki/Mi/Gi/Ti); 0: no cap")
	fs.StringVar(&c.ociCacheDir, "oci-cache-dir", "", "where converted oci:// images are cached (default <state-dir>/oci)")
	fs.StringVar(&c.pullSecretDir, "pull-secret-dir", "", "mounted kubernetes.io/dockerconfigjson secrets, as NAME/.dockerconfigjson, for bare pullSecret names; empty: none")
	fs.BoolVar(&c.pullSecretsFromAPI, "pull-secrets-from-api", false, "per-node mode: read NAMESPACE/NAME pull secrets through the Kubernetes API with the in-cluster config (cluster mode always does)")
	return fs, maxImageSize
}

// parseServeFlags reads the flags and checks them.
func parseServeFlags(args []string) (*serveConfig, error) {
	c := &serveConfig{}
	fs, maxImageSize := c.serveFlags()
	klog.InitFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) {
		c.poolSet = c.poolSet || f.Name == "pool"
	})
	if err := c.check(fs, *maxImageSize); err != nil {
		return nil, err
	}
	return c, nil
}

// check refuses bad flag values with a usage error and parses the sizes.
func (c *serveConfig) check(fs *flag.FlagSet, maxImageSize string) error {
	if _, err := ociCacheBytes(c.ociCacheSize); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	if _, err := driver.ParseMode(c.mode); err != nil {
		return usageError{"--mode: " + err.Error()}
	}
	if _, err := driver.ParseEndpoint(c.endpoint); err != nil {
		return usageError{"--endpoint: " + err.Error()}
	}
	if c.nodeID == "" {
		return usageError{"--node-id is required (the hostname is unknown)"}
	}
	if _, err := daxdev.ParseSpec(c.pool); err != nil {
		return usageError{"--pool: " + err.Error()}
	}
	if _, err := daxdev.ParseSize(c.poolSize); err != nil {
		return usageError{"--pool-size: " + err.Error()}
	}
	if err := c.poolTuning.apply(&daxdev.PoolOptions{}, ""); err != nil {
		return err
	}
	switch volume.MountMode(c.mountMode) {
	case volume.MountAuto, volume.MountKernel, volume.MountFUSE:
	default:
		return usageError{fmt.Sprintf("--mount-mode %q: want auto, kernel or fuse", c.mountMode)}
	}
	var err error
	if c.maxImageSize, err = daxdev.ParseSize(maxImageSize); err != nil {
		return usageError{"--max-image-size: " + err.Error()}
	}
	if c.maxVolumes < 0 {
		return usageError{"--max-volumes must not be negative"}
	}
	if len(c.allowSources) == 0 {
		klog.InfoS("No --allow-source given: every image source will be refused")
	}
	return nil
}

// serve runs the pipeline's parts in order: the cluster connection, the
// image sources (oci:// converter), the pool, the node server (stage,
// verify, mount, publish), then the CSI server and, on a cluster node, the
// agent beside it.
func serve(args []string) error {
	c, err := parseServeFlags(args)
	if err != nil {
		return err
	}
	defer klog.Flush()
	mode, _ := driver.ParseMode(c.mode)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	k, err := connectCluster(ctx, c, mode)
	if err != nil {
		return err
	}
	fetcher, err := setupOCI(c, k)
	if err != nil {
		return err
	}
	pool, err := openServePool(c, mode, k)
	if err != nil {
		return err
	}
	if pool != nil {
		defer pool.Close()
	}
	node, err := newNodeServer(c, mode, pool, fetcher)
	if err != nil {
		return err
	}
	if node != nil {
		defer node.Shutdown()
	}
	d, err := driver.New(driverOptions(c, mode, k, pool, node, fetcher))
	if err != nil {
		return err
	}
	if k == nil || node == nil {
		return d.Run(ctx)
	}
	return runWithAgent(ctx, c, d, k, pool, node)
}

// connectCluster starts the Kubernetes cache in cluster mode; nil per node.
func connectCluster(ctx context.Context, c *serveConfig, mode driver.Mode) (*kube, error) {
	kcfg, err := clusterConfig(c)
	if err != nil || kcfg == nil {
		return nil, err
	}
	objs := []client.Object{&daxv1.DaxNode{}}
	if mode != driver.ModeController {
		objs = append(objs, &daxv1.DaxImage{})
	}
	return startKube(ctx, kcfg, mode == driver.ModeController, objs...)
}

// openServePool opens --pool, except for a cluster-mode controller not
// given one (it answers from the DaxNodes); nil then.
func openServePool(c *serveConfig, mode driver.Mode, k *kube) (*daxdev.Pool, error) {
	if mode == driver.ModeController && k != nil && !c.poolSet {
		return nil, nil
	}
	size, _ := daxdev.ParseSize(c.poolSize)
	popts := daxdev.PoolOptions{Size: size, Init: true, Force: c.poolForce}
	_ = c.poolTuning.apply(&popts, c.stateDir) // checked with the flags
	pool, err := daxdev.OpenPool(c.pool, popts)
	if err != nil {
		return nil, fmt.Errorf("open pool %s: %w", c.pool, err)
	}
	info := pool.Info()
	klog.InfoS("Pool open", "spec", c.pool, "id", info.ID, "kind", info.Kind, "size", info.Size, "align", info.Align,
		"heartbeat", popts.Heartbeat, "staleAfter", popts.StaleAfter, "coherence", info.Coherence)
	return pool, nil
}

// newNodeServer makes the node service (nil in controller mode) and hooks
// its images and kernel probe into the metrics.
func newNodeServer(c *serveConfig, mode driver.Mode, pool *daxdev.Pool, fetcher *source.Fetcher) (*nodeserver.NodeServer, error) {
	if mode == driver.ModeController {
		return nil, nil
	}
	node, err := nodeserver.New(nodeserver.Options{
		NodeID:         c.nodeID,
		Pool:           pool,
		PoolSpec:       c.pool,
		StateDir:       c.stateDir,
		AllowSources:   volume.AllowList(c.allowSources),
		Fetcher:        fetcher,
		MountMode:      volume.MountMode(c.mountMode),
		KeepUnused:     c.keepUnused,
		MaxVolumes:     c.maxVolumes,
		MaxImageSize:   c.maxImageSize,
		FuseHostSocket: c.fuseHostSocket,
		OnStage: func(digest, backend string, d time.Duration) {
			metrics.Default.ObserveStage(backend, d)
		},
	})
	if err != nil {
		return nil, err
	}
	metrics.Default.SetKernelSource(func() (metrics.KernelModule, bool) {
		p, ok := node.KernelProbe()
		return metrics.KernelModule{Mount: p.Mount, SharedMap: p.SharedMap, PrivateWriteMap: p.PrivateWriteMap}, ok
	})
	return node, nil
}

// driverOptions wires the parts into the CSI server's options.
func driverOptions(c *serveConfig, mode driver.Mode, k *kube, pool *daxdev.Pool, node *nodeserver.NodeServer, fetcher *source.Fetcher) driver.Options {
	opts := driver.Options{
		DriverName:      c.driverName,
		NodeID:          c.nodeID,
		Mode:            mode,
		Endpoint:        c.endpoint,
		StateDir:        c.stateDir,
		AllowSources:    c.allowSources,
		ProbePaths:      []string{c.stateDir},
		MetricsAddress:  c.metricsAddress,
		Metrics:         metrics.Default,
		ShutdownTimeout: c.shutdownTimeout,
		Resolve:         fetcher.Resolve,

		RegistrationDir:         c.registrationDir,
		KubeletRegistrationPath: c.kubeletRegPath,
	}
	if pool != nil {
		opts.Pool = driver.PoolOf(pool)
	}
	if k != nil && mode.Controller() {
		opts.Cluster = newClusterView(k, c.heartbeatTTL)
	}
	if node != nil {
		opts.Node = node
		opts.Images = func() []metrics.Image { return imagesOf(node.Snapshot()) }
	}
	return opts
}

// runWithAgent serves d with the node agent beside it. The agent stops
// with the server: Run returns on SIGTERM (ctx) or a serve failure, and the
// agent's context ends with it.
func runWithAgent(ctx context.Context, c *serveConfig, d *driver.Driver, k *kube, pool *daxdev.Pool, node *nodeserver.NodeServer) error {
	actx, cancel := context.WithCancel(ctx)
	agentDone := make(chan struct{})
	go func() {
		defer close(agentDone)
		if k.synced(actx) != nil {
			return // stopped before the API server answered
		}
		a := &nodeagent.Agent{Client: k.client, NodeName: c.nodeID, Pools: []*daxdev.Pool{pool},
			Stager: node, CopyNodeLabels: true, Interval: c.reportInterval}
		klog.InfoS("Node agent started", "node", c.nodeID, "interval", a.Interval)
		_ = a.Run(actx)
	}()
	err := d.Run(ctx)
	cancel()
	<-agentDone
	return err
}

func imagesOf(st []nodeserver.ImageStatus) []metrics.Image {
	out := make([]metrics.Image, len(st))
	for i, s := range st {
		out[i] = metrics.Image{Digest: s.Digest, Size: s.Size, RegionBytes: s.RegionBytes,
			References: s.References, Backend: s.Backend, Reason: s.Reason, Healthy: s.Healthy}
	}
	return out
}
