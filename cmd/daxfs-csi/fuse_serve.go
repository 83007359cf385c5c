package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/fusefs"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

func init() {
	register("fuse-serve", "serve one image read-only through FUSE until unmounted (the node plugin's fallback)", fuseServe)
}

type fuseServeFlags struct {
	mountpoint, pool, offset, digest, image string
	debug                                   bool
}

func parseFuseServe(args []string) (fuseServeFlags, error) {
	var f fuseServeFlags
	fs := flag.NewFlagSet("daxfs-csi fuse-serve", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.StringVar(&f.mountpoint, "mountpoint", "", "directory to mount the image on (required)")
	fs.StringVar(&f.pool, "pool", "", "pool spec holding the staged image (with --digest)")
	fs.StringVar(&f.offset, "offset", "0", "memfile pools only: where the pool starts in the file")
	fs.StringVar(&f.digest, "digest", "", "sha256:<hex> of the staged image")
	fs.StringVar(&f.image, "image", "", "serve this image file instead of a pool extent (benchmarks, debugging)")
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
	case (f.pool == "") == (f.image == ""):
		return f, usageError{"give exactly one of --pool SPEC --digest sha256:HEX, or --image FILE"}
	case f.pool != "" && f.digest == "":
		return f, usageError{"--pool needs --digest sha256:HEX"}
	}
	if f.digest != "" && !validDigest(f.digest) {
		return f, usageError{fmt.Sprintf("--digest %q is not sha256:<64 lowercase hex>", f.digest)}
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

	src, err := openServeSource(f)
	if err != nil {
		return err
	}
	defer src.close()
	im, err := image.OpenBytes(src.data)
	if err != nil {
		return fmt.Errorf("image %s: %w", src.name, err)
	}
	// FUSE never exposes the bytes after a file's size, so their zero
	// padding is not checked here: that would read every file's last page.
	if err := im.ValidateMetadata(); err != nil {
		return fmt.Errorf("image %s is corrupt, refusing to mount it: %w", src.name, err)
	}
	select {
	case sig := <-sigs: // asked to stop while validating: never mount
		klog.InfoS("Stopping before mounting", "signal", sig.String())
		return nil
	default:
	}
	// A server killed earlier leaves a dead mount that would fail ours.
	if _, err := fusefs.CleanStale(f.mountpoint); err != nil {
		return err
	}
	// NoSelfAccess: this process never opens files in the mount, so it
	// sends itself no request a kill -9 could leave unanswered.
	srv, err := fusefs.Mount(f.mountpoint, im, fusefs.Options{FSName: src.fsName, Debug: f.debug, NoSelfAccess: true})
	if err != nil {
		return err
	}
	klog.InfoS("Serving image", "image", src.name, "mountpoint", f.mountpoint, "fs", src.fsName, "bytes", len(src.data))
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

func validDigest(d string) bool {
	const prefix = "sha256:"
	if len(d) != len(prefix)+64 || d[:len(prefix)] != prefix {
		return false
	}
	for _, c := range d[len(prefix):] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
