package daxdev

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"k8s.io/klog/v2"
)

// Stage makes the content with digest d (length bytes) ready in the pool and
// adds owner to it. Across goroutines, processes and hosts the content is
// copied exactly once: the first caller reserves a staging extent and runs
// fill on its bytes; the others wait for it to turn ready (or, if the stager
// fails or dies, take over) and then just add their owner. A fill error frees
// the extent and is returned wrapped. dst holds stale bytes of earlier
// extents: fill must write all of it.
func (p *Pool) Stage(ctx context.Context, digest string, length int64, owner string, fill func(dst []byte) error) (Extent, error) {
	d, err := parseDigest(digest)
	if err != nil {
		return Extent{}, err
	}
	if err := checkOwner(owner); err != nil {
		return Extent{}, err
	}
	if length <= 0 {
		return Extent{}, fmt.Errorf("%w: length %d of %s must be positive", ErrBadArgument, length, digest)
	}
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return Extent{}, ErrClosed
	}
	p.inflight.Add(1)
	p.mu.Unlock()
	defer p.inflight.Done()
	wait := time.Millisecond
	for {
		e, idx, claimed, busy, err := p.claim(d, digest, length, owner)
		if err != nil {
			return Extent{}, err
		}
		if claimed {
			return p.fillAndPublish(idx, e, owner, fill)
		}
		if e.State == StateReady {
			// Staged by someone else: our cached lines may predate the fill.
			p.fresh(e.Offset, e.Length)
			return e, nil
		}
		// Someone else is staging d: wait for it, but answer (retryably)
		// before the caller's deadline rather than run into it.
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < busyMargin+wait {
			return Extent{}, fmt.Errorf("%w: %s: %s", ErrBusy, digest, busy)
		}
		select {
		case <-ctx.Done():
			return Extent{}, fmt.Errorf("%w: %s: %s: %w", ErrBusy, digest, busy, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(wait*2, 100*time.Millisecond)
	}
}

// busyMargin is how long before its deadline a waiting Stage answers
// ErrBusy, leaving the reply time to reach the caller.
const busyMargin = time.Second

// claim looks d up under the table lock. A ready extent gains owner and is
// returned; a staging one of a live stager is returned as is (the caller
// waits); otherwise a new staging extent is reserved and claimed == true.
func (p *Pool) claim(d [32]byte, digest string, length int64, owner string) (e Extent, idx int64, claimed bool, busy string, err error) {
	unlock, err := p.lockTable()
	if err != nil {
		return e, 0, false, "", err
	}
	defer unlock()
	now := time.Now()
	if i := p.findDigest(d); i >= 0 {
		if e, err = p.extentOf(i); err != nil {
			return e, 0, false, "", err
		}
		if e.Length != length {
			return e, 0, false, "", fmt.Errorf("%w: %s holds %d bytes, asked to stage %d", ErrLengthMismatch, digest, e.Length, length)
		}
		r := p.rec(i)
		switch {
		case e.State == StateReady:
			if err := addOwner(r, owner, p.leaseEnd(now), now); err != nil {
				return e, 0, false, "", fmt.Errorf("add owner %s to %s: %w", owner, digest, err)
			}
			if err := p.flushRecord(i); err != nil {
				return e, 0, false, "", err
			}
			e, err = p.extentOf(i)
			return e, i, false, "", err
		case p.id.stagerAlive(r, p.opts.staleAfter(), now):
			return e, i, false, p.waitingFor(r, now), nil
		}
		klog.InfoS("reclaiming staging extent of a dead stager", "path", p.be.path(), "digest", digest, "pid", le64(r, recPid))
		if err := p.freeRecord(i); err != nil {
			return e, 0, false, "", err
		}
	}
	n := roundUp(length, p.align)
	off, err := p.firstFit(length, n)
	if errors.Is(err, ErrNoSpace) {
		if freed, rerr := p.reclaimLocked(now); rerr != nil {
			return e, 0, false, "", rerr
		} else if freed > 0 {
			off, err = p.firstFit(length, n)
		}
	}
	if err != nil {
		return e, 0, false, "", fmt.Errorf("stage %s: %w", digest, err)
	}
	i, err := p.freeRecordIndex()
	if err != nil {
		return e, 0, false, "", fmt.Errorf("stage %s: %w", digest, err)
	}
	r := p.rec(i)
	clear(r[recOffset:])
	put64(r, recOffset, uint64(off))
	put64(r, recLength, uint64(length))
	put64(r, recReserved, uint64(n))
	copy(r[recDigest:], d[:])
	put64(r, recToken, p.id.token)
	put64(r, recHost, p.id.host)
	copy(r[recBoot:], p.id.boot[:])
	put64(r, recPid, p.id.pid)
	put64(r, recPidStart, p.id.pidStart)
	store(r, recHeartbeat, uint64(now.UnixNano()))
	if err := p.flushRecord(i); err != nil {
		return e, 0, false, "", err
	}
	if err := p.setState(i, stStaging); err != nil {
		return e, 0, false, "", err
	}
	if err := p.flushRecord(i); err != nil {
		return e, 0, false, "", err
	}
	e, err = p.extentOf(i)
	return e, i, err == nil, "", err
}

// waitingFor says what a waiter waits for: the stager of record r, and when
// it is judged dead if its heartbeat stops.
func (p *Pool) waitingFor(r []byte, now time.Time) string {
	hb := now.Sub(time.Unix(0, int64(load(r, recHeartbeat)))).Truncate(time.Millisecond)
	where := "another host or boot"
	if p.id.sameBoot(r) {
		where = "this host"
	}
	return fmt.Sprintf("waiting for the stager on %s (host %016x, pid %d; last heartbeat %s ago) to finish; it is judged dead %s after its last heartbeat", where, le64(r, recHost), le64(r, recPid), hb, p.opts.staleAfter())
}

func (p *Pool) leaseEnd(now time.Time) int64 {
	if p.opts.Lease <= 0 {
		return 0
	}
	return now.Add(p.opts.Lease).UnixNano()
}

// fillAndPublish runs fill on the reserved bytes while a heartbeat tells
// other hosts we live, flushes the data, then flips the record to ready.
func (p *Pool) fillAndPublish(i int64, e Extent, owner string, fill func([]byte) error) (Extent, error) {
	stop := p.heartbeat(i)
	ferr := p.runFill(e, fill)
	stop()
	if ferr == nil {
		ferr = p.flush(e.Offset, e.Length)
	}
	unlock, err := p.lockTable()
	if err != nil {
		return Extent{}, err
	}
	defer unlock()
	r := p.rec(i)
	if recStateOf(r) != stStaging || le64(r, recToken) != p.id.token || le64(r, recOffset) != uint64(e.Offset) {
		return Extent{}, fmt.Errorf("stage %s: %w", e.Digest, ErrReclaimed)
	}
	if ferr != nil {
		if err := p.freeRecord(i); err != nil {
			klog.ErrorS(err, "free extent after failed fill", "digest", e.Digest)
		}
		return Extent{}, fmt.Errorf("fill %s (%d bytes): %w", e.Digest, e.Length, ferr)
	}
	now := time.Now()
	setOwner(r, 0, owner, p.leaseEnd(now))
	put32(r, recCRC, crc32.Checksum(r[recOffset:recDigest+32], castagnoli))
	if err := p.flushRecord(i); err != nil {
		return Extent{}, err
	}
	if err := p.setState(i, stReady); err != nil {
		return Extent{}, err
	}
	if err := p.flushRecord(i); err != nil {
		return Extent{}, err
	}
	klog.V(2).InfoS("staged extent", "path", p.be.path(), "digest", e.Digest, "offset", e.Offset, "length", e.Length, "owner", owner)
	return p.extentOf(i)
}

// runFill turns a panicking fill into an error so the extent gets freed.
func (p *Pool) runFill(e Extent, fill func([]byte) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fill panicked: %v", r)
		}
	}()
	return fill(p.b[e.Offset : e.Offset+e.Length : e.Offset+e.Length])
}

// heartbeat refreshes the record's heartbeat until stopped.
func (p *Pool) heartbeat(i int64) (stop func()) {
	every := p.opts.heartbeat()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				store(p.rec(i), recHeartbeat, uint64(now.UnixNano()))
				p.flushLog(p.recOff(i)+recHeartbeat, 8, "heartbeat")
			}
		}
	}()
	return func() { close(done); <-finished }
}
