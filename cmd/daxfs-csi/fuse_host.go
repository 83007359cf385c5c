package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/fusehost"
)

func init() {
	register("fuse-host", "serve the node plugin's FUSE image mounts so they outlive its restarts (sidecar container)", fuseHost)
}

// fuseHost serves until SIGTERM/SIGINT, then stops accepting and exits,
// leaving launched fuse-serve children running; the mounts it serves
// itself end with it. In a pod, restarting this container kills the
// children too (they share its cgroup): mounts served through FUSE go down
// until the plugin's health watch remounts them.
func fuseHost(args []string) error {
	fs := flag.NewFlagSet("daxfs-csi fuse-host", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	socket := fs.String("socket", "/run/daxfs-csi/fuse-host.sock", "unix socket the node plugin sends serve and launch requests to (mode 0600)")
	allow := fs.String("allow-binary", "", "the only binary whose fuse-serve may be launched (default: this executable)")
	klog.InitFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	defer klog.Flush()
	if *allow == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("locate this executable: %w", err)
		}
		*allow = exe
	}
	srv, err := fusehost.Listen(*socket, *allow)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return srv.Serve(ctx)
}
