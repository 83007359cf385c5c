// Command buildprof builds an image from a directory the way
// `daxfs-csi image build DIR -o OUT` does (pkg/image.Builder, output hashed
// with sha256 on the way, fsynced, renamed) under a CPU profile, and prints
// how long each step took.
//
//	buildprof -cpuprofile OUT.pprof DIR IMG
package main

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

func main() {
	prof := flag.String("cpuprofile", "", "CPU profile output")
	nohash := flag.Bool("nohash", false, "skip the sha256 (to see its share)")
	flag.Parse()
	if flag.NArg() != 2 || *prof == "" {
		fmt.Fprintln(os.Stderr, "usage: buildprof -cpuprofile OUT [-nohash] DIR IMG")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), *prof, *nohash); err != nil {
		fmt.Fprintln(os.Stderr, "buildprof:", err)
		os.Exit(1)
	}
}

func run(dir, out, prof string, nohash bool) error {
	pf, err := os.Create(prof)
	if err != nil {
		return err
	}
	defer pf.Close()
	if err := pprof.StartCPUProfile(pf); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	t0 := time.Now()
	b := image.NewBuilder(image.BuildOptions{TempDir: filepath.Dir(out)})
	defer b.Close()
	if err := b.AddDir(dir); err != nil {
		return err
	}
	t1 := time.Now()
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	var w io.Writer = tmp
	h := sha256.New()
	if !nohash {
		w = io.MultiWriter(tmp, h)
	}
	n, err := b.WriteTo(w)
	if err != nil {
		return err
	}
	t2 := time.Now()
	if err := tmp.Sync(); err != nil {
		return err
	}
	t3 := time.Now()
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	fmt.Printf("AddDir (walk+lstat) %v, WriteTo%s %v (%d bytes, %.0f MB/s), fsync %v, total %v\n",
		t1.Sub(t0).Round(time.Millisecond), map[bool]string{true: " (no hash)", false: "+sha256"}[nohash],
		t2.Sub(t1).Round(time.Millisecond), n, float64(n)/t2.Sub(t1).Seconds()/1e6,
		t3.Sub(t2).Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	return nil
}
