package nodeserver

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

// kernelEnv is a node whose pool has physical addresses and whose kernel
// has the fake daxfs module (upstream's behaviour) loaded.
func kernelEnv(t *testing.T, mod func(*fakeModule)) (*env, *fakeModule) {
	return kernelEnvKeep(t, mod, false)
}

func kernelEnvKeep(t *testing.T, mod func(*fakeModule), keepUnused bool) (*env, *fakeModule) {
	t.Helper()
	fake := newFakeModule(t)
	if mod != nil {
		mod(fake)
	}
	e := newEnv(t, 64<<20, func(o *Options) { o.kernel = fake; o.KeepUnused = keepUnused })
	pp := newPhysPool(e.pool)
	fake.region = pp.region
	e.ns.pool = pp
	return e, fake
}

// imageOf is the snapshot entry of digest.
func imageOf(t *testing.T, ns *NodeServer, digest string) ImageStatus {
	t.Helper()
	for _, s := range ns.Snapshot() {
		if s.Digest == digest {
			return s
		}
	}
	t.Fatalf("image %s not in the snapshot %+v", digest, ns.Snapshot())
	return ImageStatus{}
}

// probes counts the probe mounts the module saw (the probe image is the
// only one of its size).
func probes(fake *fakeModule) int {
	img, _ := probeImage()
	n := 0
	for _, m := range fake.mountLog() {
		if strings.Contains(m, ",size="+strconv.Itoa(len(img.bytes))) {
			n++
		}
	}
	return n
}

