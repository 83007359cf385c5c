package daxdev

import (
	"fmt"
	"time"
)

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
