package daxdev

import (
	"fmt"
	"time"
)

// PoolOptions tune OpenPool. The zero value opens an existing pool.
type PoolOptions struct {
	// Size of a new pool in bytes (0 = the whole device): on Init a memory
	// file is created or grown to it; dmaheap allocates it. An existing pool
	// keeps the size it was created with.
	Size int64
	// Align of extents on Init; a power of two, a multiple of the device's own
	// align. 0 = the device align (memfile: DefaultMemfileAlign).
	Align int64
	// Init creates a pool on a blank (all zero) device. On a device that
	// already holds a pool it just opens it.
	Init bool
	// Force, with Init, overwrites whatever the device holds, pools included.
	Force bool
	// Records is the capacity of the extent table on Init (default 1024).
	Records int
	// Offset of the pool inside a memory file (page multiple), e.g. where a
	// guest's /dev/dax0.0 starts inside a QEMU backing file.
	Offset int64
	// StaleAfter: a stager on another host (or another boot) whose
	// heartbeat is older is judged dead and its staging extent reclaimed
	// (default DefaultStaleAfter). Hosts' clocks must agree to within
	// StaleAfter - Heartbeat - the longest pause of a live stager.
	StaleAfter time.Duration
	// Heartbeat is how often a stager refreshes its heartbeat (default
	// DefaultHeartbeat, at most StaleAfter/3).
	Heartbeat time.Duration
	// HostIDFile keeps a random host id, created on first use (the node's
	// state dir); it tells apart hosts cloned from one image. "" = none: the
	// boot id still does.
	HostIDFile string
	// Coherence of the memory between the hosts sharing it (default auto:
	// what the device reports, else coherent).
	Coherence Coherence
	// Lease, when > 0, gives each owner a lease that Stage renews; owners
	// whose lease expired are dropped when their slot or space is needed.
	Lease time.Duration
	// SysRoot and DevRoot are used by "auto" discovery ("/sys", "/dev").
	SysRoot, DevRoot string

	ids   *identitySources // tests: hosts cloned from one image
	cache cacheOps         // tests: count cache write-backs and invalidations
}

// HostIDFileName is the host id file in a node's state dir.
const HostIDFileName = "pool-host-id"

const (
	// DefaultStaleAfter bounds a takeover from a dead stager on another host.
	DefaultStaleAfter = 10 * time.Second
	// DefaultHeartbeat is the stager heartbeat period.
	DefaultHeartbeat = 2 * time.Second
	tableLockLease   = 10 * time.Second
)

func (o PoolOptions) staleAfter() time.Duration {
	if o.StaleAfter > 0 {
		return o.StaleAfter
	}
	return DefaultStaleAfter
}

func (o PoolOptions) heartbeat() time.Duration {
	if o.Heartbeat > 0 {
		return o.Heartbeat
	}
	return min(DefaultHeartbeat, o.staleAfter()/4)
}

// lockLease is how long the table lock word stays valid without its holder
// (whole seconds, as the word stores them): other hosts override it then.
func (o PoolOptions) lockLease() time.Duration {
	return max(time.Second, min(tableLockLease, o.staleAfter()).Truncate(time.Second))
}

func (o PoolOptions) check() error {
	if o.StaleAfter < 0 || o.Heartbeat < 0 {
		return fmt.Errorf("%w: negative heartbeat %s or stale-after %s", ErrBadArgument, o.Heartbeat, o.StaleAfter)
	}
	if o.heartbeat()*3 > o.staleAfter() {
		return fmt.Errorf("%w: stale-after %s must be at least 3 heartbeats (%s)", ErrBadArgument, o.staleAfter(), o.heartbeat())
	}
	if _, err := ParseCoherence(string(o.Coherence)); err != nil {
		return err
	}
	return nil
}
