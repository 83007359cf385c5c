package nodeserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

// physPool pretends the memfile pool sits at a physical address, as a
// device-dax pool does, so the kernel path is chosen.
type physPool struct{ *countingPool }

func (p physPool) PhysAddr(e daxdev.Extent) (uint64, bool) {
	return 0x1_0000_0000 + uint64(e.Offset), true
}

// With /proc/filesystems listing daxfs and a physical address, the kernel
// mount is chosen. The module is not really here, so mount(2) fails:
// mount=kernel reports the mount it tried and leaves nothing staged or
// mounted; mount=auto falls back to FUSE.
func TestKernelBackendSelectedAndFailsCleanly(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "filesystems")
	must(t, os.WriteFile(fake, []byte("nodev\tsysfs\nnodev\tdaxfs\n"), 0o644))
	e := newEnv(t, 64<<20, func(o *Options) { o.ProcFilesystems = fake })
	e.ns.pool = physPool{e.pool}
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")

	err := e.publish("k", uri, dg, "", e.path("pods", "k"), map[string]string{"mount": "kernel"})
	wantCode(t, "kernel mount without the module", err, codes.Internal)
	if err == nil || !strings.Contains(err.Error(), "mount daxfs phys=0x") || !strings.Contains(err.Error(), ",validate") {
		t.Errorf("error does not show the kernel mount it tried: %v", err)
	}
	e.checkReleased(t, dg, "after the failed mount")
	// auto: the kernel mount fails, FUSE serves.
	must(t, e.publish("a", uri, dg, "", e.path("pods", "a"), nil))
	checkTree(t, e.path("pods", "a"), "tree1.manifest.json")
	if s := e.ns.Snapshot(); len(s) != 1 || s[0].Backend != backendFUSE {
		t.Errorf("snapshot after fallback %+v", s)
	}
	must(t, e.unpublish("a", e.path("pods", "a")))

	// Listed, but a pool without physical address: mount=kernel is refused.
	e.ns.pool = e.pool
	err = e.publish("k2", uri, dg, "", e.path("pods", "k2"), map[string]string{"mount": "kernel"})
	wantCode(t, "mount=kernel on a pool without phys", err, codes.FailedPrecondition)
}

// dmaPool exports each extent as its own dma-buf (a stand-in fd: no heap here).
type dmaPool struct{ *countingPool }

func (p dmaPool) ExtentDMABuf(daxdev.Extent) (*os.File, error) { return os.Open("/dev/null") }

// A pool without physical addresses but with per-extent dma-bufs takes the
// fsopen/fsconfig(dmabuf) path.
func TestKernelBackendDmabufPath(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "filesystems")
	must(t, os.WriteFile(fake, []byte("nodev\tdaxfs\n"), 0o644))
	e := newEnv(t, 64<<20, func(o *Options) { o.ProcFilesystems = fake })
	e.ns.pool = dmaPool{e.pool}
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	err := e.publish("k", uri, dg, "", e.path("pods", "k"), map[string]string{"mount": "kernel"})
	if err == nil || !strings.Contains(err.Error(), "fsopen daxfs") {
		t.Fatalf("mount=kernel on a dma-buf pool: %v", err)
	}
	if _, ok := e.pool.Lookup(dg); ok {
		t.Error("extent kept after the failed mount")
	}
}

// heapPool reports itself as a dma-heap pool.
type heapPool struct{ *countingPool }

func (p heapPool) Info() daxdev.Info {
	i := p.countingPool.Info()
	i.Kind = daxdev.KindDMAHeap
	return i
}

// FUSE cannot serve a dma-heap pool (fuse-serve could not reopen the
// buffer): a clear FailedPrecondition, nothing left behind.
func TestFUSERefusesDMAHeapPool(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	e.ns.pool = heapPool{e.pool}
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	err := e.publish("h", uri, dg, "", e.path("pods", "h"), nil)
	wantCode(t, "FUSE on a dma-heap pool", err, codes.FailedPrecondition)
	e.checkReleased(t, dg, "after the refused FUSE mount")
}
