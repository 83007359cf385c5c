package main

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/daxfs-csi/daxfs-csi/internal/oci"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

// pushTinyImage serves a one-layer image from an in-process registry on
// loopback and returns its oci:// source pinned by digest.
func pushTinyImage(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := "hello from a container image\n"
	tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write([]byte(body))
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = oci.NodePlatform().OS, oci.NodePlatform().Architecture
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	ref, err := name.NewTag(host + "/tiny:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return "oci://" + host + "/tiny@" + d.String()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serve's converter caches under <state-dir>/oci and reports each
// conversion in /metrics; a second volume of the image converts nothing.
func TestServeOCIConversionMetrics(t *testing.T) {
	src := pushTinyImage(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	conn, logs := runServe(t, "--mode=controller", "--pool", "memfile:"+filepath.Join(dir, "pool"), "--pool-size", "16Mi",
		"--state-dir", filepath.Join(dir, "state"), "--allow-source", src[:strings.LastIndex(src, "/")+1], "--metrics-address", addr,
		"--oci-cache-size", "1Gi")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctl := csi.NewControllerClient(conn)
	for _, n := range []string{"pvc-a", "pvc-b"} {
		if _, err := ctl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: n, Parameters: map[string]string{"image": src},
			VolumeCapabilities: []*csi.VolumeCapability{reader}}); err != nil {
			t.Fatalf("CreateVolume %s: %v\n%s", n, err, logs)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "state", "oci", "*.daxfs")); len(m) != 1 {
		t.Errorf("converted images in <state-dir>/oci: %v, want one", m)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`daxfs_oci_conversions_total{result="ok"} 1`,
		`daxfs_oci_conversion_duration_seconds_count{result="ok"} 1`,
		`daxfs_oci_conversions_active 0`,
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, strings.Join(regexp.MustCompile(`(?m)^daxfs_oci.*$`).FindAllString(string(b), -1), "\n"))
		}
	}
}

// The converter takes its cache dir and mounted pull secrets from the
// flags, nowhere else: a bare pullSecret name is refused without
// --pull-secret-dir, and with it the image converts into --oci-cache-dir.
func TestServeOCIFlags(t *testing.T) {
	src := pushTinyImage(t)
	dir := t.TempDir()
	secrets, cache := filepath.Join(dir, "secrets"), filepath.Join(dir, "cache")
	if err := os.MkdirAll(filepath.Join(secrets, "regcred"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secrets, "regcred", ".dockerconfigjson"), []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	params := map[string]string{"image": src, "pullSecret": "regcred"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range []struct {
		name  string
		flags []string
		ok    bool
	}{
		{"no-secret-dir", nil, false},
		{"secret-dir", []string{"--pull-secret-dir", secrets, "--oci-cache-dir", cache}, true},
	} {
		args := append([]string{"--mode=controller", "--pool", "memfile:" + filepath.Join(dir, c.name+".pool"), "--pool-size", "16Mi",
			"--state-dir", filepath.Join(dir, c.name), "--allow-source", src[:strings.LastIndex(src, "/")+1]}, c.flags...)
		conn, logs := runServe(t, args...)
		_, err := csi.NewControllerClient(conn).CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-" + c.name, Parameters: params,
			VolumeCapabilities: []*csi.VolumeCapability{reader}})
		if (err == nil) != c.ok {
			t.Fatalf("%s: CreateVolume with pullSecret regcred: %v, want ok=%v\n%s", c.name, err, c.ok, logs)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(cache, "*.daxfs")); len(m) != 1 {
		t.Errorf("converted images in --oci-cache-dir: %v, want one", m)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "secret-dir", "oci", "*.daxfs")); len(m) != 0 {
		t.Errorf("converted images in <state-dir>/oci despite --oci-cache-dir: %v", m)
	}
}

// The placement controller resolves an oci:// DaxImage through the
// converter its flags configure, made on the first such image.
func TestControllerOCIFlags(t *testing.T) {
	src := pushTinyImage(t)
	cache := filepath.Join(t.TempDir(), "oci")
	o, _, err := parseControllerFlags([]string{"--oci-cache-dir", cache, "--oci-cache-size", "1Gi"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cache); !os.IsNotExist(err) {
		t.Fatalf("cache dir made before any oci:// image: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, size, err := o.Resolver.Resolve(ctx, daxv1.ImageSource{Image: src})
	if err != nil || !strings.HasPrefix(d, "sha256:") || size <= 0 {
		t.Fatalf("Resolve %s = %s, %d, %v", src, d, size, err)
	}
	if m, _ := filepath.Glob(filepath.Join(cache, "*.daxfs")); len(m) != 1 {
		t.Errorf("converted images in --oci-cache-dir: %v, want one", m)
	}
	if _, _, err := parseControllerFlags([]string{"--oci-cache-size", "huge"}); err == nil || !strings.Contains(err.Error(), "--oci-cache-size") {
		t.Errorf("--oci-cache-size huge: %v", err)
	}
}
