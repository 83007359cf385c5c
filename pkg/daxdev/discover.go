package daxdev

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/klog/v2"
)

// Inventory is what Discover found, device-dax and CXL first, then pmem,
// then dma-buf heaps, each sorted by name.
type Inventory struct {
	Devices []DeviceInfo `json:"devices"`
}

// DeviceInfo describes one device a pool can live on.
type DeviceInfo struct {
	Kind      Kind   `json:"kind"` // devdax | pmem | cxl | dmaheap | memfile
	Name      string `json:"name"` // "dax0.0"
	Path      string `json:"path"` // "/dev/dax0.0"
	Size      int64  `json:"size"`
	Align     int64  `json:"align"`
	PhysAddr  uint64 `json:"physAddr"`  // 0 when unknown
	NUMANode  int    `json:"numaNode"`  // -1 when unknown
	CXLRegion string `json:"cxlRegion"` // "region0" when the device is backed by a CXL region
	// SharedID names the memory shared between hosts: "cxl:<region uuid>"
	// for CXL regions (every host attached to the region sees the same
	// uuid), empty otherwise.
	SharedID string `json:"sharedID"`
	Spec     string `json:"spec"` // pool spec that opens it: "devdax:/dev/dax0.0"
}

// Discover lists DAX-capable devices from sysfs under sysRoot and device
// nodes under devRoot ("/sys", "/dev" in production; recorded trees in
// tests). Devices whose attributes cannot be read are skipped with a log
// line; only an unreadable sysRoot is an error.
func Discover(sysRoot, devRoot string) (Inventory, error) {
	if _, err := os.Stat(sysRoot); err != nil {
		return Inventory{}, fmt.Errorf("discover: sysfs root: %w", err)
	}
	regions := cxlRegions(sysRoot)
	var inv Inventory
	inv.Devices = append(inv.Devices, daxDevices(sysRoot, devRoot, regions)...)
	inv.Devices = append(inv.Devices, pmemDevices(sysRoot, devRoot, regions)...)
	inv.Devices = append(inv.Devices, dmaHeaps(devRoot)...)
	return inv, nil
}

// listDir returns the sorted names in dir, none when it does not exist.
func listDir(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if !os.IsNotExist(err) {
			klog.InfoS("discover: cannot list", "dir", dir, "err", err)
		}
		return nil
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func daxDevices(sysRoot, devRoot string, regions []cxlRegion) []DeviceInfo {
	var out []DeviceInfo
	base := filepath.Join(sysRoot, "bus", "dax", "devices")
	for _, name := range listDir(base) {
		dir := filepath.Join(base, name)
		if drv, err := os.Readlink(filepath.Join(dir, "driver")); err == nil && filepath.Base(drv) == "kmem" {
			continue // onlined as system RAM: no /dev node to map
		}
		a, err := readDAXAttrs(dir)
		if err != nil {
			klog.InfoS("discover: skipping dax device", "name", name, "err", err)
			continue
		}
		if a.size == 0 {
			continue // an unconfigured seed device
		}
		d := DeviceInfo{
			Kind: KindDevDAX, Name: name, Path: filepath.Join(devRoot, name),
			Size: a.size, Align: a.align, PhysAddr: a.phys, NUMANode: a.node,
		}
		d.Spec = "devdax:" + d.Path
		if r, ok := regionOf(regions, a.phys, a.size); ok {
			d.Kind, d.CXLRegion, d.SharedID = KindCXL, r.name, r.sharedID()
		}
		out = append(out, d)
	}
	return out
}

func pmemDevices(sysRoot, devRoot string, regions []cxlRegion) []DeviceInfo {
	var out []DeviceInfo
	base := filepath.Join(sysRoot, "block")
	for _, name := range listDir(base) {
		if !strings.HasPrefix(name, "pmem") {
			continue
		}
		dir := filepath.Join(base, name)
		sectors, err := readInt(dir, "size")
		if err != nil {
			klog.InfoS("discover: skipping pmem device", "name", name, "err", err)
			continue
		}
		dev := filepath.Join(dir, "device")
		d := DeviceInfo{
			Kind: KindPmem, Name: name, Path: filepath.Join(devRoot, name),
			Size: sectors * 512, Align: pageSize, NUMANode: readNode(dev, "numa_node"),
		}
		if phys, err := readHex(dev, "resource"); err == nil {
			d.PhysAddr = phys
		}
		if r, ok := regionOf(regions, d.PhysAddr, d.Size); ok {
			d.CXLRegion, d.SharedID = r.name, r.sharedID()
		}
		d.Spec = "pmem:" + d.Path
		out = append(out, d)
	}
	return out
}

func dmaHeaps(devRoot string) []DeviceInfo {
	var out []DeviceInfo
	for _, name := range listDir(filepath.Join(devRoot, "dma_heap")) {
		out = append(out, DeviceInfo{
			Kind: KindDMAHeap, Name: name, Path: filepath.Join(devRoot, "dma_heap", name),
			Align: pageSize, NUMANode: -1, Spec: "dmaheap:" + name,
		})
	}
	return out
}
