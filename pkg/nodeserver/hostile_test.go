package nodeserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// mountCount is how many mounts sit exactly at p.
func mountCount(p string) int {
	n := 0
	for _, m := range mountsUnder(p) {
		if m == p {
			n++
		}
	}
	return n
}

// sharedDir mounts a tmpfs at p and makes it shared, as the kubelet's dir
// is on a real node (the plugin mounts it with Bidirectional propagation).
func sharedDir(t *testing.T, p string) {
	t.Helper()
	must(t, os.MkdirAll(p, 0o755))
	must(t, unix.Mount("tmpfs", p, "tmpfs", 0, "size=1m"))
	must(t, unix.Mount("", p, "", unix.MS_SHARED|unix.MS_REC, ""))
}

// A publish of another volume onto a live target is refused: it would
// stack on it, and (the target being a peer of the image mount) change
// what every later pod of the first image sees.
func TestPublishOntoMountedTargetRefused(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	sharedDir(t, e.path("kubelet"))
	t1, d1 := e.addImage("tree1.static.daxfs", "t1.daxfs")
	t2, d2 := e.addImage("tree4.static.daxfs", "t2.daxfs")
	conf := e.path("kubelet", "tgt", "conf")

	must(t, e.publish("cA", t1, d1, "", conf, nil))
	wantCode(t, "inline publish of another id onto a live target", e.publish("cB", t2, d2, "", conf, nil), codes.FailedPrecondition)
	fresh := e.path("kubelet", "tgt", "fresh")
	must(t, e.publish("cC", t1, d1, "", fresh, nil))
	checkTree(t, conf, "tree1.manifest.json")
	checkTree(t, fresh, "tree1.manifest.json")
	checkTree(t, e.ns.store.ImageMount(d1), "tree1.manifest.json")

	// PVs: another volume may not stage or publish onto a PV's paths.
	stg, pt := e.path("kubelet", "plugins", "stg"), e.path("kubelet", "pods", "p", "vol")
	must(t, e.stage("pv-1", t1, d1, stg, nil))
	must(t, e.publish("pv-1", t1, d1, stg, pt, nil))
	must(t, e.stage("pv-2", t2, d2, e.path("kubelet", "plugins", "stg2"), nil))
	wantCode(t, "stage onto another PV's staging path", e.stage("pv-3", t2, d2, stg, nil), codes.FailedPrecondition)
	wantCode(t, "publish onto another PV's target", e.publish("pv-2", t2, d2, e.path("kubelet", "plugins", "stg2"), pt, nil), codes.FailedPrecondition)
	wantCode(t, "inline publish onto a staging path", e.publish("cD", t2, d2, "", stg, nil), codes.FailedPrecondition)
	wantCode(t, "inline publish inside a target", e.publish("cE", t2, d2, "", filepath.Join(pt, "sub"), nil), codes.FailedPrecondition)
	wantCode(t, "inline publish onto the image mount", e.publish("cF", t2, d2, "", e.ns.store.ImageMount(d1), nil), codes.InvalidArgument)
	wantCode(t, "a target that is someone else's mount", func() error {
		other := e.path("kubelet", "other")
		must(t, os.MkdirAll(other, 0o755))
		must(t, unix.Mount("tmpfs", other, "tmpfs", 0, "size=1m"))
		return e.publish("cG", t2, d2, "", other, nil)
	}(), codes.FailedPrecondition)
	checkTree(t, stg, "tree1.manifest.json")
	checkTree(t, pt, "tree1.manifest.json")
	for _, p := range []string{conf, fresh, stg, pt} {
		if n := mountCount(p); n != 1 {
			t.Errorf("%s holds %d mounts, want 1", p, n)
		}
	}

	// Racing ids on one target: one wins, the rest are refused, and the
	// target holds one mount (not 2^(k-1)).
	race := e.path("kubelet", "tgt", "race")
	const k = 8
	var wg sync.WaitGroup
	errs := make([]error, k)
	for i := 0; i < k; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			uri, dg := t1, d1
			if i%2 == 1 {
				uri, dg = t2, d2
			}
			errs[i] = e.publish(fmt.Sprintf("race-%d", i), uri, dg, "", race, nil)
		}(i)
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch status.Code(err) {
		case codes.OK:
			won++
		case codes.FailedPrecondition:
		default:
			t.Errorf("race-%d: %v", i, err)
		}
	}
	if won != 1 || mountCount(race) != 1 {
		t.Errorf("%d of %d racing publishes won; %d mounts at the target; want 1 and 1", won, k, mountCount(race))
	}
	checkTree(t, e.ns.store.ImageMount(d1), "tree1.manifest.json")
	checkTree(t, e.ns.store.ImageMount(d2), "tree4.manifest.json")
}

