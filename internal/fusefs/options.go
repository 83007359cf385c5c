package fusefs

import "time"

// Options tune a mount. The zero value is usable.
type Options struct {
	// FSName is the mount source shown in /proc/mounts,
	// e.g. "daxfs:sha256:0123456789ab". Default "daxfs".
	FSName string
	// AllowOther lets users other than the mounter use the mount (pods run
	// as other users). nil means true.
	AllowOther *bool
	// Debug logs every FUSE request.
	Debug bool
	// ReadAheadKB sets the mount's kernel readahead window (bdi
	// read_ahead_kb). 0 means 1024; negative leaves the kernel default.
	ReadAheadKB int
	// NoSelfAccess promises that this process never opens files in its own
	// mount (fuse-serve). Mount then skips go-fuse's poll probe, a request
	// the server sends to itself: if the process were killed during it,
	// its exit would hang forever waiting for its own answer. Processes
	// that do open files in their mount need the probe: without it the Go
	// runtime's epoll registration of such a file deadlocks the server.
	NoSelfAccess bool
	// PushSiblingsKB bounds how many KiB of a directory's small files are
	// stored into the kernel's page cache when the first of its files is
	// read (see pushSiblings), so a cold walk that reads files reads the
	// rest without a READ each. 0 means 2048; negative pushes nothing.
	PushSiblingsKB int
	// LookupIndexBudget bounds how many directory entries the name indexes
	// of big directories hold in total. 0 means DefaultLookupIndexBudget.
	LookupIndexBudget int
}

const (
	// DefaultLookupIndexBudget is about 50 MiB of index at most.
	DefaultLookupIndexBudget = 1 << 20
	// indexMinEntries: smaller directories are scanned; a scan of a few
	// dozen mapped entries is cheaper than building a map.
	indexMinEntries = 64
	// cacheTimeout is how long the kernel may trust entries and
	// attributes: the image is immutable, so as long as it likes.
	cacheTimeout = 365 * 24 * time.Hour
	// maxRequest is the largest READ the kernel may send (256 pages).
	maxRequest         = 1 << 20
	defaultReadAheadKB = 1024
	defaultPushKB      = 2048
	// maxPushFile: bigger files are read with readahead in 1 MiB READs,
	// where a round trip is cheap next to the copy.
	maxPushFile = 128 << 10
)

func (o Options) allowOther() bool { return o.AllowOther == nil || *o.AllowOther }

func (o Options) fsName() string {
	if o.FSName == "" {
		return "daxfs"
	}
	return o.FSName
}

func (o Options) indexBudget() int {
	if o.LookupIndexBudget <= 0 {
		return DefaultLookupIndexBudget
	}
	return o.LookupIndexBudget
}

func (o Options) readAheadKB() int {
	if o.ReadAheadKB == 0 {
		return defaultReadAheadKB
	}
	return o.ReadAheadKB
}

func (o Options) pushBudget() int64 {
	switch {
	case o.PushSiblingsKB == 0:
		return defaultPushKB << 10
	case o.PushSiblingsKB < 0:
		return 0
	}
	return int64(o.PushSiblingsKB) << 10
}
