package nodeserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/fusehost"
	"github.com/daxfs-csi/daxfs-csi/internal/proc"
)

// A FUSE image mount is served outside the plugin process, so the
// /dev/fuse connection outlives a plugin restart (even kill -9) and pods'
// mounts keep working. With Options.FuseHostSocket the fuse-host sidecar
// serves it in its own long-running process (a goroutine set per image, no
// exec: the cold mount costs the image's metadata, not a process start), so
// it also outlives a restart of the plugin's container. Without it, each
// image gets its own `daxfs-csi fuse-serve` child in its own session (see
// launcher.go); so does a fuse-host that predates the serve op.

const (
	fuseStartTimeout = 30 * time.Second
	fuseStopTimeout  = 10 * time.Second
	logTailBytes     = 2048
)

// fuseServe starts and stops the servers of FUSE image mounts.
type fuseServe struct {
	argv     []string // prefix, e.g. [/usr/bin/daxfs-csi]
	poolSpec string
	launcher launcher
	host     *fusehost.Client // serves images itself when set
}

// fuseServer is what serves one FUSE image mount: a fuse-serve process
// (PID) or an image fuse-host serves itself (Handle).
type fuseServer struct {
	PID     int
	Handle  string
	HostPID int // the fuse-host serving Handle, as we see it; 0 unknown
}

// start has digest served at dir and waits until dir is a fuse mount that
// answers. When the server fails first, the error says why (fuse-host's
// reply, or the tail of fuse-serve's log).
func (f fuseServe) start(digest, dir, logPath string) (fuseServer, error) {
	// Whatever is mounted at dir now is a dead server's: it would pass the
	// readiness check below for a server that never mounts.
	if err := unmountAll(dir); err != nil {
		return fuseServer{}, fmt.Errorf("clear stale mount at %s: %w", dir, err)
	}
	if f.host != nil {
		handle, err := f.startHosted(digest, dir)
		if !fusehost.IsUnknownOp(err, "serve") {
			return fuseServer{Handle: handle, HostPID: f.hostPID()}, err
		}
		klog.InfoS("fuse-host predates the serve op; launching fuse-serve through it", "digest", digest)
	}
	pid, err := f.launchServe(digest, dir, logPath)
	return fuseServer{PID: pid}, err
}

// hostPID is the fuse-host's pid for the cheap liveness check; 0 (the
// check then falls back to a full repair) when it cannot be read.
func (f fuseServe) hostPID() int {
	if f.host == nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), fuseStopTimeout)
	defer cancel()
	pid, err := f.host.ServerPID(ctx)
	if err != nil {
		klog.ErrorS(err, "fuse-host pid unknown; publishes will check its mounts the slow way")
	}
	return pid
}

