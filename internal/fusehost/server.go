package fusehost

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

const (
	connTimeout = 30 * time.Second
	maxRequest  = 64 << 10
	keepExited  = 256 // exit records kept for status
)

// Server launches and reaps fuse-serve processes.
type Server struct {
	socket string
	allow  string // resolved path of the only binary it runs
	ln     *net.UnixListener

	mu       sync.Mutex
	children map[int]*child
	exited   []int // reaped pids, oldest first
	wg       sync.WaitGroup

	instance     string             // names this process in handles
	seq          int                // last handle number
	hosted       map[string]*hosted // images served in this process, by handle
	endedHandles []string           // ended handles, oldest first
}

type child struct {
	done bool
	exit string
}

// Listen binds socket (mode 0600; a stale socket file is replaced, a live
// one is an error) for a server that runs only allowBinary's fuse-serve.
func Listen(socket, allowBinary string) (*Server, error) {
	allow, err := filepath.EvalSymlinks(allowBinary)
	if err != nil {
		return nil, fmt.Errorf("fuse-host: allowed binary: %w", err)
	}
	if allow, err = filepath.Abs(allow); err != nil {
		return nil, fmt.Errorf("fuse-host: allowed binary: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(socket), 0o700); err != nil {
		return nil, fmt.Errorf("fuse-host: socket dir: %w", err)
	}
	if err := removeStale(socket); err != nil {
		return nil, err
	}
	// umask, not a chmod after bind: no window where others may connect.
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("fuse-host: listen %s: %w", socket, err)
	}
	return &Server{socket: socket, allow: allow, ln: ln, children: map[int]*child{},
		instance: newInstance(), hosted: map[string]*hosted{}}, nil
}

// removeStale deletes a socket nobody answers on; anything else at the
// path is left alone and reported.
func removeStale(socket string) error {
	fi, err := os.Lstat(socket)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fuse-host: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("fuse-host: %s exists and is not a socket", socket)
	}
	if c, err := net.DialTimeout("unix", socket, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("fuse-host: %s is in use by a running server", socket)
	}
	if err := os.Remove(socket); err != nil {
		return fmt.Errorf("fuse-host: remove stale socket: %w", err)
	}
	return nil
}

// Serve answers requests until ctx is done, then closes the socket. The
// processes it launched keep running; the images it serves itself keep
// being served until this process exits.
func (s *Server) Serve(ctx context.Context) error {
	klog.InfoS("fuse-host listening", "socket", s.socket, "allow", s.allow)
	go func() {
		<-ctx.Done()
		s.ln.Close()
	}()
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			s.wg.Wait()
			if ctx.Err() != nil {
				klog.InfoS("fuse-host stopped accepting; launched servers keep running", "running", len(s.running()), "served", len(s.servedHandles()))
				return nil
			}
			return fmt.Errorf("fuse-host: accept: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(conn)
		}()
	}
}

// Close stops accepting and removes the socket.
func (s *Server) Close() error { return s.ln.Close() }

func (s *Server) handle(conn *net.UnixConn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(connTimeout))
	var resp response
	line, err := bufio.NewReader(&limited{conn, maxRequest}).ReadBytes('\n')
	var req request
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	if err == nil {
		resp, err = s.do(req)
	}
	if err != nil {
		resp = response{Error: err.Error()}
		klog.ErrorS(err, "fuse-host request", "op", req.Op)
	}
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		klog.ErrorS(err, "fuse-host reply", "op", req.Op)
	}
}

func (s *Server) do(req request) (response, error) {
	switch req.Op {
	case "launch":
		pid, err := s.launch(req.Argv, req.LogPath)
		return response{PID: pid}, err
	case "serve":
		handle, err := s.serve(req.Source, req.Mountpoint, req.Debug)
		return response{Handle: handle}, err
	case "stop":
		if req.Handle == "" {
			return response{}, errors.New("stop needs a handle")
		}
		return response{}, s.stop(req.Handle)
	case "status":
		if req.Handle != "" {
			return s.handleStatus(req.Handle), nil
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if c := s.children[req.PID]; c != nil {
			return response{PID: req.PID, Alive: !c.done, Exit: c.exit}, nil
		}
		return response{}, nil
	case "list":
		return response{PIDs: s.running(), Handles: s.servedHandles()}, nil
	}
	return response{}, fmt.Errorf("unknown op %q", req.Op)
}

// launch starts the allowed binary's fuse-serve in its own session, output
// appended to logPath, and reaps it when it exits.
func (s *Server) launch(argv []string, logPath string) (int, error) {
	if len(argv) < 2 || argv[1] != "fuse-serve" {
		return 0, fmt.Errorf("refused %q: only fuse-serve is launched", argv)
	}
	if bin, err := filepath.EvalSymlinks(argv[0]); err != nil || bin != s.allow {
		return 0, fmt.Errorf("refused %q: only %s may be launched", argv[0], s.allow)
	}
	if !filepath.IsAbs(logPath) {
		return 0, fmt.Errorf("log path %q is not absolute", logPath)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return 0, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	// Exec the resolved path checked above, so swapping a symlink after the
	// check cannot change what runs.
	cmd := &exec.Cmd{Path: s.allow, Args: argv, Stdout: logf, Stderr: logf,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", s.allow, err)
	}
	pid := cmd.Process.Pid
	s.mu.Lock()
	s.children[pid] = &child{}
	s.mu.Unlock()
	klog.InfoS("Launched", "pid", pid, "argv", argv, "log", logPath)
	go s.reap(pid, cmd)
	return pid, nil
}

func (s *Server) reap(pid int, cmd *exec.Cmd) {
	err := cmd.Wait()
	exit := "exit status 0"
	if err != nil {
		exit = err.Error()
	}
	klog.InfoS("Server exited", "pid", pid, "exit", exit)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.children[pid] = &child{done: true, exit: exit}
	s.exited = append(s.exited, pid)
	if len(s.exited) > keepExited {
		if c := s.children[s.exited[0]]; c != nil && c.done {
			delete(s.children, s.exited[0])
		}
		s.exited = s.exited[1:]
	}
}

func (s *Server) running() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var pids []int
	for pid, c := range s.children {
		if !c.done {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids
}

// limited fails reads past n bytes: a request line has a bound.
type limited struct {
	c *net.UnixConn
	n int
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("request too long")
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.c.Read(p)
	l.n -= n
	return n, err
}
