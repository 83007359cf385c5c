package nodeserver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

func TestKernelListed(t *testing.T) {
	dir := t.TempDir()
	with := filepath.Join(dir, "with")
	without := filepath.Join(dir, "without")
	os.WriteFile(with, []byte("nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\tdaxfs\n"), 0o644)
	os.WriteFile(without, []byte("nodev\tsysfs\nnodev\tdaxfs2\n\text4\n"), 0o644)
	if ok, err := kernelListed(with); !ok || err != nil {
		t.Fatalf("listed = %v %v, want true", ok, err)
	}
	if ok, err := kernelListed(without); ok || err != nil {
		t.Fatalf("listed = %v %v, want false (daxfs2 is not daxfs)", ok, err)
	}
	if _, err := kernelListed(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file gave no error")
	}
}

// validate is never passed: the module's validator refuses every image.
func TestKernelOptions(t *testing.T) {
	if got := kernelOptions(0x1_4000_0000, 3239936); got != "phys=0x140000000,size=3239936" {
		t.Fatalf("options = %q", got)
	}
	if len(kernelDmabufFlags) != 0 {
		t.Fatalf("dma-buf mount flags = %q, want none", kernelDmabufFlags)
	}
}

// The fake refuses validate as the real module does, on every image of
// ours and with the module's words; without it the image mounts.
func TestFakeModuleRefusesValidate(t *testing.T) {
	b, err := os.ReadFile(samplePath(t, "tree1.static.daxfs"))
	must(t, err)
	im, err := image.OpenBytes(b)
	must(t, err)
	root, err := im.Inode(image.RootIno)
	must(t, err)
	fake := newFakeModule(t)
	fake.region = func(uint64, int64) ([]byte, error) { return b, nil }
	dir := t.TempDir()
	data := kernelOptions(fakePhysBase, int64(len(b)))
	err = fake.MountPhys(dir, data+",validate")
	want := fmt.Sprintf("daxfs: inode 1 nlink mismatch: nlink=%d refcount=0", root.Nlink)
	if !errors.Is(err, unix.EINVAL) || len(fake.dmesg) == 0 || fake.dmesg[len(fake.dmesg)-1] != want {
		t.Fatalf("validate: %v, log %q; want EINVAL and %q", err, fake.dmesg, want)
	}
	must(t, fake.MountPhys(dir, data))
	defer unmountAll(dir)
	checkTree(t, dir, "tree1.manifest.json")
	if err := fake.MountPhys(t.TempDir(), data+",bogus"); !errors.Is(err, unix.EINVAL) {
		t.Errorf("unknown option: %v", err)
	}

	// mmap: VM_WRITE is refused, private copy-on-write included.
	f, err := os.Open(filepath.Join(dir, "dir1", "exact8k.bin"))
	must(t, err)
	defer f.Close()
	for _, c := range []struct{ prot, flags int }{
		{unix.PROT_READ | unix.PROT_WRITE, unix.MAP_PRIVATE},
		{unix.PROT_READ | unix.PROT_WRITE, unix.MAP_SHARED},
	} {
		if _, err := fake.Map(f, 1, c.prot, c.flags); !errors.Is(err, unix.EACCES) {
			t.Errorf("Map(prot %d, flags %d) = %v, want EACCES", c.prot, c.flags, err)
		}
	}
	m, err := fake.Map(f, 1, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("shared read-only map: %v", err)
	}
	unix.Munmap(m)
}

