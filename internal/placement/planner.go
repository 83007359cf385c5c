package placement

import (
	"math"
	"sort"
)

// planner is Place's working state. Nodes and pools are indexed in sorted
// name/id order, so index order is a deterministic tie-break.
type planner struct {
	nodeNames []string
	nodeIdx   map[string]int32
	nodePools [][]int32
	load      []int32 // copies each node reaches
	match     []int32 // == stamp: matches the current image
	covered   []int32 // == stamp: reaches a copy of the current image
	pools     []poolState
	poolIdx   map[string]int32   // pool id -> index in pools
	wantPrio  map[string]int64   // highest priority wanting each digest
	stagedAt  map[string][]int32 // pools that held or got a copy of each digest
	stamp     int32
}

type poolState struct {
	id        string
	nodes     []int32 // live nodes, ascending
	free      int64
	align     int64
	copies    []copyState
	evictable int64 // bytes of unreferenced pre-staged copies (upper bound of what eviction frees)
	stamp     int32 // == planner.stamp: a candidate of the current image
	has       int32 // == planner.stamp: holds a copy of the current image, at copies[hasIdx]
	hasIdx    int
}

type copyState struct {
	digest    string
	need      int64 // size rounded up to the pool align
	refs      int32
	prestaged bool
	gone      bool // evicted
	kept      bool // assigned this round
}

func newPlanner(nodes []Node, pools []Pool) *planner {
	p := &planner{nodeIdx: make(map[string]int32, len(nodes)), stagedAt: map[string][]int32{}}
	for _, n := range nodes {
		p.nodeIdx[n.Name] = 0
	}
	p.nodeNames = make([]string, 0, len(p.nodeIdx))
	for name := range p.nodeIdx {
		p.nodeNames = append(p.nodeNames, name)
	}
	sort.Strings(p.nodeNames)
	for i, name := range p.nodeNames {
		p.nodeIdx[name] = int32(i)
	}
	n := len(p.nodeNames)
	p.nodePools = make([][]int32, n)
	p.load = make([]int32, n)
	p.match = make([]int32, n)
	p.covered = make([]int32, n)
	p.mergePools(pools)
	return p
}

// mergePools folds the per-node reports of one pool into one poolState and
// drops pools no live node sees.
func (p *planner) mergePools(pools []Pool) {
	byID := make(map[string]int, len(pools))
	var merged []poolState
	p.poolIdx = make(map[string]int32, len(pools))
	seen := make(map[string]map[string]bool) // pool -> digests present
	for _, in := range pools {
		i, ok := byID[in.ID]
		if !ok {
			i = len(merged)
			byID[in.ID] = i
			merged = append(merged, poolState{id: in.ID, free: in.Free, align: max(in.Align, 1)})
			seen[in.ID] = map[string]bool{}
		}
		ps := &merged[i]
		ps.free = min(ps.free, in.Free) // reports race; trust the tightest
		ps.align = max(ps.align, in.Align)
		for _, name := range in.Nodes {
			if ni, ok := p.nodeIdx[name]; ok {
				ps.nodes = append(ps.nodes, ni)
			}
		}
		for _, c := range in.Copies {
			if seen[in.ID][c.Digest] {
				// Another node's view of the same copy: keep the larger count.
				for k := range ps.copies {
					if ps.copies[k].digest == c.Digest {
						ps.copies[k].refs = max(ps.copies[k].refs, c.References)
						ps.copies[k].prestaged = ps.copies[k].prestaged || c.Prestaged
					}
				}
				continue
			}
			seen[in.ID][c.Digest] = true
			ps.copies = append(ps.copies, copyState{digest: c.Digest, need: c.Size, refs: c.References, prestaged: c.Prestaged})
		}
	}
	sort.Slice(merged, func(a, b int) bool { return merged[a].id < merged[b].id })
	for i := range merged {
		ps := &merged[i]
		if len(ps.nodes) == 0 {
			continue
		}
		ps.nodes = sortUnique(ps.nodes)
		sort.Slice(ps.copies, func(a, b int) bool { return ps.copies[a].digest < ps.copies[b].digest })
		for k := range ps.copies {
			c := &ps.copies[k]
			c.need = roundUp(c.need, ps.align)
			if c.refs == 0 && c.prestaged {
				ps.evictable += c.need
			}
		}
		pi := int32(len(p.pools))
		p.pools = append(p.pools, *ps)
		p.poolIdx[ps.id] = pi
		for _, c := range ps.copies {
			p.stagedAt[c.digest] = append(p.stagedAt[c.digest], pi)
		}
		for _, ni := range ps.nodes {
			p.nodePools[ni] = append(p.nodePools[ni], pi)
			p.load[ni] += int32(len(ps.copies))
		}
	}
}

func sortUnique(s []int32) []int32 {
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// copyIn returns the index of a live copy of digest in pool pi, or -1.
func (p *planner) copyIn(pi int32, digest string) int {
	cs := p.pools[pi].copies
	for k := range cs {
		if cs[k].digest == digest && !cs[k].gone {
			return k
		}
	}
	return -1
}

// coverage counts matching nodes of pool pi not yet reaching a copy.
func (p *planner) coverage(pi int32) int {
	c := 0
	for _, n := range p.pools[pi].nodes {
		if p.match[n] == p.stamp && p.covered[n] != p.stamp {
			c++
		}
	}
	return c
}

// minLoad is the load of the least loaded node seeing pool pi.
func (p *planner) minLoad(pi int32) int32 {
	m := int32(math.MaxInt32)
	for _, n := range p.pools[pi].nodes {
		m = min(m, p.load[n])
	}
	return m
}

// evictable reports whether copy c may be evicted for an image of priority
// prio: unreferenced, pre-staged, not chosen this round, and not wanted at
// the same priority (lower ones lose; higher ones were placed first and did
// not keep it).
func (p *planner) evictable(c *copyState, prio int64) bool {
	if c.gone || c.kept || c.refs > 0 || !c.prestaged {
		return false
	}
	wp, wanted := p.wantPrio[c.digest]
	return !wanted || wp != prio
}

// fit says whether need bytes fit in pool pi: 0 as is, 1 after evicting
// lower-priority pre-staged copies, -1 not at all.
func (p *planner) fit(pi int32, need, prio int64) int {
	ps := &p.pools[pi]
	if ps.free >= need {
		return 0
	}
	if ps.free+ps.evictable < need {
		return -1
	}
	room := ps.free
	for k := range ps.copies {
		if c := &ps.copies[k]; p.evictable(c, prio) {
			room += c.need
		}
	}
	if room >= need {
		return 1
	}
	return -1
}
