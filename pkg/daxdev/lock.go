package daxdev

import (
	"time"

	"k8s.io/klog/v2"
)

// lockTable takes the pool-wide table lock: the goroutine mutex, the host
// lock of the backend (flock for memory files, released by the kernel when a
// holder dies) and the lock word in the mapped header, taken with
// compare-and-swap so that processes on other hosts sharing the memory are
// excluded too. The word holds our token and an expiry; a holder that dies
// inside the (short) critical section is overridden once it expires, or at
// once by a process of its own boot that sees its pid gone. On non-coherent
// memory the lock word and holder record are written back after they are
// written and the table is invalidated before it is read.
func (p *Pool) lockTable() (func(), error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if err := p.be.lockHost(); err != nil {
		p.mu.Unlock()
		return nil, err
	}
	mine := uint64(0)
	wait := 20 * time.Microsecond
	for {
		now := time.Now()
		want := p.id.token<<32 | uint64(now.Add(p.opts.lockLease()).Unix())&0xffffffff
		p.fresh(hdrLock, 8)
		old := load(p.b, hdrLock)
		// An implausible expiry is corrupt bytes, not a holder: waiting
		// for it would hang every opener for years.
		exp := int64(old & 0xffffffff)
		expired := old != 0 && (exp < now.Unix() || !p.plausibleExpiry(exp, now))
		if old == 0 || expired || p.lockHolderDead(old, now) {
			if old != 0 {
				klog.InfoS("taking over the pool table lock of a dead or expired holder", "path", p.be.path(), "holder", old>>32, "expired", expired)
			}
			if cas(p.b, hdrLock, old, want) {
				mine = want
				p.flushLog(hdrLock, 8, "lock word")
				p.recordLockHolder()
				break
			}
			continue
		}
		time.Sleep(wait)
		wait = min(wait*2, 5*time.Millisecond)
	}
	// Other hosts wrote the table since we last looked.
	p.fresh(0, p.tableBytes())
	return func() {
		if !cas(p.b, hdrLock, mine, 0) {
			klog.InfoS("pool table lock was taken over while held", "path", p.be.path())
		}
		p.flushLog(hdrLock, 8, "lock word")
		if err := p.be.unlockHost(); err != nil {
			klog.ErrorS(err, "unlock pool", "path", p.be.path())
		}
		p.mu.Unlock()
	}, nil
}

// maxClockSkew is how far another host's clock may run ahead of ours.
const maxClockSkew = time.Minute

// plausibleExpiry: a lock word or format claim is written with an expiry
// one lease ahead of its writer's clock; one further out than a lease plus
// clock skew is no live holder's.
func (p *Pool) plausibleExpiry(exp int64, now time.Time) bool {
	return exp <= now.Add(p.opts.lockLease()+maxClockSkew).Unix()
}

// tableBytes is the header plus the record table (just the header before
// the header is read).
func (p *Pool) tableBytes() int64 {
	if p.nrec == 0 {
		return headerSize
	}
	return tableEnd(p.nrec)
}

func (p *Pool) flushLog(off, n int64, what string) {
	if err := p.flush(off, n); err != nil {
		klog.ErrorS(err, "flush pool "+what, "path", p.be.path())
	}
}

func (p *Pool) holderRec() []byte { return p.b[hdrHolder : hdrHolder+recOwners] }

// recordLockHolder says who holds the lock, so that a holder killed inside
// the critical section is seen dead at once in its own boot.
func (p *Pool) recordLockHolder() {
	h := p.holderRec()
	put64(h, recHost, p.id.host)
	copy(h[recBoot:recBoot+16], p.id.boot[:])
	put64(h, recPid, p.id.pid)
	put64(h, recPidStart, p.id.pidStart)
	store(h, recHeartbeat, uint64(time.Now().UnixNano()))
	store(h, recToken, p.id.token)
	p.flushLog(hdrHolder, recOwners, "lock holder")
}

// lockHolderDead: the holder recorded for lock word old is a dead process of
// this boot of this host. Holders elsewhere (other hosts, other boots, hosts
// cloned from one image) are only overridden on expiry.
func (p *Pool) lockHolderDead(old uint64, now time.Time) bool {
	p.fresh(hdrHolder, recOwners)
	h := p.holderRec()
	if old == 0 || load(h, recToken) != old>>32 || !p.id.sameBoot(h) {
		return false
	}
	return !p.id.stagerAlive(h, p.opts.lockLease(), now)
}
