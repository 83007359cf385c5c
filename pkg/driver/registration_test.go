package driver

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// The kubelet's side of plugin registration, over the real socket.
func TestKubeletRegistration(t *testing.T) {
	regDir := t.TempDir()
	ts := start(t, Options{Pool: PoolOf(openPool(t, 16<<20)), Mode: ModeAll, Node: &csi.UnimplementedNodeServer{},
		RegistrationDir: regDir, KubeletRegistrationPath: "/var/lib/kubelet/plugins/daxfs.csi.io/csi.sock"})
	sock := filepath.Join(regDir, "daxfs.csi.io-reg.sock")
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("registration socket: %v %v", fi, err)
	}
	reg := registerapi.NewRegistrationClient(dial(t, "unix://"+sock))
	info, err := reg.GetInfo(bg, &registerapi.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetType() != registerapi.CSIPlugin || info.GetName() != "daxfs.csi.io" ||
		info.GetEndpoint() != "/var/lib/kubelet/plugins/daxfs.csi.io/csi.sock" || len(info.GetSupportedVersions()) == 0 {
		t.Fatalf("plugin info = %v", info)
	}
	if _, err := reg.NotifyRegistrationStatus(bg, &registerapi.RegistrationStatus{PluginRegistered: false, Error: "version"}); err != nil {
		t.Fatal(err)
	}
	if ok, msg := ts.d.registration.state(); ok || msg != "version" {
		t.Fatalf("state after refusal = %v %q", ok, msg)
	}
	if _, err := reg.NotifyRegistrationStatus(bg, &registerapi.RegistrationStatus{PluginRegistered: true}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := ts.d.registration.state(); !ok {
		t.Fatal("not registered after the kubelet accepted")
	}

	// Stopping removes the socket, which is how the kubelet learns we left.
	ts.d.Stop()
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("registration socket after Stop: %v", err)
	}
}

func TestNoRegistrationWithoutNodeService(t *testing.T) {
	regDir := t.TempDir()
	start(t, Options{Pool: PoolOf(openPool(t, 16<<20)), Mode: ModeController, RegistrationDir: regDir})
	if ents, _ := os.ReadDir(regDir); len(ents) != 0 {
		t.Fatalf("controller-only server registered with the kubelet: %v", ents)
	}
}
