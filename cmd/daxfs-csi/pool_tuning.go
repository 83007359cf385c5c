package main

import (
	"flag"
	"path/filepath"
	"time"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

// poolTuning are the flags for sharing one pool between hosts, common to
// serve and the pool subcommands that stage or take the table lock.
type poolTuning struct {
	heartbeat  time.Duration
	staleAfter time.Duration
	coherence  string
}

func (t *poolTuning) register(fs *flag.FlagSet) {
	fs.DurationVar(&t.heartbeat, "pool-heartbeat", daxdev.DefaultHeartbeat, "how often a stager refreshes its heartbeat in the pool table (at most a third of --pool-stale-after)")
	fs.DurationVar(&t.staleAfter, "pool-stale-after", daxdev.DefaultStaleAfter, "a stager on another host or boot whose heartbeat is older is judged dead and its staging extent taken over; hosts' clocks must agree to well within it")
	fs.StringVar(&t.coherence, "pool-coherence", string(daxdev.CoherenceAuto), "memory model between the hosts sharing the pool: auto (what the device reports, else coherent), coherent or noncoherent (write back and invalidate cache lines around every shared word)")
}

// apply checks the values and sets them in opts; hostIDDir (the node's state
// dir, "" = none) keeps the random host id.
func (t *poolTuning) apply(opts *daxdev.PoolOptions, hostIDDir string) error {
	c, err := daxdev.ParseCoherence(t.coherence)
	if err != nil {
		return usageError{"--pool-coherence: " + err.Error()}
	}
	if t.heartbeat <= 0 || t.staleAfter < 3*t.heartbeat {
		return usageError{"--pool-stale-after must be at least 3 × --pool-heartbeat, both positive"}
	}
	opts.Heartbeat, opts.StaleAfter, opts.Coherence = t.heartbeat, t.staleAfter, c
	if hostIDDir != "" {
		opts.HostIDFile = filepath.Join(hostIDDir, daxdev.HostIDFileName)
	}
	return nil
}
