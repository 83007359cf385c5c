package driver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"google.golang.org/grpc"
	"k8s.io/klog/v2"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// registrationServer answers the kubelet's plugin watcher on
// <RegistrationDir>/<driver>-reg.sock, the job node-driver-registrar
// otherwise does from a sidecar: it tells the kubelet where the CSI socket
// is. Served only with the node service.
type registrationServer struct {
	registerapi.UnimplementedRegistrationServer
	name, endpoint string

	mu         sync.Mutex
	registered bool
	lastError  string
}

func (r *registrationServer) GetInfo(ctx context.Context, req *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.name,
		Endpoint:          r.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registrationServer) NotifyRegistrationStatus(ctx context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	r.mu.Lock()
	r.registered, r.lastError = st.GetPluginRegistered(), st.GetError()
	r.mu.Unlock()
	if st.GetPluginRegistered() {
		klog.InfoS("Registered with the kubelet", "driver", r.name, "endpoint", r.endpoint)
	} else {
		klog.ErrorS(nil, "Kubelet refused the plugin registration", "driver", r.name, "error", st.GetError())
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

// state says whether the kubelet accepted us, for Probe and tests.
func (r *registrationServer) state() (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.registered, r.lastError
}

// startRegistration listens on the registration socket; the caller holds d.mu.
func (d *Driver) startRegistration() error {
	if d.opts.RegistrationDir == "" || !d.opts.Mode.node() {
		return nil
	}
	endpoint := d.opts.KubeletRegistrationPath
	if endpoint == "" {
		endpoint = d.socketPath
	}
	path := filepath.Join(d.opts.RegistrationDir, d.opts.DriverName+"-reg.sock")
	ln, err := listenUnix(path)
	if err != nil {
		return fmt.Errorf("registration socket: %w", err)
	}
	d.registration = &registrationServer{name: d.opts.DriverName, endpoint: endpoint}
	d.regGRPC, d.regPath = grpc.NewServer(), path
	registerapi.RegisterRegistrationServer(d.regGRPC, d.registration)
	go func() {
		if err := d.regGRPC.Serve(ln); err != nil {
			klog.ErrorS(err, "Registration server stopped", "path", path)
		}
	}()
	klog.InfoS("Serving kubelet plugin registration", "socket", path, "csiEndpoint", endpoint)
	return nil
}

// stopRegistration removes the socket first, so the kubelet deregisters
// the plugin; the caller holds d.mu.
func (d *Driver) stopRegistration() {
	if d.regGRPC == nil {
		return
	}
	_ = os.Remove(d.regPath)
	d.regGRPC.Stop()
	d.regGRPC = nil
}