// startHosted asks fuse-host to serve digest at dir. The mount answers when
// fuse-host replies; the check below also covers its propagation to us.
func (f fuseServe) startHosted(digest, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), fuseStartTimeout)
	defer cancel()
	handle, err := f.host.Serve(ctx, fusehost.Source{Pool: f.poolSpec, Digest: digest}, dir)
	if err != nil {
		return "", err
	}
	deadline := time.Now().Add(fuseStopTimeout)
	for {
		if fuseServesAt(dir, deadline) {
			klog.V(2).InfoS("fuse-host serves image", "digest", digest, "handle", handle, "mountpoint", dir)
			return handle, nil
		}
		if time.Now().After(deadline) {
			f.stopHosted(handle)
			unmountAll(dir)
			return "", fmt.Errorf("fuse-host served %s as %s, but %s does not answer here within %v", digest, handle, dir, fuseStopTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// fuseServesAt reports whether dir is a FUSE mount that answers before
// deadline: what "the server is ready" means, however it was started.
func fuseServesAt(dir string, deadline time.Time) bool {
	mi, err := mountAt(dir)
	return err == nil && mi != nil && hasFsType(mi.FsType, []string{"fuse"}) && fuseAnswers(dir, time.Until(deadline))
}

// launchServe runs a fuse-serve process for digest and returns its pid.
func (f fuseServe) launchServe(digest, dir, logPath string) (int, error) {
	if len(f.argv) == 0 {
		return 0, errors.New("fuse-serve: no command configured")
	}
	argv := append(append([]string{}, f.argv...),
		"fuse-serve", "--pool", f.poolSpec, "--digest", digest, "--mountpoint", dir)
	ctx, cancel := context.WithTimeout(context.Background(), fuseStartTimeout)
	defer cancel()
	l := f.launcher
	if l == nil {
		l = localLauncher{}
	}
	pid, exited, err := l.launch(ctx, argv, logPath)
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(fuseStartTimeout)
	for {
		if fuseServesAt(dir, deadline) {
			klog.V(2).InfoS("fuse-serve ready", "digest", digest, "pid", pid, "mountpoint", dir)
			return pid, nil
		}
		if done, how := exited(); done {
			return 0, fmt.Errorf("fuse-serve for %s exited before mounting (%s): %s", digest, how, logTail(logPath))
		}
		if time.Now().After(deadline) {
			unix.Kill(pid, unix.SIGKILL)
			for end := time.Now().Add(fuseStopTimeout); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				if done, _ := exited(); done {
					break
				}
			}
			unmountAll(dir)
			return 0, fmt.Errorf("fuse-serve for %s did not mount %s within %v: %s", digest, dir, fuseStartTimeout, logTail(logPath))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop ends the server of dir and detaches whatever is left there.
func (f fuseServe) stop(srv fuseServer, digest, dir string) error {
	if srv.Handle != "" {
		f.stopHosted(srv.Handle)
	}
	return stopFuse(srv.PID, digest, dir)
}

// stopHosted has fuse-host unmount an image it serves. Failing that
// (fuse-host gone, and its mounts with it), the caller's unmount of dir
// ends the mount all the same.
func (f fuseServe) stopHosted(handle string) {
	if f.host == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), fuseStopTimeout+5*time.Second)
	defer cancel()
	if err := f.host.Stop(ctx, handle); err != nil {
		klog.ErrorS(err, "fuse-host stop; detaching the mount instead", "handle", handle)
	}
}

// stopFuse ends the server of dir: SIGTERM (it unmounts and exits), then SIGKILL
// and a lazy unmount when it does not. pid 0 or a pid that is no longer our
// server (reused after a reboot) only unmounts.
func stopFuse(pid int, digest, dir string) error {
	if pid > 0 && isFuseServe(pid, digest) {
		if err := unix.Kill(pid, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signal fuse-serve %d: %w", pid, err)
		}
		deadline := time.Now().Add(fuseStopTimeout)
		for proc.Alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if proc.Alive(pid) {
			klog.InfoS("fuse-serve ignored SIGTERM, killing", "pid", pid, "digest", digest)
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	// The server unmounts on SIGTERM; whatever is left (it was killed, or it
	// died earlier) would answer ENOTCONN, so detach it.
	for i := 0; i < 16; i++ {
		mi, err := mountAt(dir)
		if err != nil {
			return err
		}
		if mi == nil {
			return nil
		}
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted", dir)
}

// isFuseServe checks pid still runs fuse-serve for digest before we signal it.
func isFuseServe(pid int, digest string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	var serve, dg bool
	for _, a := range args {
		serve = serve || a == "fuse-serve"
		dg = dg || a == digest
	}
	return serve && dg
}

// logTail is the last bytes of a log file, for error messages.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "(empty log " + filepath.Base(path) + ")"
	}
	return s
}

// fuseSuperMagic is statfs' f_type of every FUSE mount.
const fuseSuperMagic = 0x65735546

// fuseAnswers reports whether the FUSE server behind dir answers statfs,
// which the kernel never serves from its cache; bounded, since a hung server
// never answers.
func fuseAnswers(dir string, timeout time.Duration) bool {
	done := make(chan bool, 1)
	go func() {
		var st unix.Statfs_t
		done <- unix.Statfs(dir, &st) == nil && st.Type == fuseSuperMagic
	}()
	select {
	case ok := <-done:
		return ok
	case <-time.After(timeout):
		return false
	}
}
