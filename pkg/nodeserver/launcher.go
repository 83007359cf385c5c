package nodeserver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/daxfs-csi/daxfs-csi/internal/fusehost"
	"github.com/daxfs-csi/daxfs-csi/internal/proc"
)

// launcher starts a fuse-serve argv with its output appended to logPath.
// exited reports, without blocking, whether the process has ended and how.
type launcher interface {
	launch(ctx context.Context, argv []string, logPath string) (pid int, exited func() (bool, string), err error)
}

// localLauncher runs fuse-serve as our child in its own session: it
// survives the plugin process, but not a restart of the plugin's container
// (the runtime kills the whole cgroup, children included).
type localLauncher struct{}

func (localLauncher) launch(_ context.Context, argv []string, logPath string) (int, func() (bool, string), error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, nil, fmt.Errorf("fuse-serve log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own session and process group: signals to the plugin's group (and its
	// death) do not reach the server.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("start fuse-serve: %w", err)
	}
	ch := make(chan error, 1)
	// Reap it whenever it exits, so no zombie holds its pid while we live.
	go func() { ch <- cmd.Wait() }()
	var done bool
	var how string
	return cmd.Process.Pid, func() (bool, string) {
		if !done {
			select {
			case err := <-ch:
				done, how = true, fmt.Sprint(err)
			default:
			}
		}
		return done, how
	}, nil
}

// hostLauncher has the fuse-host sidecar start fuse-serve: its children
// live in the sidecar's cgroup and outlive plugin container restarts. The
// pod shares one pid namespace, so we watch and signal them by pid.
type hostLauncher struct{ client fusehost.Client }

func (h hostLauncher) launch(ctx context.Context, argv []string, logPath string) (int, func() (bool, string), error) {
	pid, err := h.client.Launch(ctx, argv, logPath)
	if err != nil {
		return 0, nil, fmt.Errorf("start fuse-serve: %w", err)
	}
	return pid, func() (bool, string) {
		if proc.Alive(pid) {
			return false, ""
		}
		// fuse-host may not have reaped it yet; its exit status is worth
		// a short wait in an error message.
		for i := 0; i < 50; i++ {
			st, err := h.client.Status(context.Background(), pid)
			if err != nil || !st.Known {
				break
			}
			if !st.Alive {
				return true, st.Exit
			}
			time.Sleep(20 * time.Millisecond)
		}
		return true, "exited"
	}, nil
}
