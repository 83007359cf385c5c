package daxdev

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiscoverRecordedTrees runs discovery on the sysfs trees the QEMU e2e
// harness recorded from real guests (testdata/sysfs/<setup>/{sys,dev}).
func TestDiscoverRecordedTrees(t *testing.T) {
	want := map[string]struct {
		kind   Kind
		size   int64
		node   int
		region string
	}{
		"e820":   {KindDevDAX, 262144000, 0, ""},
		"nvdimm": {KindDevDAX, 526385152, 0, ""},
		"cxl":    {KindCXL, 262144000, 1, "region0"},
	}
	setups, _ := filepath.Glob(filepath.Join("testdata", "sysfs", "*", "sys"))
	if len(setups) == 0 {
		t.Fatal("no recorded sysfs trees in testdata/sysfs")
	}
	for _, sys := range setups {
		root := filepath.Dir(sys)
		setup := filepath.Base(root)
		w, ok := want[setup]
		if !ok {
			continue
		}
		t.Run(setup, func(t *testing.T) {
			inv, err := Discover(sys, filepath.Join(root, "dev"))
			if err != nil {
				t.Fatal(err)
			}
			var d *DeviceInfo
			for i := range inv.Devices {
				if inv.Devices[i].Name == "dax0.0" {
					d = &inv.Devices[i]
				}
			}
			if d == nil {
				t.Fatalf("dax0.0 not found in %+v", inv.Devices)
			}
			if d.Kind != w.kind || d.Size != w.size || d.Align != 2<<20 || d.NUMANode != w.node || d.CXLRegion != w.region {
				t.Fatalf("dax0.0 = %+v, want kind %s size %d align 2 MiB node %d region %q", *d, w.kind, w.size, w.node, w.region)
			}
			if d.PhysAddr == 0 || d.PhysAddr%(2<<20) != 0 || d.Spec != "devdax:"+filepath.Join(root, "dev", "dax0.0") {
				t.Fatalf("dax0.0 phys %#x spec %q", d.PhysAddr, d.Spec)
			}
			if w.region == "" {
				if d.SharedID != "" {
					t.Fatalf("non-CXL device has shared id %q", d.SharedID)
				}
				return
			}
			uuid, err := os.ReadFile(filepath.Join(sys, "bus", "cxl", "devices", w.region, "uuid"))
			if err != nil {
				t.Fatal(err)
			}
			if d.SharedID != "cxl:"+strings.TrimSpace(string(uuid)) {
				t.Fatalf("shared id %q, want cxl:<region uuid %s>", d.SharedID, uuid)
			}
			regions := cxlRegions(sys)
			if r, ok := regionOf(regions, d.PhysAddr, d.Size); !ok || r.name != w.region {
				t.Fatalf("dax0.0 at %#x not inside %s (%+v)", d.PhysAddr, w.region, regions)
			}
		})
	}
}
