package image

import (
	"runtime"
	"strings"
	"testing"
)

// chainImage is a chain of depth directories with 255-byte names (the
// shape of issue 13's 20,000-deep image that took ls past 23 GB), built
// straight into the Builder's tree.
func chainImage(t testing.TB, depth int) []byte {
	return build(t, BuildOptions{}, func(b *Builder) error {
		d := b.root
		for i := range depth {
			name := strings.Repeat(string(rune('a'+i%26)), MaxNameLen)
			d = b.put(d, name, newDir(modeDir|0o755, 0, 0))
		}
		return nil
	})
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestWalkMemoryLinearInDepth: the walk must not hold a path per level.
// At depth 1000 the prefixes alone are 128 MB; the bound is 16 MB.
func TestWalkMemoryLinearInDepth(t *testing.T) {
	const depth, bound = 1000, 16 << 20
	im := openValid(t, chainImage(t, depth))
	base := liveHeap()
	var peak uint64
	n, deepest := 0, 0
	err := im.Walk(func(p string, in Inode) error {
		if n++; n%100 == 0 {
			if h := liveHeap(); h > base {
				peak = max(peak, h-base)
			}
		}
		deepest = max(deepest, len(p))
		return nil
	})
	must(t, err)
	if n != depth+1 || deepest != depth*(MaxNameLen+1) {
		t.Fatalf("walked %d entries, deepest path %d bytes", n, deepest)
	}
	if peak > bound {
		t.Errorf("Walk of a %d-deep chain held %d MB live, bound %d MB", depth, peak>>20, bound>>20)
	}
}

// TestWalkPathBytesAllocatesLinearly: no allocation per path byte at all.
// The paths of a 1000-deep chain sum to 128 MB; the bound is 4 MB.
func TestWalkPathBytesAllocatesLinearly(t *testing.T) {
	const depth, bound = 1000, 4 << 20
	im := openValid(t, chainImage(t, depth))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n := 0
	must(t, im.WalkPathBytes("/", func(p []byte, in Inode) error { n++; return nil }))
	runtime.ReadMemStats(&after)
	if n != depth+1 {
		t.Fatalf("walked %d entries", n)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > bound {
		t.Errorf("WalkPathBytes of a %d-deep chain allocated %d KB, bound %d KB", depth, got>>10, bound>>10)
	}
}

// TestWalkPathStartsBelowRoot: paths below a start directory carry its
// prefix, and the start itself is visited first.
func TestWalkPathStartsBelowRoot(t *testing.T) {
	im := openValid(t, build(t, BuildOptions{}, func(b *Builder) error {
		return b.AddTar(strings.NewReader(string(makeTar(t, dir("a/"), dir("a/b/"), reg("a/b/f", "x"), reg("a/g", "y"), reg("z", "")))))
	}))
	for start, want := range map[string]string{
		"/":    "/ /a /a/b /a/b/f /a/g /z",
		"/a":   "/a /a/b /a/b/f /a/g",
		"a/b/": "/a/b /a/b/f",
		"/z":   "/z",
	} {
		var got []string
		must(t, im.WalkPath(start, func(p string, in Inode) error { got = append(got, p); return nil }))
		if strings.Join(got, " ") != want {
			t.Errorf("WalkPath(%q) = %v, want %s", start, got, want)
		}
	}
}
