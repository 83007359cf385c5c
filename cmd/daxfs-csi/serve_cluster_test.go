package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/daxfs-csi/daxfs-csi/internal/controller"
	"github.com/daxfs-csi/daxfs-csi/internal/machine"
	"github.com/daxfs-csi/daxfs-csi/internal/topology"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

const mib = 1 << 20

// startAPIServer runs a real kube-apiserver + etcd with our CRDs for one
// test and writes a kubeconfig for the serve process.
func startAPIServer(t *testing.T) (client.Client, string) {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		machine.Lacks(t, "KUBEBUILDER_ASSETS is unset: run `export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)` to test cluster mode against a real kube-apiserver")
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "..", "deploy", "crds")}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})
	scheme, err := controller.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return c, path
}

// runServe starts the built binary and returns a CSI connection to its
// socket and its stderr so far; SIGTERM at cleanup, which must exit 0.
func runServe(t *testing.T, args ...string) (*grpc.ClientConn, *bytes.Buffer) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "csi.sock")
	var logs bytes.Buffer
	cmd := exec.Command(testBinary, append([]string{"serve", "--endpoint", "unix://" + sock, "-v", "2"}, args...)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	done := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
			if err := waitErr; err != nil {
				t.Errorf("serve exited with %v after SIGTERM; log:\n%s", err, logs.String())
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Errorf("serve did not exit within 30s of SIGTERM")
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			t.Fatalf("serve exited early: %v; log:\n%s", waitErr, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not listen on %s within 60s; log:\n%s", sock, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, &logs
}

// putDaxNode writes a DaxNode as a node plugin would.
func putDaxNode(t *testing.T, c client.Client, name string, hb time.Time, pools ...daxv1.PoolStatus) {
	t.Helper()
	ctx := context.Background()
	n := &daxv1.DaxNode{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: daxv1.DaxNodeSpec{NodeName: name}}
	if err := c.Create(ctx, n); err != nil {
		t.Fatalf("create DaxNode %s: %v", name, err)
	}
	for i := range pools {
		pools[i].Kind = "memfile"
	}
	n.Status = daxv1.DaxNodeStatus{Pools: pools, Heartbeat: metav1.NewTime(hb), PoolCount: int32(len(pools))}
	if err := c.Status().Update(ctx, n); err != nil {
		t.Fatalf("DaxNode %s status: %v", name, err)
	}
}

// writeImage builds a small DAXFS image file and returns its path and digest.
func writeImage(t *testing.T, dir, content string) (string, string) {
	t.Helper()
	root := filepath.Join(dir, "root-"+content)
	os.MkdirAll(root, 0o755)
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	b := image.NewBuilder(image.BuildOptions{})
	defer b.Close()
	if err := b.AddDir(root); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, content+".daxfs")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, fmt.Sprintf("sha256:%x", sha256.Sum256(buf.Bytes()))
}

var reader = &csi.VolumeCapability{
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY},
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
}

