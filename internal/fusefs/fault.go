package fusefs

import "runtime/debug"

// guardFaults makes a fault on the mapped image (a mapped file truncated
// underneath us) panic in this request's goroutine instead of killing the
// server; go-fuse recovers the panic and answers EIO. The setting sticks
// to go-fuse's reused request goroutines, so this is only a flag store.
func guardFaults() { debug.SetPanicOnFault(true) }

// loadByte reads b[i]; noinline so the load is not optimised away.
//
//go:noinline
func loadByte(b []byte, i int) byte { return b[i] }
