// Package sanity runs the kubernetes-csi sanity suite against the real
// `daxfs-csi serve --mode=all` binary: a real unix socket, a memory-file
// pool, real mounts (FUSE or kernel daxfs). Needs root.
package sanity

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/daxfs-csi/daxfs-csi/internal/fusehost"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// The suite skips these specs because the driver does not advertise the
// capability they test, and only these: any other skip fails the test.
var allowedSkips = []string{
	// Controller: no ControllerPublish (nothing to attach), snapshots,
	// clones, expansion (the content is the image), volume attribute
	// classes, volume health.
	"Controller Publish, UnpublishVolume not supported",
	"ControllerPublishVolume not supported",
	"ControllerUnpublishVolume not supported",
	"CreateSnapshot not supported",
	"DeleteSnapshot not supported",
	"ListSnapshots not supported",
	"GetSnapshot not supported",
	"Snapshot not supported",
	"Volume Cloning not supported",
	"ControllerExpandVolume not supported",
	"Modify volume not supported",
	"Modify Volume not supported",
	"ControllerModifyVolume not supported",
	"ControllerGetVolumeHealth not supported",
	"ControllerListVolumeHealth not supported",
	// No group controller service (group snapshots).
	"GroupControllerService not supported",
	"VolumeGroupSnapshots not supported",
	// Node: no expansion, no SINGLE_NODE_MULTI_WRITER capability, no
	// storage health RPC (CSI alpha).
	"NodeExpandVolume not supported",
	"Service does not have single node multi writer capability",
	"NodeGetStorageHealth not supported",
}

// repoRoot is two levels up from this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// testImage builds a small image with pkg/image's builder from a tree
// written here (DAXFS_SANITY_IMAGE overrides it with a file to copy). The
// 3 MiB file makes the image span two 2 MiB pool extents.
func testImage(t testing.TB, dir string) string {
	t.Helper()
	dst := filepath.Join(dir, "test.daxfs")
	if env := os.Getenv("DAXFS_SANITY_IMAGE"); env != "" {
		b, err := os.ReadFile(env)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	src := t.TempDir()
	for name, content := range testFiles {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := image.NewBuilder(image.BuildOptions{})
	defer b.Close()
	if err := b.AddDir(src); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

var testFiles = map[string][]byte{
	"hello.txt":        []byte("hello from device memory\n"),
	"dir1/exact8k.bin": pattern(8192, 3),
	"dir1/big.bin":     pattern(3<<20, 7),
}

func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*seed + i>>8)
	}
	return b
}

