package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/test/e2e/qemu/internal/report"
	"k8s.io/klog/v2"
)

// image is one DAXFS image staged by the test.
type image struct {
	name   string
	data   []byte
	digest string
}

func loadImages(dir string) ([]image, error) {
	var out []image
	for _, n := range report.Images {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		out = append(out, image{name: n, data: b, digest: fmt.Sprintf("sha256:%x", sha256.Sum256(b))})
	}
	return out, nil
}

// runPool is the pkg/daxdev test on a real device-dax device.
// Boot 1: discovery, a blank device is refused without Init, pool Init,
// two images staged and read back, a re-stage by a second owner reuses the
// extent. Boot 2: discovery again, the pool reopens without Init with both
// extents ready and byte-exact, the second owner releases.
func runPool(args []string) bool {
	fs := newFlags("pool")
	setup := fs.String("setup", "", "nvdimm | cxl | e820")
	boot := fs.Int("boot", 1, "1 (create) or 2 (reopen)")
	dir := fs.String("images", "/images", "directory with the images to stage")
	dev := fs.String("dev", "/dev/dax0.0", "device-dax device")
	_ = fs.Parse(args)
	r := &results{}
	want, ok := report.Expected[*setup]
	if !ok {
		r.fail("pool.args", fmt.Errorf("unknown -setup %q", *setup))
		return true
	}
	imgs, err := loadImages(*dir)
	if !r.check("pool.images", err, "%d images from %s", len(imgs), *dir) {
		return true
	}

	// Discovery.
	inv, err := daxdev.Discover("/sys", "/dev")
	var d daxdev.DeviceInfo
	if err == nil {
		err = fmt.Errorf("no %s in the inventory: %+v", *dev, inv.Devices)
		for _, x := range inv.Devices {
			if x.Path == *dev {
				d, err = x, nil
			}
		}
	}
	if err == nil {
		err = checkDevice(d, want, *dev)
	}
	r.check("pool.discover", err, "kind=%s size=%d align=%d phys=%#x numa=%d cxlRegion=%q sharedID=%q spec=%s",
		d.Kind, d.Size, d.Align, d.PhysAddr, d.NUMANode, d.CXLRegion, d.SharedID, d.Spec)
	regionOff, err := regionOffset(*dev, d.PhysAddr)
	if err == nil && regionOff != want.RegionOffset {
		err = fmt.Errorf("%s starts %#x into its nd region, want %#x", *dev, regionOff, want.RegionOffset)
	}
	r.check("pool.region-offset", err, "%#x", regionOff)

	spec := d.Spec
	ctx := context.Background()
	var p *daxdev.Pool
	switch *boot {
	case 1:
		// A blank device is not a pool: opening it without Init must fail.
		if q, err := daxdev.OpenPool(spec, daxdev.PoolOptions{}); err == nil {
			q.Close()
			r.fail("pool.blank-refused", errors.New("OpenPool without Init succeeded on a blank device"))
		} else if !errors.Is(err, daxdev.ErrNotAPool) {
			r.fail("pool.blank-refused", fmt.Errorf("want ErrNotAPool, got %w", err))
		} else {
			r.pass("pool.blank-refused", "%v", err)
		}
		p, err = daxdev.OpenPool(spec, daxdev.PoolOptions{Init: true})
		if !r.check("pool.init", err, "%s", spec) {
			return true
		}
		r.check("pool.info", checkInfo(p.Info(), want), "%+v", p.Info())
		for _, im := range imgs {
			start := time.Now()
			e, err := p.Stage(ctx, im.digest, int64(len(im.data)), report.OwnerA, func(dst []byte) error {
				copy(dst, im.data)
				return nil
			})
			if err == nil {
				err = checkExtent(p, e, im, want.Align)
			}
			if err == nil {
				if pa, ok := p.PhysAddr(e); !ok || pa != d.PhysAddr+uint64(e.Offset) {
					err = fmt.Errorf("PhysAddr = %#x, %v; want %#x", pa, ok, d.PhysAddr+uint64(e.Offset))
				}
			}
			r.check("pool.stage."+im.name, err, "%s offset=%#x length=%d in %v", im.digest, e.Offset, e.Length, time.Since(start))
		}
		// A second owner staging the same digest reuses the extent: no copy.
		first, _ := p.Lookup(imgs[0].digest)
		e, err := p.Stage(ctx, imgs[0].digest, int64(len(imgs[0].data)), report.OwnerB, func([]byte) error {
			return errors.New("fill called for a digest that is already ready")
		})
		if err == nil && e.Offset != first.Offset {
			err = fmt.Errorf("re-stage got offset %#x, the extent is at %#x", e.Offset, first.Offset)
		}
		if err == nil && !slices.Equal(e.OwnerNames(), []string{report.OwnerA, report.OwnerB}) {
			err = fmt.Errorf("owners %v, want [%s %s]", e.OwnerNames(), report.OwnerA, report.OwnerB)
		}
		r.check("pool.restage-reuses", err, "offset=%#x owners=%v", e.Offset, e.OwnerNames())
	case 2:
		p, err = daxdev.OpenPool(spec, daxdev.PoolOptions{})
		if !r.check("pool.reopen", err, "%s (no Init)", spec) {
			return true
		}
		r.check("pool.info", checkInfo(p.Info(), want), "%+v", p.Info())
		st := p.Status()
		err = nil
		if len(st.Extents) != len(imgs) {
			err = fmt.Errorf("%d extents after reboot, want %d: %+v", len(st.Extents), len(imgs), st.Extents)
		}
		r.check("pool.reopen.extents", err, "%d extents", len(st.Extents))
		for i, im := range imgs {
			e, ok := p.Lookup(im.digest)
			err := checkExtent(p, e, im, want.Align)
			if !ok {
				err = fmt.Errorf("%s not in the pool after reboot", im.digest)
			}
			wantOwners := []string{report.OwnerA}
			if i == 0 {
				wantOwners = append(wantOwners, report.OwnerB)
			}
			if err == nil && !slices.Equal(e.OwnerNames(), wantOwners) {
				err = fmt.Errorf("owners %v, want %v", e.OwnerNames(), wantOwners)
			}
			r.check("pool.reopen."+im.name, err, "%s state=%s offset=%#x owners=%v", im.digest, e.State, e.Offset, e.OwnerNames())
		}
		freed, err := p.Release(imgs[0].digest, report.OwnerB)
		if err == nil && freed {
			err = errors.New("releasing one of two owners freed the extent")
		}
		if e, _ := p.Lookup(imgs[0].digest); err == nil && !slices.Equal(e.OwnerNames(), []string{report.OwnerA}) {
			err = fmt.Errorf("owners after release %v, want [%s]", e.OwnerNames(), report.OwnerA)
		}
		r.check("pool.release", err, "freed=%v", freed)
	default:
		r.fail("pool.args", fmt.Errorf("-boot %d: want 1 or 2", *boot))
		return true
	}
	rep := report.Pool{Setup: *setup, Boot: *boot, ID: p.Info().ID, DaxSize: d.Size, RegionOffset: regionOff, Status: p.Status()}
	line, err := rep.Line()
	if r.check("pool.report", err, "id=%s extents=%d free=%d", rep.ID, len(rep.Status.Extents), rep.Status.Free) {
		fmt.Println(line)
	}
	r.check("pool.close", p.Close(), "")
	klog.InfoS("pool test done", "setup", *setup, "boot", *boot, "failed", r.failed)
	return r.failed
}

