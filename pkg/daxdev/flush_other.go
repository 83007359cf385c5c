//go:build !amd64

package daxdev

import "sync/atomic"

var fence atomic.Uint64

// cacheWriteback has no portable form; elsewhere only a full fence is
// issued, which is enough on cache-coherent memory (docs/pool-format.md).
func cacheWriteback(addr, n uintptr) { fence.Add(1) }
