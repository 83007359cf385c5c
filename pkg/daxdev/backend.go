package daxdev

// backend is one kind of device memory. It maps the whole device once; the
// pool hands out sub-slices of that mapping.
type backend interface {
	kind() Kind
	path() string
	bytes() []byte // the mapping, len == pool bytes available on the device
	align() int64  // the device's mapping granularity (1 page if none)
	numaNode() int // -1 when unknown
	// physAddr is the physical address of bytes()[0], when known.
	physAddr() (uint64, bool)
	// flush makes [off, off+n) of the mapping durable and visible to other
	// hosts sharing the memory.
	flush(off, n int64) error
	// lockHost/unlockHost exclude other processes of this host around table
	// changes where the OS offers a lock that dies with its holder (flock).
	lockHost() error
	unlockHost() error
	// coherence is what the device says about cache coherence between the
	// hosts sharing it (never auto).
	coherence() Coherence
	// dmaBufFD is the dma-buf fd backing the mapping, or -1.
	dmaBufFD() int
	close() error
}

// noHostLock is for backends without a host lock: the CAS table lock alone
// serialises changes.
type noHostLock struct{}

func (noHostLock) lockHost() error   { return nil }
func (noHostLock) unlockHost() error { return nil }
