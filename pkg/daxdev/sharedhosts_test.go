package daxdev

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hostMemory is a backend for one "host" of a shared memory: the memory
// file without its flock, which hosts sharing CXL memory do not have either,
// so only the lock word in the memory excludes them.
type hostMemory struct{ backend }

func (hostMemory) lockHost() error   { return nil }
func (hostMemory) unlockHost() error { return nil }

// clonedHost is the identity of a guest booted from the same image as every
// other: same machine-id, hostname and (initial) pid namespace inode, and in
// this test even the same pid. Only boot (kernel boot id) and node (the
// random id in the node's state dir) may differ.
func clonedHost(boot byte, node string) *identitySources {
	return &identitySources{
		machineID: func() string { return "0123456789abcdef0123456789abcdef" },
		hostname:  func() string { return "node-image" },
		pidNS:     func() string { return "pid:[4026531836]" },
		bootID:    func() [16]byte { return [16]byte{boot, 1, 2, 3} },
		nodeID:    func() (string, error) { return node, nil },
		pid:       os.Getpid,
	}
}

// openHost opens the pool in file as one host of the shared memory.
func openHost(t *testing.T, file string, opts PoolOptions) *Pool {
	t.Helper()
	be, err := openMemfile(file, opts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := openOn(hostMemory{be}, opts)
	if err != nil {
		be.close()
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestClonedHostsKeepEachOthersLiveClaims(t *testing.T) {
	for _, tc := range []struct {
		name         string
		bootA, bootB byte
		nodeA, nodeB string
	}{
		{"one image, two boots", 1, 2, "", ""},
		{"one snapshot, same boot id, own state dirs", 1, 1, "a", "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, file := testPool(t, 8<<20, PoolOptions{Align: 1 << 20})
			a := openHost(t, file, PoolOptions{ids: clonedHost(tc.bootA, tc.nodeA), StaleAfter: time.Hour})
			b := openHost(t, file, PoolOptions{ids: clonedHost(tc.bootB, tc.nodeB), StaleAfter: time.Hour})
			if a.id.host == b.id.host {
				t.Fatalf("hosts cloned from one image got one host id %x", a.id.host)
			}
			data, dg := content(5, 300<<10)
			filling, release := make(chan struct{}), make(chan struct{})
			aErr := make(chan error, 1)
			go func() {
				_, err := a.Stage(context.Background(), dg, int64(len(data)), "node-a", func(dst []byte) error {
					close(filling)
					<-release
					copy(dst, data)
					return nil
				})
				aErr <- err
			}()
			<-filling
			// B must wait for A's live claim, and say so before its deadline.
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			bFills := 0
			_, err := b.Stage(ctx, dg, int64(len(data)), "node-b", copyFill(data, &bFills))
			if !errors.Is(err, ErrBusy) || ctx.Err() != nil || !strings.Contains(err.Error(), "waiting for the stager") {
				t.Fatalf("B staging while A fills: %v (ctx %v), want ErrBusy before the deadline", err, ctx.Err())
			}
			// Reopening (which reclaims dead stagers' extents) must not free A's claim either.
			openHost(t, file, PoolOptions{ids: clonedHost(tc.bootB, tc.nodeB), StaleAfter: time.Hour})
			close(release)
			if err := <-aErr; err != nil {
				t.Fatalf("A's stage: %v (its live claim was reclaimed?)", err)
			}
			e, err := b.Stage(context.Background(), dg, int64(len(data)), "node-b", copyFill(data, &bFills))
			if err != nil || bFills != 0 {
				t.Fatalf("B after A: %v, %d fills (want the ready extent, no fill)", err, bFills)
			}
			if got := e.OwnerNames(); len(got) != 2 {
				t.Fatalf("owners %v, want node-a and node-b", got)
			}
		})
	}
}

func TestClonedHostsKeepEachOthersTableLock(t *testing.T) {
	_, file := testPool(t, 8<<20, PoolOptions{Align: 1 << 20})
	a := openHost(t, file, PoolOptions{ids: clonedHost(1, "")})
	b := openHost(t, file, PoolOptions{ids: clonedHost(2, "")})
	unlock, err := a.lockTable()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { b.Status(); close(done) }()
	select {
	case <-done:
		t.Fatal("a host cloned from the same image took the table lock of a live holder")
	case <-time.After(300 * time.Millisecond):
	}
	unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("B never got the lock after A released it")
	}
}

// A holder on another boot that died inside the critical section is
// overridden once its lease (bounded by StaleAfter) expires, not before.
func TestDeadHolderOnAnotherBootExpires(t *testing.T) {
	_, file := testPool(t, 8<<20, PoolOptions{Align: 1 << 20})
	opts := PoolOptions{StaleAfter: 2 * time.Second}
	a := openHost(t, file, PoolOptions{ids: clonedHost(1, ""), StaleAfter: 2 * time.Second})
	opts.ids = clonedHost(2, "")
	b := openHost(t, file, opts)
	// A "dies" holding the lock: its lock word and holder record stay.
	store(a.b, hdrLock, a.id.token<<32|uint64(time.Now().Add(a.opts.lockLease()).Unix()))
	a.recordLockHolder()
	start := time.Now()
	b.Status()
	if d := time.Since(start); d < time.Second || d > 4*time.Second {
		t.Fatalf("took the lock of a dead holder on another boot after %s, want its 2 s lease", d)
	}
}

func TestStageAnswersBusyBeforeDeadline(t *testing.T) {
	_, file := testPool(t, 8<<20, PoolOptions{Align: 1 << 20})
	a := openHost(t, file, PoolOptions{ids: clonedHost(1, "")})
	b := openHost(t, file, PoolOptions{ids: clonedHost(2, "")})
	data, dg := content(6, 4096)
	filling, release := make(chan struct{}), make(chan struct{})
	go a.Stage(context.Background(), dg, 4096, "a", func(dst []byte) error { close(filling); <-release; copy(dst, data); return nil })
	defer close(release)
	<-filling
	deadline := time.Now().Add(2500 * time.Millisecond)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	_, err := b.Stage(ctx, dg, 4096, "b", copyFill(data, nil))
	left := time.Until(deadline)
	if !errors.Is(err, ErrBusy) || left < 500*time.Millisecond {
		t.Fatalf("Stage: %v with %s left before the deadline; want ErrBusy at least 0.5 s before it", err, left)
	}
	for _, want := range []string{"another host or boot", "judged dead 10s after its last heartbeat"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not say %q", err, want)
		}
	}
}

