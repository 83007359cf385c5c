package daxdev

import (
	"fmt"
	"time"
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
	return e, err == nil
}

// Release removes owner from the extent of digest; the extent is freed (and
// freed == true) when no owner remains.
func (p *Pool) Release(digest, owner string) (freed bool, err error) {
	d, err := parseDigest(digest)
	if err != nil {
		return false, err
	}
	unlock, err := p.lockTable()
	if err != nil {
		return false, err
	}
	defer unlock()
	i := p.findDigest(d)
	if i < 0 || recStateOf(p.rec(i)) != stReady {
		return false, fmt.Errorf("release %s: no ready extent: %w", digest, ErrNotFound)
	}
	r := p.rec(i)
	found := false
	for s := int64(0); s < ownerSlots; s++ {
		if name, _, ok := ownerAt(r, s); ok && name == owner {
			setOwner(r, s, "", 0)
			found = true
		}
	}
	if !found {
		return false, fmt.Errorf("release %s: owner %q does not hold it: %w", digest, owner, ErrNotFound)
	}
	if live, _ := pruneOwners(r, time.Now()); live > 0 {
		store(p.b, hdrGeneration, load(p.b, hdrGeneration)+1)
		return false, p.flushRecord(i)
	}
	return true, p.freeRecord(i)
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

// Status is a snapshot of the table. On a corrupt table it lists what it can
// decode.
func (p *Pool) Status() Status {
	st := Status{Size: p.size, DataSize: p.size - p.dataOff, Align: p.align}
	unlock, err := p.lockTable()
	if err != nil {
		return st
	}
	defer unlock()
	st.Generation = load(p.b, hdrGeneration)
	var used []span
	for i := int64(0); i < p.nrec; i++ {
		if recStateOf(p.rec(i)) == stFree {
			continue
		}
		if e, err := p.extentOf(i); err == nil {
			st.Extents = append(st.Extents, e)
			used = append(used, span{e.Offset, e.Reserved})
		}
	}
	sortExtents(st.Extents)
	sortSpans(used)
	st.Free = st.DataSize
	for _, u := range used {
		st.Free -= u.n
	}
	for _, f := range p.freeSpans(used) {
		st.LargestFree = max(st.LargestFree, f.n)
	}
	return st
}
