package fusehost

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/internal/sharedtest"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

// runHostChild is fuse-host in a process of its own: the test reads the
// mounts it serves, which a server must not do in its own process
// (fusefs.Options.NoSelfAccess).
func runHostChild(sock string) int {
	exe, _ := os.Executable()
	s, err := Listen(sock, exe)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := s.Serve(ctx); err != nil {
		return 1
	}
	return 0
}

// startHostChild runs fuse-host as a child and waits until it answers.
func startHostChild(t *testing.T, sock string) *exec.Cmd {
	t.Helper()
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "fuse-host-child", sock)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := Client{Socket: sock}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.List(context.Background()); err == nil {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatal("fuse-host child does not answer")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root (FUSE mounts)")
	}
}

// isFuseMount reports whether mountinfo has a fuse mount at dir.
func isFuseMount(t *testing.T, dir string) bool {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && len(fields) > 4 && fields[4] == dir && i+1 < len(fields) && strings.HasPrefix(fields[i+1], "fuse") {
				return true
			}
		}
	}
	return false
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func manifestSHA(t *testing.T, path string) string {
	t.Helper()
	for _, en := range sharedtest.Manifest(t, "tree1.manifest.json") {
		if en.Path == path {
			return en.SHA256
		}
	}
	t.Fatalf("%s not in the manifest", path)
	return ""
}

// serve mounts an image in fuse-host's process; stop unmounts it and
// fuse-host reports the handle ended. No process is started for it.
func TestServeStatusStop(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "fuse-host.sock")
	host := startHostChild(t, sock)
	c := Client{Socket: sock}
	mnt := filepath.Join(dir, "mnt")
	must(t, os.Mkdir(mnt, 0o755))
	ctx := context.Background()

	h, err := c.Serve(ctx, Source{Image: sharedtest.Sample(t, "tree1.static.daxfs")}, mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	// The pid a publish checks to know fuse-host (and so this mount's
	// server) lives: the child's, from the socket's peer credentials.
	if pid, err := c.ServerPID(ctx); err != nil || pid != host.Process.Pid {
		t.Fatalf("ServerPID = %d, %v; want fuse-host's %d", pid, err, host.Process.Pid)
	}
	if !isFuseMount(t, mnt) {
		t.Fatal("serve returned before the mount is in mountinfo")
	}
	if got, want := fileSHA(t, filepath.Join(mnt, "dir1", "sub1", "multi_mib.bin")), manifestSHA(t, "/dir1/sub1/multi_mib.bin"); got != want {
		t.Errorf("multi_mib.bin sha256 %s, want %s", got, want)
	}
	if st, err := c.HandleStatus(ctx, h); err != nil || !st.Known || !st.Alive {
		t.Errorf("status %+v %v, want known and alive", st, err)
	}
	if hs, err := c.Served(ctx); err != nil || len(hs) != 1 || hs[0] != h {
		t.Errorf("served %v %v, want [%s]", hs, err, h)
	}
	if pids, _ := c.List(ctx); len(pids) != 0 {
		t.Errorf("serve started processes %v", pids)
	}
	if kids := childrenOf(host.Process.Pid); len(kids) != 0 {
		t.Errorf("fuse-host has children %v after a serve", kids)
	}

	if err := c.Stop(ctx, h); err != nil {
		t.Fatal(err)
	}
	if isFuseMount(t, mnt) {
		t.Error("still mounted after stop")
	}
	if st, err := c.HandleStatus(ctx, h); err != nil || !st.Known || st.Alive || st.Exit != "unmounted" {
		t.Errorf("status after stop %+v %v, want known, ended, unmounted", st, err)
	}
	if err := c.Stop(ctx, h); err != nil {
		t.Errorf("second stop: %v, want nil", err)
	}
	if hs, _ := c.Served(ctx); len(hs) != 0 {
		t.Errorf("served after stop: %v", hs)
	}
}

