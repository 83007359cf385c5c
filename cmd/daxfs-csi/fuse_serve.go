package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/fusehost"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

func init() {
	register("fuse-serve", "serve one image read-only through FUSE until unmounted (the node plugin's fallback)", fuseServe)
}

type fuseServeFlags struct {
	mountpoint string
	src        fusehost.Source
	debug      bool
}

func parseFuseServe(args []string) (fuseServeFlags, error) {
	var f fuseServeFlags
	fs := flag.NewFlagSet("daxfs-csi fuse-serve", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.StringVar(&f.mountpoint, "mountpoint", "", "directory to mount the image on (required)")
	fs.StringVar(&f.src.Pool, "pool", "", "pool spec holding the staged image (with --digest)")
	fs.StringVar(&f.src.Offset, "offset", "0", "memfile pools only: where the pool starts in the file")
	fs.StringVar(&f.src.Digest, "digest", "", "sha256:<hex> of the staged image")
	fs.StringVar(&f.src.Image, "image", "", "serve this image file instead of a pool extent (benchmarks, debugging)")
	fs.BoolVar(&f.debug, "debug", false, "log every FUSE request")
	klog.InitFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return f, err
	}
	switch {
	case fs.NArg() != 0:
		return f, usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	case f.mountpoint == "":
		return f, usageError{"--mountpoint DIR is required"}
	}
	if err := f.src.Check(); err != nil {
		return f, usageError{fmt.Sprintf("%v (--pool SPEC --digest sha256:HEX, or --image FILE)", err)}
	}
	if _, err := daxdev.ParseSize(f.src.Offset); err != nil {
		return f, usageError{"--offset: " + err.Error()}
	}
	return f, nil
}

// fuseServe mounts the image and serves it in the foreground until the
// mount goes away (exit 0) or SIGTERM/SIGINT (unmount, exit 0). The mount
// appears only once the image has validated and the server answers, so a
// caller may treat "it is in mountinfo" as "it is ready".
func fuseServe(args []string) error {
	f, err := parseFuseServe(args)
	if err != nil {
		return err
	}
	defer klog.Flush()
	// Before anything is mounted: a signal during start-up must not kill
	// the process and leave a dead mount behind. SIGHUP (the session
	// leader's terminal going away) is ignored.
	signal.Ignore(syscall.SIGHUP)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	src, err := fusehost.Open(f.src)
	if err != nil {
		return err
	}
	defer src.Close()
	select {
	case sig := <-sigs: // asked to stop while validating: never mount
		klog.InfoS("Stopping before mounting", "signal", sig.String())
		return nil
	default:
	}
	srv, err := src.Mount(f.mountpoint, f.debug)
	if err != nil {
		return err
	}
	klog.InfoS("Serving image", "image", src.Name, "mountpoint", f.mountpoint, "fs", src.FSName, "bytes", src.Bytes)
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	select {
	case <-done:
		klog.InfoS("Mount is gone; exiting", "mountpoint", f.mountpoint)
	case sig := <-sigs:
		klog.InfoS("Unmounting on signal", "signal", sig.String(), "mountpoint", f.mountpoint)
		if err := srv.Unmount(); err != nil {
			return err
		}
		<-done
	}
	return nil
}
