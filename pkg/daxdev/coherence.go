package daxdev

import (
	"fmt"
	"unsafe"
)

// Coherence says whether the CPU caches of the hosts sharing the memory are
// kept coherent by hardware (docs/pool-format.md, "Memory model").
type Coherence string

const (
	// CoherenceAuto: what the device reports, else coherent.
	CoherenceAuto Coherence = "auto"
	// CoherenceCoherent: plain loads see other hosts' flushed stores (one
	// host's page cache, QEMU's shared backing file, CXL 2.0 pooling, CXL 3
	// shared memory with hardware coherence).
	CoherenceCoherent Coherence = "coherent"
	// CoherenceNonCoherent: every word another host must see is written back
	// after it is written, and its lines invalidated before it is read (CXL 3
	// memory shared without hardware coherence).
	CoherenceNonCoherent Coherence = "noncoherent"
)

// ParseCoherence accepts auto, coherent and noncoherent ("" = auto).
func ParseCoherence(s string) (Coherence, error) {
	switch Coherence(s) {
	case "", CoherenceAuto:
		return CoherenceAuto, nil
	case CoherenceCoherent, CoherenceNonCoherent:
		return Coherence(s), nil
	}
	return "", fmt.Errorf("%w: coherence %q: want auto, coherent or noncoherent", ErrBadArgument, s)
}

// cacheOps writes back and invalidates CPU cache lines of a mapping.
type cacheOps interface {
	writeback(b []byte, off, n int64)
	invalidate(b []byte, off, n int64)
}

// cpuCache is the real thing: CLFLUSH (+SFENCE / MFENCE) on amd64.
type cpuCache struct{}

func (cpuCache) writeback(b []byte, off, n int64) { writeback(b, off, n) }
func (cpuCache) invalidate(b []byte, off, n int64) {
	if n <= 0 || off < 0 || off >= int64(len(b)) {
		return
	}
	n = min(n, int64(len(b))-off)
	cacheInvalidate(uintptr(unsafe.Pointer(&b[off])), uintptr(n))
}

// setCoherence resolves opts.Coherence for the backend.
func (p *Pool) setCoherence() error {
	c, err := ParseCoherence(string(p.opts.Coherence))
	if err != nil {
		return err
	}
	if c == CoherenceAuto {
		c = p.be.coherence()
	}
	p.coherence = c
	p.cache = p.opts.cache
	if p.cache == nil {
		p.cache = cpuCache{}
	}
	if c == CoherenceNonCoherent && p.opts.cache == nil && !haveCacheWriteback {
		return fmt.Errorf("%w: non-coherent shared memory needs cache-line write-back and invalidation, which this build has only on amd64", ErrBadArgument)
	}
	return nil
}

// flush makes [off, off+n) durable and visible to the other hosts: the
// backend's flush, plus a cache write-back on non-coherent memory when the
// backend's flush is not one already.
func (p *Pool) flush(off, n int64) error {
	if p.coherence == CoherenceNonCoherent {
		p.cache.writeback(p.b, off, n)
		if p.be.kind() == KindDevDAX || p.be.kind() == KindCXL {
			return nil // its flush is the same write-back
		}
	}
	return p.be.flush(off, n)
}

// fresh drops our cached lines of [off, off+n) before reading words other
// hosts write; a no-op on coherent memory.
func (p *Pool) fresh(off, n int64) {
	if p.coherence == CoherenceNonCoherent {
		p.cache.invalidate(p.b, off, n)
	}
}
