package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// RawMagic starts the first 2 MiB chunk the raw test writes; the host finds
// it in the backing file to learn where the dax device's bytes live.
const RawMagic = "DAXFS-E2E-RAW:"

// runRaw maps a device-dax device MAP_SHARED and writes (phase write) or
// verifies (phase verify) a pattern derived from the nonce: the first
// 4 MiB and the last align-sized chunk of the device.
func runRaw(args []string) bool {
	fs := newFlags("raw")
	dev := fs.String("dev", "/dev/dax0.0", "device-dax character device")
	sys := fs.String("sys", "/sys/bus/dax/devices", "sysfs directory holding the dax device")
	nonce := fs.String("nonce", "", "run nonce: the pattern depends on it so stale data never passes")
	phase := fs.String("phase", "write", "write | verify")
	base := fs.Int64("offset", 0, "where the device's byte 0 is in -dev (for checking a QEMU backing file on the host)")
	sizeFlag := fs.Int64("size", 0, "device size (default: from sysfs)")
	alignFlag := fs.Int64("align", 0, "device align (default: from sysfs)")
	_ = fs.Parse(args)
	r := &results{}
	if *nonce == "" {
		r.fail("raw.args", fmt.Errorf("-nonce is required"))
		return true
	}
	name := filepath.Base(*dev)
	size, align := *sizeFlag, *alignFlag
	var err error
	if size == 0 {
		size, err = readInt(filepath.Join(*sys, name, "size"))
		if !r.check("raw.sysfs-size", err, "%s size=%d", name, size) {
			return true
		}
	}
	if align == 0 {
		align, err = readInt(filepath.Join(*sys, name, "align"))
		if err == nil && align != 2<<20 {
			err = fmt.Errorf("align = %d, want %d (created with -a 2M)", align, 2<<20)
		}
		if !r.check("raw.sysfs-align", err, "%s align=%d", name, align) {
			return true
		}
	}
	f, err := os.OpenFile(*dev, os.O_RDWR, 0)
	if !r.check("raw.open", err, "%s", *dev) {
		return true
	}
	defer f.Close()

	st, err := f.Stat()
	if !r.check("raw.stat", err, "%s mode=%v", *dev, st.Mode()) {
		return true
	}
	isDax := st.Mode()&os.ModeCharDevice != 0
	// A private mapping must be refused: device-dax only supports MAP_SHARED.
	if !isDax {
		// a plain file (host-side check of a backing file): nothing to refuse
	} else if b, err := unix.Mmap(int(f.Fd()), 0, int(align), unix.PROT_READ, unix.MAP_PRIVATE); err == nil {
		_ = unix.Munmap(b)
		r.fail("raw.map-private-refused", fmt.Errorf("MAP_PRIVATE mmap of %s unexpectedly succeeded", *dev))
	} else {
		r.pass("raw.map-private-refused", "%v", err)
	}

	regions := []struct{ off, len int64 }{{0, 2 * align}, {size - align, align}}
	for _, reg := range regions {
		start := time.Now()
		b, err := unix.Mmap(int(f.Fd()), *base+reg.off, int(reg.len), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		check := fmt.Sprintf("raw.%s@%#x", *phase, reg.off)
		if err != nil {
			r.fail(check, fmt.Errorf("mmap MAP_SHARED off=%#x len=%#x: %w", reg.off, reg.len, err))
			continue
		}
		want := make([]byte, reg.len)
		fillPattern(want, *nonce, reg.off)
		switch *phase {
		case "write":
			copy(b, want)
			// msync on device-dax fails with EINVAL (the char device has no
			// fsync); stores to it are already in the device. Files need it.
			if !isDax {
				err = unix.Msync(b, unix.MS_SYNC)
			}
			if err == nil && !bytes.Equal(b, want) {
				err = fmt.Errorf("read back differs at %#x", reg.off+int64(firstDiff(b, want)))
			}
		case "verify":
			if !bytes.Equal(b, want) {
				i := firstDiff(b, want)
				err = fmt.Errorf("device byte at %#x is %#x, want %#x (bytes did not survive the reboot)", reg.off+int64(i), b[i], want[i])
			}
		default:
			err = fmt.Errorf("unknown phase %q", *phase)
		}
		_ = unix.Munmap(b)
		klog.InfoS("raw region", "phase", *phase, "offset", reg.off, "length", reg.len, "elapsed", time.Since(start), "err", err)
		r.check(check, err, "%d bytes", reg.len)
	}
	return r.failed
}

// fillPattern fills b, which sits at device offset off, with bytes that
// depend on nonce and off; at offset 0 it starts with RawMagic+nonce+"\n".
func fillPattern(b []byte, nonce string, off int64) {
	var seed uint64 = 0x9e3779b97f4a7c15
	for _, c := range []byte(nonce) {
		seed = (seed ^ uint64(c)) * 0x100000001b3
	}
	x := seed ^ uint64(off)
	for i := 0; i+8 <= len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
	if off == 0 {
		copy(b, RawMagic+nonce+"\n")
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number: %w", path, s, err)
	}
	return v, nil
}
