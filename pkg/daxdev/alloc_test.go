package daxdev

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// stageN stages n bytes of fresh content and returns the extent.
func stageN(t *testing.T, p *Pool, seed byte, n int) (Extent, string) {
	t.Helper()
	b, dg := content(seed, n)
	e, err := p.Stage(context.Background(), dg, int64(n), "o", copyFill(b, nil))
	if err != nil {
		t.Fatalf("stage %d bytes (seed %d): %v", n, seed, err)
	}
	return e, dg
}

func TestFirstFitAlignAndCoalescing(t *testing.T) {
	const unit = 64 << 10
	// 4096 + 32*1152 = 40960 bytes of table: the data starts at one unit.
	p, _ := testPool(t, 9*unit, PoolOptions{Align: unit, Records: 32})
	if p.dataOff != unit {
		t.Fatalf("data offset %d, want one unit %d", p.dataOff, unit)
	}
	a, _ := stageN(t, p, 1, 100)     // 1 unit
	b, db := stageN(t, p, 2, unit+1) // 2 units
	c, _ := stageN(t, p, 3, unit)    // 1 unit, exactly
	for _, x := range []struct {
		e         Extent
		off, resv int64
	}{{a, unit, unit}, {b, 2 * unit, 2 * unit}, {c, 4 * unit, unit}} {
		if x.e.Offset != x.off || x.e.Reserved != x.resv {
			t.Fatalf("extent at %d reserving %d, want %d reserving %d", x.e.Offset, x.e.Reserved, x.off, x.resv)
		}
	}
	if _, err := p.Release(db, "o"); err != nil {
		t.Fatal(err)
	}
	// First fit: a one-unit extent goes into b's hole, not after c.
	d, dd := stageN(t, p, 4, 10)
	if d.Offset != 2*unit {
		t.Fatalf("first fit put the extent at %d, want b's hole at %d", d.Offset, 2*unit)
	}
	// A 3-unit extent does not fit in the 1-unit hole left; it goes after c.
	e, _ := stageN(t, p, 5, 3*unit)
	if e.Offset != 5*unit {
		t.Fatalf("3-unit extent at %d, want %d", e.Offset, 5*unit)
	}
	// Free a (unit 1) and d (unit 2): with the hole at unit 3 they coalesce
	// into 3 units at offset 1 unit.
	for _, dg := range []string{digestOf(t, p, a), dd} {
		if freed, err := p.Release(dg, "o"); err != nil || !freed {
			t.Fatalf("release: %v %v", freed, err)
		}
	}
	st := p.Status()
	if st.LargestFree != 3*unit || st.Free != 4*unit {
		t.Fatalf("free %d largest %d, want 4 and 3 units", st.Free, st.LargestFree)
	}
	f, _ := stageN(t, p, 6, 3*unit)
	if f.Offset != unit {
		t.Fatalf("coalesced 3-unit extent at %d, want %d", f.Offset, unit)
	}
	// Now full except one unit at the end.
	_, big := content(7, 2*unit)
	_, err := p.Stage(context.Background(), big, 2*unit, "o", func([]byte) error { t.Fatal("fill called"); return nil })
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "need 131072 bytes") || !strings.Contains(err.Error(), "largest free 65536") {
		t.Fatalf("stage past the end: %v, want ErrNoSpace naming need and largest free", err)
	}
}

func digestOf(t *testing.T, p *Pool, e Extent) string {
	t.Helper()
	for _, x := range p.Status().Extents {
		if x.Offset == e.Offset {
			return x.Digest
		}
	}
	t.Fatalf("no extent at %d", e.Offset)
	return ""
}

func TestTableFull(t *testing.T) {
	p, _ := testPool(t, 16<<20, PoolOptions{Align: 64 << 10, Records: 2})
	stageN(t, p, 1, 10)
	stageN(t, p, 2, 10)
	b, dg := content(3, 10)
	if _, err := p.Stage(context.Background(), dg, 10, "o", copyFill(b, nil)); !errors.Is(err, ErrTableFull) {
		t.Fatalf("third extent in a 2-record table: %v, want ErrTableFull", err)
	}
}

func TestFillErrorFreesExtent(t *testing.T) {
	p, _ := testPool(t, 4<<20, PoolOptions{})
	_, dg := content(1, 1000)
	boom := errors.New("source went away")
	_, err := p.Stage(context.Background(), dg, 1000, "o", func([]byte) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Stage with failing fill: %v, want the fill error wrapped", err)
	}
	_, err = p.Stage(context.Background(), dg, 1000, "o", func([]byte) error { panic("bad fill") })
	if err == nil || !strings.Contains(err.Error(), "bad fill") {
		t.Fatalf("Stage with panicking fill: %v", err)
	}
	if st := p.Status(); len(st.Extents) != 0 || st.Free != st.DataSize {
		t.Fatalf("extent left after failed fills: %+v", st)
	}
	// The digest can be staged afterwards.
	b, _ := content(1, 1000)
	if _, err := p.Stage(context.Background(), dg, 1000, "o", copyFill(b, nil)); err != nil {
		t.Fatal(err)
	}
}

func TestStageArgumentErrors(t *testing.T) {
	p, _ := testPool(t, 4<<20, PoolOptions{})
	b, dg := content(1, 100)
	ctx := context.Background()
	for _, tc := range []struct {
		name, digest, owner string
		length              int64
		want                error
	}{
		{"bad digest", "sha256:xyz", "o", 100, ErrBadArgument},
		{"upper hex", strings.ToUpper(dg[:7]) + strings.ToUpper(dg[7:]), "o", 100, ErrBadArgument},
		{"md5", "md5:" + dg[7:], "o", 100, ErrBadArgument},
		{"empty owner", dg, "", 100, ErrBadArgument},
		{"long owner", dg, strings.Repeat("x", 57), 100, ErrBadArgument},
		{"zero length", dg, "o", 0, ErrBadArgument},
	} {
		if _, err := p.Stage(ctx, tc.digest, tc.length, tc.owner, copyFill(b, nil)); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := p.Stage(ctx, dg, 100, strings.Repeat("x", 56), copyFill(b, nil)); err != nil {
		t.Fatalf("56-byte owner: %v", err)
	}
	if _, err := p.Stage(ctx, dg, 99, "o", copyFill(b, nil)); !errors.Is(err, ErrLengthMismatch) {
		t.Fatalf("same digest, other length: %v, want ErrLengthMismatch", err)
	}
	if e, ok := p.Lookup(dg); !ok || e.OwnerNames()[0] != strings.Repeat("x", 56) {
		t.Fatalf("Lookup: %+v %v", e, ok)
	}
	if _, err := p.Data(Extent{Offset: 1, Length: 10}); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("Data of a bogus extent: %v", err)
	}
}