// A cluster-mode controller with no pool of its own answers GetCapacity and
// CreateVolume's topology from DaxNodes over its real socket.
func TestServeControllerClusterMode(t *testing.T) {
	kc, kubeconfig := startAPIServer(t)
	dir := t.TempDir()
	staged, stagedDigest := writeImage(t, dir, "staged")
	fresh, _ := writeImage(t, dir, "fresh")
	fi, _ := os.Stat(staged)
	now := time.Now()
	// n1: big pool on shared CXL memory; n2: nearly full but holds "staged";
	// n3: huge but its heartbeat is stale.
	putDaxNode(t, kc, "n1", now, daxv1.PoolStatus{ID: "p1", SharedPoolID: "cxl:r1", Size: 64 * mib, Free: 64 * mib, Align: 2 * mib})
	putDaxNode(t, kc, "n2", now, daxv1.PoolStatus{ID: "p2", Size: 64 * mib, Free: 1 * mib, Align: 2 * mib,
		Images: []daxv1.StagedImage{{Digest: stagedDigest, Size: fi.Size(), State: daxv1.StagedReady, References: 1}}})
	putDaxNode(t, kc, "n3", now.Add(-time.Hour), daxv1.PoolStatus{ID: "p3", Size: 1024 * mib, Free: 1024 * mib, Align: 2 * mib})

	conn, logs := runServe(t, "--mode=controller", "--kubeconfig", kubeconfig, "--state-dir", filepath.Join(dir, "state"),
		"--allow-source", "file://"+dir+"/")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if strings.Contains(logs.String(), "Pool open") {
		t.Errorf("a cluster-mode controller without --pool opened a pool:\n%s", logs)
	}
	if r, err := csi.NewIdentityClient(conn).Probe(ctx, &csi.ProbeRequest{}); err != nil || !r.GetReady().GetValue() {
		t.Fatalf("Probe: %v %v", r, err)
	}
	ctl := csi.NewControllerClient(conn)
	capacity := func(seg map[string]string, params map[string]string) int64 {
		t.Helper()
		req := &csi.GetCapacityRequest{Parameters: params, VolumeCapabilities: []*csi.VolumeCapability{reader}}
		if seg != nil {
			req.AccessibleTopology = &csi.Topology{Segments: seg}
		}
		r, err := ctl.GetCapacity(ctx, req)
		if err != nil {
			t.Fatalf("GetCapacity %v %v: %v", seg, params, err)
		}
		return r.GetAvailableCapacity()
	}
	node := topology.NodeKey
	for _, c := range []struct {
		seg    map[string]string
		params map[string]string
		want   int64
	}{
		{map[string]string{node: "n1", topology.PoolKey: "cxl:r1"}, nil, 64 * mib},
		{map[string]string{node: "n2"}, nil, 1 * mib},
		// The staged copy (rounded to the 2 MiB align) counts as free for its digest.
		{map[string]string{node: "n2"}, map[string]string{"image": "file://" + staged, "digest": stagedDigest}, 3 * mib},
		{map[string]string{node: "n2"}, map[string]string{"image": "file://" + fresh}, 1 * mib},
		{map[string]string{node: "n3"}, nil, 0}, // stale heartbeat
		{nil, nil, 64 * mib},
	} {
		if got := capacity(c.seg, c.params); got != c.want {
			t.Errorf("GetCapacity(%v, %v) = %d, want %d", c.seg, c.params, got, c.want)
		}
	}

	create := func(name, img string, requisite ...map[string]string) (*csi.CreateVolumeResponse, error) {
		req := &csi.CreateVolumeRequest{Name: name, Parameters: map[string]string{"image": "file://" + img},
			VolumeCapabilities: []*csi.VolumeCapability{reader}}
		if len(requisite) > 0 {
			req.AccessibilityRequirements = &csi.TopologyRequirement{}
			for _, s := range requisite {
				req.AccessibilityRequirements.Requisite = append(req.AccessibilityRequirements.Requisite, &csi.Topology{Segments: s})
			}
		}
		return ctl.CreateVolume(ctx, req)
	}
	topoOf := func(r *csi.CreateVolumeResponse) []string {
		var out []string
		for _, tp := range r.GetVolume().GetAccessibleTopology() {
			out = append(out, tp.Segments[node]+"/"+tp.Segments[topology.PoolKey])
		}
		return out
	}
	// Staged on n2: the copy is there, n2 takes it despite 1 MiB free.
	r, err := create("pvc-staged", staged)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(topoOf(r), ","); got != "n2/p2" {
		t.Errorf("topology of a staged image = %s, want n2/p2", got)
	}
	if r.GetVolume().GetCapacityBytes() != 2*mib {
		t.Errorf("capacity %d, want the image rounded to the DaxNode pools' 2 MiB align", r.GetVolume().GetCapacityBytes())
	}
	// Nowhere yet: only n1 has 2 MiB free; the pool is named by its shared
	// identity, as NodeGetInfo reports it.
	r, err = create("pvc-fresh", fresh)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(topoOf(r), ","); got != "n1/cxl:r1" {
		t.Errorf("topology of a new image = %s, want n1/cxl:r1", got)
	}
	// Asked again, the journal answers with the same topology.
	if r2, err := create("pvc-fresh", fresh); err != nil || strings.Join(topoOf(r2), ",") != "n1/cxl:r1" {
		t.Errorf("repeated CreateVolume: %v %v", topoOf(r2), err)
	}
	if _, err := create("pvc-n2", fresh, map[string]string{node: "n2"}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("CreateVolume restricted to the full n2: %v, want ResourceExhausted", err)
	}
}