func TestHeartbeatOptions(t *testing.T) {
	for _, tc := range []struct {
		opts PoolOptions
		ok   bool
	}{
		{PoolOptions{}, true},
		{PoolOptions{StaleAfter: 1500 * time.Millisecond}, true}, // heartbeat follows: stale/4
		{PoolOptions{Heartbeat: time.Second, StaleAfter: 2 * time.Second}, false},
		{PoolOptions{Heartbeat: -time.Second}, false},
		{PoolOptions{Coherence: "sometimes"}, false},
	} {
		err := tc.opts.check()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadArgument)) {
			t.Errorf("%+v: %v, want ok=%v", tc.opts, err, tc.ok)
		}
	}
	if d := DefaultStaleAfter + DefaultHeartbeat; d >= 30*time.Second {
		t.Errorf("default takeover %s, want well under 30 s", d)
	}
}

// A host that finds another's format in progress waits for its magic
// instead of failing with ErrNotAPool.
func TestHalfWrittenHeaderWaits(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pool")
	if err := os.WriteFile(file, make([]byte, 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var hdr [16]byte // another host's claim (live for 5 s) and its first fields
	put64(hdr[:], 0, 77<<32|uint64(time.Now().Add(5*time.Second).Unix()))
	f.WriteAt(hdr[:8], hdrFormat)
	put32(hdr[:], 0, poolVersion)
	put32(hdr[:], 4, headerSize)
	f.WriteAt(hdr[:8], hdrVersion)
	f.Close()
	opened := make(chan error, 1)
	var waiter *Pool
	go func() {
		var err error
		waiter, err = OpenPool("memfile:"+file, PoolOptions{Init: true})
		opened <- err
	}()
	select {
	case err := <-opened:
		t.Fatalf("OpenPool during another host's format returned %v; want it to wait", err)
	case <-time.After(300 * time.Millisecond):
	}
	// The other host finishes (here: a forced format stands in for it).
	p, err := OpenPool("memfile:"+file, PoolOptions{Init: true, Force: true, Align: 1 << 20, Records: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	select {
	case err := <-opened:
		if err != nil {
			t.Fatalf("waiter: %v", err)
		}
		defer waiter.Close()
		if waiter.Info().ID != p.Info().ID {
			t.Fatalf("waiter opened pool %s, formatter made %s", waiter.Info().ID, p.Info().ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter did not open the pool once its magic was written")
	}
}

// A formatter that died mid-format (claim expired, no magic) is taken over.
func TestDeadFormatterIsTakenOver(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pool")
	b := make([]byte, 8<<20)
	put64(b, hdrFormat, 77<<32|uint64(time.Now().Add(-time.Second).Unix()))
	put32(b, hdrVersion, poolVersion)
	put32(b, hdrHeaderSize, headerSize)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenPool("memfile:"+file, PoolOptions{}); !errors.Is(err, ErrNotAPool) {
		t.Fatalf("open without Init: %v, want ErrNotAPool", err)
	}
	p, err := OpenPool("memfile:"+file, PoolOptions{Init: true, Align: 1 << 20, Records: 8})
	if err != nil {
		t.Fatalf("Init over a dead formatter's half header: %v", err)
	}
	p.Close()
}