// buildBinary builds cmd/daxfs-csi once per test process (linking is
// the slow part of a run), into binDir, which TestMain removes.
func buildBinary(t testing.TB, _ string) string {
	t.Helper()
	if bin := os.Getenv("DAXFS_CSI_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		gobin, err := exec.LookPath("go")
		if err != nil {
			gobin = "/usr/local/go/bin/go"
		}
		bin := filepath.Join(binDir, "daxfs-csi")
		cmd := exec.Command(gobin, "build", "-o", bin, "./cmd/daxfs-csi")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		builtBin = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

var (
	binDir    string
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "daxfs-csi-sanity-bin-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

type server struct {
	dir      string
	endpoint string
	metrics  string
	cmd      *exec.Cmd
	log      string
}

// startServer runs `daxfs-csi serve --mode=all` in dir with the image dir
// allowed, and waits for its socket and /healthz.
func startServer(t *testing.T, bin, dir, imageDir string, extra ...string) *server {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &server{dir: dir, endpoint: "unix://" + filepath.Join(dir, "csi.sock"), log: filepath.Join(dir, "serve.log")}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.metrics = ln.Addr().String()
	ln.Close()
	logf, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--mode=all",
		"--endpoint", s.endpoint,
		"--driver-name", "daxfs.csi.io",
		"--node-id", "sanity-node",
		"--pool", "memfile:" + filepath.Join(dir, "pool"),
		"--pool-size", "64Mi",
		"--state-dir", filepath.Join(dir, "state"),
		"--allow-source", "file://" + imageDir + "/",
		"--metrics-address", s.metrics,
		"-v", "2",
	}, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { s.cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		s.stop(t, exited)
		cleanupMounts(t, dir)
		if t.Failed() {
			b, _ := os.ReadFile(s.log)
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("serve log (tail):\n%s", b)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + s.metrics + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(s.log)
			t.Fatalf("daxfs-csi serve exited: %v\n%s", s.cmd.ProcessState, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daxfs-csi serve not healthy after 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// stop sends SIGTERM (the graceful path under test) and waits.
func (s *server) stop(t *testing.T, exited chan struct{}) {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("daxfs-csi serve exited %d after SIGTERM", code)
		}
		if _, err := os.Lstat(strings.TrimPrefix(s.endpoint, "unix://")); err == nil {
			t.Errorf("socket left behind after SIGTERM")
		}
	case <-time.After(40 * time.Second):
		t.Errorf("daxfs-csi serve ignored SIGTERM for 40s; killing it")
		s.cmd.Process.Kill()
		<-exited
	}
}

// cleanupMounts unmounts whatever is still mounted under dir and ends the
// fuse-serve processes our server started (they outlive it by design),
// found by dir in their command line and ended by pid.
func cleanupMounts(t *testing.T, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err == nil {
		var points []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
				points = append(points, fields[4])
			}
		}
		f.Close()
		// Deepest first.
		slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
		for _, p := range points {
			t.Logf("cleanup: unmounting leftover %s", p)
			_ = syscall.Unmount(p, syscall.MNT_DETACH)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("fuse-serve")) || !bytes.Contains(b, []byte(dir)) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if pid > 0 && pid != os.Getpid() {
			t.Logf("cleanup: ending leftover fuse-serve pid %d", pid)
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
}

func TestSanity(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { cleanupMounts(t, dir) }) // runs last: after the server stopped
	imageDir := filepath.Join(dir, "images")
	os.MkdirAll(imageDir, 0o755)
	img := testImage(t, imageDir)
	bin := buildBinary(t, dir)
	srv := startServer(t, bin, filepath.Join(dir, "run"), imageDir)

	cfg := sanity.NewTestConfig()
	cfg.Address = srv.endpoint
	cfg.TargetPath = filepath.Join(dir, "target")
	cfg.StagingPath = filepath.Join(dir, "staging")
	// Sanity asks for SINGLE_NODE_WRITER everywhere: the volume must be
	// writable (a private writable layer over the read-only image).
	cfg.TestVolumeParameters = map[string]string{"image": "file://" + img, "writable": "true"}
	cfg.IdempotentCount = 3

	var skipped []string
	ginkgo.ReportAfterEach(func(r types.SpecReport) {
		if r.State == types.SpecStateSkipped {
			skipped = append(skipped, fmt.Sprintf("%s: %s", r.FullText(), r.Failure.Message))
			if !slices.Contains(allowedSkips, r.Failure.Message) {
				t.Errorf("spec skipped for a reason other than an unadvertised capability: %q: %s", r.FullText(), r.Failure.Message)
			}
		}
	})
	sanity.Test(t, cfg)
	if len(skipped) == 0 {
		t.Error("no skipped spec reported: the skip check did not run")
	}
	t.Logf("%d specs skipped for capabilities the driver does not advertise", len(skipped))
}

// TestMetricsAfterTwoVolumesOfOneImage publishes two volumes of one image
// and reads /metrics over HTTP: one staged image, two references, and the
// region bytes saved by sharing.
func TestMetricsAfterTwoVolumesOfOneImage(t *testing.T) {
	gomega.RegisterTestingT(t)
	dir := t.TempDir()
	t.Cleanup(func() { cleanupMounts(t, dir) }) // runs last: after the server stopped
	imageDir := filepath.Join(dir, "images")
	os.MkdirAll(imageDir, 0o755)
	img := testImage(t, imageDir)
	bin := buildBinary(t, dir)
	srv := startServer(t, bin, filepath.Join(dir, "run"), imageDir)

	conn, err := grpc.NewClient(srv.endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() }) // after the unpublish cleanups below
	ctrl, node := csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	reader := &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY},
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	}
	var region int64
	for i := range 2 {
		v, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{
			Name:               fmt.Sprintf("pvc-%d", i),
			Parameters:         map[string]string{"image": "file://" + img},
			VolumeCapabilities: []*csi.VolumeCapability{reader},
		})
		if err != nil {
			t.Fatal(err)
		}
		region = v.GetVolume().GetCapacityBytes()
		id, vctx := v.GetVolume().GetVolumeId(), v.GetVolume().GetVolumeContext()
		staging := filepath.Join(dir, "staging", id)
		target := filepath.Join(dir, "pods", id, "mount")
		os.MkdirAll(staging, 0o750)
		os.MkdirAll(filepath.Dir(target), 0o750)
		if _, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging,
			VolumeCapability: reader, VolumeContext: vctx}); err != nil {
			t.Fatal(err)
		}
		if _, err := node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging,
			TargetPath: target, VolumeCapability: reader, VolumeContext: vctx, Readonly: true}); err != nil {
			t.Fatal(err)
		}
		// The published volume serves the image's bytes.
		if os.Getenv("DAXFS_SANITY_IMAGE") == "" {
			for name, want := range testFiles {
				got, err := os.ReadFile(filepath.Join(target, name))
				if err != nil {
					t.Fatalf("read through the published volume: %v", err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s through the mount differs from what was built (%d bytes, want %d)", name, len(got), len(want))
				}
			}
		}
		t.Cleanup(func() {
			node.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
			node.NodeUnstageVolume(context.Background(), &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging})
		})
	}

	resp, err := http.Get("http://" + srv.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	metric := func(re string) string {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + re + ` (\S+)$`).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("/metrics has no %s:\n%s", re, grepDaxfs(text))
		}
		return m[1]
	}
	if got := metric(`daxfs_staged_images`); got != "1" {
		t.Errorf("daxfs_staged_images = %s, want 1", got)
	}
	if got := metric(`daxfs_image_references\{digest="sha256:[0-9a-f]{64}"\}`); got != "2" {
		t.Errorf("daxfs_image_references = %s, want 2", got)
	}
	// One image held once for two volumes saves one region.
	if got, _ := strconv.ParseFloat(metric(`daxfs_shared_bytes_saved`), 64); got != float64(region) || region == 0 {
		t.Errorf("daxfs_shared_bytes_saved = %v, want one region (%d bytes)", got, region)
	}
	metric(`daxfs_image_mount_backend\{backend="(fuse|kernel)",digest="sha256:[0-9a-f]{64}",reason="[A-Za-z]+"\}`)
	metric(`daxfs_stage_duration_seconds_count\{backend="(fuse|kernel)"\}`)
	if got := metric(`daxfs_csi_operations_total\{code="OK",method="/csi.v1.Node/NodePublishVolume"\}`); got != "2" {
		t.Errorf("NodePublishVolume OK count = %s, want 2", got)
	}
	metric(`daxfs_device_bytes_used\{pool="[^"]+"\}`)
}

