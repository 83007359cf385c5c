// Package placement decides which pools hold a copy of which image. Place is
// a pure, deterministic function of its inputs so it is tested without a
// cluster; the controller feeds it DaxNodes and DaxImages and writes the
// result into DaxImage status.
package placement

// Policy says how many copies an image wants (DaxImage spec.placement.policy).
type Policy string

const (
	// AllMatching: every matching node reaches a copy.
	AllMatching Policy = "AllMatching"
	// Replicas: Image.Replicas matching nodes reach a copy.
	Replicas Policy = "Replicas"
	// PerPool: a copy in every pool any matching node sees.
	PerPool Policy = "PerPool"
)

// Image is one image to place.
type Image struct {
	Name     string // DaxImage name; unique
	Digest   string
	Size     int64 // bytes; 0 = unknown, not placed
	Priority int32
	Policy   Policy
	Replicas int
	// Nodes that match the image's selector. Names not in Place's nodes
	// (dead or unknown) are ignored.
	Nodes []string
	// Prefer lists the pools of the image's current placements. One still
	// reaching an uncovered matching node and with room without eviction
	// keeps its copy, so a change elsewhere does not reshuffle every
	// not-yet-staged copy in the cluster (and the statuses with them).
	Prefer []string
}

// Node is a live node. Pools seen only by nodes not listed are ignored: that
// is how a node whose heartbeat expired loses its placements.
type Node struct {
	Name string
}

// Copy is an image copy already in a pool.
type Copy struct {
	Digest     string
	Size       int64
	References int32 // volumes using it
	Prestaged  bool  // staged because it was placed; evictable when unreferenced
}

// Pool is a pool as one node reports it. Entries with the same ID (a pool
// shared by several nodes, e.g. CXL memory) are merged: nodes united, the
// smallest Free kept, copies united.
type Pool struct {
	ID     string // shared identity
	Nodes  []string
	Free   int64
	Align  int64
	Copies []Copy
}

// Assignment is one copy of an image in one pool.
type Assignment struct {
	PoolID string
	Node   string   // the live node that stages it
	Nodes  []string // live nodes that see the pool, sorted
	Staged bool     // the pool already holds the copy
}

// Eviction is a pre-staged copy to release to make room.
type Eviction struct {
	PoolID string
	Digest string
	For    string // the image that needed the room
}

// Assignments is Place's result.
type Assignments struct {
	// ByImage lists each image's copies sorted by pool id.
	ByImage map[string][]Assignment
	// Covered counts the matching live nodes that reach a copy, per image.
	Covered map[string]int
	// Unmet says, per image, why some wanted copy got no pool.
	Unmet map[string]string
	// Evictions in the order they were decided.
	Evictions []Eviction
}

func roundUp(n, align int64) int64 {
	if align <= 1 {
		return n
	}
	return (n + align - 1) / align * align
}
