package nodeserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/daxfs-csi/daxfs-csi/pkg/volume"
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

func TestKernelOptions(t *testing.T) {
	if got := kernelOptions(0x1_4000_0000, 3239936); got != "phys=0x140000000,size=3239936,validate" {
		t.Fatalf("options = %q", got)
	}
}

func TestSelectBackend(t *testing.T) {
	phys := region{phys: 0x100000000, size: 4096}
	none := region{size: 4096}
	for _, c := range []struct {
		mode   volume.MountMode
		listed bool
		r      region
		want   string
		code   codes.Code
	}{
		{volume.MountAuto, true, phys, backendKernel, codes.OK},
		{volume.MountAuto, false, phys, backendFUSE, codes.OK},
		{volume.MountAuto, true, none, backendFUSE, codes.OK},
		{volume.MountAuto, true, region{dmabuf: true}, backendKernel, codes.OK},
		{volume.MountFUSE, true, phys, backendFUSE, codes.OK},
		{volume.MountKernel, true, phys, backendKernel, codes.OK},
		{volume.MountKernel, false, phys, "", codes.FailedPrecondition},
		{volume.MountKernel, true, none, "", codes.FailedPrecondition},
	} {
		got, err := selectBackend(c.mode, c.listed, c.r)
		if got != c.want || volume.Code(err) != c.code {
			t.Errorf("selectBackend(%s, listed=%v, %+v) = %q, %v (%v); want %q, %v", c.mode, c.listed, c.r, got, err, volume.Code(err), c.want, c.code)
		}
	}
}

// The new-mount-API path runs its real syscalls: without the module,
// fsopen fails and says which filesystem it wanted.
func TestMountKernelDmabufWithoutModule(t *testing.T) {
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = mountKernelDmabuf(t.TempDir(), f)
	if err == nil || !strings.Contains(err.Error(), "fsopen daxfs") {
		t.Fatalf("mountKernelDmabuf without the module: %v", err)
	}
}
