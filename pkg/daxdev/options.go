package daxdev

import "time"

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
	// StaleAfter: a stager on another host whose heartbeat is older is
	// judged dead and its staging extent reclaimed (default 2 minutes).
	StaleAfter time.Duration
	// Lease, when > 0, gives each owner a lease that Stage renews; owners
	// whose lease expired are dropped when their slot or space is needed.
	Lease time.Duration
	// SysRoot and DevRoot are used by "auto" discovery ("/sys", "/dev").
	SysRoot, DevRoot string
}

const (
	defaultStaleAfter = 2 * time.Minute
	tableLockLease    = 10 * time.Second
)

func (o PoolOptions) staleAfter() time.Duration {
	if o.StaleAfter > 0 {
		return o.StaleAfter
	}
	return defaultStaleAfter
}
