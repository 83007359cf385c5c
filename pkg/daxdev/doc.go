// Package daxdev owns device memory: it discovers DAX-capable devices from
// sysfs, maps them through one backend interface (device-dax, fsdax pmem,
// dma-buf heap, memory file) and keeps a crash-safe pool of extents on them,
// shared by processes and by hosts attached to the same CXL memory.
//
// The pool's table lives at the start of the device (docs/pool-format.md):
// a header, then fixed-size extent records keyed by content digest. Extents
// are aligned to the pool align and allocated first fit; free space is the
// gaps between reserved extents, so it is always coalesced.
//
// Staging is exactly once per digest: the first stager reserves a "staging"
// record under the table lock, fills the bytes outside the lock while a
// heartbeat shows it is alive, flushes them, then flips the record to
// "ready". Others wait and then add themselves as owners. Opening a pool
// frees staging records whose stager is dead (same host: pid gone or
// rebooted; other host: heartbeat older than StaleAfter). Ready records are
// only freed when their last owner releases them (or every owner's lease
// expired, when leases are used).
//
// The table lock is a word in the mapped header taken with compare-and-swap
// (it excludes other hosts), under a goroutine mutex and, for memory files
// and pmem, an flock that the kernel drops when a holder dies.
package daxdev
