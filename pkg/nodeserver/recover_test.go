package nodeserver

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/internal/proc"
)

// The plugin dies (kill -9: no cleanup at all) while a reader holds a file
// open; the restarted plugin recovers from the state dir without touching
// the live mounts, and unpublish/unstage then work.
func TestRestartKeepsReaders(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	staging, target, inline := e.path("staging"), e.path("pods", "a", "vol"), e.path("pods", "b", "vol")
	must(t, e.stage("pv", uri, dg, staging, nil))
	must(t, e.publish("pv", uri, dg, staging, target, nil))
	must(t, e.publish("inline", uri, dg, "", inline, nil))
	pids := fuseServePIDs(e.root)
	if len(pids) != 1 {
		t.Fatalf("fuse-serve pids %v", pids)
	}
	f, err := os.Open(filepath.Join(target, "dir1", "exact8k.bin"))
	must(t, err)
	defer f.Close()
	head := make([]byte, 4096)
	_, err = io.ReadFull(f, head)
	must(t, err)

	e.ns = nil // the old plugin is gone without a word
	e.ns = e.newServer()

	rest, err := io.ReadAll(f)
	if err != nil || len(rest) != 4096 {
		t.Fatalf("reader after restart: %d bytes, %v", len(rest), err)
	}
	if p := fuseServePIDs(e.root); len(p) != 1 || p[0] != pids[0] {
		t.Errorf("fuse-serve %v after restart, want the same %v", p, pids)
	}
	checkTree(t, target, "tree1.manifest.json")
	checkTree(t, inline, "tree1.manifest.json")
	if s := e.ns.Snapshot(); len(s) != 1 || s[0].References != 2 || !s[0].Healthy {
		t.Fatalf("recovered snapshot %+v", s)
	}
	// Idempotent calls on recovered volumes succeed; then tear down.
	must(t, e.publish("pv", uri, dg, staging, target, nil))
	must(t, e.unpublish("pv", target))
	must(t, e.unstage("pv", staging))
	checkTree(t, inline, "tree1.manifest.json")
	f.Close()
	must(t, e.unpublish("inline", inline))
	e.checkReleased(t, dg, "after recovery and teardown")
}

// The fuse-serve process dies: its mounts answer ENOTCONN. A restarted
// plugin cleans them and remounts from the pool (the writable layer
// survives); without a restart, a retried publish repairs it too.
func TestFuseServerKilled(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	staging, target, rw := e.path("staging"), e.path("pods", "a", "vol"), e.path("pods", "rw", "vol")
	must(t, e.stage("pv", uri, dg, staging, nil))
	must(t, e.publish("pv", uri, dg, staging, target, nil))
	must(t, e.publish("inline-rw", uri, dg, "", rw, map[string]string{"writable": "true"}))
	must(t, os.WriteFile(filepath.Join(rw, "mine.txt"), []byte("kept"), 0o644))

	killFuseServe(t, e)
	var st unix.Stat_t
	// A dead FUSE server's mount answers ENOTCONN (or ECONNABORTED while
	// the kernel is still aborting the connection).
	if err := unix.Stat(filepath.Join(target, "dir1"), &st); !errors.Is(err, unix.ENOTCONN) && !errors.Is(err, unix.ECONNABORTED) {
		t.Fatalf("stat after the server died: %v, want ENOTCONN", err)
	}
	h, err := e.ns.NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{VolumeId: "pv"})
	must(t, err)
	if len(h.VolumeHealth.HealthStatuses) == 0 || h.VolumeHealth.HealthStatuses[0].Status != csi.VolumeHealthErrorType_INACCESSIBLE {
		t.Errorf("health with a dead server: %v", h.VolumeHealth)
	}
	if s := e.ns.Snapshot(); len(s) != 1 || s[0].Healthy {
		t.Errorf("snapshot with a dead server: %+v", s)
	}

	e.ns = e.newServer()
	checkTree(t, target, "tree1.manifest.json")
	checkTree(t, staging, "tree1.manifest.json")
	if b, err := os.ReadFile(filepath.Join(rw, "mine.txt")); err != nil || string(b) != "kept" {
		t.Errorf("writable layer after recovery: %q %v", b, err)
	}
	checkTree(t, rw, "tree1.manifest.json")
	assertAllMountsAnswer(t, e.root)
	if m := fuseMounts(e.opts.StateDir); len(m) != 1 {
		t.Errorf("image mounts after recovery %v, want exactly one (no stale one left)", m)
	}
	h, err = e.ns.NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{VolumeId: "pv"})
	must(t, err)
	if len(h.VolumeHealth.HealthStatuses) != 0 {
		t.Errorf("health after recovery: %v", h.VolumeHealth)
	}

	// Without restart: the kubelet retries the publish, which repairs it.
	killFuseServe(t, e)
	must(t, e.publish("pv", uri, dg, staging, target, nil))
	checkTree(t, target, "tree1.manifest.json")
	checkTree(t, staging, "tree1.manifest.json")

	must(t, e.unpublish("inline-rw", rw))
	must(t, e.unpublish("pv", target))
	must(t, e.unstage("pv", staging))
	e.checkReleased(t, dg, "after the last unstage")
}

