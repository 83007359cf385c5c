package driver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/daxfs-csi/daxfs-csi/internal/metrics"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

const testAlign = 2 << 20 // the memfile pool's default extent align

// openPool makes a real memory-file pool in a temp dir.
func openPool(t *testing.T, size int64) *daxdev.Pool {
	t.Helper()
	p, err := daxdev.OpenPool("memfile:"+filepath.Join(t.TempDir(), "pool"), daxdev.PoolOptions{Size: size, Init: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// writeImage builds a real DAXFS image holding one file of n bytes into
// dir/img.daxfs. Returns the file:// URI and the image's digest.
func writeImage(t *testing.T, dir string, n int) (string, string) {
	t.Helper()
	src := t.TempDir()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(filepath.Join(src, "data.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	b := image.NewBuilder(image.BuildOptions{})
	defer b.Close()
	if err := b.AddDir(src); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "img.daxfs")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return "file://" + path, "sha256:" + hex.EncodeToString(sum[:])
}

type testServer struct {
	d     *Driver
	conn  *grpc.ClientConn
	ctrl  csi.ControllerClient
	ident csi.IdentityClient
	opts  Options
}

// start runs a controller-mode driver on a real unix socket.
func start(t *testing.T, opts Options) *testServer {
	t.Helper()
	if opts.DriverName == "" {
		opts.DriverName = "daxfs.csi.io"
	}
	if opts.NodeID == "" {
		opts.NodeID = "node-a"
	}
	if opts.Mode == "" {
		opts.Mode = ModeController
	}
	if opts.Endpoint == "" {
		opts.Endpoint = "unix://" + filepath.Join(t.TempDir(), "csi.sock")
	}
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	conn := dial(t, opts.Endpoint)
	return &testServer{d: d, conn: conn, ctrl: csi.NewControllerClient(conn), ident: csi.NewIdentityClient(conn), opts: d.opts}
}

func dial(t *testing.T, endpoint string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("code = %v (%v), want %v", got, err, want)
	}
}

func mountCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	}
}

var bg = context.Background()
