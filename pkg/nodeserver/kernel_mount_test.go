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

func (p physPool) PhysAddr(e daxdev.Extent) (uint64, bool) { return 0x1_0000_0000 + uint64(e.Offset), true }

// With /proc/filesystems listing daxfs and a physical address, auto picks
// the kernel mount. The module is not really here, so mount(2) fails: the
// error says so, and nothing is left staged or mounted.
func TestKernelBackendSelectedAndFailsCleanly(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "filesystems")
	must(t, os.WriteFile(fake, []byte("nodev\tsysfs\nnodev\tdaxfs\n"), 0o644))
	e := newEnv(t, 64<<20, func(o *Options) { o.ProcFilesystems = fake })
	e.ns.pool = physPool{e.pool}
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")

	err := e.publish("k", uri, dg, "", e.path("pods", "k"), nil)
	wantCode(t, "kernel mount without the module", err, codes.Internal)
	if err == nil || !strings.Contains(err.Error(), "mount daxfs phys=0x") || !strings.Contains(err.Error(), ",validate") {
		t.Errorf("error does not show the kernel mount it tried: %v", err)
	}
	if _, ok := e.pool.Lookup(dg); ok {
		t.Error("extent kept after the failed mount")
	}
	if m := mountsUnder(e.root); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	// mount=fuse still works on the same node.
	must(t, e.publish("f", uri, dg, "", e.path("pods", "f"), map[string]string{"mount": "fuse"}))
	checkTree(t, e.path("pods", "f"), "tree1.manifest.json")
	must(t, e.unpublish("f", e.path("pods", "f")))

	// Listed, but a pool without physical address: mount=kernel is refused.
	e.ns.pool = e.pool
	err = e.publish("k2", uri, dg, "", e.path("pods", "k2"), map[string]string{"mount": "kernel"})
	wantCode(t, "mount=kernel on a pool without phys", err, codes.FailedPrecondition)
}
