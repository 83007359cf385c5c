package daxdev

import "time"

// Extent is one staged image in the pool.
type Extent struct {
	Digest   string  `json:"digest"` // "sha256:<hex>"
	Offset   int64   `json:"offset"` // from the pool (device) start
	Length   int64   `json:"length"` // bytes of content
	Reserved int64   `json:"reserved"`
	State    State   `json:"state"`
	Owners   []Owner `json:"owners"`
}

// Owner is a user of an extent: a node or process name and its lease.
type Owner struct {
	Name    string    `json:"name"`
	Expires time.Time `json:"expires,omitzero"` // zero: until released
}

// OwnerNames lists the owners' names.
func (e Extent) OwnerNames() []string {
	names := make([]string, 0, len(e.Owners))
	for _, o := range e.Owners {
		names = append(names, o.Name)
	}
	return names
}

// Status is a snapshot of the pool table.
type Status struct {
	Size        int64    `json:"size"`     // pool bytes, header and table included
	DataSize    int64    `json:"dataSize"` // bytes of the data region
	Free        int64    `json:"free"`     // bytes not reserved by any extent
	LargestFree int64    `json:"largestFree"`
	Align       int64    `json:"align"`
	Generation  uint64   `json:"generation"`
	Extents     []Extent `json:"extents"` // by offset
}

// Info describes the device a pool lives on.
type Info struct {
	ID       string // pool UUID
	Kind     Kind
	Path     string
	Size     int64 // pool bytes on the device (header and table included)
	Align    int64
	NUMANode int // -1 when unknown
	// SharedID is the identity of the shared memory: the pool UUID, the same
	// for every host that opens the same (CXL) memory.
	SharedID string
	PhysAddr uint64 // of the pool start, 0 when unknown
	DMABufFD int    // -1 unless dmaheap
	// Coherence in effect between the hosts sharing the memory (never auto).
	Coherence Coherence
}
