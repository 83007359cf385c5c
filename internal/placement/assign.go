package placement

import "sort"

// assign records a copy of the image in pool pi: reuses the copy there or
// reserves room (evicting if it must), then marks the nodes it reaches.
func (ip *imagePlan) assign(pi int32) {
	p := ip.p
	ps := &p.pools[pi]
	staged := false
	// stagedPools found the copies already there (has, hasIdx).
	if ps.has == p.stamp && !ps.copies[ps.hasIdx].gone {
		ps.copies[ps.hasIdx].kept = true
		staged = true
	} else {
		need := ip.need(pi)
		if ps.free < need {
			ip.evict(pi, need)
		}
		ps.free -= need
		ps.copies = append(ps.copies, copyState{digest: ip.img.Digest, need: need, prestaged: true, kept: true})
		p.stagedAt[ip.img.Digest] = append(p.stagedAt[ip.img.Digest], pi)
	}
	a := Assignment{PoolID: ps.id, Nodes: make([]string, len(ps.nodes)), Staged: staged}
	stager := int32(-1)
	for i, ni := range ps.nodes {
		a.Nodes[i] = p.nodeNames[ni]
		if p.match[ni] == p.stamp {
			if stager < 0 {
				stager = ni
			}
			if p.covered[ni] != p.stamp {
				p.covered[ni] = p.stamp
				ip.covered++
			}
		}
		if !staged {
			p.load[ni]++
		}
	}
	if stager < 0 {
		stager = ps.nodes[0]
	}
	a.Node = p.nodeNames[stager]
	ip.out.ByImage[ip.img.Name] = append(ip.out.ByImage[ip.img.Name], a)
}

// evict releases evictable copies of pool pi, lowest priority first, then
// largest, then by digest, until need bytes are free. fit checked it can.
func (ip *imagePlan) evict(pi int32, need int64) {
	p := ip.p
	ps := &p.pools[pi]
	var ks []int
	for k := range ps.copies {
		if p.evictable(&ps.copies[k], ip.prio()) {
			ks = append(ks, k)
		}
	}
	prioOf := func(d string) int64 {
		if wp, ok := p.wantPrio[d]; ok {
			return wp
		}
		return -1 << 40 // wanted by nobody: goes first
	}
	sort.Slice(ks, func(a, b int) bool {
		ca, cb := &ps.copies[ks[a]], &ps.copies[ks[b]]
		if pa, pb := prioOf(ca.digest), prioOf(cb.digest); pa != pb {
			return pa < pb
		}
		if ca.need != cb.need {
			return ca.need > cb.need
		}
		return ca.digest < cb.digest
	})
	for _, k := range ks {
		if ps.free >= need {
			return
		}
		c := &ps.copies[k]
		c.gone = true
		ps.free += c.need
		ps.evictable -= c.need
		for _, ni := range ps.nodes {
			p.load[ni]--
		}
		ip.out.Evictions = append(ip.out.Evictions, Eviction{PoolID: ps.id, Digest: c.digest, For: ip.img.Name})
	}
}
