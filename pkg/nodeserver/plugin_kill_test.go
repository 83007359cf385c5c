package nodeserver

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

// The real thing: `daxfs-csi serve --mode node` as a child process,
// published to over gRPC, killed with SIGKILL while a reader holds a file,
// restarted on the same state dir. The reader never notices, and the
// restarted plugin unpublishes and releases the image.
func TestPluginKill9(t *testing.T) {
	root := t.TempDir()
	images := filepath.Join(root, "images")
	must(t, os.MkdirAll(images, 0o755))
	b := readFile(t, samplePath(t, "tree1.static.daxfs"))
	must(t, os.WriteFile(filepath.Join(images, "tree1.daxfs"), b, 0o644))
	uri := "file://" + filepath.Join(images, "tree1.daxfs")
	poolSpec := "memfile:" + filepath.Join(root, "pool")
	t.Cleanup(func() { cleanupRoot(t, root) })

	start := func() *exec.Cmd {
		return startServe(t, root, "--node-id", "kill9-node", "--pool", poolSpec, "--pool-size", "64Mi",
			"--state-dir", filepath.Join(root, "state"), "--allow-source", "file://"+images+"/")
	}
	client := func() csi.NodeClient { return nodeClient(t, root) }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	target := filepath.Join(root, "pods", "p", "vol")
	pub := &csi.NodePublishVolumeRequest{VolumeId: "inline-kill9", TargetPath: target,
		VolumeCapability: mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER),
		VolumeContext:    map[string]string{"image": uri, "csi.storage.k8s.io/ephemeral": "true"}}

	plugin := start()
	_, err := waitReady(ctx, client(), pub)
	must(t, err)
	f, err := os.Open(filepath.Join(target, "dir1", "exact8k.bin"))
	must(t, err)
	defer f.Close()
	head := make([]byte, 100)
	_, err = io.ReadFull(f, head)
	must(t, err)

	servers := fuseServePIDs(root)
	if len(servers) != 1 {
		t.Fatalf("fuse-serve processes %v, want 1", servers)
	}
	must(t, plugin.Process.Signal(syscall.SIGKILL))
	plugin.Wait()
	rest, err := io.ReadAll(f)
	if err != nil || len(rest) != 8192-100 {
		t.Fatalf("reader with the plugin dead: %d bytes, %v", len(rest), err)
	}
	checkTree(t, target, "tree1.manifest.json")

	start()
	c := client()
	if _, err := waitReady(ctx, c, pub); err != nil { // idempotent on the recovered volume
		t.Fatal(err)
	}
	if p := fuseServePIDs(root); len(p) != 1 || p[0] != servers[0] {
		t.Errorf("fuse-serve %v after the restart, want the untouched %v", p, servers)
	}
	f.Close()
	_, err = c.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "inline-kill9", TargetPath: target})
	must(t, err)
	p, err := daxdev.OpenPool(poolSpec, daxdev.PoolOptions{})
	must(t, err)
	defer p.Close()
	if st := p.Status(); len(st.Extents) != 0 {
		t.Errorf("pool extents after the last unpublish: %+v", st.Extents)
	}
	if m := mountsUnder(root); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	if pids := fuseServePIDs(root); len(pids) != 0 {
		t.Errorf("fuse-serve left running: %v", pids)
	}
}

// waitReady publishes, waiting for the plugin's socket to accept.
func waitReady(ctx context.Context, c csi.NodeClient, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	return c.NodePublishVolume(ctx, req, grpc.WaitForReady(true))
}

// startServe runs `daxfs-csi serve --mode node` on <root>/csi.sock with
// args, logging to <root>/plugin.log, and waits for its socket.
func startServe(t *testing.T, root string, args ...string) *exec.Cmd {
	return startServeHook(t, root, nil, args...)
}

// startServeHook is startServe with started run as soon as the process
// exists, before it can serve.
func startServeHook(t *testing.T, root string, started func(pid int), args ...string) *exec.Cmd {
	t.Helper()
	sock := filepath.Join(root, "csi.sock")
	os.Remove(sock)
	cmd := exec.Command(daxfsCSIBin, append([]string{"serve", "--mode", "node", "--endpoint", "unix://" + sock}, args...)...)
	log, err := os.OpenFile(filepath.Join(root, "plugin.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	must(t, err)
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if started != nil {
		started(cmd.Process.Pid)
	}
	waitFor(t, "the plugin socket", func() bool { _, err := os.Stat(sock); return err == nil })
	return cmd
}

// nodeClient dials the plugin that startServe runs under root.
func nodeClient(t *testing.T, root string) csi.NodeClient {
	conn, err := grpc.NewClient("unix://"+filepath.Join(root, "csi.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	t.Cleanup(func() { conn.Close() })
	return csi.NewNodeClient(conn)
}
