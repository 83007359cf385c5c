package daxdev

import (
	"fmt"
	"path/filepath"
	"strings"

	"k8s.io/klog/v2"
)

// cxlRegion is a CXL region's host physical range.
type cxlRegion struct {
	name        string
	start, size uint64
	uuid        string
}

// sharedID is the same on every host attached to the region: the region
// uuid (pmem regions have one), else its name and start address.
func (r cxlRegion) sharedID() string {
	if r.uuid != "" && strings.Trim(r.uuid, "0-") != "" {
		return "cxl:" + r.uuid
	}
	return fmt.Sprintf("cxl:%s@%#x", r.name, r.start)
}

func cxlRegions(sysRoot string) []cxlRegion {
	var out []cxlRegion
	base := filepath.Join(sysRoot, "bus", "cxl", "devices")
	for _, name := range listDir(base) {
		if !strings.HasPrefix(name, "region") {
			continue
		}
		dir := filepath.Join(base, name)
		start, err := readHex(dir, "resource")
		if err != nil {
			klog.InfoS("discover: CXL region without resource", "name", name, "err", err)
			continue
		}
		size, err := readInt(dir, "size")
		if err != nil || size <= 0 {
			klog.InfoS("discover: CXL region without size", "name", name, "err", err)
			continue
		}
		uuid, _ := readAttr(dir, "uuid")
		out = append(out, cxlRegion{name: name, start: start, size: uint64(size), uuid: uuid})
	}
	return out
}

// regionOf finds the CXL region whose range holds [phys, phys+size).
func regionOf(regions []cxlRegion, phys uint64, size int64) (cxlRegion, bool) {
	if phys == 0 {
		return cxlRegion{}, false
	}
	for _, r := range regions {
		if phys >= r.start && phys-r.start < r.size && uint64(size) <= r.size-(phys-r.start) {
			return r, true
		}
	}
	return cxlRegion{}, false
}
