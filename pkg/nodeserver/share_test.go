package nodeserver

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// A PV and an inline volume of one image share one region and one image mount.
func TestTwoVolumesShareImage(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	staging, t1, t2 := e.path("staging"), e.path("pods", "a", "vol"), e.path("pods", "b", "vol")
	free0 := e.pool.Status().Free

	must(t, e.stage("pv-1", uri, dg, staging, nil))
	must(t, e.publish("pv-1", uri, dg, staging, t1, nil))
	must(t, e.publish("csi-inline-1", uri, "", "", t2, nil)) // digest computed from the file
	checkTree(t, t1, "tree1.manifest.json")
	checkTree(t, t2, "tree1.manifest.json")

	st := e.pool.Status()
	if len(st.Extents) != 1 || e.pool.fills.Load() != 1 {
		t.Fatalf("%d extents, %d fills; want one of each", len(st.Extents), e.pool.fills.Load())
	}
	if used := free0 - st.Free; used != st.Extents[0].Reserved && used != st.Extents[0].Length {
		t.Errorf("pool bytes used %d for one %d-byte image", used, st.Extents[0].Length)
	}
	if m := fuseMounts(e.opts.StateDir); len(m) != 1 {
		t.Errorf("image mounts %v, want exactly one", m)
	}
	if pids := fuseServePIDs(e.root); len(pids) != 1 {
		t.Errorf("fuse-serve processes %v, want one", pids)
	}
	if s := e.ns.Snapshot(); len(s) != 1 || s[0].References != 2 {
		t.Errorf("snapshot %+v, want one image with 2 references", s)
	}

	// The PV leaves; the inline volume keeps reading.
	must(t, e.unpublish("pv-1", t1))
	must(t, e.unstage("pv-1", staging))
	checkTree(t, t2, "tree1.manifest.json")
	if _, ok := e.pool.Lookup(dg); !ok {
		t.Fatal("image released while an inline volume uses it")
	}
	must(t, e.unpublish("csi-inline-1", t2))
	e.checkReleased(t, dg, "after its last volume left")
}

// 100 concurrent inline publishes of one image stage it exactly once.
func TestConcurrentPublishStagesOnce(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	const n = 100
	target := func(i int) string { return e.path("pods", fmt.Sprint(i), "vol") }
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = e.publish(fmt.Sprintf("inline-%d", i), uri, dg, "", target(i), nil)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if f := e.pool.fills.Load(); f != 1 {
		t.Fatalf("image filled %d times, want 1", f)
	}
	if st := e.pool.Status(); len(st.Extents) != 1 {
		t.Fatalf("%d extents, want 1", len(st.Extents))
	}
	if m := fuseMounts(e.opts.StateDir); len(m) != 1 {
		t.Fatalf("image mounts %v, want 1", m)
	}
	// Spot-check a few targets.
	for _, i := range []int{0, 49, 99} {
		checkTree(t, target(i), "tree1.manifest.json")
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = e.unpublish(fmt.Sprintf("inline-%d", i), target(i))
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("unpublish %d: %v", i, err)
		}
	}
	e.checkReleased(t, dg, "after 100 unpublishes")
}

// A writable view writes, renames and deletes without touching the image.
func TestWritableView(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	rw, ro := e.path("pods", "rw", "vol"), e.path("pods", "ro", "vol")
	must(t, e.publish("inline-rw", uri, dg, "", rw, map[string]string{"writable": "true"}))
	must(t, e.publish("inline-ro", uri, dg, "", ro, nil))

	must(t, os.WriteFile(filepath.Join(rw, "new.txt"), []byte("hello"), 0o644))
	must(t, os.WriteFile(filepath.Join(rw, "dir1", "exact8k.bin"), []byte("overwritten"), 0o644))
	must(t, os.Remove(filepath.Join(rw, "dir1", "hardlink_to_small")))
	if b, err := os.ReadFile(filepath.Join(rw, "new.txt")); err != nil || string(b) != "hello" {
		t.Fatalf("read back %q %v", b, err)
	}
	// The shared image (seen through another volume) is untouched ...
	checkTree(t, ro, "tree1.manifest.json")
	if _, err := os.Stat(filepath.Join(ro, "new.txt")); !os.IsNotExist(err) {
		t.Errorf("write leaked into the image: %v", err)
	}
	// ... and so are the pool bytes.
	ext, _ := e.pool.Lookup(dg)
	data, err := e.pool.Data(ext)
	must(t, err)
	if h := sha256.Sum256(data); "sha256:"+hex.EncodeToString(h[:]) != dg {
		t.Error("pool region changed under a writable view")
	}
	upper := filepath.Join(e.opts.StateDir, "volumes")
	must(t, e.unpublish("inline-rw", rw))
	if m, _ := filepath.Glob(filepath.Join(upper, "*", "rw")); len(m) != 0 {
		t.Errorf("writable layer left after unpublish: %v", m)
	}
	checkTree(t, ro, "tree1.manifest.json")
	must(t, e.unpublish("inline-ro", ro))
}
