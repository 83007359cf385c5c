package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// Markers around the base64 (tar.gz) dump of the recorded trees on the console.
const (
	recordBegin = "E2E-SYSFS-BEGIN"
	recordEnd   = "E2E-SYSFS-END"
	maxAttr     = 16 << 10 // larger attribute files are skipped
)

// recorder copies sysfs subtrees into a tar: readable attribute files as
// regular files, sysfs links as the (relative) symlinks they are.
type recorder struct {
	tw      *tar.Writer
	seen    map[string]bool
	files   int
	links   int
	skipped []string
}

func runRecord(args []string) bool {
	flags := newFlags("record-sysfs")
	setup := flags.String("setup", "", "setup name (nvdimm, cxl, e820)")
	sysRoot := flags.String("sys", "/sys", "sysfs mount")
	devRoot := flags.String("dev", "/dev", "devtmpfs mount")
	_ = flags.Parse(args)
	r := &results{}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	rec := &recorder{tw: tar.NewWriter(gz), seen: map[string]bool{}}
	err := rec.record(*sysRoot, *devRoot)
	if err == nil {
		err = rec.tw.Close()
	}
	if err == nil {
		err = gz.Close()
	}
	if !r.check("record-sysfs", err, "setup=%s files=%d links=%d skipped=%d gz=%d", *setup, rec.files, rec.links, len(rec.skipped), buf.Len()) {
		return true
	}
	klog.InfoS("recorded sysfs", "setup", *setup, "skipped", rec.skipped)
	enc := base64.StdEncoding.EncodeToString(buf.Bytes())
	var out strings.Builder
	fmt.Fprintf(&out, "%s %s\n", recordBegin, *setup)
	for len(enc) > 0 {
		n := min(len(enc), 76)
		out.WriteString(enc[:n])
		out.WriteByte('\n')
		enc = enc[n:]
	}
	fmt.Fprintf(&out, "%s %s\n", recordEnd, *setup)
	os.Stdout.WriteString(out.String())
	return false
}

func (rec *recorder) record(sysRoot, devRoot string) error {
	// The bus views discovery starts from, and the device directories they link to.
	for _, bus := range []string{"dax", "nd", "cxl"} {
		busDir := filepath.Join(sysRoot, "bus", bus)
		if _, err := os.Stat(busDir); err != nil {
			continue // bus not registered in this kernel/setup
		}
		if err := rec.attrsOnly(busDir); err != nil {
			return err
		}
		for _, sub := range []string{"devices", "drivers"} {
			ents, err := os.ReadDir(filepath.Join(busDir, sub))
			if err != nil {
				continue
			}
			rec.dir(filepath.Join(busDir, sub))
			for _, e := range ents {
				p := filepath.Join(busDir, sub, e.Name())
				if sub == "drivers" {
					if err := rec.tree(p); err != nil {
						return err
					}
					continue
				}
				if err := rec.linkedTree(sysRoot, p); err != nil {
					return err
				}
			}
		}
	}
	// fsdax block devices: /sys/block/pmemN and the device directory it links to.
	for _, name := range listNames(filepath.Join(sysRoot, "block")) {
		if !strings.HasPrefix(name, "pmem") {
			continue
		}
		p := filepath.Join(sysRoot, "block", name)
		if err := rec.linkedTree(sysRoot, p); err != nil {
			return err
		}
	}
	// /sys/dev/char and /sys/dev/block links of the recorded devices (maps /dev nodes to sysfs).
	for _, kind := range []string{"char", "block"} {
		d := filepath.Join(sysRoot, "dev", kind)
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			p := filepath.Join(d, e.Name())
			if t, err := filepath.EvalSymlinks(p); err == nil && rec.seen[t] {
				if err := rec.link(p); err != nil {
					return err
				}
			}
		}
	}
	// NUMA nodes: the small top-level masks.
	if err := rec.attrsOnly(filepath.Join(sysRoot, "devices", "system", "node")); err != nil {
		return err
	}
	return rec.devNodes(devRoot)
}

