package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/daxfs-csi/daxfs-csi/internal/buildinfo"
	"github.com/daxfs-csi/daxfs-csi/internal/metrics"
)

func TestParseEndpoint(t *testing.T) {
	for ep, want := range map[string]string{
		"unix:///run/csi/csi.sock":  "/run/csi/csi.sock",
		"unix:/run/csi/csi.sock":    "/run/csi/csi.sock",
		"unix:///run//csi/./x.sock": "/run/csi/x.sock",
	} {
		got, err := ParseEndpoint(ep)
		if err != nil || got != want {
			t.Errorf("ParseEndpoint(%q) = %q, %v; want %q", ep, got, err, want)
		}
	}
	for _, ep := range []string{"", "/run/csi.sock", "tcp://1.2.3.4:5", "unix://relative.sock"} {
		if _, err := ParseEndpoint(ep); err == nil {
			t.Errorf("ParseEndpoint(%q) accepted", ep)
		}
	}
}

func TestOptionsRejectMissingPieces(t *testing.T) {
	pool := PoolOf(openPool(t, 16<<20))
	for name, o := range map[string]Options{
		"no name":         {NodeID: "n", Endpoint: "unix:///x.sock", Pool: pool, StateDir: "/tmp"},
		"no node id":      {DriverName: "d", Endpoint: "unix:///x.sock", Pool: pool, StateDir: "/tmp"},
		"no pool":         {DriverName: "d", NodeID: "n", Endpoint: "unix:///x.sock", StateDir: "/tmp"},
		"node w/o server": {DriverName: "d", NodeID: "n", Endpoint: "unix:///x.sock", Pool: pool, StateDir: "/tmp", Mode: ModeNode},
		"bad mode":        {DriverName: "d", NodeID: "n", Endpoint: "unix:///x.sock", Pool: pool, StateDir: "/tmp", Mode: "both"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

func TestIdentity(t *testing.T) {
	ts := start(t, Options{Pool: PoolOf(openPool(t, 16<<20))})

	info, err := ts.ident.GetPluginInfo(bg, &csi.GetPluginInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetName() != "daxfs.csi.io" || info.GetVendorVersion() != buildinfo.Version() {
		t.Fatalf("plugin info = %v", info)
	}

	caps, err := ts.ident.GetPluginCapabilities(bg, &csi.GetPluginCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[csi.PluginCapability_Service_Type]bool{}
	for _, c := range caps.GetCapabilities() {
		got[c.GetService().GetType()] = true
	}
	if !got[csi.PluginCapability_Service_CONTROLLER_SERVICE] || !got[csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS] || len(got) != 2 {
		t.Fatalf("capabilities = %v", caps)
	}

	probe, err := ts.ident.Probe(bg, &csi.ProbeRequest{})
	if err != nil || !probe.GetReady().GetValue() {
		t.Fatalf("probe = %v, %v", probe, err)
	}
}

func TestProbeFailsWhenPoolClosedOrPathGone(t *testing.T) {
	p := openPool(t, 16<<20)
	dir := t.TempDir()
	ts := start(t, Options{Pool: PoolOf(p), ProbePaths: []string{dir}})

	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	_, err := ts.ident.Probe(bg, &csi.ProbeRequest{})
	wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(err.Error(), "mount path") {
		t.Fatalf("probe error %q does not name the mount path", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.ident.Probe(bg, &csi.ProbeRequest{}); err != nil {
		t.Fatalf("probe after the path came back: %v", err)
	}

	p.Close()
	_, err = ts.ident.Probe(bg, &csi.ProbeRequest{})
	wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(err.Error(), "pool") {
		t.Fatalf("probe error %q does not name the pool", err)
	}
}

func TestNodeOnlyServerHasNoController(t *testing.T) {
	ts := start(t, Options{Pool: PoolOf(openPool(t, 16<<20)), Mode: ModeNode, Node: &csi.UnimplementedNodeServer{}})
	caps, err := ts.ident.GetPluginCapabilities(bg, &csi.GetPluginCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range caps.GetCapabilities() {
		if c.GetService().GetType() == csi.PluginCapability_Service_CONTROLLER_SERVICE {
			t.Fatal("node-only server advertises the controller service")
		}
	}
	_, err = ts.ctrl.ControllerGetCapabilities(bg, &csi.ControllerGetCapabilitiesRequest{})
	wantCode(t, err, codes.Unimplemented)
}

func TestSocketLifecycle(t *testing.T) {
	pool := PoolOf(openPool(t, 16<<20))
	sock := filepath.Join(t.TempDir(), "sub", "csi.sock")
	ep := "unix://" + sock

	// A stale socket (nobody listening) is replaced.
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()

	ts := start(t, Options{Pool: pool, Endpoint: ep})
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode = %v, want a socket with 0660", fi.Mode())
	}

	// A live socket is not stolen.
	d2, err := New(Options{DriverName: "x", NodeID: "n", Mode: ModeController, Endpoint: ep, Pool: pool, StateDir: t.TempDir(), Metrics: metrics.New()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.Start(); err == nil || !strings.Contains(err.Error(), "listening") {
		d2.Stop()
		t.Fatalf("second server on a live socket: %v", err)
	}

	// A regular file is not deleted.
	file := filepath.Join(t.TempDir(), "not-a-socket")
	os.WriteFile(file, []byte("keep"), 0o644)
	d3, _ := New(Options{DriverName: "x", NodeID: "n", Mode: ModeController, Endpoint: "unix://" + file, Pool: pool, StateDir: t.TempDir(), Metrics: metrics.New()})
	if err := d3.Start(); err == nil {
		d3.Stop()
		t.Fatal("server started over a regular file")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatal("regular file at the endpoint was clobbered")
	}

	ts.d.Stop()
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after Stop: %v", err)
	}
}

func TestRunStopsOnCancelAndCountsCalls(t *testing.T) {
	m := metrics.New()
	sock := filepath.Join(t.TempDir(), "csi.sock")
	d, err := New(Options{DriverName: "daxfs.csi.io", NodeID: "n", Mode: ModeController, Endpoint: "unix://" + sock,
		Pool: PoolOf(openPool(t, 16<<20)), StateDir: t.TempDir(), Metrics: m, MetricsAddress: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	for i := 0; ; i++ {
		if d.MetricsAddr() != "" {
			break
		}
		if i > 500 {
			t.Fatal("server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn := dial(t, "unix://"+sock)
	ident, ctrl := csi.NewIdentityClient(conn), csi.NewControllerClient(conn)
	if _, err := ident.GetPluginInfo(bg, &csi.GetPluginInfoRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err = ctrl.DeleteVolume(bg, &csi.DeleteVolumeRequest{})
	wantCode(t, err, codes.InvalidArgument)

	resp, err := http.Get("http://" + d.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `daxfs_csi_operations_total{code="InvalidArgument",method="/csi.v1.Controller/DeleteVolume"} 1`) ||
		!strings.Contains(string(body), `daxfs_csi_operations_total{code="OK",method="/csi.v1.Identity/GetPluginInfo"} 1`) ||
		!strings.Contains(string(body), `daxfs_device_bytes_total{pool=`) {
		t.Fatalf("/metrics lacks the call or the pool:\n%s", body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	done <- nil // for the cleanup
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after Run returned: %v", err)
	}
}

// misbehavingNode provokes the interceptor: a plain Go error and a panic.
type misbehavingNode struct{ csi.UnimplementedNodeServer }

func (misbehavingNode) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return nil, fmt.Errorf("state record: %w", fs.ErrNotExist)
}

func (misbehavingNode) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	panic("boom")
}

func TestInterceptorMapsErrorsAndPanics(t *testing.T) {
	ts := start(t, Options{Pool: PoolOf(openPool(t, 16<<20)), Mode: ModeAll, Node: misbehavingNode{}})
	node := csi.NewNodeClient(ts.conn)
	_, err := node.NodeGetCapabilities(bg, &csi.NodeGetCapabilitiesRequest{})
	wantCode(t, err, codes.NotFound)
	if !strings.Contains(err.Error(), "state record") {
		t.Fatalf("error lost its message: %v", err)
	}
	_, err = node.NodeGetInfo(bg, &csi.NodeGetInfoRequest{})
	wantCode(t, err, codes.Internal)
	// The server survived the panic.
	if _, err := ts.ident.Probe(bg, &csi.ProbeRequest{}); err != nil {
		t.Fatal(err)
	}
}
