package placement

import (
	"fmt"
	"sort"
)

// Place decides where each image gets its copies. Rules, in order:
//   - images are placed by priority (high first), then name;
//   - a pool already holding the image costs nothing and is used first;
//   - then a pool the image is already placed in (Image.Prefer), while it
//     fits without eviction: a change elsewhere moves no pending copy;
//   - a pool seen by several nodes holds one copy for all of them, so pools
//     reaching more uncovered matching nodes win;
//   - then the pool with most free space, then the least loaded node;
//   - a pool is never overcommitted: an image takes its size rounded up to
//     the pool's align, and only fits in the free space plus what evicting
//     unreferenced pre-staged copies of lower-priority images frees.
//
// The same inputs always give the same result, whatever their order.
func Place(images []Image, nodes []Node, pools []Pool) Assignments {
	p := newPlanner(nodes, pools)
	order := make([]int, len(images))
	p.wantPrio = make(map[string]int64, len(images))
	for i, img := range images {
		order[i] = i
		if wp, ok := p.wantPrio[img.Digest]; !ok || int64(img.Priority) > wp {
			p.wantPrio[img.Digest] = int64(img.Priority)
		}
	}
	sort.SliceStable(order, func(a, b int) bool {
		ia, ib := &images[order[a]], &images[order[b]]
		if ia.Priority != ib.Priority {
			return ia.Priority > ib.Priority
		}
		return ia.Name < ib.Name
	})
	out := Assignments{
		ByImage: make(map[string][]Assignment, len(images)),
		Covered: make(map[string]int, len(images)),
		Unmet:   map[string]string{},
	}
	var cands, matching []int32
	for _, i := range order {
		img := &images[i]
		if img.Size <= 0 || img.Digest == "" {
			out.Unmet[img.Name] = "size or digest not known yet"
			continue
		}
		p.stamp++
		matching, cands = p.candidates(img, matching[:0], cands[:0])
		if len(matching) == 0 {
			out.Unmet[img.Name] = "no live node matches the selector"
			continue
		}
		ip := imagePlan{p: p, img: img, out: &out}
		switch img.Policy {
		case PerPool:
			ip.perPool(cands)
		case Replicas:
			ip.replicas(matching, cands)
		default:
			ip.allMatching(matching, cands)
		}
		as := out.ByImage[img.Name]
		sort.Slice(as, func(a, b int) bool { return as[a].PoolID < as[b].PoolID })
		out.Covered[img.Name] = ip.covered
	}
	return out
}

// candidates marks the image's live matching nodes and lists them and the
// pools they see, both ascending.
func (p *planner) candidates(img *Image, matching, cands []int32) ([]int32, []int32) {
	for _, name := range img.Nodes {
		if ni, ok := p.nodeIdx[name]; ok {
			p.match[ni] = p.stamp
		}
	}
	// Scanning the marks keeps index order without sorting.
	for ni, s := range p.match {
		if s != p.stamp {
			continue
		}
		matching = append(matching, int32(ni))
		for _, pi := range p.nodePools[ni] {
			p.pools[pi].stamp = p.stamp
		}
	}
	for pi := range p.pools {
		if p.pools[pi].stamp == p.stamp {
			cands = append(cands, int32(pi))
		}
	}
	return matching, cands
}

// imagePlan places one image.
type imagePlan struct {
	p       *planner
	img     *Image
	out     *Assignments
	covered int // matching nodes reaching a copy
}

func (ip *imagePlan) prio() int64 { return int64(ip.img.Priority) }

func (ip *imagePlan) need(pi int32) int64 { return roundUp(ip.img.Size, ip.p.pools[pi].align) }

// stagedPools lists candidate pools already holding the image, those
// reaching most uncovered matching nodes first.
func (ip *imagePlan) stagedPools(cands []int32) []int32 {
	p := ip.p
	var staged []int32
	var cov []int
	for _, pi := range p.stagedAt[ip.img.Digest] {
		if p.pools[pi].stamp != p.stamp || p.pools[pi].has == p.stamp {
			continue
		}
		if k := p.copyIn(pi, ip.img.Digest); k >= 0 {
			p.pools[pi].has, p.pools[pi].hasIdx = p.stamp, k
			staged = append(staged, pi)
			cov = append(cov, p.coverage(pi))
		}
	}
	idx := make([]int, len(staged))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool {
		if ca, cb := cov[idx[a]], cov[idx[b]]; ca != cb {
			return ca > cb
		}
		return staged[idx[a]] < staged[idx[b]]
	})
	out := make([]int32, len(staged))
	for i, k := range idx {
		out[i] = staged[k]
	}
	return out
}

// better reports whether pool a beats pool b for a copy: fits without
// eviction, reaches more uncovered nodes (capped), more free, less loaded
// node, lower id.
func (ip *imagePlan) better(a, b choice) bool {
	if a.fit != b.fit {
		return a.fit < b.fit
	}
	if a.cov != b.cov {
		return a.cov > b.cov
	}
	if fa, fb := ip.p.pools[a.pi].free, ip.p.pools[b.pi].free; fa != fb {
		return fa > fb
	}
	if a.load != b.load {
		return a.load < b.load
	}
	return a.pi < b.pi
}

