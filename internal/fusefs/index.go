package fusefs

import "sync"

// indexCache holds name→inode maps of big directories so a lookup in a
// directory of 100k entries is not a 100k-entry scan. Total entries are
// bounded; the oldest maps are dropped first.
type indexCache struct {
	mu     sync.Mutex
	budget int
	used   int
	maps   map[uint32]map[string]uint32
	order  []uint32 // insertion order, for eviction
}

func newIndexCache(budget int) *indexCache {
	return &indexCache{budget: budget, maps: make(map[uint32]map[string]uint32)}
}

func (c *indexCache) get(dir uint32) map[string]uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maps[dir]
}

// put stores m for dir, evicting older maps to stay within budget. A map
// larger than the whole budget is not kept (lookups then scan).
func (c *indexCache) put(dir uint32, m map[string]uint32) {
	if len(m) > c.budget {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.maps[dir]; ok {
		return // built concurrently by another lookup
	}
	for c.used+len(m) > c.budget && len(c.order) > 0 {
		old := c.order[0]
		c.order = c.order[1:]
		c.used -= len(c.maps[old])
		delete(c.maps, old)
	}
	c.maps[dir] = m
	c.order = append(c.order, dir)
	c.used += len(m)
}

// size reports the number of entries held (tests).
func (c *indexCache) size() (maps, entries int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.maps), c.used
}