// A cluster-mode node plugin keeps its DaxNode (heartbeat, pool, labels of
// its Node, staged images), pre-stages an image a DaxImage status places on
// its pool, and reports a volume's image after a real stage and publish.
func TestServeNodeClusterMode(t *testing.T) {
	kc, kubeconfig := startAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := kc.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{"topology.kubernetes.io/zone": "z1"}}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	placed, placedDigest := writeImage(t, dir, "placed")
	used, usedDigest := writeImage(t, dir, "used")
	poolFile := filepath.Join(dir, "pool")
	conn, logs := runServe(t, "--mode=node", "--kubeconfig", kubeconfig, "--node-id", "node-a", "--pool", "memfile:"+poolFile,
		"--pool-size", "64Mi", "--state-dir", filepath.Join(dir, "state"), "--allow-source", "file://"+dir+"/",
		"--mount-mode", "fuse", "--node-report-interval", "300ms")

	var dn daxv1.DaxNode
	eventually(t, "DaxNode node-a reported", func() error {
		if err := kc.Get(ctx, client.ObjectKey{Name: "node-a"}, &dn); err != nil {
			return err
		}
		if len(dn.Status.Pools) != 1 || dn.Status.Pools[0].Size == 0 || time.Since(dn.Status.Heartbeat.Time) > time.Minute {
			return fmt.Errorf("status %+v", dn.Status)
		}
		if dn.Labels["topology.kubernetes.io/zone"] != "z1" {
			return fmt.Errorf("labels %v: the Node's zone label is missing", dn.Labels)
		}
		return nil
	})
	first := dn.Status.Heartbeat.Time
	poolID := dn.Status.Pools[0].ID

	// Place "placed" on our pool as the controller would.
	img := &daxv1.DaxImage{ObjectMeta: metav1.ObjectMeta{Name: "placed"},
		Spec: daxv1.DaxImageSpec{Source: daxv1.ImageSource{Image: "file://" + placed, Digest: placedDigest}}}
	if err := kc.Create(ctx, img); err != nil {
		t.Fatal(err)
	}
	img.Status = daxv1.DaxImageStatus{Digest: placedDigest,
		Placements: []daxv1.Placement{{PoolID: poolID, Node: "node-a", Nodes: []string{"node-a"}, State: daxv1.PlacementPending}}}
	if err := kc.Status().Update(ctx, img); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pre-staged image reported", func() error {
		if err := kc.Get(ctx, client.ObjectKey{Name: "node-a"}, &dn); err != nil {
			return err
		}
		for _, im := range dn.Status.Pools[0].Images {
			if im.Digest == placedDigest && im.Prestaged && im.State == daxv1.StagedReady {
				return nil
			}
		}
		return fmt.Errorf("images %+v", dn.Status.Pools[0].Images)
	})
	// Heartbeats have one-second resolution.
	eventually(t, "heartbeat advances", func() error {
		var n daxv1.DaxNode
		if err := kc.Get(ctx, client.ObjectKey{Name: "node-a"}, &n); err != nil {
			return err
		}
		if !n.Status.Heartbeat.After(first) {
			return fmt.Errorf("heartbeat still %v", n.Status.Heartbeat)
		}
		return nil
	})
	// The bytes really are in the pool (another process opens it).
	pool, err := daxdev.OpenPool("memfile:"+poolFile, daxdev.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e, ok := pool.Lookup(placedDigest)
	want, _ := os.ReadFile(placed)
	if got, err := pool.Data(e); !ok || err != nil || !bytes.Equal(got, want) {
		t.Errorf("pre-staged extent %v (%v) does not hold the image", e, err)
	}
	pool.Close()

	// A volume staged and published through the socket shows up as a reference.
	nc := csi.NewNodeClient(conn)
	vctx := map[string]string{"image": "file://" + used, "digest": usedDigest}
	staging, target := filepath.Join(dir, "staging"), filepath.Join(dir, "pod", "mount")
	os.MkdirAll(staging, 0o750)
	os.MkdirAll(filepath.Dir(target), 0o750)
	if _, err := nc.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "vol-1", StagingTargetPath: staging,
		VolumeCapability: reader, VolumeContext: vctx}); err != nil {
		t.Fatalf("NodeStageVolume: %v\n%s", err, logs)
	}
	t.Cleanup(func() {
		nc.NodeUnstageVolume(context.Background(), &csi.NodeUnstageVolumeRequest{VolumeId: "vol-1", StagingTargetPath: staging})
	})
	if _, err := nc.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "vol-1", StagingTargetPath: staging,
		TargetPath: target, VolumeCapability: reader, VolumeContext: vctx, Readonly: true}); err != nil {
		t.Fatalf("NodePublishVolume: %v", err)
	}
	t.Cleanup(func() {
		nc.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: "vol-1", TargetPath: target})
	})
	if b, err := os.ReadFile(filepath.Join(target, "hello.txt")); err != nil || string(b) != "used" {
		t.Fatalf("read through the volume: %q %v", b, err)
	}
	eventually(t, "published image reported", func() error {
		if err := kc.Get(ctx, client.ObjectKey{Name: "node-a"}, &dn); err != nil {
			return err
		}
		for _, im := range dn.Status.Pools[0].Images {
			if im.Digest == usedDigest && im.References == 1 && !im.Prestaged {
				return nil
			}
		}
		return fmt.Errorf("images %+v", dn.Status.Pools[0].Images)
	})
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The node plugin serves its socket while the API server is unreachable
// (volumes must unpublish during an outage); only the agent waits.
func TestServeNodeWithoutAPIServer(t *testing.T) {
	dir := t.TempDir()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["dead"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1"}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "x"}
	kc.Contexts["dead"] = &clientcmdapi.Context{Cluster: "dead", AuthInfo: "u"}
	kc.CurrentContext = "dead"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	conn, logs := runServe(t, "--mode=node", "--kubeconfig", path, "--node-id", "offline", "--pool", "memfile:"+filepath.Join(dir, "pool"),
		"--pool-size", "16Mi", "--state-dir", filepath.Join(dir, "state"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := csi.NewNodeClient(conn).NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil || info.GetNodeId() != "offline" {
		t.Fatalf("NodeGetInfo with the API server down: %v %v\n%s", info, err, logs)
	}
	if r, err := csi.NewIdentityClient(conn).Probe(ctx, &csi.ProbeRequest{}); err != nil || !r.GetReady().GetValue() {
		t.Errorf("Probe with the API server down: %v %v", r, err)
	}
}