// A mount someone makes on a target (the kubelet's dir being rshared)
// never reaches the image mount, the staging path or another target.
func TestTargetMountsDoNotPropagate(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	sharedDir(t, e.path("kubelet"))
	uri, dg := e.addImage("tree1.static.daxfs", "t1.daxfs")
	stg := e.path("kubelet", "plugins", "stg")
	a, b := e.path("kubelet", "pods", "a", "vol"), e.path("kubelet", "pods", "b", "vol")
	c, d := e.path("kubelet", "pods", "c", "vol"), e.path("kubelet", "pods", "d", "vol")
	w := e.path("kubelet", "pods", "w", "vol")
	must(t, e.stage("pv-1", uri, dg, stg, nil))
	must(t, e.publish("pv-1", uri, dg, stg, a, nil))
	must(t, e.publish("pv-1", uri, dg, stg, b, nil))
	must(t, e.publish("inline-c", uri, dg, "", c, nil))
	must(t, e.publish("inline-d", uri, dg, "", d, nil))
	must(t, e.publish("inline-w", uri, dg, "", w, map[string]string{"writable": "true"}))
	img := e.ns.store.ImageMount(dg)

	for _, tgt := range []string{a, c, w} {
		must(t, unix.Mount("tmpfs", tgt, "tmpfs", 0, "size=1m"))
		must(t, os.WriteFile(filepath.Join(tgt, "planted"), []byte("x"), 0o644))
	}
	for _, p := range []string{img, stg, b, d} {
		if _, err := os.Lstat(filepath.Join(p, "planted")); err == nil {
			t.Errorf("a mount made on a target shows at %s", p)
		}
		checkTree(t, p, "tree1.manifest.json")
		if n := mountCount(p); n != 1 {
			t.Errorf("%s holds %d mounts, want 1", p, n)
		}
	}
	for _, tgt := range []string{a, c, w} {
		must(t, unix.Unmount(tgt, 0))
	}
	// What the kubelet and the runtime need still holds: each target is
	// shared (its copy on the host follows it; HostToContainer works),
	// in a peer group of its own; image and staging mounts share nothing.
	groups := map[string]string{}
	for _, p := range []string{a, b, c, d, w} {
		g := peerGroup(t, p)
		if g == "" {
			t.Errorf("target %s is not shared", p)
		} else if o, dup := groups[g]; dup {
			t.Errorf("targets %s and %s are peers (%s)", o, p, g)
		}
		groups[g] = p
	}
	for _, p := range []string{img, stg} {
		if g := peerGroup(t, p); g != "" {
			t.Errorf("%s is in peer group %s", p, g)
		}
	}
	// A fresh inline volume of the image still gets the image.
	f := e.path("kubelet", "pods", "f", "vol")
	must(t, e.publish("inline-f", uri, dg, "", f, nil))
	checkTree(t, f, "tree1.manifest.json")
}

// Unpublish and unstage act only on what is recorded for the id they
// carry; anything else answers OK and stays as it is.
func TestUnpublishOnlyWhatIsRecorded(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "t1.daxfs")
	g := e.path("tgt", "g")
	must(t, e.publish("owner", uri, dg, "", g, nil))
	stg, p := e.path("stg"), e.path("tgt", "p")
	must(t, e.stage("pv-1", uri, dg, stg, nil))
	must(t, e.publish("pv-1", uri, dg, stg, p, nil))
	foreign := e.path("foreign")
	must(t, os.MkdirAll(foreign, 0o755))
	must(t, unix.Mount("tmpfs", foreign, "tmpfs", 0, "size=1m"))

	must(t, e.unpublish("other-id", g))
	must(t, e.unpublish("pv-2", p))
	must(t, e.unpublish("pv-1", g)) // a PV that is not published there
	must(t, e.unpublish("pv-1", foreign))
	must(t, e.unpublish("owner", foreign))
	must(t, e.unstage("pv-2", stg))
	must(t, e.unstage("owner", stg))
	must(t, e.unstage("pv-1", foreign))
	for _, q := range []string{g, p, stg, foreign} {
		if n := mountCount(q); n != 1 {
			t.Errorf("%s holds %d mounts after foreign unpublishes, want 1", q, n)
		}
	}
	checkTree(t, g, "tree1.manifest.json")
	checkTree(t, p, "tree1.manifest.json")
	if s := e.ns.Snapshot(); len(s) != 1 || s[0].References != 2 {
		t.Errorf("snapshot %+v, want one image with 2 references", s)
	}

	must(t, unix.Unmount(foreign, 0))
	must(t, e.unpublish("owner", g))
	must(t, e.unpublish("pv-1", p))
	must(t, e.unstage("pv-1", stg))
	e.checkReleased(t, dg, "after the owners left")
}

