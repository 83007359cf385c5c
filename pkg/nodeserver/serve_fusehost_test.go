package nodeserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/daxfs-csi/daxfs-csi/internal/fusehost"
)

// The deployed shape: `daxfs-csi serve --mode node --fuse-host-socket`
// in a cgroup (its container), `daxfs-csi fuse-host` outside it, serving the
// image itself. Killing the whole cgroup leaves pods reading; the restarted
// serve finds the same served mount and unpublishes.
func TestServeContainerRestartWithFuseHost(t *testing.T) {
	cg := newCgroup(t)
	root := t.TempDir()
	images := filepath.Join(root, "images")
	must(t, os.MkdirAll(images, 0o755))
	must(t, os.WriteFile(filepath.Join(images, "tree1.daxfs"), readFile(t, samplePath(t, "tree1.static.daxfs")), 0o644))
	t.Cleanup(func() { cleanupRoot(t, root) })
	hostSock := filepath.Join(root, "fuse-host.sock")
	hostCmd := startFuseHost(t, hostSock, filepath.Join(root, "fuse-host.log"))
	start := func() *exec.Cmd {
		return startServeHook(t, root, func(pid int) { must(t, cg.add(pid)) }, // before it can launch anything
			"--node-id", "restart-node", "--pool", "memfile:"+filepath.Join(root, "pool"), "--pool-size", "64Mi",
			"--state-dir", filepath.Join(root, "state"), "--allow-source", "file://"+images+"/",
			"--fuse-host-socket", hostSock)
	}
	client := func() csi.NodeClient { return nodeClient(t, root) }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	target := filepath.Join(root, "pods", "p", "vol")
	pub := &csi.NodePublishVolumeRequest{VolumeId: "inline-serve", TargetPath: target,
		VolumeCapability: mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER),
		VolumeContext:    map[string]string{"image": "file://" + filepath.Join(images, "tree1.daxfs"), "csi.storage.k8s.io/ephemeral": "true"}}

	plugin := start()
	_, err := waitReady(ctx, client(), pub)
	must(t, err)
	hc := fusehost.Client{Socket: hostSock}
	handle := servedHandle(t, hc) // served inside fuse-host, outside the plugin's cgroup
	checkHostPID(t, filepath.Join(root, "state"), hostCmd.Process.Pid)
	if p := fuseServePIDs(root); len(p) != 0 {
		t.Fatalf("fuse-serve %v, want none: fuse-host serves the image itself", p)
	}
	f, err := os.Open(filepath.Join(target, "dir1", "sub1", "multi_mib.bin"))
	must(t, err)
	defer f.Close()
	head := make([]byte, 100)
	_, err = io.ReadFull(f, head)
	must(t, err)

	if killed := cg.killAll(); !slices.Contains(killed, plugin.Process.Pid) {
		t.Fatalf("cgroup kill %v missed the plugin %d", killed, plugin.Process.Pid)
	}
	plugin.Wait()
	rest, err := io.ReadAll(f)
	h := sha256.Sum256(append(head, rest...))
	if err != nil || hex.EncodeToString(h[:]) != manifestSHA(t, "tree1.manifest.json", "/dir1/sub1/multi_mib.bin") {
		t.Fatalf("open reader after the container kill: %d bytes, %v, or wrong bytes", len(rest), err)
	}
	checkTree(t, target, "tree1.manifest.json")

	start()
	c := client()
	_, err = waitReady(ctx, c, pub)
	must(t, err)
	if h := servedHandle(t, hc); h != handle {
		t.Errorf("fuse-host serves %s after the restart, want the untouched %s", h, handle)
	}
	checkHostPID(t, filepath.Join(root, "state"), hostCmd.Process.Pid)
	f.Close()
	_, err = c.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "inline-serve", TargetPath: target})
	must(t, err)
	if m := mountsUnder(root); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	if hs, err := hc.Served(ctx); err != nil || len(hs) != 0 {
		t.Errorf("fuse-host still serves %v (%v) after the last unpublish", hs, err)
	}
}

// checkHostPID asserts the image record names fuse-host's pid: a new
// target's publish checks it instead of a round trip to the mount.
func checkHostPID(t *testing.T, stateDir string, want int) {
	t.Helper()
	recs, err := filepath.Glob(filepath.Join(stateDir, "images", "*", "image.json"))
	if err != nil || len(recs) != 1 {
		t.Fatalf("image records %v, %v; want one", recs, err)
	}
	var im struct {
		FuseHost string `json:"fuseHost"`
		HostPID  int    `json:"hostPid"`
	}
	must(t, json.Unmarshal(readFile(t, recs[0]), &im))
	if im.FuseHost == "" || im.HostPID != want {
		t.Fatalf("image record: fuseHost %q hostPid %d; want a handle and fuse-host's pid %d", im.FuseHost, im.HostPID, want)
	}
}