// A data volume (exec=false) gets the kernel's DAX mount from a module
// that refuses private writable mappings, with mount=auto and mount=kernel;
// the content is exact and no mount carries validate (the fake refuses it,
// like the module: passing validate again fails here).
func TestKernelDataVolumeGetsDaxfsMount(t *testing.T) {
	e, fake := kernelEnv(t, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")

	must(t, e.publish("d", uri, dg, "", e.path("pods", "d"), map[string]string{"exec": "false"}))
	checkTree(t, e.path("pods", "d"), "tree1.manifest.json")
	st := imageOf(t, e.ns, dg)
	if st.Backend != backendKernel || st.Reason != reasonKernelDAX || !strings.Contains(st.ReasonMessage, "exec=false") {
		t.Errorf("data volume: backend %q reason %q %q, want kernel DAX", st.Backend, st.Reason, st.ReasonMessage)
	}
	for _, m := range fake.mountLog() {
		if strings.Contains(m, "validate") {
			t.Errorf("mount passed validate: %q", m)
		}
	}
	if !strings.HasPrefix(fake.mountLog()[len(fake.mountLog())-1], "phys=0x1") {
		t.Errorf("image mount options %q", fake.mountLog())
	}
	must(t, e.unpublish("d", e.path("pods", "d")))

	// mount=kernel on a PV holding data: staged and published by the kernel.
	staging := e.path("staging", "k")
	must(t, e.stage("k", uri, dg, staging, map[string]string{"mount": "kernel", "exec": "false"}))
	must(t, e.publish("k", uri, dg, staging, e.path("pods", "k"), map[string]string{"mount": "kernel", "exec": "false"}))
	checkTree(t, e.path("pods", "k"), "tree1.manifest.json")
	if st := imageOf(t, e.ns, dg); st.Backend != backendKernel {
		t.Errorf("mount=kernel data volume: backend %q (%s)", st.Backend, st.ReasonMessage)
	}
	must(t, e.unpublish("k", e.path("pods", "k")))
	must(t, e.unstage("k", staging))
	e.checkReleased(t, dg, "after the data volumes")
	if n := len(e.pool.Status().Extents); n != 0 {
		t.Errorf("%d extents left in the pool (the probe image must be released)", n)
	}
	if n := probes(fake); n != 1 {
		t.Errorf("module probed %d times, want once", n)
	}
}

// With the module loaded, mount=auto on a volume that may run programs is
// served by FUSE and says why; mount=kernel on it is refused, saying what
// to set; nothing is left staged.
func TestKernelExecVolumeNotOnModuleWithoutPrivateMaps(t *testing.T) {
	e, _ := kernelEnv(t, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")

	err := e.publish("k", uri, dg, "", e.path("pods", "k"), map[string]string{"mount": "kernel"})
	wantCode(t, "mount=kernel on an exec volume", err, codes.FailedPrecondition)
	if err == nil || !strings.Contains(err.Error(), msgNoPrivateMap) || !strings.Contains(err.Error(), `exec: "false"`) {
		t.Errorf("refusal does not say why and what to set: %v", err)
	}
	e.checkReleased(t, dg, "after the refused mount=kernel")

	must(t, e.publish("a", uri, dg, "", e.path("pods", "a"), nil))
	checkTree(t, e.path("pods", "a"), "tree1.manifest.json")
	st := imageOf(t, e.ns, dg)
	if st.Backend != backendFUSE || st.Reason != reasonNoPrivateMap || st.ReasonMessage != "kernel daxfs module cannot map files privately (exec)" {
		t.Errorf("auto exec volume: %q %q %q", st.Backend, st.Reason, st.ReasonMessage)
	}
	if fm := fuseMounts(e.root); len(fm) == 0 {
		t.Error("no FUSE mount serves the exec volume")
	}
	h, err := e.ns.NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{VolumeId: "a"})
	must(t, err)
	var found bool
	for _, s := range h.GetVolumeHealth().GetHealthStatuses() {
		if s.Status == csi.VolumeHealthErrorType_DEGRADED && s.Reason == reasonNoPrivateMap && s.Message == msgNoPrivateMap {
			found = true
		} else {
			t.Errorf("unexpected health entry %v", s)
		}
	}
	if !found {
		t.Errorf("volume health does not say why FUSE serves: %v", h)
	}
	// The reason is kept with the image record: a restarted plugin says it too.
	e.ns.Shutdown()
	e.ns = e.newServer()
	if st := imageOf(t, e.ns, dg); st.Reason != reasonNoPrivateMap || st.ReasonMessage != msgNoPrivateMap {
		t.Errorf("after a restart: %q %q", st.Reason, st.ReasonMessage)
	}
	must(t, e.unpublish("a", e.path("pods", "a")))
	e.checkReleased(t, dg, "after the exec volume")

	for _, bad := range []map[string]string{{"exec": "no"}, {"mount": "dax"}} {
		err := e.publish("bad", uri, dg, "", e.path("pods", "bad"), bad)
		wantCode(t, "bad attribute", err, codes.InvalidArgument)
	}
}

// A module that can map privately serves exec volumes with mount=auto.
func TestKernelExecVolumeOnCapableModule(t *testing.T) {
	e, _ := kernelEnv(t, func(m *fakeModule) { m.privateWrite = true })
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	must(t, e.publish("a", uri, dg, "", e.path("pods", "a"), nil))
	checkTree(t, e.path("pods", "a"), "tree1.manifest.json")
	if st := imageOf(t, e.ns, dg); st.Backend != backendKernel || st.Reason != reasonKernelDAX {
		t.Errorf("exec volume on a capable module: %q %q", st.Backend, st.ReasonMessage)
	}
	h, err := e.ns.NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{VolumeId: "a"})
	must(t, err)
	if n := len(h.GetVolumeHealth().GetHealthStatuses()); n != 0 {
		t.Errorf("kernel-served volume reports %v", h)
	}
	must(t, e.unpublish("a", e.path("pods", "a")))
}

