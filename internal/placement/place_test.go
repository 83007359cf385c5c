package placement

import (
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

const (
	dA = "sha256:aaaa"
	dB = "sha256:bbbb"
	dC = "sha256:cccc"
)

func nodes(names ...string) []Node {
	var ns []Node
	for _, n := range names {
		ns = append(ns, Node{Name: n})
	}
	return ns
}

func pool(id string, free int64, nodes ...string) Pool {
	return Pool{ID: id, Free: free, Align: 1, Nodes: nodes}
}

func (p Pool) with(c ...Copy) Pool { p.Copies = append(p.Copies, c...); return p }

func img(name, digest string, size int64, prio int32, nodes ...string) Image {
	return Image{Name: name, Digest: digest, Size: size, Priority: prio, Policy: AllMatching, Nodes: nodes}
}

// pools returns the pool ids of an image's assignments.
func poolsOf(a Assignments, image string) string {
	var ids []string
	for _, x := range a.ByImage[image] {
		ids = append(ids, x.PoolID)
	}
	return strings.Join(ids, ",")
}

func TestPlaceRules(t *testing.T) {
	tests := []struct {
		name      string
		images    []Image
		nodes     []Node
		pools     []Pool
		want      map[string]string // image -> pool ids
		unmet     []string
		evictions []Eviction
	}{
		{
			name:   "already staged is free there, even with less space",
			images: []Image{img("i", dA, 10, 0, "n1")},
			nodes:  nodes("n1"),
			pools:  []Pool{pool("big", 1000, "n1"), pool("small", 5, "n1").with(Copy{Digest: dA, Size: 10})},
			want:   map[string]string{"i": "small"},
		},
		{
			name:   "shared pool holds one copy for all its nodes",
			images: []Image{img("i", dA, 10, 0, "n1", "n2", "n3", "n4")},
			nodes:  nodes("n1", "n2", "n3", "n4"),
			pools: []Pool{
				pool("cxl", 100, "n1", "n2", "n3", "n4"),
				pool("l1", 1000, "n1"), pool("l2", 1000, "n2"), pool("l3", 1000, "n3"), pool("l4", 1000, "n4"),
			},
			want: map[string]string{"i": "cxl"},
		},
		{
			name:   "shared pool reported by each node separately is merged",
			images: []Image{img("i", dA, 10, 0, "n1", "n2")},
			nodes:  nodes("n1", "n2"),
			pools:  []Pool{pool("cxl", 100, "n1"), pool("cxl", 100, "n2"), pool("l1", 1000, "n1"), pool("l2", 1000, "n2")},
			want:   map[string]string{"i": "cxl"},
		},
		{
			name:   "most free space wins",
			images: []Image{img("i", dA, 10, 0, "n1")},
			nodes:  nodes("n1"),
			pools:  []Pool{pool("p1", 100, "n1"), pool("p2", 300, "n1"), pool("p3", 200, "n1")},
			want:   map[string]string{"i": "p2"},
		},
		{
			name:   "then least loaded node",
			images: []Image{{Name: "i", Digest: dA, Size: 10, Policy: Replicas, Replicas: 1, Nodes: []string{"n1", "n2"}}},
			nodes:  nodes("n1", "n2"),
			pools: []Pool{
				pool("p1", 100, "n1").with(Copy{Digest: dB, Size: 1}, Copy{Digest: dC, Size: 1}),
				pool("p2", 100, "n2").with(Copy{Digest: dC, Size: 1}),
			},
			want: map[string]string{"i": "p2"},
		},
		{
			name:   "never overcommit",
			images: []Image{img("a", dA, 60, 0, "n1"), img("b", dB, 60, 0, "n1")},
			nodes:  nodes("n1"),
			pools:  []Pool{pool("p", 100, "n1")},
			want:   map[string]string{"a": "p", "b": ""},
			unmet:  []string{"b"},
		},
		{
			name:   "size rounded up to the pool align",
			images: []Image{img("a", dA, 1, 0, "n1"), img("b", dB, 1, 0, "n1")},
			nodes:  nodes("n1"),
			pools:  []Pool{{ID: "p", Free: 4096 + 4095, Align: 4096, Nodes: []string{"n1"}}},
			want:   map[string]string{"a": "p", "b": ""},
			unmet:  []string{"b"},
		},
		{
			name:   "higher priority first",
			images: []Image{img("a-low", dA, 60, 1, "n1"), img("z-high", dB, 60, 5, "n1")},
			nodes:  nodes("n1"),
			pools:  []Pool{pool("p", 100, "n1")},
			want:   map[string]string{"a-low": "", "z-high": "p"},
			unmet:  []string{"a-low"},
		},
		{
			name:      "evicts an unreferenced pre-staged lower-priority copy",
			images:    []Image{img("low", dA, 60, 1, "n1"), img("high", dB, 60, 5, "n1")},
			nodes:     nodes("n1"),
			pools:     []Pool{pool("p", 40, "n1").with(Copy{Digest: dA, Size: 60, Prestaged: true})},
			want:      map[string]string{"high": "p", "low": ""},
			unmet:     []string{"low"},
			evictions: []Eviction{{PoolID: "p", Digest: dA, For: "high"}},
		},
		{
			name:      "evicts a pre-staged copy no image wants",
			images:    []Image{img("i", dB, 60, 0, "n1")},
			nodes:     nodes("n1"),
			pools:     []Pool{pool("p", 40, "n1").with(Copy{Digest: dC, Size: 60, Prestaged: true})},
			want:      map[string]string{"i": "p"},
			evictions: []Eviction{{PoolID: "p", Digest: dC, For: "i"}},
		},
		{
			name:   "never evicts a referenced copy",
			images: []Image{img("low", dA, 60, 1, "n1"), img("high", dB, 60, 5, "n1")},
			nodes:  nodes("n1"),
			pools:  []Pool{pool("p", 40, "n1").with(Copy{Digest: dA, Size: 60, Prestaged: true, References: 1})},
			want:   map[string]string{"high": "", "low": "p"},
			unmet:  []string{"high"},
		},
		{
			name:   "never evicts a copy a volume staged (not pre-staged)",
			images: []Image{img("high", dB, 60, 5, "n1")},
			nodes:  nodes("n1"),
			pools:  []Pool{pool("p", 40, "n1").with(Copy{Digest: dA, Size: 60})},
			want:   map[string]string{"high": ""},
			unmet:  []string{"high"},
		},
		{
			name:   "never evicts an equal-priority copy",
			images: []Image{img("a", dA, 60, 3, "n1"), img("b", dB, 60, 3, "n1")},
			nodes:  nodes("n1"),
			pools:  []Pool{pool("p", 40, "n1").with(Copy{Digest: dB, Size: 60, Prestaged: true})},
			want:   map[string]string{"a": "", "b": "p"},
			unmet:  []string{"a"},
		},
		{
			name:   "pools of dead nodes are ignored",
			images: []Image{img("i", dA, 10, 0, "n1", "n2")},
			nodes:  nodes("n2"),
			pools:  []Pool{pool("p1", 1000, "n1"), pool("p2", 100, "n2")},
			want:   map[string]string{"i": "p2"},
		},
		{
			name:   "selector limits the nodes",
			images: []Image{img("i", dA, 10, 0, "n2")},
			nodes:  nodes("n1", "n2"),
			pools:  []Pool{pool("p1", 1000, "n1"), pool("p2", 100, "n2")},
			want:   map[string]string{"i": "p2"},
		},
		{
			name:   "per pool: every pool, a shared one once",
			images: []Image{{Name: "i", Digest: dA, Size: 10, Policy: PerPool, Nodes: []string{"n1", "n2"}}},
			nodes:  nodes("n1", "n2"),
			pools:  []Pool{pool("cxl", 100, "n1", "n2"), pool("l1", 100, "n1"), pool("l2", 5, "n2")},
			want:   map[string]string{"i": "cxl,l1"},
			unmet:  []string{"i"},
		},
		{
			name:   "replicas: N nodes, one copy each",
			images: []Image{{Name: "i", Digest: dA, Size: 10, Policy: Replicas, Replicas: 2, Nodes: []string{"n1", "n2", "n3"}}},
			nodes:  nodes("n1", "n2", "n3"),
			pools:  []Pool{pool("p1", 100, "n1"), pool("p2", 300, "n2"), pool("p3", 200, "n3")},
			want:   map[string]string{"i": "p2,p3"},
		},
		{
			name:   "replicas: a shared pool covers several at once",
			images: []Image{{Name: "i", Digest: dA, Size: 10, Policy: Replicas, Replicas: 3, Nodes: []string{"n1", "n2", "n3", "n4"}}},
			nodes:  nodes("n1", "n2", "n3", "n4"),
			pools:  []Pool{pool("cxl", 50, "n1", "n2", "n3", "n4"), pool("l1", 900, "n1")},
			want:   map[string]string{"i": "cxl"},
		},
		{
			name:   "size unknown waits",
			images: []Image{img("i", dA, 0, 0, "n1")},
			nodes:  nodes("n1"),
			pools:  []Pool{pool("p", 100, "n1")},
			want:   map[string]string{"i": ""},
			unmet:  []string{"i"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Place(tt.images, tt.nodes, tt.pools)
			for image, want := range tt.want {
				if g := poolsOf(got, image); g != want {
					t.Errorf("image %s placed in %q, want %q", image, g, want)
				}
			}
			for _, im := range tt.images {
				_, unmet := got.Unmet[im.Name]
				want := false
				for _, u := range tt.unmet {
					want = want || u == im.Name
				}
				if unmet != want {
					t.Errorf("image %s unmet=%v (%q), want %v", im.Name, unmet, got.Unmet[im.Name], want)
				}
			}
			if !reflect.DeepEqual(got.Evictions, tt.evictions) {
				t.Errorf("evictions %+v, want %+v", got.Evictions, tt.evictions)
			}
		})
	}
}

func TestPlaceStagedFlagAndStager(t *testing.T) {
	got := Place(
		[]Image{img("i", dA, 10, 0, "n2", "n3")},
		nodes("n1", "n2", "n3"),
		[]Pool{pool("cxl", 100, "n3", "n1", "n2")},
	)
	as := got.ByImage["i"]
	if len(as) != 1 {
		t.Fatalf("assignments %+v, want one", as)
	}
	a := as[0]
	if a.Staged || a.Node != "n2" || strings.Join(a.Nodes, ",") != "n1,n2,n3" {
		t.Errorf("assignment %+v: want unstaged, stager n2 (first matching), nodes n1,n2,n3", a)
	}
	if got.Covered["i"] != 2 {
		t.Errorf("covered %d, want 2 matching nodes", got.Covered["i"])
	}
	again := Place([]Image{img("i", dA, 10, 0, "n2", "n3")}, nodes("n1", "n2", "n3"),
		[]Pool{pool("cxl", 90, "n1", "n2", "n3").with(Copy{Digest: dA, Size: 10, Prestaged: true})})
	if !again.ByImage["i"][0].Staged {
		t.Errorf("copy in the pool: want Staged")
	}
}

func TestPlaceMergedPoolKeepsTightestFree(t *testing.T) {
	got := Place([]Image{img("i", dA, 60, 0, "n1", "n2")}, nodes("n1", "n2"),
		[]Pool{pool("cxl", 100, "n1"), pool("cxl", 50, "n2")})
	if _, ok := got.Unmet["i"]; !ok {
		t.Fatalf("placed %+v in a pool one node reports with 50 bytes free", got.ByImage["i"])
	}
}

// Same inputs in any order give the same result.
func TestPlaceDeterministic(t *testing.T) {
	images, ns, pools := scenario(40, 200, 3)
	want := Place(images, ns, pools)
	r := rand.New(rand.NewSource(1))
	for range 5 {
		r.Shuffle(len(images), func(i, j int) { images[i], images[j] = images[j], images[i] })
		r.Shuffle(len(ns), func(i, j int) { ns[i], ns[j] = ns[j], ns[i] })
		r.Shuffle(len(pools), func(i, j int) { pools[i], pools[j] = pools[j], pools[i] })
		if got := Place(images, ns, pools); !reflect.DeepEqual(got, want) {
			t.Fatal("result changed with input order")
		}
	}
	if len(want.ByImage) == 0 {
		t.Fatal("scenario placed nothing")
	}
}

// No pool ends up holding more than it had free plus what was evicted.
func TestPlaceNeverOvercommits(t *testing.T) {
	images, ns, pools := scenario(200, 300, 7)
	got := Place(images, ns, pools)
	used := map[string]int64{}
	size := map[string]int64{}
	for _, im := range images {
		size[im.Name] = im.Size
	}
	align := map[string]int64{}
	free := map[string]int64{}
	for _, p := range pools {
		align[p.ID] = p.Align
		if f, ok := free[p.ID]; !ok || p.Free < f {
			free[p.ID] = p.Free
		}
	}
	for name, as := range got.ByImage {
		for _, a := range as {
			if !a.Staged {
				used[a.PoolID] += roundUp(size[name], align[a.PoolID])
			}
		}
	}
	evicted := map[string]int64{}
	for _, e := range got.Evictions {
		for _, p := range pools {
			for _, c := range p.Copies {
				if p.ID == e.PoolID && c.Digest == e.Digest {
					evicted[p.ID] += roundUp(c.Size, p.Align)
				}
			}
		}
	}
	placed := 0
	for id, u := range used {
		placed++
		if u > free[id]+evicted[id] {
			t.Errorf("pool %s: %d bytes placed, %d free + %d evicted", id, u, free[id], evicted[id])
		}
	}
	if placed == 0 {
		t.Fatal("nothing placed")
	}
}

// Two hosts on one pool (one CXL memory) each report it with the copy it
// holds, plus a roomier local pool: the image stays one copy in the shared
// pool, staged, reaching both nodes; no local pool gets one.
func TestSharedPoolHoldingTheDigestIsOneCopyForBoth(t *testing.T) {
	cp := Copy{Digest: dA, Size: 10}
	got := Place([]Image{img("i", dA, 10, 0, "host-a", "host-b")}, nodes("host-a", "host-b"),
		[]Pool{pool("cxl", 40, "host-a").with(cp), pool("cxl", 40, "host-b").with(cp),
			pool("local-a", 100, "host-a"), pool("local-b", 100, "host-b")})
	as := got.ByImage["i"]
	if len(as) != 1 || as[0].PoolID != "cxl" || !as[0].Staged || strings.Join(as[0].Nodes, ",") != "host-a,host-b" {
		t.Fatalf("assignments %+v: want one staged copy in cxl for host-a,host-b", as)
	}
	if got.Covered["i"] != 2 {
		t.Errorf("covered %d, want 2", got.Covered["i"])
	}
}