// Someone else unmounting a served image ends its handle; serve over a
// dead mount (its server killed) detaches it first.
func TestServeUnmountedElsewhereAndRestart(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "fuse-host.sock")
	host := startHostChild(t, sock)
	c := Client{Socket: sock}
	mnt := filepath.Join(dir, "mnt")
	must(t, os.Mkdir(mnt, 0o755))
	ctx := context.Background()
	img := Source{Image: sharedtest.Sample(t, "tree1.static.daxfs")}
	small := manifestSHA(t, "/small.txt")

	h, err := c.Serve(ctx, img, mnt)
	must(t, err)
	must(t, unix.Unmount(mnt, 0))
	waitUntil(t, "the handle to end", func() bool {
		st, err := c.HandleStatus(ctx, h)
		return err == nil && st.Known && !st.Alive && st.Exit == "unmounted"
	})

	h, err = c.Serve(ctx, img, mnt)
	must(t, err)
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	// fuse-host killed: its mounts die with it (as documented) ...
	host.Process.Kill()
	host.Wait()
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err == nil {
		t.Fatal("a killed fuse-host's mount still answers")
	}
	// ... and the next instance neither knows the old handle nor trips
	// over the dead mount.
	startHostChild(t, sock)
	if st, err := c.HandleStatus(ctx, h); err != nil || st.Known {
		t.Errorf("old instance's handle: %+v %v, want unknown", st, err)
	}
	if err := c.Stop(ctx, h); err != nil {
		t.Errorf("stop of an old handle: %v, want nil", err)
	}
	h2, err := c.Serve(ctx, img, mnt)
	must(t, err)
	if h2 == h {
		t.Errorf("new instance reused handle %s", h)
	}
	if got := fileSHA(t, filepath.Join(mnt, "small.txt")); got != small {
		t.Errorf("small.txt after serving over a dead mount: %s", got)
	}
	must(t, c.Stop(ctx, h2))
}

// The node plugin's path: the ready extent of a digest in a pool.
func TestServeFromPool(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "fuse-host.sock")
	startHostChild(t, sock)
	c := Client{Socket: sock}
	data, err := os.ReadFile(sharedtest.Sample(t, "tree1.static.daxfs"))
	must(t, err)
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	spec := "memfile:" + filepath.Join(dir, "pool")
	pool, err := daxdev.OpenPool(spec, daxdev.PoolOptions{Size: 64 << 20, Init: true})
	must(t, err)
	_, err = pool.Stage(context.Background(), digest, int64(len(data)), "test", func(dst []byte) error {
		copy(dst, data)
		return nil
	})
	must(t, err)
	must(t, pool.Close())
	mnt := filepath.Join(dir, "mnt")
	must(t, os.Mkdir(mnt, 0o755))
	ctx := context.Background()

	h, err := c.Serve(ctx, Source{Pool: spec, Digest: digest}, mnt)
	must(t, err)
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	if got := fileSHA(t, filepath.Join(mnt, "small.txt")); got != manifestSHA(t, "/small.txt") {
		t.Errorf("small.txt sha256 %s", got)
	}
	must(t, c.Stop(ctx, h))

	other := "sha256:" + strings.Repeat("0", 64)
	if _, err := c.Serve(ctx, Source{Pool: spec, Digest: other}, mnt); err == nil || !strings.Contains(err.Error(), "no ready extent") {
		t.Errorf("unknown digest: %v, want no ready extent", err)
	}
}

// A corrupt image or a bad request is refused with a clear error and
// nothing is mounted.
func TestServeRefuses(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "fuse-host.sock")
	startHostChild(t, sock)
	c := Client{Socket: sock}
	mnt := filepath.Join(dir, "mnt")
	must(t, os.Mkdir(mnt, 0o755))
	ctx := context.Background()
	good := sharedtest.Sample(t, "tree1.static.daxfs")
	for _, tc := range []struct {
		name string
		src  Source
		mnt  string
		want string
	}{
		{"corrupt", Source{Image: sharedtest.Sample(t, "tree5-q1-overflow.static.daxfs")}, mnt, "corrupt, refusing to mount"},
		{"relative mountpoint", Source{Image: good}, "mnt", "not absolute"},
		{"no source", Source{}, mnt, "exactly one of"},
		{"two sources", Source{Image: good, Pool: "memfile:/x", Digest: "sha256:" + strings.Repeat("a", 64)}, mnt, "exactly one of"},
		{"bad digest", Source{Pool: "memfile:/x", Digest: "sha256:zz"}, mnt, "is not sha256"},
		{"missing file", Source{Image: filepath.Join(dir, "nope")}, mnt, "no such file"},
	} {
		h, err := c.Serve(ctx, tc.src, tc.mnt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: handle %q, %v; want an error with %q", tc.name, h, err, tc.want)
		}
	}
	if isFuseMount(t, mnt) {
		unix.Unmount(mnt, unix.MNT_DETACH)
		t.Error("a refused serve mounted something")
	}
	if hs, _ := c.Served(ctx); len(hs) != 0 {
		t.Errorf("served after refusals: %v", hs)
	}
	if err := c.Stop(ctx, ""); err == nil {
		t.Error("stop without a handle accepted")
	}
}

// childrenOf lists pid's child processes (forked by any of its threads).
func childrenOf(pid int) []string {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	var kids []string
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		kids = append(kids, strings.Fields(string(b))...)
	}
	return kids
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