// The probe runs once per module instance: its result is recorded in the
// state dir (a restarted node reads it back), and a new instance of the
// module (reloaded) is probed again.
func TestKernelProbeOncePerModuleInstance(t *testing.T) {
	e, fake := kernelEnv(t, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	data := map[string]string{"exec": "false"}
	if _, ok := e.ns.KernelProbe(); ok {
		t.Fatal("probed before any volume asked")
	}
	for _, id := range []string{"a", "b"} {
		must(t, e.publish(id, uri, dg, "", e.path("pods", id), data))
		must(t, e.unpublish(id, e.path("pods", id)))
	}
	if n := probes(fake); n != 1 {
		t.Fatalf("probed %d times for one module instance", n)
	}
	p, ok := e.ns.KernelProbe()
	if !ok || !p.Mount || !p.SharedMap || p.PrivateWriteMap || !strings.Contains(p.Detail, "permission denied") {
		t.Errorf("probe = %+v, %v; want mount and shared map, no private writable map (EACCES)", p, ok)
	}
	var rec state.KernelProbe
	b, err := os.ReadFile(filepath.Join(e.opts.StateDir, "kernel-probe.json"))
	must(t, err)
	must(t, json.Unmarshal(b, &rec))
	if rec.Instance != p.Instance || rec.PrivateWriteMap || !rec.Mount {
		t.Errorf("recorded probe %+v, in memory %+v", rec, p)
	}
	if got := fake.maps; len(got) != 2 || got[0] != "shared,prot=1" || got[1] != "private,prot=3" {
		t.Errorf("probe mappings %v, want a shared read-only and a private read-write one", got)
	}

	// A restarted node with the same module reads the record.
	e.ns.Shutdown()
	e.ns = e.newServer()
	e.ns.pool = newPhysPool(e.pool)
	fake.region = e.ns.pool.(*physPool).region
	must(t, e.publish("c", uri, dg, "", e.path("pods", "c"), data))
	must(t, e.unpublish("c", e.path("pods", "c")))
	if n := probes(fake); n != 1 {
		t.Errorf("restart with the same module probed again (%d probes)", n)
	}

	// The module was reloaded (a fixed build): probed again, and exec
	// volumes now get the kernel.
	fake.setInstance("fake-daxfs fixed load 2")
	fake.mu.Lock()
	fake.privateWrite = true
	fake.mu.Unlock()
	must(t, e.publish("d", uri, dg, "", e.path("pods", "d"), nil))
	if n := probes(fake); n != 2 {
		t.Errorf("new module instance: %d probes, want 2", n)
	}
	if st := imageOf(t, e.ns, dg); st.Backend != backendKernel {
		t.Errorf("exec volume after the reload: %q %q", st.Backend, st.ReasonMessage)
	}
	must(t, e.unpublish("d", e.path("pods", "d")))
	e.checkReleased(t, dg, "after the reload")
}

// One image mount serves every volume of a digest: a data volume's kernel
// mount cannot serve an exec volume, which is refused while the data
// volume holds the image and served by FUSE once it is gone.
func TestKernelMountSharedWithExecVolume(t *testing.T) {
	e, _ := kernelEnv(t, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	must(t, e.publish("d", uri, dg, "", e.path("pods", "d"), map[string]string{"exec": "false"}))
	err := e.publish("x", uri, dg, "", e.path("pods", "x"), nil)
	wantCode(t, "exec volume on a data volume's kernel mount", err, codes.FailedPrecondition)
	if err == nil || !strings.Contains(err.Error(), msgNoPrivateMap) {
		t.Errorf("refusal does not say why: %v", err)
	}
	checkTree(t, e.path("pods", "d"), "tree1.manifest.json")
	must(t, e.unpublish("d", e.path("pods", "d")))
	must(t, e.publish("x", uri, dg, "", e.path("pods", "x"), nil))
	if st := imageOf(t, e.ns, dg); st.Backend != backendFUSE {
		t.Errorf("exec volume after the data volume left: %q", st.Backend)
	}
	// A data volume is served by the exec volume's FUSE mount.
	must(t, e.publish("d2", uri, dg, "", e.path("pods", "d2"), map[string]string{"exec": "false"}))
	checkTree(t, e.path("pods", "d2"), "tree1.manifest.json")
	must(t, e.unpublish("d2", e.path("pods", "d2")))
	must(t, e.unpublish("x", e.path("pods", "x")))
	e.checkReleased(t, dg, "at the end")
}

// An image only the cache (--keep-unused) holds is remounted for an exec
// volume instead of refusing it.
func TestKernelCachedDataMountRemountedForExec(t *testing.T) {
	e, _ := kernelEnvKeep(t, nil, true)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	must(t, e.publish("d", uri, dg, "", e.path("pods", "d"), map[string]string{"exec": "false"}))
	must(t, e.unpublish("d", e.path("pods", "d")))
	if st := imageOf(t, e.ns, dg); st.Backend != backendKernel || st.References != 0 {
		t.Fatalf("cached data image: %+v", st)
	}
	must(t, e.publish("x", uri, dg, "", e.path("pods", "x"), nil))
	checkTree(t, e.path("pods", "x"), "tree1.manifest.json")
	if st := imageOf(t, e.ns, dg); st.Backend != backendFUSE || st.Reason != reasonNoPrivateMap {
		t.Errorf("exec volume on the cached image: %q %q", st.Backend, st.Reason)
	}
	must(t, e.unpublish("x", e.path("pods", "x")))
}

// The real module's path (mount(2) with the options the node builds)
// against a kernel without daxfs, listed anyway: the probe's mount fails,
// so mount=auto serves FUSE, saying so, and mount=kernel is refused with
// the mount it tried (no validate) and nothing left behind.
func TestKernelRealMountWithoutModule(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "filesystems")
	must(t, os.WriteFile(fake, []byte("nodev\tsysfs\nnodev\tdaxfs\n"), 0o644))
	e := newEnv(t, 64<<20, func(o *Options) { o.ProcFilesystems = fake })
	e.ns.pool = newPhysPool(e.pool)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")

	err := e.publish("k", uri, dg, "", e.path("pods", "k"), map[string]string{"mount": "kernel", "exec": "false"})
	wantCode(t, "kernel mount without the module", err, codes.FailedPrecondition)
	if err == nil || !strings.Contains(err.Error(), "mount daxfs phys=0x") || strings.Contains(err.Error(), "validate") {
		t.Errorf("error does not show the kernel mount it tried (without validate): %v", err)
	}
	e.checkReleased(t, dg, "after the failed mount")
	must(t, e.publish("a", uri, dg, "", e.path("pods", "a"), nil))
	checkTree(t, e.path("pods", "a"), "tree1.manifest.json")
	if st := imageOf(t, e.ns, dg); st.Backend != backendFUSE || st.Reason != reasonCannotMount {
		t.Errorf("snapshot after fallback %+v", st)
	}
	must(t, e.unpublish("a", e.path("pods", "a")))

	// Listed, but a pool without physical address: mount=kernel is refused.
	e.ns.pool = e.pool
	err = e.publish("k2", uri, dg, "", e.path("pods", "k2"), map[string]string{"mount": "kernel"})
	wantCode(t, "mount=kernel on a pool without phys", err, codes.FailedPrecondition)
}

// A pool without physical addresses but with per-extent dma-bufs takes the
// fsopen/fsconfig(dmabuf) path, without validate.
func TestKernelBackendDmabufPath(t *testing.T) {
	fake := newFakeModule(t)
	e := newEnv(t, 64<<20, func(o *Options) { o.kernel = fake })
	e.ns.pool = dmaPool{e.pool}
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	must(t, e.publish("k", uri, dg, "", e.path("pods", "k"), map[string]string{"mount": "kernel", "exec": "false"}))
	checkTree(t, e.path("pods", "k"), "tree1.manifest.json")
	if st := imageOf(t, e.ns, dg); st.Backend != backendKernel {
		t.Errorf("dma-buf data volume: %q %q", st.Backend, st.ReasonMessage)
	}
	for _, m := range fake.mountLog() {
		if m != "dmabuf," {
			t.Errorf("dma-buf mount with flags %q", m)
		}
	}
	must(t, e.unpublish("k", e.path("pods", "k")))
	e.checkReleased(t, dg, "after the dma-buf volume")
}

// heapPool reports itself as a dma-heap pool.
type heapPool struct{ *countingPool }

func (p heapPool) Info() daxdev.Info {
	i := p.countingPool.Info()
	i.Kind = daxdev.KindDMAHeap
	return i
}

// FUSE cannot serve a dma-heap pool (fuse-serve could not reopen the
// buffer), and without per-extent dma-bufs neither can the kernel: a clear
// FailedPrecondition, nothing left behind.
func TestFUSERefusesDMAHeapPool(t *testing.T) {
	e := newEnv(t, 64<<20, func(o *Options) { o.kernel = newFakeModule(t) })
	e.ns.pool = heapPool{e.pool}
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	err := e.publish("h", uri, dg, "", e.path("pods", "h"), nil)
	wantCode(t, "FUSE on a dma-heap pool", err, codes.FailedPrecondition)
	if err == nil || !strings.Contains(err.Error(), "neither a physical address nor a dma-buf") {
		t.Errorf("refusal does not say why the kernel cannot: %v", err)
	}
	e.checkReleased(t, dg, "after the refused FUSE mount")
}
