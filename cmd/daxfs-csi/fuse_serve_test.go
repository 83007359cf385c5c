package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/internal/fusefs"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"

	"github.com/daxfs-csi/daxfs-csi/internal/machine"
	"github.com/daxfs-csi/daxfs-csi/internal/sharedtest"
)

// sampleImage is a shared upstream sample (../shared beside the repo).
func sampleImage(t *testing.T, name string) string { return sharedtest.Sample(t, name) }

// serveProc is a running fuse-serve.
type serveProc struct {
	cmd    *exec.Cmd
	mnt    string
	out    *bytes.Buffer
	exited chan error
}

func needRoot(t *testing.T) {
	t.Helper()
	machine.NeedRoot(t, "fuse-serve mounts directly")
}

// startServe runs fuse-serve in its own session (as the node plugin does)
// and waits until mnt shows up as a fuse mount.
func startServe(t *testing.T, mnt string, args ...string) *serveProc {
	t.Helper()
	needRoot(t)
	cmd := exec.Command(testBinary, append([]string{"fuse-serve", "--mountpoint", mnt}, args...)...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, mnt: mnt, out: out, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			t.Errorf("fuse-serve unkillable (stuck on its own mount?); aborting the connection")
			abortFuse(t, mnt)
			<-p.exited
		}
		for i := 0; i < 4 && isFuseMount(t, mnt); i++ {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	// A dead mount may already be there: wait for a FUSE mount that
	// answers (one statfs, so the check cannot straddle a detach).
	for !answersFUSE(mnt) {
		select {
		case err := <-p.exited:
			p.exited <- err
			t.Fatalf("fuse-serve exited before mounting (%v): %s", err, out)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("fuse-serve did not mount within 10s: %s", out)
		}
	}
	return p
}

// wait returns the exit code, failing the test after 10s.
func (p *serveProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(10 * time.Second):
		t.Fatalf("fuse-serve still running after 10s: %s", p.out)
		return -1
	}
}

const fuseSuperMagic = 0x65735546

func answersFUSE(mnt string) bool {
	var st unix.Statfs_t
	return unix.Statfs(mnt, &st) == nil && st.Type == fuseSuperMagic
}

func isFuseMount(t *testing.T, mnt string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		for i, x := range f {
			if x == "-" && len(f) > 4 && f[4] == mnt && i+1 < len(f) && strings.HasPrefix(f[i+1], "fuse") {
				return true
			}
		}
	}
	return false
}

func fileSHA(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

const smallSHA = "d0ace037d0be3fc6de1d439383330f804bee0e99ab3a0779939777ac3379c0ba" // tree1 /small.txt

func TestFuseServeImageUntilSIGTERM(t *testing.T) {
	mnt := t.TempDir()
	p := startServe(t, mnt, "--image", sampleImage(t, "tree1.static.daxfs"))
	if got := fileSHA(t, filepath.Join(mnt, "small.txt")); got != smallSHA {
		t.Errorf("small.txt sha256 %s, want %s", got, smallSHA)
	}
	fi, err := os.Lstat(filepath.Join(mnt, "x"))
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 4000000000 {
		t.Errorf("/x: %v %v, want uid 4000000000", fi, err)
	}
	// The plugin's session going away must not stop the server.
	p.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(50 * time.Millisecond)
	if got := fileSHA(t, filepath.Join(mnt, "small.txt")); got != smallSHA {
		t.Errorf("after SIGHUP: sha256 %s", got)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Errorf("exit %d after SIGTERM: %s", code, p.out)
	}
	if isFuseMount(t, mnt) {
		t.Error("mount still present after SIGTERM")
	}
}

func TestFuseServeExitsWhenUnmounted(t *testing.T) {
	mnt := t.TempDir()
	p := startServe(t, mnt, "--image", sampleImage(t, "tree2.static.daxfs"))
	if _, err := os.ReadDir(mnt); err != nil {
		t.Fatal(err)
	}
	// Retried: a path walk still in flight (the server's own start-up
	// stat, anyone scanning /tmp) makes umount EBUSY for a moment.
	err := unix.Unmount(mnt, 0)
	for i := 0; errors.Is(err, unix.EBUSY) && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
		err = unix.Unmount(mnt, 0)
	}
	if err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("exit %d after external unmount: %s", code, p.out)
	}
}

// TestFuseServeBusySIGTERM: with a file open, SIGTERM detaches the mount
// at once; the open file keeps working and the server exits after close.
func TestFuseServeBusySIGTERM(t *testing.T) {
	mnt := t.TempDir()
	p := startServe(t, mnt, "--image", sampleImage(t, "tree1.static.daxfs"))
	f, err := os.Open(filepath.Join(mnt, "small.txt"))
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for isFuseMount(t, mnt) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if isFuseMount(t, mnt) {
		t.Fatal("busy mount not detached after SIGTERM")
	}
	b, err := io.ReadAll(f)
	if err != nil || len(b) != 12 {
		t.Errorf("open file after detach: %q %v", b, err)
	}
	f.Close()
	if code := p.wait(t); code != 0 {
		t.Errorf("exit %d: %s", code, p.out)
	}
}

