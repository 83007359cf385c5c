package daxdev

import "unsafe"

// writeback pushes [off, off+n) of mapping b out of the CPU caches. Device-dax
// memory has no page cache, so msync does nothing for it; what makes stores
// durable on ADR pmem and visible to other hosts on non-coherent shared CXL
// memory is a cache-line write-back.
func writeback(b []byte, off, n int64) {
	if n <= 0 || off < 0 || off >= int64(len(b)) {
		return
	}
	n = min(n, int64(len(b))-off)
	cacheWriteback(uintptr(unsafe.Pointer(&b[off])), uintptr(n))
}
