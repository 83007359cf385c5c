package daxdev

// cacheWriteback writes the CPU cache lines of [addr, addr+n) back to memory.
//
//go:noescape
func cacheWriteback(addr, n uintptr)

// cacheInvalidate drops the CPU cache lines of [addr, addr+n) so that later
// loads read memory.
//
//go:noescape
func cacheInvalidate(addr, n uintptr)

const haveCacheWriteback = true
