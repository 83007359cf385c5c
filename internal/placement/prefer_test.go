package placement

import "testing"

// A change to one pool moves only the copies that were in it: every other
// image keeps its current (not yet staged) pools through Image.Prefer.
// Without Prefer, the shrunk pool's copy moves to p2, which then has less
// free space than p3, so image "b" (placed after "a") moves too.
func TestPreferKeepsPendingCopiesWhenAnotherPoolShrinks(t *testing.T) {
	ns := nodes("n1", "n2", "n3")
	rep := func(name, digest string, size int64) Image {
		im := img(name, digest, size, 0, "n1", "n2", "n3")
		im.Policy, im.Replicas = Replicas, 1
		return im
	}
	images := []Image{rep("a", dA, 40), rep("b", dB, 40)}
	first := Place(images, ns, []Pool{pool("p1", 100, "n1"), pool("p2", 90, "n2"), pool("p3", 80, "n3")})
	if poolsOf(first, "a") != "p1" || poolsOf(first, "b") != "p2" {
		t.Fatalf("first pass: a in %q, b in %q; want p1, p2", poolsOf(first, "a"), poolsOf(first, "b"))
	}
	for i := range images {
		images[i].Prefer = []string{poolsOf(first, images[i].Name)}
	}
	// p1 loses its room: a moves to p2 (most free); b still fits in p2
	// and keeps it, though p3 now has more free.
	second := Place(images, ns, []Pool{pool("p1", 10, "n1"), pool("p2", 90, "n2"), pool("p3", 80, "n3")})
	if got := poolsOf(second, "b"); got != "p2" {
		t.Errorf("b moved to %q after p1 shrank; want it kept in p2", got)
	}
	if got := poolsOf(second, "a"); got == "p1" || got == "" {
		t.Errorf("a in %q after p1 shrank; want it moved out of p1", got)
	}
}

// A preferred pool is given up when it no longer fits without eviction,
// and ignored when it is not a candidate any more.
func TestPreferYieldsWhenItNoLongerFits(t *testing.T) {
	ns := nodes("n1", "n2")
	im := img("a", dA, 50, 0, "n1", "n2")
	im.Policy, im.Replicas, im.Prefer = Replicas, 1, []string{"p1", "gone"}
	got := Place([]Image{im}, ns, []Pool{pool("p1", 40, "n1"), pool("p2", 60, "n2")})
	if poolsOf(got, "a") != "p2" {
		t.Errorf("a in %q; want p2 (p1 too small now)", poolsOf(got, "a"))
	}
}

// A shared pool reaching more of the image's nodes than its current local
// copy wins over keeping it: the copies gather into the shared pool.
func TestPreferYieldsToASharedPoolReachingMore(t *testing.T) {
	ns := nodes("c1", "c2", "c3")
	im := img("a", dA, 10, 0, "c1", "c2", "c3")
	im.Prefer = []string{"local-c1"}
	pools := []Pool{pool("local-c1", 500, "c1"), pool("cxl", 100, "c1", "c2", "c3")}
	got := Place([]Image{im}, ns, pools)
	if poolsOf(got, "a") != "cxl" {
		t.Errorf("a in %q; want one copy in cxl, which reaches all three", poolsOf(got, "a"))
	}
}
