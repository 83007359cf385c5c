package daxdev

import (
	"fmt"
)

// Lookup returns the ready extent of digest, if any.
func (p *Pool) Lookup(digest string) (Extent, bool) {
	d, err := parseDigest(digest)
	if err != nil {
		return Extent{}, false
	}
	unlock, err := p.lockTable()
	if err != nil {
		return Extent{}, false
	}
	defer unlock()
	i := p.findDigest(d)
	if i < 0 || recStateOf(p.rec(i)) != stReady {
		return Extent{}, false
	}
	e, err := p.extentOf(i)
	if err != nil {
		return e, false
	}
	p.fresh(e.Offset, e.Length) // may have been staged by another host
	return e, true
}

// Data returns the mapped bytes of e (len == e.Length). They stay valid until
// Close; writing to them changes the pool content.
func (p *Pool) Data(e Extent) ([]byte, error) {
	if e.Offset < p.dataOff || e.Length <= 0 || e.Offset%p.align != 0 || e.Length > p.size-e.Offset {
		return nil, fmt.Errorf("%w: extent %s at %d (+%d) is outside the data region [%d, %d)", ErrBadArgument, e.Digest, e.Offset, e.Length, p.dataOff, p.size)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return nil, ErrClosed
	}
	return p.b[e.Offset : e.Offset+e.Length : e.Offset+e.Length], nil
}

// PhysAddr is the physical address of e's first byte, when the device has one
// (device-dax, pmem); the kernel daxfs mount takes it as phys=.
func (p *Pool) PhysAddr(e Extent) (uint64, bool) {
	base, ok := p.be.physAddr()
	if !ok {
		return 0, false
	}
	return base + uint64(e.Offset), true
}
