package nodeserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/daxfs-csi/daxfs-csi/internal/volume"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"

	"github.com/daxfs-csi/daxfs-csi/internal/mounttest"
	"github.com/daxfs-csi/daxfs-csi/internal/sharedtest"
)

func samplePath(t testing.TB, name string) string { return sharedtest.Sample(t, name) }

// countingPool counts fills: "staged exactly once" is observable.
type countingPool struct {
	*daxdev.Pool
	fills atomic.Int32
}

func (c *countingPool) Stage(ctx context.Context, digest string, n int64, owner string, fill func([]byte) error) (daxdev.Extent, error) {
	return c.Pool.Stage(ctx, digest, n, owner, func(b []byte) error {
		c.fills.Add(1)
		return fill(b)
	})
}

// env is one node: a memfile pool, a state dir and an image dir, all under
// a temp root that cleanup unmounts and whose fuse-serve processes it ends.
type env struct {
	t        testing.TB
	root     string
	poolSpec string
	pool     *countingPool
	images   string // allowed source dir
	opts     Options
	ns       *NodeServer
}

func newEnv(t testing.TB, poolSize int64, mod func(*Options)) *env {
	t.Helper()
	root := t.TempDir()
	e := &env{t: t, root: root, images: filepath.Join(root, "images")}
	os.MkdirAll(e.images, 0o755)
	e.poolSpec = "memfile:" + filepath.Join(root, "pool")
	p, err := daxdev.OpenPool(e.poolSpec, daxdev.PoolOptions{Size: poolSize, Init: true})
	if err != nil {
		t.Fatal(err)
	}
	e.pool = &countingPool{Pool: p}
	t.Cleanup(func() {
		cleanupRoot(t, root)
		p.Close()
	})
	e.opts = Options{
		NodeID:           "node-1",
		Pool:             e.pool,
		PoolSpec:         e.poolSpec,
		StateDir:         filepath.Join(root, "state"),
		AllowSources:     volume.AllowList{"file://" + e.images + "/"},
		FuseServeCommand: fuseServeArgv,
		ProcFilesystems:  "/proc/filesystems",
		HealthInterval:   -1, // tests drive repairs; TestHealthWatch runs the loop
	}
	if mod != nil {
		mod(&e.opts)
	}
	e.ns = e.newServer()
	return e
}

func (e *env) newServer() *NodeServer {
	e.t.Helper()
	ns, err := New(e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return ns
}

// addImage copies a sample into the allowed dir; returns its URI and digest.
func (e *env) addImage(sample, name string) (uri, digest string) {
	e.t.Helper()
	b, err := os.ReadFile(samplePath(e.t, sample))
	if err != nil {
		e.t.Fatal(err)
	}
	return e.writeImage(name, b)
}

func (e *env) writeImage(name string, b []byte) (uri, digest string) {
	e.t.Helper()
	p := filepath.Join(e.images, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		e.t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return "file://" + p, "sha256:" + hex.EncodeToString(h[:])
}

// checkReleased asserts that the image digest left the pool and that
// nothing is mounted under the test root any more; what names the moment.
func (e *env) checkReleased(t *testing.T, digest, what string) {
	t.Helper()
	if _, ok := e.pool.Lookup(digest); ok {
		t.Errorf("%s: image %s is still in the pool", what, digest)
	}
	if m := mountsUnder(e.root); len(m) != 0 {
		t.Errorf("%s: mounts left: %v", what, m)
	}
}

func (e *env) path(elem ...string) string { return filepath.Join(append([]string{e.root}, elem...)...) }

func roCap() *csi.VolumeCapability {
	return mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY)
}

func (e *env) stage(id, uri, digest, staging string, extra map[string]string) error {
	ctx := map[string]string{"image": uri}
	if digest != "" {
		ctx["digest"] = digest
	}
	for k, v := range extra {
		ctx[k] = v
	}
	_, err := e.ns.NodeStageVolume(context.Background(), &csi.NodeStageVolumeRequest{
		VolumeId: id, StagingTargetPath: staging, VolumeCapability: roCap(), VolumeContext: ctx})
	return err
}

func (e *env) publish(id, uri, digest, staging, target string, extra map[string]string) error {
	ctx := map[string]string{"image": uri}
	if digest != "" {
		ctx["digest"] = digest
	}
	if staging == "" {
		ctx[volume.AttrEphemeral] = "true"
	}
	for k, v := range extra {
		ctx[k] = v
	}
	_, err := e.ns.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{
		VolumeId: id, StagingTargetPath: staging, TargetPath: target,
		VolumeCapability: mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER), VolumeContext: ctx})
	return err
}

func (e *env) unpublish(id, target string) error {
	_, err := e.ns.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
	return err
}

func (e *env) unstage(id, staging string) error {
	_, err := e.ns.NodeUnstageVolume(context.Background(), &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging})
	return err
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantCode(t testing.TB, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Errorf("%s: got %v (%v), want %v", what, status.Code(err), err, code)
	} else {
		t.Logf("%s: %v", what, err)
	}
}

// checkTree compares what dir shows with a sample's manifest: every
// regular file's bytes, every symlink target, every mode.
func checkTree(t testing.TB, dir, manifest string) {
	t.Helper()
	m := sharedtest.Manifest(t, manifest)
	files := 0
	for _, en := range m {
		p := filepath.Join(dir, en.Path)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Errorf("%s: %v", en.Path, err)
			continue
		}
		if en.Path != "/" && st.Mode != en.Mode {
			t.Errorf("%s: mode %o, want %o", en.Path, st.Mode, en.Mode)
		}
		switch en.Type {
		case "file":
			f, err := os.Open(p)
			if err != nil {
				t.Errorf("%s: %v", en.Path, err)
				continue
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil || hex.EncodeToString(h.Sum(nil)) != en.SHA256 {
				t.Errorf("%s: content differs from the source (%v)", en.Path, err)
			}
			files++
		case "symlink":
			if got, err := os.Readlink(p); err != nil || got != en.Target {
				t.Errorf("%s: link %q %v, want %q", en.Path, got, err, en.Target)
			}
		}
	}
	if len(m) > 1 && files == 0 {
		t.Errorf("manifest %s had no files to compare", manifest)
	}
}

// fuseMounts lists the fuse mounts under dir.
func fuseMounts(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		i := indexOf(f, "-")
		if i < 0 || i+1 >= len(f) || !strings.HasPrefix(f[i+1], "fuse") {
			continue
		}
		if strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

func indexOf(f []string, s string) int {
	for i, x := range f {
		if x == s {
			return i
		}
	}
	return -1
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return b
}

func cleanupRoot(t testing.TB, root string) { mounttest.CleanupRoot(t, root) }

func mountsUnder(root string) []string { return mounttest.MountsUnder(root) }

func fuseServePIDs(root string) []int { return mounttest.FuseServePIDs(root) }