type choice struct {
	pi   int32
	fit  int
	cov  int
	load int32
}

func (ip *imagePlan) consider(best *choice, found bool, pi int32, capCov int) (choice, bool) {
	fit := ip.p.fit(pi, ip.need(pi), ip.prio())
	if fit < 0 {
		return *best, found
	}
	c := choice{pi: pi, fit: fit, cov: min(ip.p.coverage(pi), capCov), load: ip.p.minLoad(pi)}
	if !found || ip.better(c, *best) {
		return c, true
	}
	return *best, found
}

// allMatching gives every matching node a copy it reaches.
func (ip *imagePlan) allMatching(matching, cands []int32) {
	p := ip.p
	for _, pi := range ip.stagedPools(cands) {
		if p.coverage(pi) > 0 {
			ip.assign(pi)
		}
	}
	ip.keepPrevious(func() bool { return false }, func() int { return len(matching) })
	missing := 0
	for _, ni := range matching {
		if p.covered[ni] == p.stamp {
			continue
		}
		var best choice
		found := false
		for _, pi := range p.nodePools[ni] {
			best, found = ip.consider(&best, found, pi, len(matching))
		}
		if !found {
			missing++
			continue
		}
		ip.assign(best.pi)
	}
	if missing > 0 {
		ip.out.Unmet[ip.img.Name] = fmt.Sprintf("%d of %d matching nodes have no pool with room for %d bytes", missing, len(matching), ip.img.Size)
	}
}

// keepPrevious assigns the image's preferred (current) pools that are
// candidates, reach an uncovered matching node, fit without eviction and
// reach as many uncovered nodes (up to capCov) as any pool their nodes see
// (a shared pool that appeared since still gathers its nodes' copies into
// one), until done says enough.
func (ip *imagePlan) keepPrevious(done func() bool, capCov func() int) {
	p := ip.p
	for _, id := range ip.img.Prefer {
		if done() {
			return
		}
		pi, ok := p.poolIdx[id]
		if !ok || p.pools[pi].stamp != p.stamp || p.fit(pi, ip.need(pi), ip.prio()) != 0 {
			continue
		}
		c := capCov()
		if cov := min(p.coverage(pi), c); cov == 0 || cov < ip.bestNear(pi, c) {
			continue
		}
		ip.assign(pi)
	}
}

// bestNear is the most uncovered matching nodes (up to capCov) that a pool
// fitting without eviction reaches, among the pools the matching nodes of
// pool pi see.
func (ip *imagePlan) bestNear(pi int32, capCov int) int {
	p := ip.p
	best := 0
	for _, ni := range p.pools[pi].nodes {
		if p.match[ni] != p.stamp {
			continue
		}
		for _, pj := range p.nodePools[ni] {
			if pj != pi && p.pools[pj].stamp == p.stamp && p.fit(pj, ip.need(pj), ip.prio()) == 0 {
				best = max(best, min(p.coverage(pj), capCov))
			}
		}
	}
	return best
}

// replicas gives Replicas matching nodes a copy they reach.
func (ip *imagePlan) replicas(matching, cands []int32) {
	p := ip.p
	target := min(max(ip.img.Replicas, 0), len(matching))
	for _, pi := range ip.stagedPools(cands) {
		if ip.covered >= target {
			break
		}
		if p.coverage(pi) > 0 {
			ip.assign(pi)
		}
	}
	ip.keepPrevious(func() bool { return ip.covered >= target }, func() int { return target - ip.covered })
	for ip.covered < target {
		var best choice
		found := false
		remaining := target - ip.covered
		for _, pi := range cands {
			if found && best.fit == 0 && best.cov == remaining && len(p.pools[pi].nodes) < remaining {
				continue // cannot beat the best's coverage
			}
			best, found = ip.consider(&best, found, pi, remaining)
		}
		if !found || best.cov == 0 {
			ip.out.Unmet[ip.img.Name] = fmt.Sprintf("%d of %d replicas placed: no pool with room for %d bytes", ip.covered, target, ip.img.Size)
			return
		}
		ip.assign(best.pi)
	}
}

// perPool puts a copy in every pool a matching node sees.
func (ip *imagePlan) perPool(cands []int32) {
	ip.stagedPools(cands) // marks pools[pi].has
	missing := 0
	for _, pi := range cands {
		if ip.p.pools[pi].has == ip.p.stamp {
			ip.assign(pi)
			continue
		}
		if ip.p.fit(pi, ip.need(pi), ip.prio()) < 0 {
			missing++
			continue
		}
		ip.assign(pi)
	}
	if missing > 0 {
		ip.out.Unmet[ip.img.Name] = fmt.Sprintf("%d of %d pools lack room for %d bytes", missing, len(cands), ip.img.Size)
	}
}