func grepDaxfs(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "daxfs_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestFuseHostSidecar runs serve with --fuse-host-socket: the image's
// fuse-serve is launched by the fuse-host process (its parent), not by the
// plugin, and the published volume reads.
func TestFuseHostSidecar(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { cleanupMounts(t, dir) })
	imageDir := filepath.Join(dir, "images")
	os.MkdirAll(imageDir, 0o755)
	img := testImage(t, imageDir)
	bin := buildBinary(t, dir)

	sock := filepath.Join(dir, "fuse-host.sock")
	host := exec.Command(bin, "fuse-host", "--socket", sock)
	hostLog, _ := os.Create(filepath.Join(dir, "fuse-host.log"))
	host.Stdout, host.Stderr = hostLog, hostLog
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	hostDone := make(chan struct{})
	go func() { host.Wait(); hostLog.Close(); close(hostDone) }()
	t.Cleanup(func() {
		host.Process.Signal(syscall.SIGTERM)
		select {
		case <-hostDone:
		case <-time.After(20 * time.Second):
			host.Process.Kill()
			<-hostDone
		}
	})
	for i := 0; ; i++ {
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			break
		}
		if i > 600 {
			b, _ := os.ReadFile(filepath.Join(dir, "fuse-host.log"))
			t.Fatalf("no fuse-host socket after 60s:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}

	srv := startServer(t, bin, filepath.Join(dir, "run"), imageDir, "--fuse-host-socket", sock, "--mount-mode", "fuse")
	conn, err := grpc.NewClient(srv.endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctrl, node := csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reader := &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	}
	v, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-fh",
		Parameters: map[string]string{"image": "file://" + img}, VolumeCapabilities: []*csi.VolumeCapability{reader}})
	if err != nil {
		t.Fatal(err)
	}
	id, vctx := v.GetVolume().GetVolumeId(), v.GetVolume().GetVolumeContext()
	staging, target := filepath.Join(dir, "staging"), filepath.Join(dir, "pod", "mount")
	os.MkdirAll(staging, 0o750)
	os.MkdirAll(filepath.Dir(target), 0o750)
	if _, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging,
		VolumeCapability: reader, VolumeContext: vctx}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		node.NodeUnstageVolume(context.Background(), &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging})
	})
	if _, err := node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging,
		TargetPath: target, VolumeCapability: reader, VolumeContext: vctx, Readonly: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		node.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
	})
	if got, err := os.ReadFile(filepath.Join(target, "hello.txt")); err != nil || !bytes.Equal(got, testFiles["hello.txt"]) {
		t.Fatalf("read through the volume: %q, %v", got, err)
	}

	// fuse-host serves the image in its own process (one handle), outside
	// the plugin: no fuse-serve process runs for it at all.
	served, err := fusehost.Client{Socket: sock}.Served(ctx)
	if err != nil || len(served) != 1 {
		t.Fatalf("fuse-host serves %v, %v; want exactly one image", served, err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte("fuse-serve")) && bytes.Contains(b, []byte(dir)) {
			t.Fatalf("%s runs fuse-serve (%q); want the image served by fuse-host (pid %d), plugin pid %d",
				p, bytes.ReplaceAll(b, []byte{0}, []byte{' '}), host.Process.Pid, srv.cmd.Process.Pid)
		}
	}
}