// devNodes writes an empty marker file per device node of interest plus
// dev/devices.txt ("path type major:minor").
func (rec *recorder) devNodes(devRoot string) error {
	var lines []string
	for _, pat := range []string{"dax*", "pmem*", "ndctl*", "cxl/*", "dma_heap/*"} {
		ms, _ := filepath.Glob(filepath.Join(devRoot, pat))
		for _, m := range ms {
			var st unix.Stat_t
			if err := unix.Lstat(m, &st); err != nil {
				return err
			}
			typ := "c"
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFBLK:
				typ = "b"
			case unix.S_IFCHR:
			default:
				continue
			}
			rel, _ := filepath.Rel(devRoot, m)
			lines = append(lines, fmt.Sprintf("/dev/%s %s %d:%d", rel, typ, unix.Major(st.Rdev), unix.Minor(st.Rdev)))
			if err := rec.file("dev/"+rel, nil, 0o644); err != nil {
				return err
			}
		}
	}
	sort.Strings(lines)
	return rec.file("dev/devices.txt", []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// name is the tar name of an absolute sysfs path: "sys/...".
func name(p string) string { return strings.TrimPrefix(p, "/") }

func (rec *recorder) dir(p string) {
	if rec.seen[p] {
		return
	}
	if parent := filepath.Dir(p); parent != p && parent != "/" {
		rec.dir(parent)
	}
	rec.seen[p] = true
	_ = rec.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name(p) + "/", Mode: 0o755})
}

func (rec *recorder) file(tarName string, data []byte, mode int64) error {
	rec.dir("/" + filepath.Dir(tarName))
	rec.files++
	if err := rec.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: tarName, Mode: mode, Size: int64(len(data))}); err != nil {
		return err
	}
	_, err := rec.tw.Write(data)
	return err
}

func (rec *recorder) link(p string) error {
	if rec.seen[p] {
		return nil
	}
	target, err := os.Readlink(p)
	if err != nil {
		return err
	}
	if filepath.IsAbs(target) {
		return fmt.Errorf("sysfs link %s is absolute (%s)", p, target)
	}
	rec.dir(filepath.Dir(p))
	rec.seen[p] = true
	rec.links++
	return rec.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name(p), Linkname: target, Mode: 0o777})
}

// attr copies one attribute file if it is readable, small and text.
func (rec *recorder) attr(p string, info fs.FileInfo) error {
	if rec.seen[p] {
		return nil
	}
	rec.seen[p] = true
	if info.Mode().Perm()&0o444 == 0 {
		return nil // write-only (bind, unbind, remove, ...)
	}
	if info.Size() > maxAttr {
		rec.skipped = append(rec.skipped, p+" (large)")
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		rec.skipped = append(rec.skipped, p+" ("+err.Error()+")")
		return nil
	}
	buf := make([]byte, maxAttr+1)
	n, err := f.Read(buf)
	f.Close()
	if err != nil && n == 0 && !errors.Is(err, io.EOF) {
		rec.skipped = append(rec.skipped, p+" ("+err.Error()+")")
		return nil
	}
	data := buf[:n]
	if n > maxAttr || bytes.IndexByte(data, 0) >= 0 {
		rec.skipped = append(rec.skipped, p+" (binary)")
		return nil
	}
	return rec.file(name(p), data, int64(info.Mode().Perm()))
}

// attrsOnly copies the attribute files of dir, not its subdirectories.
func (rec *recorder) attrsOnly(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	rec.dir(dir)
	for _, e := range ents {
		if e.Type().IsRegular() {
			info, err := e.Info()
			if err != nil {
				continue
			}
			if err := rec.attr(filepath.Join(dir, e.Name()), info); err != nil {
				return err
			}
		}
	}
	return nil
}

// linkedTree records the symlink p, the directories down to its target,
// and the target's whole tree.
func (rec *recorder) linkedTree(sysRoot, p string) error {
	if err := rec.link(p); err != nil {
		return err
	}
	target, err := filepath.EvalSymlinks(p)
	if err != nil {
		return err
	}
	if err := rec.ancestors(sysRoot, target); err != nil {
		return err
	}
	return rec.tree(target)
}

// ancestors copies the attribute files of every directory between sysRoot
// and target (exclusive), so parents (PCI device, ACPI node, ndbus) are there.
func (rec *recorder) ancestors(sysRoot, target string) error {
	for d := filepath.Dir(target); strings.HasPrefix(d, sysRoot+"/") && d != filepath.Join(sysRoot, "devices"); d = filepath.Dir(d) {
		if err := rec.attrsOnly(d); err != nil {
			return err
		}
	}
	return nil
}

// tree copies dir recursively without following links.
func (rec *recorder) tree(dir string) error {
	if rec.seen[dir+"/**"] {
		return nil
	}
	rec.seen[dir+"/**"] = true
	rec.dir(dir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		rec.skipped = append(rec.skipped, dir+" ("+err.Error()+")")
		return nil
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			if err := rec.link(p); err != nil {
				return err
			}
		case e.IsDir():
			if err := rec.tree(p); err != nil {
				return err
			}
		case e.Type().IsRegular():
			info, err := e.Info()
			if err != nil {
				continue
			}
			if err := rec.attr(p, info); err != nil {
				return err
			}
		}
	}
	return nil
}

func listNames(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