// Calls on one path wait for each other whatever their ids; calls on
// other paths do not.
func TestPathLockSerialisesIDs(t *testing.T) {
	e := newEnv(t, 16<<20, nil)
	unlock, err := e.ns.lockVolumePath(context.Background(), "a", "/p")
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := e.ns.lockVolumePath(ctx, "b", "/p"); err == nil {
		t.Fatal("a second id got the path while the first held it")
	}
	u2, err := e.ns.lockVolumePath(context.Background(), "b", "/q")
	must(t, err)
	u2()
	// The failed wait released b's id lock.
	u3, err := e.ns.lockVolumePath(context.Background(), "b", "/r")
	must(t, err)
	u3()
	unlock()
	u4, err := e.ns.lockVolumePath(context.Background(), "b", "/p")
	must(t, err)
	u4()
}

// Staging and target paths with a symlink or not in clean form are
// refused before anything is staged or mounted.
func TestSymlinkAndUncleanPathsRefused(t *testing.T) {
	e := newEnv(t, 16<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "t1.daxfs")
	elsewhere := e.path("elsewhere", "dir")
	must(t, os.MkdirAll(elsewhere, 0o755))
	must(t, os.Symlink(elsewhere, e.path("stglink")))
	must(t, os.Symlink(e.path("elsewhere"), e.path("dirlink")))

	wantCode(t, "staging path that is a symlink", e.stage("pv", uri, dg, e.path("stglink"), nil), codes.InvalidArgument)
	wantCode(t, "staging path under a symlinked dir", e.stage("pv", uri, dg, e.path("dirlink", "stg"), nil), codes.InvalidArgument)
	wantCode(t, "target that is a symlink", e.publish("i1", uri, dg, "", e.path("stglink"), nil), codes.InvalidArgument)
	wantCode(t, "target under a symlinked dir", e.publish("i2", uri, dg, "", e.path("dirlink", "vol"), nil), codes.InvalidArgument)
	for _, p := range []string{e.path("tgt") + "/x/../y", e.path("tgt") + "/y/", e.path("tgt") + "//y", e.path("tgt") + "/./y", "tgt/y"} {
		wantCode(t, "target "+p, e.publish("i3", uri, dg, "", p, nil), codes.InvalidArgument)
		wantCode(t, "staging "+p, e.stage("pv", uri, dg, p, nil), codes.InvalidArgument)
		wantCode(t, "unpublish "+p, e.unpublish("i3", p), codes.InvalidArgument)
		wantCode(t, "unstage "+p, e.unstage("pv", p), codes.InvalidArgument)
	}
	if m := mountsUnder(e.root); len(m) != 0 {
		t.Errorf("mounts made: %v", m)
	}
	if st := e.pool.Status(); len(st.Extents) != 0 {
		t.Errorf("%d images staged for refused requests", len(st.Extents))
	}
	e.ns.mu.Lock()
	n := len(e.ns.volumes)
	e.ns.mu.Unlock()
	if n != 0 {
		t.Errorf("%d volumes recorded for refused requests", n)
	}
}

// peerGroup is the "shared:N" tag of the topmost mount at p, "" if private.
func peerGroup(t *testing.T, p string) string {
	t.Helper()
	g, found := "", false
	for _, line := range strings.Split(string(readFile(t, "/proc/self/mountinfo")), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || f[4] != p {
			continue
		}
		g, found = "", true
		for _, o := range f[6:] {
			if o == "-" {
				break
			}
			if strings.HasPrefix(o, "shared:") {
				g = o
			}
		}
	}
	if !found {
		t.Errorf("nothing mounted at %s", p)
	}
	return g
}