func checkDevice(d daxdev.DeviceInfo, want report.Device, dev string) error {
	var errs []error
	if d.Kind != want.Kind {
		errs = append(errs, fmt.Errorf("kind %q, want %q", d.Kind, want.Kind))
	}
	if d.Size != want.Size {
		errs = append(errs, fmt.Errorf("size %d, want %d", d.Size, want.Size))
	}
	if d.Align != want.Align {
		errs = append(errs, fmt.Errorf("align %d, want %d", d.Align, want.Align))
	}
	if d.PhysAddr != want.PhysAddr {
		errs = append(errs, fmt.Errorf("phys %#x, want %#x", d.PhysAddr, want.PhysAddr))
	}
	if d.CXLRegion != want.CXLRegion {
		errs = append(errs, fmt.Errorf("CXL region %q, want %q", d.CXLRegion, want.CXLRegion))
	}
	if want.CXLRegion != "" && d.SharedID == "" {
		errs = append(errs, errors.New("a CXL device without a shared-pool identity"))
	}
	wantSpec := "devdax:" + dev
	if want.Kind == daxdev.KindPmem {
		wantSpec = "pmem:" + dev
	}
	if d.Spec != wantSpec {
		errs = append(errs, fmt.Errorf("spec %q, want %q", d.Spec, wantSpec))
	}
	return errors.Join(errs...)
}

func checkInfo(in daxdev.Info, want report.Device) error {
	var errs []error
	if in.Align != want.Align {
		errs = append(errs, fmt.Errorf("pool align %d, want %d", in.Align, want.Align))
	}
	if in.Size <= 0 || in.Size > want.Size {
		errs = append(errs, fmt.Errorf("pool size %d, want (0, %d]", in.Size, want.Size))
	}
	if in.PhysAddr != want.PhysAddr {
		errs = append(errs, fmt.Errorf("pool phys %#x, want %#x", in.PhysAddr, want.PhysAddr))
	}
	if in.ID == "" {
		errs = append(errs, errors.New("pool has no ID"))
	}
	return errors.Join(errs...)
}

// checkExtent: ready, aligned, the right length, and the bytes of im.
func checkExtent(p *daxdev.Pool, e daxdev.Extent, im image, align int64) error {
	if e.Digest != im.digest || e.State != daxdev.StateReady || e.Length != int64(len(im.data)) || e.Offset%align != 0 {
		return fmt.Errorf("extent %+v: want digest %s, state ready, length %d, offset a multiple of %d", e, im.digest, len(im.data), align)
	}
	b, err := p.Data(e)
	if err != nil {
		return err
	}
	if !bytes.Equal(b, im.data) {
		i := firstDiff(b, im.data)
		return fmt.Errorf("extent bytes differ from %s at %d", im.name, i)
	}
	return nil
}

// regionOffset is where the device's byte 0 (physical address phys) is
// inside the nd region that holds it: phys minus the region's resource.
func regionOffset(dev string, phys uint64) (int64, error) {
	name := filepath.Base(dev)
	link := filepath.Join("/sys/bus/dax/devices", name)
	if strings.HasPrefix(name, "pmem") {
		link = filepath.Join("/sys/block", name)
	}
	dir, err := filepath.EvalSymlinks(link)
	if err != nil {
		return 0, err
	}
	for ; dir != "/" && !strings.HasPrefix(filepath.Base(dir), "region"); dir = filepath.Dir(dir) {
	}
	if dir == "/" {
		return 0, fmt.Errorf("no nd region above %s", link)
	}
	region, err := readInt(filepath.Join(dir, "resource"))
	if err != nil {
		return 0, fmt.Errorf("region resource: %w", err)
	}
	return int64(phys) - region, nil
}
