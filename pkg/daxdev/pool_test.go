package daxdev

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

func TestMemfilePoolEndToEnd(t *testing.T) {
	p, path := testPool(t, 4<<20, PoolOptions{})
	ctx := context.Background()
	img, dg := content(1, 100_000)
	calls := 0
	e, err := p.Stage(ctx, dg, int64(len(img)), "node-a", copyFill(img, &calls))
	if err != nil {
		t.Fatalf("Stage: %v", err)
	}
	if e.State != StateReady || e.Length != int64(len(img)) || e.Offset%p.align != 0 || e.Offset < p.dataOff {
		t.Fatalf("extent %+v: want ready, length %d, aligned offset past %d", e, len(img), p.dataOff)
	}
	e2, err := p.Stage(ctx, dg, int64(len(img)), "node-b", copyFill(img, &calls))
	if err != nil || e2.Offset != e.Offset {
		t.Fatalf("second Stage: %+v, %v; want same offset %d", e2, err, e.Offset)
	}
	if calls != 1 {
		t.Fatalf("fill ran %d times, want 1", calls)
	}
	if got := e2.OwnerNames(); len(got) != 2 || got[0] != "node-a" || got[1] != "node-b" {
		t.Fatalf("owners %v, want [node-a node-b]", got)
	}
	data, err := p.Data(e)
	if err != nil || !bytes.Equal(data, img) {
		t.Fatalf("Data: equal=%v err=%v", bytes.Equal(data, img), err)
	}
	if _, ok := p.PhysAddr(e); ok {
		t.Fatal("memfile pool reported a physical address")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen without Init: the extent survives byte for byte.
	q, err := OpenPool("memfile:"+path, PoolOptions{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer q.Close()
	if q.Info().ID != p.Info().ID {
		t.Fatalf("pool id changed: %s -> %s", p.Info().ID, q.Info().ID)
	}
	got, ok := q.Lookup(dg)
	if !ok || got.Offset != e.Offset {
		t.Fatalf("Lookup after reopen: %+v %v", got, ok)
	}
	data, _ = q.Data(got)
	if !bytes.Equal(data, img) {
		t.Fatal("content changed across reopen")
	}
	if freed, err := q.Release(dg, "node-a"); err != nil || freed {
		t.Fatalf("Release node-a: freed=%v err=%v, want false nil", freed, err)
	}
	if _, err := q.Release(dg, "node-a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Release node-a: %v, want ErrNotFound", err)
	}
	if freed, err := q.Release(dg, "node-b"); err != nil || !freed {
		t.Fatalf("Release node-b: freed=%v err=%v, want true nil", freed, err)
	}
	if _, ok := q.Lookup(dg); ok {
		t.Fatal("extent still there after last release")
	}
	st := q.Status()
	if st.Free != st.DataSize || len(st.Extents) != 0 {
		t.Fatalf("status after release: %+v", st)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func TestCloseWaitsForFill(t *testing.T) {
	p, _ := testPool(t, 4<<20, PoolOptions{})
	b, dg := content(1, 1<<20)
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := p.Stage(context.Background(), dg, int64(len(b)), "o", func(dst []byte) error {
			close(started)
			<-release
			copy(dst, b) // would fault if Close had unmapped
			return nil
		})
		done <- err
	}()
	<-started
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while a fill was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Stage: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := p.Stage(context.Background(), dg, 1, "o", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Stage after Close: %v, want ErrClosed", err)
	}
	if _, err := p.Data(Extent{Offset: p.dataOff, Length: 1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Data after Close: %v, want ErrClosed", err)
	}
}
