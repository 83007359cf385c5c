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

// IsUnknownOp reports an error from a fuse-host that predates op.
func IsUnknownOp(err error, op string) bool {
	return err != nil && strings.Contains(err.Error(), fmt.Sprintf("unknown op %q", op))
}

func (c Client) call(ctx context.Context, req request) (response, error) {
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
