package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
	"github.com/daxfs-csi/daxfs-csi/internal/metrics"
)

// Driver is one daxfs-csi gRPC server on a unix socket.
type Driver struct {
	opts       Options
	identity   *identityServer
	controller *controllerServer // nil in node mode

	mu         sync.Mutex
	grpc       *grpc.Server
	socketPath string
	http       *http.Server
	httpAddr   string
	served     chan error

	registration *registrationServer // nil unless RegistrationDir is set
	regGRPC      *grpc.Server
	regPath      string
}

// New checks the options and builds the services; nothing listens yet.
func New(opts Options) (*Driver, error) {
	if err := opts.complete(); err != nil {
		return nil, fmt.Errorf("driver options: %w", err)
	}
	d := &Driver{opts: opts}
	d.identity = &identityServer{d: d}
	if opts.Mode.controller() {
		c, err := newControllerServer(&d.opts)
		if err != nil {
			return nil, err
		}
		d.controller = c
	}
	return d, nil
}

// ParseEndpoint returns the socket path of unix:///abs/path (or unix:/abs/path).
func ParseEndpoint(ep string) (string, error) {
	p, ok := strings.CutPrefix(ep, "unix://")
	if !ok {
		p, ok = strings.CutPrefix(ep, "unix:")
	}
	if !ok || !filepath.IsAbs(p) {
		return "", fmt.Errorf("endpoint %q: want unix:///absolute/path.sock", ep)
	}
	return filepath.Clean(p), nil
}

// Start listens on the endpoint (and the metrics address) and serves in the
// background until Stop.
func (d *Driver) Start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.grpc != nil {
		return errors.New("driver already started")
	}
	path, err := ParseEndpoint(d.opts.Endpoint)
	if err != nil {
		return err
	}
	ln, err := listenUnix(path)
	if err != nil {
		return err
	}

	srv := grpc.NewServer(grpc.UnaryInterceptor(d.intercept))
	csi.RegisterIdentityServer(srv, d.identity)
	if d.controller != nil {
		csi.RegisterControllerServer(srv, d.controller)
	}
	if d.opts.Mode.node() {
		csi.RegisterNodeServer(srv, d.opts.Node)
	}

	d.opts.Metrics.SetSources(d.poolStats, d.opts.Images)
	if d.opts.MetricsAddress != "" {
		mln, err := net.Listen("tcp", d.opts.MetricsAddress)
		if err != nil {
			ln.Close()
			os.Remove(path)
			return fmt.Errorf("metrics address %s: %w", d.opts.MetricsAddress, err)
		}
		d.http = &http.Server{
			Handler:           d.opts.Metrics.Handler(d.healthy),
			ReadHeaderTimeout: 10 * time.Second,
		}
		d.httpAddr = mln.Addr().String()
		go func() {
			if err := d.http.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				klog.ErrorS(err, "Metrics server stopped", "address", d.httpAddr)
			}
		}()
	}

	d.grpc, d.socketPath, d.served = srv, path, make(chan error, 1)
	go func() { d.served <- srv.Serve(ln) }()
	// Register with the kubelet only once the CSI socket answers.
	if err := d.startRegistration(); err != nil {
		d.stopLocked()
		return err
	}
	klog.InfoS("Serving CSI", "driver", d.opts.DriverName, "version", d.opts.Version,
		"mode", d.opts.Mode, "node", d.opts.NodeID, "endpoint", path, "metrics", d.httpAddr)
	return nil
}

// MetricsAddr is where /metrics listens ("" when disabled), after Start.
func (d *Driver) MetricsAddr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.httpAddr
}

// Stop drains in-flight calls (up to ShutdownTimeout, then cuts them) and
// removes the socket.
func (d *Driver) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopLocked()
}

