package daxdev

import (
	"context"
	"sync"
	"testing"
	"time"
)

// countingCache records the write-backs and invalidations a pool asks for.
type countingCache struct {
	mu  sync.Mutex
	ops []cacheOp
}

type cacheOp struct {
	inval  bool
	off, n int64
}

func (c *countingCache) writeback(b []byte, off, n int64) { c.add(false, off, n) }
func (c *countingCache) invalidate(b []byte, off, n int64) {
	c.add(true, off, n)
}
func (c *countingCache) add(inval bool, off, n int64) {
	c.mu.Lock()
	c.ops = append(c.ops, cacheOp{inval, off, n})
	c.mu.Unlock()
}

// covering counts the calls of one kind that cover [off, off+n).
func (c *countingCache) covering(inval bool, off, n int64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := 0
	for _, o := range c.ops {
		if o.inval == inval && o.off <= off && off+n <= o.off+o.n {
			k++
		}
	}
	return k
}

func (c *countingCache) reset() { c.mu.Lock(); c.ops = nil; c.mu.Unlock() }

func TestNonCoherentFlushesAndInvalidates(t *testing.T) {
	_, file := testPool(t, 8<<20, PoolOptions{Align: 1 << 20})
	ca, cb := &countingCache{}, &countingCache{}
	opts := func(c *countingCache, boot byte) PoolOptions {
		return PoolOptions{Coherence: CoherenceNonCoherent, cache: c, ids: clonedHost(boot, ""),
			Heartbeat: 10 * time.Millisecond, StaleAfter: time.Hour}
	}
	a := openHost(t, file, opts(ca, 1))
	b := openHost(t, file, opts(cb, 2))
	if a.coherence != CoherenceNonCoherent {
		t.Fatalf("coherence %s", a.coherence)
	}
	ca.reset()
	data, dg := content(9, 200<<10)
	e, err := a.Stage(context.Background(), dg, int64(len(data)), "a", func(dst []byte) error {
		time.Sleep(60 * time.Millisecond) // a few heartbeats
		copy(dst, data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	i := b.findDigestForTest(t, dg)
	rec := a.recOff(i)
	for _, c := range []struct {
		what   string
		inval  bool
		off, n int64
		min    int
	}{
		{"lock word read", true, hdrLock, 8, 2},     // claim + publish
		{"lock word written", false, hdrLock, 8, 4}, // taken and released twice
		{"lock holder written", false, hdrHolder, recOwners, 2},
		{"table read under the lock", true, 0, tableEnd(a.nrec), 2},
		{"record written", false, rec, recordSize, 3},
		{"heartbeat written", false, rec + recHeartbeat, 8, 3},
		{"generation written", false, hdrGeneration, 8, 2},
		{"extent written", false, e.Offset, e.Length, 1},
	} {
		if got := ca.covering(c.inval, c.off, c.n); got < c.min {
			t.Errorf("stager: %s: %d calls cover [%d,+%d), want >= %d", c.what, got, c.off, c.n, c.min)
		}
	}
	// B finds the extent A staged: it reads the table fresh and drops its
	// cached lines of the extent before handing it out.
	cb.reset()
	fills := 0
	if _, err := b.Stage(context.Background(), dg, int64(len(data)), "b", copyFill(data, &fills)); err != nil || fills != 0 {
		t.Fatalf("B: %v, %d fills", err, fills)
	}
	if cb.covering(true, e.Offset, e.Length) != 1 || cb.covering(true, 0, tableEnd(b.nrec)) < 1 || cb.covering(true, hdrLock, 8) < 1 {
		t.Errorf("B did not invalidate the new extent, the table and the lock word: %+v", cb.ops)
	}
	if cb.covering(false, b.recOff(i), recordSize) < 1 {
		t.Errorf("B did not write back the record it added its owner to")
	}
	cb.reset()
	if _, ok := b.Lookup(dg); !ok || cb.covering(true, e.Offset, e.Length) != 1 {
		t.Errorf("Lookup did not invalidate the extent it returns")
	}
	// Release and open paths too.
	cb.reset()
	if _, err := b.Release(dg, "b"); err != nil || cb.covering(false, b.recOff(i), recordSize) < 1 {
		t.Errorf("Release: %v; record written back %d times", err, cb.covering(false, b.recOff(i), recordSize))
	}
	cc := &countingCache{}
	openHost(t, file, opts(cc, 3))
	if cc.covering(true, 0, headerSize) < 1 {
		t.Errorf("open did not invalidate the header before reading it")
	}
}

func TestCoherentModeNeverInvalidates(t *testing.T) {
	_, file := testPool(t, 8<<20, PoolOptions{Align: 1 << 20})
	c := &countingCache{}
	p := openHost(t, file, PoolOptions{cache: c}) // auto on a memory file: coherent
	data, dg := content(2, 4096)
	if _, err := p.Stage(context.Background(), dg, 4096, "a", copyFill(data, nil)); err != nil {
		t.Fatal(err)
	}
	if p.coherence != CoherenceCoherent || len(c.ops) != 0 {
		t.Fatalf("coherence %s, cache ops %+v: want coherent and none", p.coherence, c.ops)
	}
}

func (p *Pool) findDigestForTest(t *testing.T, digest string) int64 {
	t.Helper()
	d, err := parseDigest(digest)
	if err != nil {
		t.Fatal(err)
	}
	i := p.findDigest(d)
	if i < 0 {
		t.Fatalf("%s not in the table", digest)
	}
	return i
}
