package nodeserver

import (
	"testing"

	"google.golang.org/grpc/codes"
)

// With KeepUnused an image stays mounted after its last volume, is reused
// without a fill, and is evicted (least recently used first) when a new
// image needs the space.
func TestKeepUnusedEvictsLRU(t *testing.T) {
	// 8 MiB pool (6 MiB of data region): room for one 4 MiB-aligned image.
	e := newEnv(t, 8<<20, func(o *Options) { o.KeepUnused = true })
	sample := "tree1.static.daxfs"
	uriA, dgA := e.addImage(sample, "a.daxfs")
	bA := readFile(t, samplePath(t, sample))
	uriB, dgB := e.writeImage("b.daxfs", append(bA, make([]byte, 4096)...)) // same tree, other digest
	uriC, dgC := e.writeImage("c.daxfs", append(bA, make([]byte, 8192)...))

	tA, tB, tC := e.path("pods", "a", "vol"), e.path("pods", "b", "vol"), e.path("pods", "c", "vol")
	must(t, e.publish("a", uriA, dgA, "", tA, nil))
	must(t, e.unpublish("a", tA))
	if _, ok := e.pool.Lookup(dgA); !ok {
		t.Fatal("KeepUnused released the image")
	}
	if s := e.ns.Snapshot(); len(s) != 1 || s[0].References != 0 || !s[0].Healthy {
		t.Fatalf("cached image snapshot %+v", s)
	}
	// Reuse: no second fill.
	must(t, e.publish("a2", uriA, dgA, "", tA, nil))
	checkTree(t, tA, "tree1.manifest.json")
	must(t, e.unpublish("a2", tA))
	if f := e.pool.fills.Load(); f != 1 {
		t.Fatalf("fills %d after reuse, want 1", f)
	}

	// B needs room: A (unused) is evicted; B is then in use.
	must(t, e.publish("b", uriB, dgB, "", tB, nil))
	if _, ok := e.pool.Lookup(dgA); ok {
		t.Fatal("A was not evicted to make room for B")
	}
	checkTree(t, tB, "tree1.manifest.json")
	// C does not fit while B is in use and nothing else can go.
	err := e.publish("c", uriC, dgC, "", tC, nil)
	wantCode(t, "no evictable image", err, codes.ResourceExhausted)
	checkTree(t, tB, "tree1.manifest.json")
	must(t, e.unpublish("b", tB))
	must(t, e.publish("c", uriC, dgC, "", tC, nil))
	if _, ok := e.pool.Lookup(dgB); ok {
		t.Error("B not evicted for C")
	}
	must(t, e.unpublish("c", tC))
	if m := fuseMounts(e.opts.StateDir); len(m) != 1 {
		t.Errorf("cached image mounts %v, want C's", m)
	}
}

// Eviction takes the least recently used unreferenced image.
func TestEvictionOrderIsLRU(t *testing.T) {
	// 12 MiB pool (10 MiB of data region): two 4 MiB-aligned images fit, three do not.
	e := newEnv(t, 12<<20, func(o *Options) { o.KeepUnused = true })
	base := readFile(t, samplePath(t, "tree1.static.daxfs"))
	var uris, dgs [3]string
	for i := range uris {
		uris[i], dgs[i] = e.writeImage(string(rune('a'+i))+".daxfs", append(append([]byte(nil), base...), make([]byte, 4096*i)...))
	}
	use := func(i int) {
		tg := e.path("pods", "x", "vol")
		must(t, e.publish("v", uris[i], dgs[i], "", tg, nil))
		must(t, e.unpublish("v", tg))
	}
	use(0)
	use(1)
	use(0) // now 1 is the least recently used
	use(2)
	if _, ok := e.pool.Lookup(dgs[1]); ok {
		t.Error("the least recently used image was not the one evicted")
	}
	for _, i := range []int{0, 2} {
		if _, ok := e.pool.Lookup(dgs[i]); !ok {
			t.Errorf("image %d evicted instead of the LRU one", i)
		}
	}
}
