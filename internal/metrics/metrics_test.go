package metrics

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestStateCollectorReadsSourcesAtScrape(t *testing.T) {
	s := New()
	images := []Image{
		{Digest: "sha256:aa", RegionBytes: 4096, References: 3, Backend: "fuse", Reason: "KernelNoPrivateMap", Healthy: true},
		{Digest: "sha256:bb", RegionBytes: 8192, References: 1, Backend: "kernel", Reason: "KernelDAX"},
	}
	s.SetSources(func() (PoolStats, bool) {
		return PoolStats{Pool: "p1", Total: 1 << 20, Used: 12288}, true
	}, func() []Image { return images })

	want := `
# HELP daxfs_shared_bytes_saved Device bytes saved by sharing: sum over images of region bytes x (references - 1).
# TYPE daxfs_shared_bytes_saved gauge
daxfs_shared_bytes_saved 8192
# HELP daxfs_staged_images Images staged on this node.
# TYPE daxfs_staged_images gauge
daxfs_staged_images 2
# HELP daxfs_image_references Volumes using a staged image.
# TYPE daxfs_image_references gauge
daxfs_image_references{digest="sha256:aa"} 3
daxfs_image_references{digest="sha256:bb"} 1
# HELP daxfs_image_mount_backend Mount backend of a staged image (1 for the backend in use) and why it was chosen.
# TYPE daxfs_image_mount_backend gauge
daxfs_image_mount_backend{backend="fuse",digest="sha256:aa",reason="KernelNoPrivateMap"} 1
daxfs_image_mount_backend{backend="kernel",digest="sha256:bb",reason="KernelDAX"} 1
# HELP daxfs_device_bytes_used Bytes of the data region held by extents.
# TYPE daxfs_device_bytes_used gauge
daxfs_device_bytes_used{pool="p1"} 12288
`
	if err := testutil.GatherAndCompare(s.Registry, strings.NewReader(want),
		"daxfs_shared_bytes_saved", "daxfs_staged_images", "daxfs_image_references",
		"daxfs_image_mount_backend", "daxfs_device_bytes_used"); err != nil {
		t.Fatal(err)
	}

	// The gauges follow the sources without any push.
	images = images[1:]
	if err := testutil.GatherAndCompare(s.Registry, strings.NewReader(`
# HELP daxfs_staged_images Images staged on this node.
# TYPE daxfs_staged_images gauge
daxfs_staged_images 1
`), "daxfs_staged_images"); err != nil {
		t.Fatal(err)
	}
}

// The kernel module's probed capabilities are gauges once probed, absent before.
func TestKernelModuleCapability(t *testing.T) {
	s := New()
	probed := false
	s.SetKernelSource(func() (KernelModule, bool) { return KernelModule{Mount: true, SharedMap: true}, probed })
	if n, err := testutil.GatherAndCount(s.Registry, "daxfs_kernel_module_capability"); err != nil || n != 0 {
		t.Fatalf("before the probe: %d series, %v", n, err)
	}
	probed = true
	if err := testutil.GatherAndCompare(s.Registry, strings.NewReader(`
# HELP daxfs_kernel_module_capability What the probe found the loaded kernel daxfs module able to do: mount, shared_map (DAX), private_write_map (exec); 1 yes, 0 no.
# TYPE daxfs_kernel_module_capability gauge
daxfs_kernel_module_capability{capability="mount"} 1
daxfs_kernel_module_capability{capability="private_write_map"} 0
daxfs_kernel_module_capability{capability="shared_map"} 1
`), "daxfs_kernel_module_capability"); err != nil {
		t.Fatal(err)
	}
}

func TestPoolClosedLeavesDeviceGaugesOut(t *testing.T) {
	s := New()
	s.SetSources(func() (PoolStats, bool) { return PoolStats{}, false }, nil)
	n, err := testutil.GatherAndCount(s.Registry, "daxfs_device_bytes_total", "daxfs_staged_images")
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("got %d series, want none without a pool or node", n)
	}
}

func TestCountersAndHandler(t *testing.T) {
	s := New()
	s.ObserveStage("fuse", 30*time.Millisecond)
	s.ObserveStage("fuse", 2*time.Second)
	s.ObserveOperation("/csi.v1.Node/NodePublishVolume", "OK")
	s.ObserveOperation("/csi.v1.Node/NodePublishVolume", "OK")
	s.ObserveOperation("/csi.v1.Node/NodePublishVolume", "NotFound")

	if got := testutil.ToFloat64(s.operations.WithLabelValues("/csi.v1.Node/NodePublishVolume", "OK")); got != 2 {
		t.Fatalf("OK operations = %v, want 2", got)
	}
	if n := testutil.CollectAndCount(s.stageDuration); n != 1 {
		t.Fatalf("stage histogram series = %d, want 1", n)
	}

	unhealthy := errors.New("pool closed")
	var health error
	srv := &http.Server{Handler: s.Handler(func() error { return health })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	base := "http://" + ln.Addr().String()

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, `daxfs_stage_duration_seconds_count{backend="fuse"} 2`) ||
		!strings.Contains(body, `daxfs_csi_operations_total{code="NotFound",method="/csi.v1.Node/NodePublishVolume"} 1`) {
		t.Fatalf("/metrics = %d:\n%s", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz = %d, want 200", code)
	}
	health = unhealthy
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, "pool closed") {
		t.Fatalf("/healthz unhealthy = %d %q, want 503 naming the cause", code, body)
	}
}
