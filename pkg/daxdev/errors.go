package daxdev

import "errors"

// Sentinel errors; every error returned by this package that falls in one of
// these classes wraps it, so callers use errors.Is.
var (
	// ErrNoSpace: the extent does not fit in the free space of the pool.
	ErrNoSpace = errors.New("does not fit in the pool")
	// ErrTooSmall: the device cannot hold the table plus one aligned extent.
	ErrTooSmall = errors.New("device too small for a pool")
	// ErrNotAPool: the device holds data that is not a daxfs pool (or is blank
	// and Init was not asked for). Init+Force overwrites it.
	ErrNotAPool = errors.New("device holds something that is not a daxfs pool")
	// ErrCorrupt: the pool table is inconsistent (bad checksum, overlapping or
	// out-of-bounds extents).
	ErrCorrupt = errors.New("pool table is corrupt")
	// ErrTableFull: every extent record of the table is in use.
	ErrTableFull = errors.New("pool table has no free extent record")
	// ErrTooManyOwners: every owner slot of the extent is taken by a live lease.
	ErrTooManyOwners = errors.New("extent has no free owner slot")
	// ErrNotFound: no ready extent with that digest (or that owner).
	ErrNotFound = errors.New("not found in the pool")
	// ErrReclaimed: our staging extent was reclaimed by another process that
	// judged us dead (stale heartbeat) before the fill finished.
	ErrReclaimed = errors.New("staging extent was reclaimed by another stager")
	// ErrLengthMismatch: the digest is already staged with another length.
	ErrLengthMismatch = errors.New("digest already staged with a different length")
	// ErrBadSpec: the pool spec cannot be parsed.
	ErrBadSpec = errors.New("bad pool spec")
	// ErrBadArgument: a digest, owner name, length or option is invalid.
	ErrBadArgument = errors.New("invalid argument")
	// ErrNoDevice: the device (or dma-buf heap) does not exist.
	ErrNoDevice = errors.New("no such device")
	// ErrBusy: the digest is being staged by another live stager and the
	// caller's deadline comes before it is ready or judged dead; retry.
	ErrBusy = errors.New("staging by another stager still in progress")
	// ErrClosed: the pool was closed.
	ErrClosed = errors.New("pool is closed")
)
