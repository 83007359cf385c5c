package daxdev

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func fixture(setup string) (sys, dev string) {
	return filepath.Join("testdata", "fixtures", setup, "sys"), filepath.Join("testdata", "fixtures", setup, "dev")
}

func TestDiscoverFixtures(t *testing.T) {
	for _, tc := range []struct {
		setup string
		want  []DeviceInfo
	}{
		{"e820-devdax", []DeviceInfo{{
			Kind: KindDevDAX, Name: "dax0.0", Size: 262144000, Align: 2 << 20,
			PhysAddr: 0x100600000, NUMANode: 0,
		}}},
		{"cxl-devdax", []DeviceInfo{{
			Kind: KindCXL, Name: "dax0.0", Size: 262144000, Align: 2 << 20,
			PhysAddr: 0x390600000, NUMANode: 1, CXLRegion: "region0",
			SharedID: "cxl:5e0a2c94-1c0e-4f5b-9a51-7d2c1a0b3f11",
		}, {
			Kind: KindDMAHeap, Name: "system", Align: pageSize, NUMANode: -1,
		}}},
		{"e820-pmem", []DeviceInfo{{
			Kind: KindPmem, Name: "pmem0", Size: 256 << 20, Align: pageSize,
			PhysAddr: 0x100000000, NUMANode: 0,
		}}},
	} {
		t.Run(tc.setup, func(t *testing.T) {
			sys, dev := fixture(tc.setup)
			inv, err := Discover(sys, dev)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.want {
				w := &tc.want[i]
				switch w.Kind {
				case KindDMAHeap:
					w.Path = filepath.Join(dev, "dma_heap", w.Name)
					w.Spec = "dmaheap:" + w.Name
				case KindPmem:
					w.Path = filepath.Join(dev, w.Name)
					w.Spec = "pmem:" + w.Path
				default:
					w.Path = filepath.Join(dev, w.Name)
					w.Spec = "devdax:" + w.Path
				}
			}
			if !reflect.DeepEqual(inv.Devices, tc.want) {
				t.Fatalf("Discover(%s):\n got %+v\nwant %+v", tc.setup, inv.Devices, tc.want)
			}
		})
	}
}

func TestDiscoverMissingRoot(t *testing.T) {
	if _, err := Discover(filepath.Join(t.TempDir(), "nope"), "/dev"); err == nil {
		t.Fatal("Discover on a missing sysfs root gave no error")
	}
	inv, err := Discover(t.TempDir(), t.TempDir())
	if err != nil || len(inv.Devices) != 0 {
		t.Fatalf("empty sysfs: %+v %v, want no devices and no error", inv, err)
	}
}

func TestRegionOf(t *testing.T) {
	r := []cxlRegion{{name: "region0", start: 0x390000000, size: 256 << 20}}
	for _, tc := range []struct {
		phys uint64
		size int64
		ok   bool
	}{
		{0x390600000, 250 << 20, true},
		{0x390600000, 251 << 20, false}, // runs past the region end
		{0x100600000, 1 << 20, false},
		{0, 1, false},
	} {
		if _, ok := regionOf(r, tc.phys, tc.size); ok != tc.ok {
			t.Errorf("regionOf(%#x, %d) = %v, want %v", tc.phys, tc.size, ok, tc.ok)
		}
	}
}

func TestAutoSpec(t *testing.T) {
	// The fixture's /dev/dax0.0 does not exist: auto picks it and says so.
	sys, dev := fixture("cxl-devdax")
	_, err := OpenPool("auto", PoolOptions{SysRoot: sys, DevRoot: dev})
	if !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), filepath.Join(dev, "dax0.0")) {
		t.Fatalf("auto on the CXL fixture: %v, want ErrNoDevice naming %s", err, filepath.Join(dev, "dax0.0"))
	}
	// Heaps alone are not candidates.
	empty := t.TempDir()
	_, err = OpenPool("auto", PoolOptions{SysRoot: empty, DevRoot: dev})
	if !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), "found no") {
		t.Fatalf("auto with only a dma-buf heap: %v, want ErrNoDevice", err)
	}
}
