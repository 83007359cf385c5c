package daxdev

import (
	"time"

	"k8s.io/klog/v2"
)

// reclaim checks the whole table and frees what crashed or expired users left
// behind: staging extents whose stager is dead, and ready extents whose every
// owner lease expired. Ready extents with a live owner are never touched.
func (p *Pool) reclaim() error {
	unlock, err := p.lockTable()
	if err != nil {
		return err
	}
	defer unlock()
	_, err = p.reclaimLocked(time.Now())
	return err
}

func (p *Pool) reclaimLocked(now time.Time) (freed int, err error) {
	if _, err := p.usedSpans(); err != nil {
		return 0, err
	}
	for i := int64(0); i < p.nrec; i++ {
		r := p.rec(i)
		switch recStateOf(r) {
		case stStaging:
			if p.id.stagerAlive(r, p.opts.staleAfter(), now) {
				continue
			}
			e, _ := p.extentOf(i)
			klog.InfoS("reclaiming staging extent of a dead stager", "path", p.be.path(), "digest", e.Digest, "offset", e.Offset, "pid", le64(r, recPid))
		case stReady:
			live, dropped := pruneOwners(r, now)
			if dropped {
				if err := p.flushRecord(i); err != nil {
					return freed, err
				}
			}
			if live > 0 {
				continue
			}
			e, _ := p.extentOf(i)
			klog.InfoS("freeing ready extent: every owner lease expired", "path", p.be.path(), "digest", e.Digest)
		default:
			continue
		}
		if err := p.freeRecord(i); err != nil {
			return freed, err
		}
		freed++
	}
	return freed, nil
}