func killFuseServe(t *testing.T, e *env) {
	t.Helper()
	pids := fuseServePIDs(e.root)
	if len(pids) != 1 {
		t.Fatalf("fuse-serve pids %v, want 1", pids)
	}
	must(t, unix.Kill(pids[0], unix.SIGKILL))
	waitFor(t, "fuse-serve to die", func() bool { return !proc.Alive(pids[0]) })
}

// assertAllMountsAnswer: no mount under root is left "transport endpoint
// is not connected".
func assertAllMountsAnswer(t *testing.T, root string) {
	t.Helper()
	for _, mp := range mountsUnder(root) {
		var st unix.Stat_t
		if err := unix.Stat(mp, &st); err != nil {
			t.Errorf("mount %s: %v", mp, err)
		}
	}
}

// The pool lost the image while the plugin was down (and its server died):
// recovery fetches it again from the recorded source.
func TestRecoveryRestagesLostImage(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	target := e.path("pods", "a", "vol")
	must(t, e.publish("inline", uri, dg, "", target, nil))
	killFuseServe(t, e)
	if _, err := e.pool.Release(dg, e.ns.owner); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.pool.Lookup(dg); ok {
		t.Fatal("extent still there")
	}
	e.ns = e.newServer()
	checkTree(t, target, "tree1.manifest.json")
	if f := e.pool.fills.Load(); f != 2 {
		t.Errorf("fills %d, want 2 (staged again)", f)
	}
	must(t, e.unpublish("inline", target))
}

// Targets removed while the plugin was down are forgotten, not recreated;
// an inline volume's image reference goes with it.
func TestRecoveryForgetsRemovedTargets(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	staging, t1, t2, inline := e.path("staging"), e.path("pods", "1"), e.path("pods", "2"), e.path("pods", "i")
	must(t, e.stage("pv", uri, dg, staging, nil))
	must(t, e.publish("pv", uri, dg, staging, t1, nil))
	must(t, e.publish("pv", uri, dg, staging, t2, map[string]string{"writable": "true"}))
	must(t, e.publish("inline", uri, dg, "", inline, nil))
	e.ns = nil
	for _, p := range []string{t1, t2, inline} {
		must(t, unix.Unmount(p, 0))
		must(t, os.Remove(p))
	}
	e.ns = e.newServer()
	for _, p := range []string{t1, t2, inline} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s recreated by recovery: %v", p, err)
		}
	}
	if s := e.ns.Snapshot(); len(s) != 1 || s[0].References != 1 {
		t.Errorf("snapshot %+v, want the PV's reference only", s)
	}
	must(t, e.unstage("pv", staging)) // no live targets left
	e.checkReleased(t, dg, "after the unstage")
}

// A torn image record (crash mid-write on a filesystem without rename
// atomicity) does not lose the volumes that use the image.
func TestRecoveryWithUnreadableImageRecord(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	target := e.path("pods", "a")
	must(t, e.publish("inline", uri, dg, "", target, nil))
	killFuseServe(t, e)
	must(t, os.WriteFile(filepath.Join(e.ns.store.ImageDir(dg), "image.json"), []byte("{tor"), 0o600))
	e.ns = e.newServer()
	checkTree(t, target, "tree1.manifest.json")
	if s := e.ns.Snapshot(); len(s) != 1 || s[0].References != 1 || !s[0].Healthy {
		t.Errorf("snapshot %+v", s)
	}
	must(t, e.unpublish("inline", target))
	e.checkReleased(t, dg, "after the unpublish")
}

// A dead server's mount left at an image path must not pass for the new
// server's mount: start clears it and returns only once a live server answers.
func TestFuseStartOverDeadMount(t *testing.T) {
	e := newEnv(t, 64<<20, func(o *Options) { o.HealthInterval = -1 })
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	target := e.path("pods", "a", "vol")
	must(t, e.publish("inline", uri, dg, "", target, nil))
	killFuseServe(t, e)
	dir := e.ns.store.ImageMount(dg)
	if fuseAnswers(dir, time.Second) {
		t.Fatal("a killed server's mount still answers statfs")
	}

	srv, err := e.ns.fuse.start(dg, dir, filepath.Join(e.ns.store.ImageDir(dg), "fuse.log"))
	must(t, err)
	pid := srv.PID
	t.Cleanup(func() { stopFuse(pid, dg, dir) })
	if !proc.Alive(pid) || !isFuseServe(pid, dg) {
		t.Fatalf("start returned pid %d, which is not a live fuse-serve for %s", pid, dg)
	}
	if !fuseAnswers(dir, 5*time.Second) {
		t.Fatal("start returned before the new server answered")
	}
	if n := len(fuseMounts(e.opts.StateDir)); n != 1 {
		t.Errorf("%d fuse mounts under the state dir, want the new one only", n)
	}
	checkTree(t, dir, "tree1.manifest.json")
}
