package fusehost

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// callTimeout bounds one request when ctx has no deadline.
const callTimeout = 30 * time.Second

// Client talks to a fuse-host server.
type Client struct {
	Socket string
}

// Launch asks fuse-host to start argv (the daxfs-csi binary's fuse-serve)
// in its own session with stdout and stderr appended to logPath.
func (c Client) Launch(ctx context.Context, argv []string, logPath string) (int, error) {
	r, err := c.call(ctx, request{Op: "launch", Argv: argv, LogPath: logPath})
	if err != nil {
		return 0, err
	}
	if r.PID <= 0 {
		return 0, fmt.Errorf("fuse-host %s: launch returned no pid", c.Socket)
	}
	return r.PID, nil
}

// Serve asks fuse-host to mount src at mountpoint and serve it in its own
// process; it returns once the mount answers.
func (c Client) Serve(ctx context.Context, src Source, mountpoint string) (string, error) {
	r, err := c.call(ctx, request{Op: "serve", Source: src, Mountpoint: mountpoint})
	if err != nil {
		return "", err
	}
	if r.Handle == "" {
		return "", fmt.Errorf("fuse-host %s: serve returned no handle", c.Socket)
	}
	return r.Handle, nil
}

// Stop unmounts the image served under handle and waits until fuse-host
// released it; nil also when fuse-host does not know the handle.
func (c Client) Stop(ctx context.Context, handle string) error {
	_, err := c.call(ctx, request{Op: "stop", Handle: handle})
	return err
}

// HandleStatus reports on an image this fuse-host serves.
func (c Client) HandleStatus(ctx context.Context, handle string) (Status, error) {
	r, err := c.call(ctx, request{Op: "status", Handle: handle})
	if err != nil {
		return Status{}, err
	}
	return Status{Handle: handle, Known: r.Handle == handle, Alive: r.Alive, Exit: r.Exit}, nil
}

// Status reports on a process this fuse-host launched.
func (c Client) Status(ctx context.Context, pid int) (Status, error) {
	r, err := c.call(ctx, request{Op: "status", PID: pid})
	if err != nil {
		return Status{}, err
	}
	return Status{PID: pid, Known: r.PID == pid, Alive: r.Alive, Exit: r.Exit}, nil
}

// List returns the pids of the processes still running.
func (c Client) List(ctx context.Context) ([]int, error) {
	r, err := c.call(ctx, request{Op: "list"})
	return r.PIDs, err
}

// Served returns the handles of the images still served.
func (c Client) Served(ctx context.Context) ([]string, error) {
	r, err := c.call(ctx, request{Op: "list"})
	return r.Handles, err
}

func peerCredPID(conn net.Conn) (int, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return 0, fmt.Errorf("peer credentials: %T is not a unix socket", conn)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, fmt.Errorf("peer credentials: %w", err)
	}
	if serr != nil {
		return 0, fmt.Errorf("peer credentials: %w", serr)
	}
	return int(cred.Pid), nil
}

// IsUnknownOp reports an error from a fuse-host that predates op.
func IsUnknownOp(err error, op string) bool {
	return err != nil && strings.Contains(err.Error(), fmt.Sprintf("unknown op %q", op))
}

// ServerPID returns the fuse-host process's pid as the caller's pid
// namespace sees it (SO_PEERCRED on the socket), 0 when that namespace
// cannot see it. A mount fuse-host serves dies with that process, so a live
// pid is the cheap check that its mounts still have a server.
func (c Client) ServerPID(ctx context.Context) (int, error) {
	var pid int
	_, err := c.callPeer(ctx, request{Op: "list"}, &pid)
	return pid, err
}

func (c Client) call(ctx context.Context, req request) (response, error) {
	return c.callPeer(ctx, req, nil)
}

// callPeer sends req; with peerPID set, it also reads the server's pid.
func (c Client) callPeer(ctx context.Context, req request, peerPID *int) (response, error) {
	if c.Socket == "" {
		return response{}, errors.New("fuse-host: no socket configured")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, callTimeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return response{}, fmt.Errorf("fuse-host %s: %w", c.Socket, err)
	}
	defer conn.Close()
	if peerPID != nil {
		if *peerPID, err = peerCredPID(conn); err != nil {
			return response{}, fmt.Errorf("fuse-host %s: %w", c.Socket, err)
		}
	}
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return response{}, fmt.Errorf("fuse-host %s: send %s: %w", c.Socket, req.Op, err)
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		return response{}, fmt.Errorf("fuse-host %s: read %s reply: %w", c.Socket, req.Op, err)
	}
	var r response
	if err := json.Unmarshal(line, &r); err != nil {
		return response{}, fmt.Errorf("fuse-host %s: bad %s reply: %w", c.Socket, req.Op, err)
	}
	if r.Error != "" {
		return r, fmt.Errorf("fuse-host %s: %s: %s", c.Socket, req.Op, r.Error)
	}
	return r, nil
}