func (d *Driver) stopLocked() {
	if d.grpc == nil {
		return
	}
	d.stopRegistration()
	done := make(chan struct{})
	go func() { d.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(d.opts.ShutdownTimeout):
		klog.InfoS("Graceful stop timed out, cutting in-flight calls", "timeout", d.opts.ShutdownTimeout)
		d.grpc.Stop()
		<-done
	}
	if d.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = d.http.Shutdown(ctx)
		cancel()
		d.http = nil
	}
	if err := os.Remove(d.socketPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		klog.ErrorS(err, "Removing socket", "path", d.socketPath)
	}
	d.grpc = nil
	klog.InfoS("Stopped CSI server", "endpoint", d.socketPath)
}

// Run serves until ctx is done (the caller ties it to SIGTERM/SIGINT), then
// stops gracefully.
func (d *Driver) Run(ctx context.Context) error {
	if err := d.Start(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		klog.InfoS("Shutting down", "reason", context.Cause(ctx))
		d.Stop()
		return nil
	case err := <-d.served:
		d.Stop()
		return fmt.Errorf("gRPC server: %w", err)
	}
}

// listenUnix removes a stale socket (refusing one something still answers
// on, or a path that is not a socket) and listens with mode 0660.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("socket dir: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("endpoint %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("endpoint %s: another server is listening on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
		klog.InfoS("Removed stale socket", "path", path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	return ln, nil
}

// intercept logs every call, counts it by method and code, turns our plain
// errors into gRPC statuses and a panic into Internal.
func (d *Driver) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			klog.ErrorS(nil, "Panic in CSI call", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			resp, err = nil, status.Errorf(codes.Internal, "internal error: %v", r)
		}
		err = grpccode.ToStatus(err)
		code := status.Code(err)
		d.opts.Metrics.ObserveOperation(info.FullMethod, code.String())
		kv := []any{"method", info.FullMethod, "code", code, "duration", time.Since(start)}
		if v, ok := req.(interface{ GetVolumeId() string }); ok && v.GetVolumeId() != "" {
			kv = append(kv, "volumeID", v.GetVolumeId())
		} else if v, ok := req.(*csi.CreateVolumeRequest); ok {
			kv = append(kv, "name", v.GetName())
			if r, ok := resp.(*csi.CreateVolumeResponse); ok && r.GetVolume().GetVolumeId() != "" {
				kv = append(kv, "volumeID", r.GetVolume().GetVolumeId())
			}
		}
		if err != nil {
			klog.ErrorS(err, "CSI call failed", kv...)
		} else {
			klog.InfoS("CSI call", kv...)
		}
	}()
	return handler(ctx, req)
}

func (d *Driver) poolStats() (metrics.PoolStats, bool) {
	if d.opts.Pool == nil {
		return metrics.PoolStats{}, false
	}
	s, err := d.opts.Pool.Space()
	if err != nil {
		return metrics.PoolStats{}, false
	}
	return metrics.PoolStats{Pool: s.ID, Total: s.Size, Used: s.Size - s.Free}, true
}

// healthy backs /healthz and Probe: the pool (or in cluster mode the API
// server) answers and the probe paths are readable directories.
func (d *Driver) healthy() error {
	if d.opts.Pool != nil {
		if _, err := d.opts.Pool.Space(); err != nil {
			return fmt.Errorf("pool: %w", err)
		}
	}
	if d.opts.Cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.opts.Cluster.Healthy(ctx); err != nil {
			return fmt.Errorf("kubernetes API: %w", err)
		}
	}
	for _, p := range d.opts.ProbePaths {
		if err := statWithin(p, 5*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// statWithin stats in a goroutine: a dead FUSE server makes stat hang, and
// a hung Probe is worse than a failed one.
func statWithin(path string, timeout time.Duration) error {
	res := make(chan error, 1)
	go func() {
		fi, err := os.Stat(path)
		if err == nil && !fi.IsDir() {
			err = fmt.Errorf("%s is not a directory", path)
		}
		res <- err
	}()
	select {
	case err := <-res:
		if err != nil {
			return fmt.Errorf("mount path: %w", err)
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("mount path %s: stat did not answer within %s", path, timeout)
	}
}
