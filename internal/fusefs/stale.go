package fusefs

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// CleanStale detaches mountpoint while it is a FUSE mount whose server is
// gone ("transport endpoint is not connected"), so the node can mount it
// again. It reports whether it detached anything; a healthy mount or a
// plain directory is left alone. It probes with statfs, which FUSE always
// sends to the server: a stat could be answered from cached attributes.
func CleanStale(mountpoint string) (bool, error) {
	cleaned := false
	// Mounts can be stacked; detach dead ones until what is below answers.
	for range 16 {
		var st unix.Statfs_t
		err := unix.Statfs(mountpoint, &st)
		if err == nil {
			return cleaned, nil
		}
		if !errors.Is(err, unix.ENOTCONN) && !errors.Is(err, unix.ECONNABORTED) {
			return cleaned, fmt.Errorf("fusefs: checking %s: %w", mountpoint, err)
		}
		if err := unix.Unmount(mountpoint, unix.MNT_DETACH); err != nil {
			return cleaned, fmt.Errorf("fusefs: detaching dead mount %s: %w", mountpoint, err)
		}
		klog.InfoS("Detached dead FUSE mount", "mountpoint", mountpoint)
		cleaned = true
	}
	return cleaned, fmt.Errorf("fusefs: %s: still not connected after detaching 16 mounts", mountpoint)
}
