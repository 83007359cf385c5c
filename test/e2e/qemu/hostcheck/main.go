// Command e2e-hostcheck is the host half of the QEMU device e2e: after the
// guest's two boots it opens the guest's device memory, the QEMU backing
// file, as a memory-file pool (memfile:FILE at the offset where /dev/dax0.0
// starts inside it) and checks it shows the same pool, extents and bytes the
// guest reported — what a second host attached to shared CXL memory sees.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/test/e2e/qemu/internal/report"
	"k8s.io/klog/v2"
)

var failed bool

func pass(check, format string, a ...any) {
	fmt.Printf("E2E-PASS %s %s\n", check, fmt.Sprintf(format, a...))
}

func check(name string, err error, format string, a ...any) bool {
	if err != nil {
		failed = true
		fmt.Printf("E2E-FAIL %s: %v\n", name, err)
		return false
	}
	pass(name, format, a...)
	return true
}

func main() {
	klog.InitFlags(nil)
	setup := flag.String("setup", "", "nvdimm | cxl")
	file := flag.String("file", "", "QEMU backing file of the guest's device")
	log1 := flag.String("boot1-log", "", "console log of boot 1")
	log2 := flag.String("boot2-log", "", "console log of boot 2")
	images := flag.String("images", "", "directory with the staged images")
	flag.Parse()
	run(*setup, *file, *log1, *log2, *images)
	klog.Flush()
	if failed {
		os.Exit(1)
	}
}

func readReport(path string) (report.Pool, error) {
	f, err := os.Open(path)
	if err != nil {
		return report.Pool{}, err
	}
	defer f.Close()
	return report.Last(f)
}

func run(setup, file, log1, log2, images string) {
	want, ok := report.Expected[setup]
	var err error
	switch {
	case !ok:
		err = fmt.Errorf("unknown -setup %q", setup)
	case file == "" || log1 == "" || log2 == "" || images == "":
		err = errors.New("-file, -boot1-log, -boot2-log and -images are required")
	}
	if !check("host.args", err, "setup=%s file=%s", setup, file) {
		return
	}
	rep1, err := readReport(log1)
	if !check("host.guest-report.boot1", err, "pool %s", rep1.ID) {
		return
	}
	rep2, err := readReport(log2)
	if !check("host.guest-report.boot2", err, "pool %s, %d extents", rep2.ID, len(rep2.Status.Extents)) {
		return
	}
	if rep1.ID != rep2.ID {
		check("host.same-pool-both-boots", fmt.Errorf("boot 1 pool %s, boot 2 pool %s", rep1.ID, rep2.ID), "")
	}

	// Where is the pool inside the backing file? It must be exactly where
	// the guest says dax0.0 starts inside its nd region.
	off, err := daxdev.FindPool(file)
	if err == nil && (off != rep2.RegionOffset || off != want.RegionOffset) {
		err = fmt.Errorf("pool header at file offset %#x; the guest's dax0.0 starts %#x into its region (expected %#x)", off, rep2.RegionOffset, want.RegionOffset)
	}
	if !check("host.find-pool", err, "pool header at offset %#x (%d MiB) of %s", off, off>>20, filepath.Base(file)) {
		return
	}

	spec := "memfile:" + file
	p, err := daxdev.OpenPool(spec, daxdev.PoolOptions{Offset: off, Size: rep2.DaxSize})
	if !check("host.open-memfile-pool", err, "%s offset=%#x size=%d", spec, off, rep2.DaxSize) {
		return
	}
	defer func() { check("host.close", p.Close(), "") }()
	info := p.Info()
	if info.ID != rep2.ID {
		err = fmt.Errorf("pool ID %s, the guest's is %s", info.ID, rep2.ID)
	}
	check("host.same-pool-id", err, "%s", info.ID)

	st := p.Status()
	check("host.same-table", sameStatus(st, rep2.Status), "size=%d free=%d align=%d extents=%d generation=%d", st.Size, st.Free, st.Align, len(st.Extents), st.Generation)

	for _, name := range report.Images {
		b, err := os.ReadFile(filepath.Join(images, name))
		if !check("host.image."+name, err, "%d bytes", len(b)) {
			continue
		}
		digest := fmt.Sprintf("sha256:%x", sha256.Sum256(b))
		e, ok := p.Lookup(digest)
		if !ok {
			err = fmt.Errorf("%s not in the pool", digest)
		} else if e.State != daxdev.StateReady {
			err = fmt.Errorf("%s is %s, want ready", digest, e.State)
		} else if data, derr := p.Data(e); derr != nil {
			err = derr
		} else if !bytes.Equal(data, b) {
			err = fmt.Errorf("extent bytes of %s differ from the image", digest)
		}
		check("host.extent."+name, err, "%s ready at %#x, %d bytes byte-exact", digest, e.Offset, e.Length)
	}

	// As a second host: staging a digest the guest staged reuses its extent
	// (the fill must not run), and releasing our ownership keeps it.
	b, err := os.ReadFile(filepath.Join(images, report.Images[0]))
	if err != nil {
		check("host.second-host-stage", err, "")
		return
	}
	digest := fmt.Sprintf("sha256:%x", sha256.Sum256(b))
	before, _ := p.Lookup(digest)
	e, err := p.Stage(context.Background(), digest, int64(len(b)), report.OwnerHost, func([]byte) error {
		return errors.New("fill ran: the host copied an image the guest already staged")
	})
	if err == nil && (e.Offset != before.Offset || !slices.Contains(e.OwnerNames(), report.OwnerHost)) {
		err = fmt.Errorf("got extent at %#x owners %v; the guest's is at %#x", e.Offset, e.OwnerNames(), before.Offset)
	}
	check("host.second-host-stage", err, "reused %#x, owners %v", e.Offset, e.OwnerNames())
	freed, err := p.Release(digest, report.OwnerHost)
	if err == nil && freed {
		err = errors.New("releasing the host's ownership freed the guest's extent")
	}
	check("host.second-host-release", err, "freed=%v", freed)
}

// sameStatus compares the table as the host sees it with the guest's report.
func sameStatus(got, want daxdev.Status) error {
	var errs []error
	if got.Size != want.Size || got.Align != want.Align || got.Free != want.Free || got.Generation != want.Generation {
		errs = append(errs, fmt.Errorf("size/align/free/generation %d/%d/%d/%d, guest saw %d/%d/%d/%d",
			got.Size, got.Align, got.Free, got.Generation, want.Size, want.Align, want.Free, want.Generation))
	}
	if len(got.Extents) != len(want.Extents) {
		return errors.Join(append(errs, fmt.Errorf("%d extents, guest saw %d", len(got.Extents), len(want.Extents)))...)
	}
	for i, g := range got.Extents {
		w := want.Extents[i]
		if g.Digest != w.Digest || g.Offset != w.Offset || g.Length != w.Length || g.State != w.State || !slices.Equal(g.OwnerNames(), w.OwnerNames()) {
			errs = append(errs, fmt.Errorf("extent %d: host %s@%#x+%d %s %v, guest %s@%#x+%d %s %v",
				i, g.Digest, g.Offset, g.Length, g.State, g.OwnerNames(), w.Digest, w.Offset, w.Length, w.State, w.OwnerNames()))
		}
	}
	return errors.Join(errs...)
}
