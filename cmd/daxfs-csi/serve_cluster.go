package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/daxfs-csi/daxfs-csi/internal/controller"
	"github.com/daxfs-csi/daxfs-csi/internal/topology"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

// kube is serve's Kubernetes connection: a cached client for DaxNodes and
// DaxImages (Nodes and Secrets are read directly, so the node's RBAC needs
// only get on them) and a clientset for pull secrets.
type kube struct {
	cfg    *rest.Config
	client client.Client
	cs     kubernetes.Interface
	cache  cache.Cache
	objs   []client.Object // informers started before use
}

// clusterConfig: --kubeconfig, else in-cluster config with --cluster; nil
// means per-node mode. KUBERNETES_SERVICE_HOST alone does not switch modes:
// the per-node DaemonSet runs in a pod too.
func clusterConfig(c *serveConfig) (*rest.Config, error) {
	if c.kubeconfig == "" && !c.cluster {
		return nil, nil
	}
	return restConfig(c.kubeconfig)
}

// startKube starts the informer cache for objs until ctx ends. With wait it
// also waits for the sync (the controller cannot answer before it); the node
// plugin does not, so it serves its volumes while the API server is down.
func startKube(ctx context.Context, cfg *rest.Config, wait bool, objs ...client.Object) (*kube, error) {
	scheme, err := controller.Scheme()
	if err != nil {
		return nil, err
	}
	ca, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("kubernetes cache: %w", err)
	}
	cl, err := client.New(cfg, client.Options{Scheme: scheme, Cache: &client.CacheOptions{
		Reader: ca, DisableFor: []client.Object{&corev1.Node{}, &corev1.Secret{}},
	}})
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes clientset: %w", err)
	}
	go func() {
		if err := ca.Start(ctx); err != nil {
			klog.ErrorS(err, "Kubernetes cache stopped")
		}
	}()
	k := &kube{cfg: cfg, client: cl, cs: cs, cache: ca, objs: objs}
	if wait {
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := k.synced(sctx); err != nil {
			return nil, fmt.Errorf("kubernetes cache not ready within a minute (API server reachable? RBAC for daxnodes/daximages?): %w", err)
		}
	}
	return k, nil
}

// synced starts the informers (which needs discovery, so the API server)
// and waits for them, retrying until ctx ends.
func (k *kube) synced(ctx context.Context) error {
	for {
		err := k.informers(ctx)
		if err == nil {
			klog.InfoS("Kubernetes cache synced", "host", k.cfg.Host)
			return nil
		}
		klog.InfoS("Kubernetes API not ready, retrying", "host", k.cfg.Host, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(5 * time.Second):
		}
	}
}

func (k *kube) informers(ctx context.Context) error {
	for _, o := range k.objs {
		if _, err := k.cache.GetInformer(ctx, o); err != nil {
			return fmt.Errorf("informer for %T: %w", o, err)
		}
	}
	if !k.cache.WaitForCacheSync(ctx) {
		return errors.New("cache sync cut short")
	}
	return nil
}

// clusterView adapts controller.ClusterReader to driver.Cluster.
type clusterView struct {
	k      *kube
	reader *controller.ClusterReader
}

func newClusterView(k *kube, ttl time.Duration) *clusterView {
	return &clusterView{k: k, reader: &controller.ClusterReader{Client: k.client, TTL: ttl}}
}

func (v *clusterView) Capacity(ctx context.Context, seg map[string]string, digest string) (int64, error) {
	return v.reader.Capacity(ctx, seg, digest)
}

// Topology names pools as NodeGetInfo does (the shared identity when the
// pool has one), so a PV's node affinity matches the node's topology labels.
func (v *clusterView) Topology(ctx context.Context, digest string) ([]map[string]string, error) {
	segs, err := v.reader.Topology(ctx, digest)
	if err != nil {
		return nil, err
	}
	var nodes daxv1.DaxNodeList
	if err := v.k.client.List(ctx, &nodes); err != nil {
		return nil, fmt.Errorf("list DaxNodes: %w", err)
	}
	key := map[[2]string]string{}
	for _, n := range nodes.Items {
		for i := range n.Status.Pools {
			key[[2]string{n.Name, n.Status.Pools[i].ID}] = controller.PoolKey(&n.Status.Pools[i])
		}
	}
	out := make([]map[string]string, 0, len(segs))
	for _, s := range segs {
		s = maps.Clone(s)
		if k, ok := key[[2]string{s[topology.NodeKey], s[topology.PoolKey]}]; ok {
			s[topology.PoolKey] = k
		}
		out = append(out, s)
	}
	return out, nil
}

func (v *clusterView) Align(ctx context.Context) (int64, error) {
	var nodes daxv1.DaxNodeList
	if err := v.k.client.List(ctx, &nodes); err != nil {
		return 0, fmt.Errorf("list DaxNodes: %w", err)
	}
	ttl := v.reader.TTL
	if ttl <= 0 {
		ttl = controller.DefaultHeartbeatTTL
	}
	var align int64
	for i := range nodes.Items {
		if !controller.Live(&nodes.Items[i], ttl, time.Now()) {
			continue
		}
		for _, p := range nodes.Items[i].Status.Pools {
			align = max(align, p.Align)
		}
	}
	return align, nil
}

// Healthy asks the API server itself, not the cache.
func (v *clusterView) Healthy(ctx context.Context) error {
	return v.k.cs.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Error()
}
