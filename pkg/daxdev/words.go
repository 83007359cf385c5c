package daxdev

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

// word returns the 8-byte word at off of a mapping as an atomic pointer. The
// mapping is page aligned and every atomic field sits at a multiple of 8,
// which wordAligned checks once per mapping.
func word(b []byte, off int64) *uint64 {
	return (*uint64)(unsafe.Pointer(&b[off : off+8][0]))
}

func wordAligned(b []byte) bool {
	return len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))%8 == 0
}

func load(b []byte, off int64) uint64     { return atomic.LoadUint64(word(b, off)) }
func store(b []byte, off int64, v uint64) { atomic.StoreUint64(word(b, off), v) }
func cas(b []byte, off int64, old, new uint64) bool {
	return atomic.CompareAndSwapUint64(word(b, off), old, new)
}

func le64(b []byte, off int64) uint64     { return binary.LittleEndian.Uint64(b[off:]) }
func le32(b []byte, off int64) uint32     { return binary.LittleEndian.Uint32(b[off:]) }
func put64(b []byte, off int64, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }
func put32(b []byte, off int64, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
