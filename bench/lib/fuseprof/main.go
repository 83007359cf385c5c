// Command fuseprof serves one image file read-only through internal/fusefs the
// way `daxfs-csi fuse-serve --image` does (mapped read-only and shared,
// validated, fusefs.Mount with the same options) while writing a CPU profile,
// for bench/lib/profile. It exits, writing the profile, on SIGTERM/SIGINT.
//
//	fuseprof -image IMG -mountpoint DIR -cpuprofile OUT
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/internal/fusefs"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

func main() {
	img := flag.String("image", "", "image file")
	mnt := flag.String("mountpoint", "", "mount point")
	prof := flag.String("cpuprofile", "", "CPU profile output")
	flag.Parse()
	if *img == "" || *mnt == "" || *prof == "" {
		fmt.Fprintln(os.Stderr, "usage: fuseprof -image IMG -mountpoint DIR -cpuprofile OUT")
		os.Exit(2)
	}
	if err := run(*img, *mnt, *prof); err != nil {
		fmt.Fprintln(os.Stderr, "fuseprof:", err)
		os.Exit(1)
	}
}

func run(img, mnt, prof string) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	f, err := os.Open(img)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	f.Close()
	if err != nil {
		return err
	}
	defer unix.Munmap(b)
	im, err := image.OpenBytes(b)
	if err != nil {
		return err
	}
	if err := im.Validate(); err != nil {
		return err
	}
	out, err := os.Create(prof)
	if err != nil {
		return err
	}
	srv, err := fusefs.Mount(mnt, im, fusefs.Options{FSName: "daxfs:" + filepath.Base(img)})
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		srv.Unmount()
		return err
	}
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	select {
	case <-done:
	case <-sigs:
		if err := srv.Unmount(); err != nil {
			return err
		}
		<-done
	}
	pprof.StopCPUProfile()
	return out.Close()
}
