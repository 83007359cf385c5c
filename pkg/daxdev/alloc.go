package daxdev

import (
	"bytes"
	"fmt"
	"sort"
)

// span is a reserved range of the data region.
type span struct{ off, n int64 }

// usedSpans lists the ranges reserved by staging and ready records, sorted by
// offset, and fails on records that overlap.
func (p *Pool) usedSpans() ([]span, error) {
	var used []span
	for i := int64(0); i < p.nrec; i++ {
		if recStateOf(p.rec(i)) == stFree {
			continue
		}
		e, err := p.extentOf(i)
		if err != nil {
			return nil, err
		}
		used = append(used, span{e.Offset, e.Reserved})
	}
	sort.Slice(used, func(a, b int) bool { return used[a].off < used[b].off })
	for k := 1; k < len(used); k++ {
		if used[k-1].off+used[k-1].n > used[k].off {
			return nil, fmt.Errorf("%w: extents at %d (+%d) and %d overlap", ErrCorrupt, used[k-1].off, used[k-1].n, used[k].off)
		}
	}
	return used, nil
}

// freeSpans are the gaps between used spans: free space is never recorded,
// so neighbouring free ranges are always coalesced.
func (p *Pool) freeSpans(used []span) []span {
	var free []span
	at := p.dataOff
	for _, u := range used {
		if u.off > at {
			free = append(free, span{at, u.off - at})
		}
		at = u.off + u.n
	}
	if p.size > at {
		free = append(free, span{at, p.size - at})
	}
	return free
}

// firstFit finds the lowest offset where n aligned bytes fit.
func (p *Pool) firstFit(length, n int64) (int64, error) {
	used, err := p.usedSpans()
	if err != nil {
		return 0, err
	}
	largest := int64(0)
	for _, f := range p.freeSpans(used) {
		if f.n >= n {
			return f.off, nil
		}
		largest = max(largest, f.n)
	}
	return 0, fmt.Errorf("%w: need %d bytes (%d aligned to %d), largest free %d", ErrNoSpace, length, n, p.align, largest)
}

// findDigest returns the staging or ready record of digest d, or -1.
func (p *Pool) findDigest(d [32]byte) int64 {
	for i := int64(0); i < p.nrec; i++ {
		r := p.rec(i)
		if recStateOf(r) != stFree && bytes.Equal(r[recDigest:recDigest+32], d[:]) {
			return i
		}
	}
	return -1
}

func (p *Pool) freeRecordIndex() (int64, error) {
	for i := int64(0); i < p.nrec; i++ {
		if recStateOf(p.rec(i)) == stFree {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: all %d records in use", ErrTableFull, p.nrec)
}

func sortSpans(s []span) { sort.Slice(s, func(a, b int) bool { return s[a].off < s[b].off }) }

func sortExtents(e []Extent) { sort.Slice(e, func(a, b int) bool { return e[a].Offset < e[b].Offset }) }
