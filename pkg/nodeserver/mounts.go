package nodeserver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
	mount "k8s.io/mount-utils"
)

// Mounts are made with direct syscalls, not mount-utils' Mounter: it execs
// mount(8) (and systemd-run), which costs milliseconds per publish and needs
// util-linux in the image. mount-utils still parses mountinfo and classifies
// corrupted mounts.

const mountinfoPath = "/proc/self/mountinfo"

// roFlags are what every read-only view gets.
const roFlags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV

// bindMount binds src at dst; ro remounts it ro,nosuid,nodev plus extra
// (a bind mount ignores those flags on the first call).
func bindMount(src, dst string, ro bool, extra ...uintptr) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount %s at %s: %w", src, dst, err)
	}
	if !ro {
		return nil
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | roFlags)
	for _, e := range extra {
		flags |= e
	}
	if err := unix.Mount("", dst, "", flags, ""); err != nil {
		if uerr := unix.Unmount(dst, unix.MNT_DETACH); uerr != nil {
			klog.ErrorS(uerr, "Undo bind mount", "path", dst)
		}
		return fmt.Errorf("remount %s ro,nosuid,nodev: %w", dst, err)
	}
	return nil
}

// overlayMount publishes a writable view: lower stays untouched, writes go to upper.
func overlayMount(lower, upper, work, dst string, extra uintptr) error {
	for _, p := range []string{lower, upper, work} {
		if strings.ContainsAny(p, ",:\\") {
			return fmt.Errorf("overlay path %q holds a character overlayfs options cannot carry", p)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)
	if err := unix.Mount("overlay", dst, "overlay", unix.MS_NOSUID|unix.MS_NODEV|extra, opts); err != nil {
		return fmt.Errorf("overlay mount at %s (%s): %w", dst, opts, err)
	}
	return nil
}

// readOnlyOverlay mounts lowers (topmost first) read-only at dst.
func readOnlyOverlay(lowers []string, dst string) error {
	for _, p := range lowers {
		if strings.ContainsAny(p, ",:\\") {
			return fmt.Errorf("overlay path %q holds a character overlayfs options cannot carry", p)
		}
	}
	opts := "lowerdir=" + strings.Join(lowers, ":")
	if err := unix.Mount("overlay", dst, "overlay", roFlags, opts); err != nil {
		return fmt.Errorf("read-only overlay at %s (%s): %w", dst, opts, err)
	}
	return nil
}

// unmountAll removes every mount stacked on path. A busy mount is detached
// (lazy) so an unpublish never fails on a process that still holds a file.
// A path that is missing or not mounted is fine: calls are idempotent.
func unmountAll(path string) error {
	for i := 0; i < 16; i++ {
		m, err := mounted(path)
		if err != nil {
			return err
		}
		if !m {
			return nil
		}
		// NOFOLLOW: a symlink put in place of the path must not lead the
		// unmount to someone else's mount.
		err = unix.Unmount(path, unix.UMOUNT_NOFOLLOW)
		if errors.Is(err, unix.EBUSY) {
			klog.V(2).InfoS("Mount busy, detaching", "path", path)
			err = unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		}
		if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", path, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 16 unmounts", path)
}

// cleanupTarget unmounts path and removes the directory (csi-sanity and the
// kubelet expect the target gone after unpublish).
func cleanupTarget(path string) error {
	if err := unmountAll(path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// mounted reports whether something is mounted at path: statx answers
// without reading the mount table (one line per published volume); a path
// statx cannot look at (a dead FUSE mount) is looked up in mountinfo.
func mounted(path string) (bool, error) {
	if m, err := isMountPoint(path); err == nil {
		return m, nil
	}
	mi, err := mountAt(path)
	return mi != nil, err
}

// mountAt is the topmost mount at path, nil when nothing is mounted there.
func mountAt(path string) (*mount.MountInfo, error) {
	infos, err := mount.ParseMountInfo(mountinfoPath)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", mountinfoPath, err)
	}
	want := escapeMountinfo(path)
	var top *mount.MountInfo
	for i := range infos {
		if infos[i].MountPoint == want {
			top = &infos[i] // later lines are mounted on top
		}
	}
	return top, nil
}

// escapeMountinfo escapes a path the way the kernel writes it in mountinfo.
func escapeMountinfo(p string) string {
	r := strings.NewReplacer(" ", `\040`, "\t", `\011`, "\n", `\012`, `\`, `\134`)
	return r.Replace(p)
}

// probe stats path with a deadline: a dead FUSE server answers ENOTCONN at
// once, a hung one never, and neither may block an RPC forever.
func probe(path string, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() {
		// statfs, not stat: FUSE answers stat of a mount root from its
		// attribute cache even after the server died, statfs always asks.
		var st unix.Statfs_t
		done <- unix.Statfs(path, &st)
	}()
	select {
	case err := <-done:
		if err != nil {
			return &os.PathError{Op: "statfs", Path: path, Err: err}
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("stat %s: no answer within %v", path, timeout)
	}
}

// mountHealthy reports why path is not a live mount, or nil. It compares
// the device of path with its parent's instead of parsing mountinfo: that
// stays cheap with thousands of mounts. Every mount we make (FUSE, daxfs,
// overlay, or a bind of one of them) has a device other than its parent's.
func mountHealthy(path string) error {
	if err := probe(path, 5*time.Second); err != nil {
		if mount.IsCorruptedMnt(errors.Unwrap(err)) {
			return fmt.Errorf("%s is a stale mount: %w", path, err)
		}
		return err
	}
	var st, parent unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if err := unix.Stat(filepath.Dir(path), &parent); err != nil {
		return fmt.Errorf("stat parent of %s: %w", path, err)
	}
	if st.Dev == parent.Dev {
		return fmt.Errorf("%s is not mounted", path)
	}
	return nil
}

func hasFsType(t string, want []string) bool {
	for _, w := range want {
		if t == w || strings.HasPrefix(t, w+".") {
			return true
		}
	}
	return false
}