// TestFuseServeKill9LeavesCleanableMount: kill -9 leaves a dead mount
// ("transport endpoint is not connected"); CleanStale removes it and a new
// server mounts in the same place. A server started directly over a dead
// mount cleans it itself.
func TestFuseServeKill9LeavesCleanableMount(t *testing.T) {
	mnt := t.TempDir()
	img := sampleImage(t, "tree1.static.daxfs")
	// Killed the moment it is mounted: start-up must leave nothing that
	// makes the dying server wait on itself.
	p := startServe(t, mnt, "--image", img)
	p.cmd.Process.Kill()
	p.wait(t)
	if _, err := os.ReadFile(filepath.Join(mnt, "dir1/exact8k.bin")); !errors.Is(err, unix.ENOTCONN) {
		t.Fatalf("read after kill -9: %v, want ENOTCONN", err)
	}
	cleaned, err := fusefs.CleanStale(mnt)
	if err != nil || !cleaned {
		t.Fatalf("CleanStale = %v, %v; want true", cleaned, err)
	}
	if isFuseMount(t, mnt) {
		t.Fatal("dead mount still in mountinfo after CleanStale")
	}
	if cleaned, err := fusefs.CleanStale(mnt); err != nil || cleaned {
		t.Errorf("CleanStale on a plain dir = %v, %v; want false, nil", cleaned, err)
	}
	p2 := startServe(t, mnt, "--image", img)
	if got := fileSHA(t, filepath.Join(mnt, "small.txt")); got != smallSHA {
		t.Errorf("remounted: sha256 %s", got)
	}
	p2.cmd.Process.Kill()
	p2.wait(t)
	p3 := startServe(t, mnt, "--image", img)
	if got := fileSHA(t, filepath.Join(mnt, "small.txt")); got != smallSHA {
		t.Errorf("served over a dead mount: sha256 %s", got)
	}
	p3.cmd.Process.Signal(syscall.SIGTERM)
	if code := p3.wait(t); code != 0 || isFuseMount(t, mnt) {
		t.Errorf("exit %d, still mounted %v: %s", code, isFuseMount(t, mnt), p3.out)
	}
}

func TestFuseServeRefusesCorruptImage(t *testing.T) {
	needRoot(t)
	mnt := t.TempDir()
	cmd := exec.Command(testBinary, "fuse-serve", "--mountpoint", mnt, "--image", sampleImage(t, "tree5-q1-overflow.static.daxfs"))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "corrupt, refusing to mount") {
		t.Errorf("fuse-serve on a corrupt image: %v: %s", err, out)
	}
	if isFuseMount(t, mnt) {
		unix.Unmount(mnt, unix.MNT_DETACH)
		t.Error("corrupt image was mounted")
	}
}

func TestFuseServeUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--mountpoint", "/x"},
		{"--mountpoint", "/x", "--pool", "memfile:/p"},
		{"--mountpoint", "/x", "--pool", "memfile:/p", "--digest", "sha256:zz"},
		{"--mountpoint", "/x", "--image", "a", "--pool", "memfile:/p", "--digest", "sha256:" + strings.Repeat("a", 64)},
	} {
		cmd := exec.Command(testBinary, append([]string{"fuse-serve"}, args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("fuse-serve %q: %v %s; want exit 2", args, err, out)
		}
	}
}

// TestFuseServeFromPool stages an image into a memfile pool and serves the
// extent straight from the pool mapping.
func TestFuseServeFromPool(t *testing.T) {
	needRoot(t)
	img := sampleImage(t, "tree1.static.daxfs")
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	spec := "memfile:" + filepath.Join(t.TempDir(), "pool")
	pool, err := daxdev.OpenPool(spec, daxdev.PoolOptions{Size: 64 << 20, Init: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Stage(context.Background(), digest, int64(len(data)), "test", func(dst []byte) error {
		copy(dst, data)
		return nil
	})
	if cerr := pool.Close(); err != nil || cerr != nil {
		t.Fatalf("stage: %v, close: %v", err, cerr)
	}
	mnt := t.TempDir()
	p := startServe(t, mnt, "--pool", spec, "--digest", digest)
	if got := fileSHA(t, filepath.Join(mnt, "small.txt")); got != smallSHA {
		t.Errorf("small.txt sha256 %s", got)
	}
	if !strings.Contains(mountLine(t, mnt), "daxfs:"+digest[:19]) {
		t.Errorf("mount source is not daxfs:sha256:<hex12>: %s", mountLine(t, mnt))
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Errorf("exit %d: %s", code, p.out)
	}
	other := "sha256:" + strings.Repeat("0", 64)
	out, err := exec.Command(testBinary, "fuse-serve", "--mountpoint", mnt, "--pool", spec, "--digest", other).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no ready extent") {
		t.Errorf("unknown digest: %v %s", err, out)
	}
}

func mountLine(t *testing.T, mnt string) string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == mnt {
			return l
		}
	}
	return ""
}

// abortFuse aborts the FUSE connection of mnt through fusectl, the last
// resort that frees processes stuck on a server that cannot answer.
func abortFuse(t *testing.T, mnt string) {
	f := strings.Fields(mountLine(t, mnt))
	if len(f) < 3 {
		return
	}
	_, minor, _ := strings.Cut(f[2], ":")
	ctl := "/sys/fs/fuse/connections"
	if _, err := os.Stat(filepath.Join(ctl, minor)); err != nil {
		unix.Mount("none", ctl, "fusectl", 0, "")
	}
	if err := os.WriteFile(filepath.Join(ctl, minor, "abort"), []byte("1"), 0); err != nil {
		t.Errorf("abort FUSE connection of %s: %v", mnt, err)
	}
}
