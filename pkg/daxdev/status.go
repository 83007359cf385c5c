package daxdev

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