func TestSelectBackend(t *testing.T) {
	phys := region{phys: 0x100000000, size: 4096}
	none := region{size: 4096}
	upstream := kernelView{listed: true, probe: state.KernelProbe{Mount: true, SharedMap: true}}
	fixed := kernelView{listed: true, probe: state.KernelProbe{Mount: true, SharedMap: true, PrivateWriteMap: true}}
	broken := kernelView{listed: true, probe: state.KernelProbe{Detail: "mount daxfs: no such device"}}
	noDAX := kernelView{listed: true, probe: state.KernelProbe{Mount: true}}
	failed := kernelView{listed: true, probeErr: errors.New("stage probe image: no space")}
	absent := kernelView{}
	for _, c := range []struct {
		mode   volume.MountMode
		exec   bool
		k      kernelView
		r      region
		want   string
		reason string
		code   codes.Code
	}{
		{volume.MountAuto, true, fixed, phys, backendKernel, reasonKernelDAX, codes.OK},
		{volume.MountAuto, true, upstream, phys, backendFUSE, reasonNoPrivateMap, codes.OK},
		{volume.MountAuto, false, upstream, phys, backendKernel, reasonKernelDAX, codes.OK},
		{volume.MountAuto, false, absent, phys, backendFUSE, reasonNotLoaded, codes.OK},
		{volume.MountAuto, false, upstream, none, backendFUSE, reasonNoRegion, codes.OK},
		{volume.MountAuto, false, upstream, region{dmabuf: true}, backendKernel, reasonKernelDAX, codes.OK},
		{volume.MountAuto, false, broken, phys, backendFUSE, reasonCannotMount, codes.OK},
		{volume.MountAuto, false, noDAX, phys, backendFUSE, reasonNoSharedMap, codes.OK},
		{volume.MountAuto, false, failed, phys, backendFUSE, reasonProbeFailed, codes.OK},
		{volume.MountFUSE, false, fixed, phys, backendFUSE, reasonFUSERequested, codes.OK},
		{volume.MountKernel, false, upstream, phys, backendKernel, reasonKernelDAX, codes.OK},
		{volume.MountKernel, true, fixed, phys, backendKernel, reasonKernelDAX, codes.OK},
		{volume.MountKernel, true, upstream, phys, "", "", codes.FailedPrecondition},
		{volume.MountKernel, false, absent, phys, "", "", codes.FailedPrecondition},
		{volume.MountKernel, false, upstream, none, "", "", codes.FailedPrecondition},
		{volume.MountKernel, false, broken, phys, "", "", codes.FailedPrecondition},
		{volume.MountKernel, false, failed, phys, "", "", codes.Unavailable},
	} {
		got, err := selectBackend(c.mode, c.exec, c.k, c.r)
		if got.Backend != c.want || got.Reason != c.reason || grpccode.Of(err) != c.code {
			t.Errorf("selectBackend(%s, exec=%v, %+v, %+v) = %+v, %v (%v); want %q %q, %v",
				c.mode, c.exec, c.k, c.r, got, err, grpccode.Of(err), c.want, c.reason, c.code)
		}
	}
	_, err := selectBackend(volume.MountKernel, true, upstream, phys)
	if err == nil || !strings.Contains(err.Error(), msgNoPrivateMap) || !strings.Contains(err.Error(), `exec: "false"`) {
		t.Errorf("mount=kernel exec refusal: %v", err)
	}
	if c, _ := selectBackend(volume.MountAuto, true, upstream, phys); c.Message != "kernel daxfs module cannot map files privately (exec)" {
		t.Errorf("auto exec message %q", c.Message)
	}
}

// The real module's mount paths run their syscalls: without the module,
// mount(2) answers ENODEV and fsopen fails, each naming what it tried.
func TestRealModuleMountsWithoutModule(t *testing.T) {
	m := newRealModule("/proc/filesystems")
	err := mountKernelPhys(m, t.TempDir(), 0x1_4000_0000, 73728)
	if !errors.Is(err, unix.ENODEV) || !strings.Contains(err.Error(), "mount daxfs phys=0x140000000,size=73728 at ") {
		t.Fatalf("mountKernelPhys without the module: %v", err)
	}
	f, err := os.Open("/dev/null")
	must(t, err)
	defer f.Close()
	err = mountKernelDmabuf(m, t.TempDir(), f)
	if err == nil || !strings.Contains(err.Error(), "fsopen daxfs") {
		t.Fatalf("mountKernelDmabuf without the module: %v", err)
	}
}

// Instance: "" when daxfs is not listed; otherwise it names the boot, the
// sysfs directory's inode, srcversion and coresize, and changes with each.
func TestRealModuleInstance(t *testing.T) {
	dir := t.TempDir()
	fs := filepath.Join(dir, "filesystems")
	boot := filepath.Join(dir, "boot_id")
	sys := filepath.Join(dir, "sys", "daxfs")
	must(t, os.WriteFile(fs, []byte("nodev\tsysfs\n"), 0o644))
	must(t, os.WriteFile(boot, []byte("b1\n"), 0o644))
	m := realModule{procFilesystems: fs, sysModule: sys, bootID: boot}
	if got, err := m.Instance(); got != "" || err != nil {
		t.Fatalf("not listed: %q %v", got, err)
	}
	must(t, os.WriteFile(fs, []byte("nodev\tsysfs\nnodev\tdaxfs\n"), 0o644))
	if got, err := m.Instance(); got != "boot=b1 builtin" || err != nil {
		t.Fatalf("built in: %q %v", got, err)
	}
	must(t, os.MkdirAll(sys, 0o755))
	must(t, os.WriteFile(filepath.Join(sys, "srcversion"), []byte("AB12\n"), 0o444))
	must(t, os.WriteFile(filepath.Join(sys, "coresize"), []byte("69632\n"), 0o444))
	var st unix.Stat_t
	must(t, unix.Stat(sys, &st))
	first, err := m.Instance()
	want := fmt.Sprintf("boot=b1 sysfs-ino=%d srcversion=AB12 coresize=69632", st.Ino)
	if first != want || err != nil {
		t.Fatalf("module: %q %v, want %q", first, err, want)
	}
	must(t, os.WriteFile(boot, []byte("b2\n"), 0o644))
	if again, _ := m.Instance(); again == first {
		t.Errorf("a new boot kept the instance %q", again)
	}
}
