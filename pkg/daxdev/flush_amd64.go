package daxdev

// cacheWriteback writes the CPU cache lines of [addr, addr+n) back to memory.
//
//go:noescape
func cacheWriteback(addr, n uintptr)
