package driver

import (
	"errors"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

// PoolOf adapts an open daxdev pool to what the driver reads.
func PoolOf(p *daxdev.Pool) Pool { return daxdevPool{p} }

type daxdevPool struct{ p *daxdev.Pool }

var errPoolUnreadable = errors.New("pool table cannot be read (pool closed, or its table lock is stuck)")

func (d daxdevPool) Space() (PoolSpace, error) {
	st := d.p.Status()
	// Status cannot fail; when it could not lock the table it returns
	// neither free space nor extents, which an open pool never does.
	if st.DataSize > 0 && st.Free == 0 && len(st.Extents) == 0 {
		return PoolSpace{}, errPoolUnreadable
	}
	// The shared identity, as the node reports it in NodeGetInfo: hosts
	// sharing one CXL memory share the pool topology segment.
	info := d.p.Info()
	id := info.SharedID
	if id == "" {
		id = info.ID
	}
	return PoolSpace{ID: id, Size: st.DataSize, Free: st.Free, Align: st.Align}, nil
}

func (d daxdevPool) Staged(digest string) (int64, bool) {
	e, ok := d.p.Lookup(digest)
	if !ok {
		return 0, false
	}
	if e.Reserved > 0 {
		return e.Reserved, true
	}
	return e.Length, true
}
