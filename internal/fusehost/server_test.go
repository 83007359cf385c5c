package fusehost

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary is the allowed binary: as "fuse-serve" it logs a line
// and waits for SIGTERM, or fails at once with --fail.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "fuse-serve" {
		fmt.Println("serving", strings.Join(os.Args[2:], " "))
		if len(os.Args) > 2 && os.Args[2] == "--fail" {
			fmt.Fprintln(os.Stderr, "bad pool")
			os.Exit(3)
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
		os.Exit(0)
	}
	if len(os.Args) > 2 && os.Args[1] == "fuse-host-child" {
		os.Exit(runHostChild(os.Args[2]))
	}
	os.Exit(m.Run())
}

func start(t *testing.T) (Client, string) {
	t.Helper()
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "run", "fuse-host.sock")
	s, err := Listen(sock, exe)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return Client{Socket: sock}, dir
}

func waitGone(t *testing.T, c Client, pid int) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.Status(context.Background(), pid)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Alive {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still alive", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLaunchStatusReap(t *testing.T) {
	c, dir := start(t)
	exe, _ := os.Executable()
	fi, err := os.Stat(c.Socket)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v (%v), want 0600", fi.Mode(), err)
	}
	logPath := filepath.Join(dir, "fuse.log")
	pid, err := c.Launch(context.Background(), []string{exe, "fuse-serve", "--digest", "sha256:x"}, logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL) })
	if sid, err := unix.Getsid(pid); err != nil || sid != pid {
		t.Errorf("launched pid %d has session %d (%v): want its own session", pid, sid, err)
	}
	st, err := c.Status(context.Background(), pid)
	if err != nil || !st.Known || !st.Alive {
		t.Fatalf("status %+v, %v: want known and alive", st, err)
	}
	if pids, err := c.List(context.Background()); err != nil || len(pids) != 1 || pids[0] != pid {
		t.Errorf("list %v %v, want [%d]", pids, err, pid)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(readLog(logPath), "serving --digest sha256:x") {
		if time.Now().After(deadline) {
			t.Fatalf("log %q lacks the server's output", readLog(logPath))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := waitGone(t, c, pid); st.Exit != "exit status 0" {
		t.Errorf("exit %q, want exit status 0", st.Exit)
	}
	// Reaped: no zombie left under fuse-host.
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !os.IsNotExist(err) {
		t.Errorf("/proc/%d still exists after the reap (%v)", pid, err)
	}
}

func TestLaunchFailureIsLogged(t *testing.T) {
	c, dir := start(t)
	exe, _ := os.Executable()
	logPath := filepath.Join(dir, "fuse.log")
	pid, err := c.Launch(context.Background(), []string{exe, "fuse-serve", "--fail"}, logPath)
	if err != nil {
		t.Fatal(err)
	}
	if st := waitGone(t, c, pid); st.Exit != "exit status 3" {
		t.Errorf("exit %q, want exit status 3", st.Exit)
	}
	if !strings.Contains(readLog(logPath), "bad pool") {
		t.Errorf("log %q lacks stderr", readLog(logPath))
	}
}

func TestLaunchRefusesOtherCommands(t *testing.T) {
	c, dir := start(t)
	exe, _ := os.Executable()
	logPath := filepath.Join(dir, "x.log")
	for _, argv := range [][]string{
		{"/bin/sh", "fuse-serve"},
		{"/bin/sh", "-c", "touch " + filepath.Join(dir, "pwned")},
		{exe, "serve"},
		{exe},
		{filepath.Join(dir, "..", filepath.Base(dir), "nope"), "fuse-serve"},
	} {
		if pid, err := c.Launch(context.Background(), argv, logPath); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("launch %q: pid %d, %v; want refused", argv, pid, err)
		}
	}
	if _, err := c.Launch(context.Background(), []string{exe, "fuse-serve"}, "rel.log"); err == nil {
		t.Error("relative log path accepted")
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("a refused command ran")
	}
}

func TestStaleSocket(t *testing.T) {
	dir := t.TempDir()
	exe, _ := os.Executable()
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	// A live server on the path is not replaced.
	if _, err := Listen(sock, exe); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("listen over a live socket: %v, want in use", err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // what a killed fuse-host leaves behind
	s, err := Listen(sock, exe)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	s.Close()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
	if err := os.WriteFile(sock, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(sock, exe); err == nil {
		t.Error("a regular file at the socket path was replaced")
	}
}

func readLog(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
