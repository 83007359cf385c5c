package main

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestServeFlagsContract(t *testing.T) {
	c, err := parseServeFlags([]string{
		"--mode=node", "--endpoint", "unix:///run/daxfs/csi.sock", "--driver-name", "x.csi.io",
		"--node-id", "n1", "--pool", "memfile:/dev/shm/p", "--pool-size", "2Gi", "--state-dir", "/var/lib/x",
		"--allow-source", "file:///a/", "--allow-source", "https://b.example/", "--metrics-address", ":9808",
		"--keep-unused", "--max-volumes", "7", "-v", "4",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.mode != "node" || c.endpoint != "unix:///run/daxfs/csi.sock" || c.driverName != "x.csi.io" ||
		c.nodeID != "n1" || c.pool != "memfile:/dev/shm/p" || c.poolSize != "2Gi" || c.stateDir != "/var/lib/x" ||
		!slices.Equal(c.allowSources, stringList{"file:///a/", "https://b.example/"}) ||
		c.metricsAddress != ":9808" || !c.keepUnused || c.maxVolumes != 7 {
		t.Fatalf("parsed %+v", c)
	}
}

func TestServeFlagDefaults(t *testing.T) {
	c, err := parseServeFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if c.mode != "all" || c.pool != "memfile:/dev/shm/daxfs-pool" || c.poolSize != "1Gi" || c.nodeID != host || c.driverName != "daxfs.csi.io" {
		t.Fatalf("defaults %+v", c)
	}
}

func TestServeFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		say  string
	}{
		{[]string{"--mode=both"}, "--mode"},
		{[]string{"--endpoint", "tcp://x:1"}, "--endpoint"},
		{[]string{"--pool", "floppy:/dev/fd0"}, "--pool"},
		{[]string{"--pool-size", "lots"}, "--pool-size"},
		{[]string{"--mount-mode", "nfs"}, "--mount-mode"},
		{[]string{"--max-volumes", "-1"}, "--max-volumes"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"extra"}, "unexpected"},
	} {
		_, err := parseServeFlags(c.args)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.say) {
			t.Errorf("%v: error %v, want a usage error naming %s", c.args, err, c.say)
		}
	}
}

func TestServeClusterFlags(t *testing.T) {
	c, err := parseServeFlags([]string{"--mode=controller", "--kubeconfig", "/etc/kc", "--heartbeat-ttl", "90s",
		"--node-report-interval", "5s", "--oci-cache-size", "2Gi"})
	if err != nil {
		t.Fatal(err)
	}
	if c.kubeconfig != "/etc/kc" || c.heartbeatTTL != 90*time.Second || c.reportInterval != 5*time.Second || c.ociCacheSize != "2Gi" || c.poolSet {
		t.Fatalf("parsed %+v", c)
	}
	// Per-node unless told: the per-node DaemonSet runs in a pod too.
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
	if cfg, err := clusterConfig(&serveConfig{}); cfg != nil || err != nil {
		t.Errorf("cluster config without --kubeconfig/--cluster: %v %v, want none", cfg, err)
	}
	if c, _ := parseServeFlags([]string{"--pool", "memfile:/dev/shm/x"}); !c.poolSet {
		t.Error("--pool given, poolSet false")
	}
	if _, err := parseServeFlags([]string{"--oci-cache-size", "huge"}); err == nil || !strings.Contains(err.Error(), "--oci-cache-size") {
		t.Errorf("bad --oci-cache-size: %v", err)
	}
}
