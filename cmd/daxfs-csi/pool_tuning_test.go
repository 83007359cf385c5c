package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

// The pool-sharing flags are a contract with the chart
// (node.pool.heartbeat / staleAfter / coherence).
func TestServePoolSharingFlags(t *testing.T) {
	c, err := parseServeFlags([]string{"--pool-heartbeat", "500ms", "--pool-stale-after", "4s", "--pool-coherence", "noncoherent", "--state-dir", "/var/lib/x"})
	if err != nil {
		t.Fatal(err)
	}
	var o daxdev.PoolOptions
	if err := c.poolTuning.apply(&o, c.stateDir); err != nil {
		t.Fatal(err)
	}
	if o.Heartbeat != 500*time.Millisecond || o.StaleAfter != 4*time.Second || o.Coherence != daxdev.CoherenceNonCoherent ||
		o.HostIDFile != filepath.Join("/var/lib/x", daxdev.HostIDFileName) {
		t.Fatalf("pool options %+v", o)
	}
	d, err := parseServeFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.poolTuning.heartbeat != daxdev.DefaultHeartbeat || d.poolTuning.staleAfter != daxdev.DefaultStaleAfter ||
		d.poolTuning.coherence != "auto" || d.poolTuning.staleAfter >= 30*time.Second {
		t.Fatalf("defaults %+v: want a takeover well under 30 s", d.poolTuning)
	}
	for _, args := range [][]string{
		{"--pool-coherence", "mostly"},
		{"--pool-heartbeat", "5s", "--pool-stale-after", "10s"},
		{"--pool-heartbeat", "0s"},
	} {
		_, err := parseServeFlags(args)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--pool-") {
			t.Errorf("%v: %v, want a usage error naming the flag", args, err)
		}
	}
	// The pool subcommands take them too.
	var pf poolFlags
	fs := newPoolFlagSet("pool status", &pf)
	o, err = parsePoolArgs(fs, &pf, []string{"--pool", "memfile:/x", "--pool-stale-after", "9s"}, 0, "")
	if err != nil || o.StaleAfter != 9*time.Second || o.Heartbeat != daxdev.DefaultHeartbeat {
		t.Fatalf("pool subcommand: %+v, %v", o, err)
	}
}
