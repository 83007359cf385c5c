package daxdev

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestOwnerSlotsAndLeases(t *testing.T) {
	p, path := testPool(t, 4<<20, PoolOptions{})
	b, dg := content(1, 100)
	ctx := context.Background()
	for i := 0; i < ownerSlots; i++ {
		if _, err := p.Stage(ctx, dg, 100, fmt.Sprintf("n%d", i), copyFill(b, nil)); err != nil {
			t.Fatal(err)
		}
	}
	// Staging again as an existing owner takes no new slot.
	if _, err := p.Stage(ctx, dg, 100, "n3", copyFill(b, nil)); err != nil {
		t.Fatalf("existing owner: %v", err)
	}
	if _, err := p.Stage(ctx, dg, 100, "one-too-many", copyFill(b, nil)); !errors.Is(err, ErrTooManyOwners) {
		t.Fatalf("17th owner without leases: %v, want ErrTooManyOwners", err)
	}

	// With leases, an expired owner gives up its slot and a pool reopen frees
	// extents whose every lease expired.
	q, err := OpenPool("memfile:"+path, PoolOptions{Lease: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	c, dc := content(2, 100)
	if _, err := q.Stage(ctx, dc, 100, "leased", copyFill(c, nil)); err != nil {
		t.Fatal(err)
	}
	e, _ := q.Lookup(dc)
	if e.Owners[0].Expires.IsZero() {
		t.Fatal("lease expiry not recorded")
	}
	time.Sleep(80 * time.Millisecond)
	if _, err := q.reclaimPass(); err != nil {
		t.Fatal(err)
	}
	if _, ok := q.Lookup(dc); ok {
		t.Fatal("extent with only an expired lease survived a reclaim")
	}
	if _, ok := q.Lookup(dg); !ok {
		t.Fatal("extent with unleased owners was reclaimed")
	}
}

// reclaimPass runs a reclaim pass as OpenPool does.
func (p *Pool) reclaimPass() (int, error) {
	unlock, err := p.lockTable()
	if err != nil {
		return 0, err
	}
	defer unlock()
	return p.reclaimLocked(time.Now())
}
