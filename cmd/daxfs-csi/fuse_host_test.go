package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/internal/fusehost"
)

// fuse-host launches this binary's fuse-serve, refuses anything else, and
// on SIGTERM exits 0, removes its socket and leaves the server serving.
func TestFuseHostSIGTERMLeavesServers(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "fuse-host.sock")
	host := exec.Command(testBinary, "fuse-host", "--socket", sock)
	host.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Process.Kill(); host.Wait() })
	c := fusehost.Client{Socket: sock}
	deadline := time.Now().Add(10 * time.Second)
	for _, err := c.List(context.Background()); err != nil; _, err = c.List(context.Background()) {
		if time.Now().After(deadline) {
			t.Fatalf("fuse-host does not answer: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	if _, err := c.Launch(context.Background(), []string{"/bin/true", "fuse-serve"}, filepath.Join(dir, "x.log")); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("foreign binary: %v, want refused", err)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	pid, err := c.Launch(context.Background(), []string{testBinary, "fuse-serve", "--mountpoint", mnt,
		"--image", sampleImage(t, "tree1.static.daxfs")}, filepath.Join(dir, "fuse.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Kill(pid, unix.SIGKILL)
		for i := 0; i < 4 && isFuseMount(t, mnt); i++ {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	for !answersFUSE(mnt) {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "fuse.log"))
			t.Fatalf("fuse-serve did not mount: %s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}

	if err := host.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := host.Wait(); err != nil {
		t.Errorf("fuse-host after SIGTERM: %v, want exit 0", err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after SIGTERM: %v, want removed", err)
	}
	if err := unix.Kill(pid, 0); err != nil || !answersFUSE(mnt) {
		t.Errorf("fuse-serve %d after fuse-host's SIGTERM: %v, answers %v; want it serving", pid, err, answersFUSE(mnt))
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "small.txt")); err != nil || len(b) != 12 {
		t.Errorf("read through the orphaned server: %q %v", b, err)
	}
}

func TestFuseHostUsage(t *testing.T) {
	out, err := exec.Command(testBinary, "fuse-host", "extra").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "unexpected arguments") {
		t.Errorf("fuse-host extra: %v %s; want exit 2 naming the arguments", err, out)
	}
}
