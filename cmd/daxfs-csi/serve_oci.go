package main

import (
	"fmt"
	"path/filepath"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/metrics"
	"github.com/daxfs-csi/daxfs-csi/internal/oci"
	"github.com/daxfs-csi/daxfs-csi/internal/source"
)

// setupOCI builds serve's oci:// converter from the flags -- cache in
// --oci-cache-dir (default <state-dir>/oci) capped at --oci-cache-size,
// mounted pull secrets in --pull-secret-dir, NAMESPACE/NAME pull secrets
// through the API in cluster mode or with --pull-secrets-from-api -- and
// returns the Fetcher the node and the controller fetch through.
func setupOCI(c *serveConfig, k *kube) (*source.Fetcher, error) {
	dir := c.ociCacheDir
	if dir == "" {
		dir = filepath.Join(c.stateDir, "oci")
	}
	maxBytes, err := ociCacheBytes(c.ociCacheSize)
	if err != nil {
		return nil, err
	}
	o := oci.Options{Dir: dir, MaxBytes: maxBytes, PullSecretDir: c.pullSecretDir, OnConversion: func(cv oci.Conversion) {
		result := "ok"
		if cv.Err != nil {
			result = "error"
		}
		metrics.Default.ObserveConversion(result, cv.Duration)
	}}
	cs, err := pullSecretClient(c, k)
	if err != nil {
		return nil, err
	}
	if cs != nil {
		o.PullSecrets = oci.KubeSecrets(cs)
	}
	conv, err := oci.New(o)
	if err != nil {
		return nil, fmt.Errorf("oci converter (cache %s): %w", dir, err)
	}
	metrics.Default.SetConversions(func() []metrics.Conversion {
		act := conv.Active()
		out := make([]metrics.Conversion, len(act))
		for i, p := range act {
			out[i] = metrics.Conversion{Source: p.Source, Layers: p.Layer, Bytes: p.Bytes}
		}
		return out
	})
	klog.InfoS("OCI converter ready", "dir", dir, "maxBytes", maxBytes, "pullSecretDir", c.pullSecretDir, "pullSecretsFromAPI", cs != nil)
	return fetcherWith(conv), nil
}

// pullSecretClient reads NAMESPACE/NAME pull secrets: cluster mode's
// client, else with --pull-secrets-from-api the pod's service account (a
// per-node server in a pod); nil: none.
func pullSecretClient(c *serveConfig, k *kube) (kubernetes.Interface, error) {
	if k != nil {
		return k.cs, nil
	}
	if !c.pullSecretsFromAPI {
		return nil, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("--pull-secrets-from-api: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("--pull-secrets-from-api: kubernetes clientset: %w", err)
	}
	return cs, nil
}
