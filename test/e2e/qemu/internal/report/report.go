// Package report is what the QEMU e2e guest tells the host about its pool,
// one JSON line on the console, and the device facts both sides expect.
package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

// Prefix starts the console line that carries a Pool report.
const Prefix = "E2E-POOL "

// Pool is the guest's view of its pool at the end of a boot.
type Pool struct {
	Setup string `json:"setup"`
	Boot  int    `json:"boot"`
	ID    string `json:"id"` // pool UUID
	// DaxSize is /dev/dax0.0's size; RegionOffset is where its byte 0 is in
	// the nd region (= in the QEMU backing file, which the region maps from 0).
	DaxSize      int64         `json:"daxSize"`
	RegionOffset int64         `json:"regionOffset"`
	Status       daxdev.Status `json:"status"`
}

// Line renders r as one console line.
func (r Pool) Line() (string, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	return Prefix + string(b), nil
}

// Last returns the last Pool report in a console log.
func Last(log io.Reader) (Pool, error) {
	var last string
	sc := bufio.NewScanner(log)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if line := strings.TrimRight(sc.Text(), "\r"); strings.HasPrefix(line, Prefix) {
			last = line
		}
	}
	if err := sc.Err(); err != nil {
		return Pool{}, err
	}
	if last == "" {
		return Pool{}, fmt.Errorf("no %q line in the guest console log", strings.TrimSpace(Prefix))
	}
	var p Pool
	if err := json.Unmarshal([]byte(strings.TrimPrefix(last, Prefix)), &p); err != nil {
		return Pool{}, fmt.Errorf("bad %s line: %w", strings.TrimSpace(Prefix), err)
	}
	return p, nil
}

// Device is what discovery must report for /dev/dax0.0 in a setup: the
// QEMU command lines in run.sh fix these (see ../shared/docs/qemu-dax-devices.md).
type Device struct {
	Kind         daxdev.Kind
	Size         int64
	Align        int64
	PhysAddr     uint64
	CXLRegion    string
	RegionOffset int64 // dax0.0 byte 0 inside the nd region / backing file
}

// Expected device facts per setup.
var Expected = map[string]Device{
	"nvdimm": {Kind: daxdev.KindDevDAX, Size: 526385152, Align: 2 << 20, PhysAddr: 0x100a00000, RegionOffset: 0xa00000},
	"cxl":    {Kind: daxdev.KindCXL, Size: 262144000, Align: 2 << 20, PhysAddr: 0x390600000, CXLRegion: "region0", RegionOffset: 0x600000},
	// fsdax /dev/pmem0 on the NVDIMM (its pfn device reports the data start as resource); pool align = page size
	"nvdimm-fsdax": {Kind: daxdev.KindPmem, Size: 526385152, Align: 4096, PhysAddr: 0x100a00000, RegionOffset: 0xa00000},
	"e820":         {Kind: daxdev.KindDevDAX, Size: 262144000, Align: 2 << 20, PhysAddr: 0x40600000, RegionOffset: 0x600000},
}

// Images staged by the guest, in this order, from the images directory.
var Images = []string{"tree1.static.daxfs", "tree2.static.daxfs"}

// Owners used by the test.
const (
	OwnerA    = "node-a" // stages both images in boot 1
	OwnerB    = "node-b" // re-stages image 0 in boot 1 (no copy), released in boot 2
	OwnerHost = "host-2" // the host, as a second host on the same memory
)
