package nodeserver

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/daxfs-csi/daxfs-csi/internal/fusehost"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"

	"github.com/daxfs-csi/daxfs-csi/internal/proc"
	"github.com/daxfs-csi/daxfs-csi/internal/sharedtest"
)

// A container restart kills every process in the container's cgroup. The
// plugin runs as a child process placed in a cgroup standing in for its
// container; it publishes a volume, then the whole cgroup is SIGKILLed.
// With the fuse-host sidecar (outside that cgroup) serving the image in its
// own process, open files and fresh opens keep working, the restarted
// plugin recovers the mount as it is (same handle) and unpublishes
// cleanly. With the local launcher the fuse-serve child dies with the
// plugin: its Setsid does not take it out of the cgroup.
func TestContainerRestartFuseHostKeepsMounts(t *testing.T) { containerRestart(t, true) }

func TestContainerRestartLocalLauncherLosesMounts(t *testing.T) { containerRestart(t, false) }

// pluginChild configures the "plugin container" process.
type pluginChild struct {
	NodeID, PoolSpec, StateDir, FuseHostSocket string
	AllowSources                               volume.AllowList
	FuseServeCommand                           []string
	VolumeID                                   string
	URI                                        string
	Target                                     string
}

func containerRestart(t *testing.T, withHost bool) {
	cg := newCgroup(t)
	e := newEnv(t, 64<<20, nil)
	e.ns.Shutdown() // the plugin is the child below until the restart
	var host *exec.Cmd
	var hc fusehost.Client
	if withHost {
		e.opts.FuseHostSocket = e.path("fuse-host.sock")
		host = startFuseHost(t, e.opts.FuseHostSocket, e.path("fuse-host.log"))
		hc = fusehost.Client{Socket: e.opts.FuseHostSocket}
	}
	uri, digest := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	target := e.path("pods", "p", "vol")
	const volID = "inline-restart"

	plugin := startPluginChild(t, cg, e, pluginChild{
		NodeID: e.opts.NodeID, PoolSpec: e.poolSpec, StateDir: e.opts.StateDir, FuseHostSocket: e.opts.FuseHostSocket,
		AllowSources: e.opts.AllowSources, FuseServeCommand: e.opts.FuseServeCommand,
		VolumeID: volID, URI: uri, Target: target})
	servers := fuseServePIDs(e.root)
	var server int
	var handle string
	if withHost {
		// Served inside fuse-host: no process of its own, a handle in the record.
		handle = servedHandle(t, hc)
		if len(servers) != 0 {
			t.Fatalf("fuse-serve processes %v, want none: fuse-host serves the image itself", servers)
		}
		if kids := childPIDs(host.Process.Pid); len(kids) != 0 {
			t.Fatalf("fuse-host has children %v, want none", kids)
		}
		if im := imageRecord(t, e.opts.StateDir, digest); im.FuseHost != handle || im.PID != 0 {
			t.Fatalf("image record %+v, want fuseHost %s and no pid", im, handle)
		}
	} else {
		if len(servers) != 1 {
			t.Fatalf("fuse-serve processes %v, want 1", servers)
		}
		server = servers[0]
		if !cg.has(server) {
			t.Fatalf("fuse-serve %d is not in the plugin's cgroup %v", server, cg.pids())
		}
	}
	// Nothing is read before the kill but the reader's first bytes: what
	// comes after must come from the server, not the page cache.
	file := filepath.Join(target, "dir1", "sub1", "multi_mib.bin")
	f, err := os.Open(file)
	must(t, err)
	defer f.Close()
	head := make([]byte, 100)
	_, err = io.ReadFull(f, head)
	must(t, err)

	killed := cg.killAll()
	plugin.Wait()
	if !slices.Contains(killed, plugin.Process.Pid) {
		t.Fatalf("cgroup kill %v missed the plugin %d", killed, plugin.Process.Pid)
	}
	t.Logf("container restart killed %v (plugin %d)", killed, plugin.Process.Pid)
	rest, readErr := io.ReadAll(f)
	if withHost {
		if st, err := hc.HandleStatus(context.Background(), handle); err != nil || !st.Alive {
			t.Fatalf("fuse-host status of %s after the plugin container kill: %+v %v", handle, st, err)
		}
		h := sha256.Sum256(append(head, rest...))
		if readErr != nil || hex.EncodeToString(h[:]) != manifestSHA(t, "tree1.manifest.json", "/dir1/sub1/multi_mib.bin") {
			t.Fatalf("open reader after the container kill: %d bytes, %v, or wrong bytes", len(rest), readErr)
		}
		checkTree(t, target, "tree1.manifest.json") // fresh opens
	} else {
		waitFor(t, "fuse-serve to die with its cgroup", func() bool { return !proc.Alive(server) })
		if !errors.Is(readErr, syscall.ENOTCONN) {
			t.Fatalf("open reader after the container kill: %d bytes, %v; want ENOTCONN", len(rest), readErr)
		}
		if _, err := os.ReadFile(filepath.Join(target, "small.txt")); !errors.Is(err, syscall.ENOTCONN) {
			t.Fatalf("fresh open after the container kill: %v; want ENOTCONN", err)
		}
		t.Logf("without fuse-host the pod sees: %v", readErr)
	}

	e.ns = e.newServer() // the restarted plugin container
	now := fuseServePIDs(e.root)
	if withHost {
		// Recovered as it was: the same served mount, nothing remounted.
		if h := servedHandle(t, hc); h != handle || len(now) != 0 {
			t.Errorf("after the restart: handle %s, fuse-serve %v; want the untouched %s and no process", h, now, handle)
		}
		if im := e.ns.images[digest]; im == nil || im.FuseHost != handle || im.Backend != backendFUSE {
			t.Errorf("recovered image %+v, want fuse served by %s", im, handle)
		}
	}
	if !withHost && (len(now) != 1 || now[0] == server) {
		t.Errorf("fuse-serve %v after the restart, want one new server in place of %d", now, server)
	}
	checkTree(t, target, "tree1.manifest.json")
	f.Close()
	must(t, e.unpublish(volID, target))
	if pids := fuseServePIDs(e.root); len(pids) != 0 {
		t.Errorf("fuse-serve left running: %v", pids)
	}
	if m := mountsUnder(e.root); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	if st := e.pool.Status(); len(st.Extents) != 0 {
		t.Errorf("pool extents after the last unpublish: %+v", st.Extents)
	}
	if withHost {
		// Stopped through fuse-host, which keeps running.
		st, err := hc.HandleStatus(context.Background(), handle)
		if err != nil || !st.Known || st.Alive || st.Exit != "unmounted" {
			t.Errorf("fuse-host status of %s: %+v %v; want ended by the unmount", handle, st, err)
		}
		if !proc.Alive(host.Process.Pid) {
			t.Error("fuse-host died with the unpublish")
		}
	}
}

// servedHandle is the one image fuse-host serves.
func servedHandle(t *testing.T, c fusehost.Client) string {
	t.Helper()
	hs, err := c.Served(context.Background())
	if err != nil || len(hs) != 1 {
		t.Fatalf("fuse-host serves %v (%v), want one image", hs, err)
	}
	return hs[0]
}

// imageRecord reads digest's record from a state dir.
func imageRecord(t *testing.T, stateDir, digest string) *state.Image {
	t.Helper()
	st, err := state.Open(stateDir)
	must(t, err)
	ims, _, err := st.Images()
	must(t, err)
	for _, im := range ims {
		if im.Digest == digest {
			return im
		}
	}
	t.Fatalf("no record of %s in %s", digest, stateDir)
	return nil
}

// childPIDs lists pid's child processes (forked by any of its threads).
func childPIDs(pid int) []string {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	var kids []string
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		kids = append(kids, strings.Fields(string(b))...)
	}
	return kids
}

// startFuseHost runs `daxfs-csi fuse-host` in its own session, as its own
// container would be.
func startFuseHost(t *testing.T, sock, logPath string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(daxfsCSIBin, "fuse-host", "--socket", sock)
	log, err := os.Create(logPath)
	must(t, err)
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	must(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("fuse-host log:\n%s", readFile(t, logPath))
		}
	})
	// Answering, not just present: a killed fuse-host leaves its socket file.
	waitFor(t, "fuse-host to answer", func() bool {
		_, err := fusehost.Client{Socket: sock}.List(context.Background())
		return err == nil
	})
	return cmd
}

// startPluginChild re-executes the test binary as the plugin, placed in cg
// before it does anything, and waits until it has published.
func startPluginChild(t *testing.T, cg cgroup, e *env, c pluginChild) *exec.Cmd {
	t.Helper()
	cfg, err := json.Marshal(c)
	must(t, err)
	logPath := e.path("plugin.log")
	log, err := os.Create(logPath)
	must(t, err)
	defer log.Close()
	cmd := exec.Command(os.Args[0], "plugin-child")
	cmd.Env = append(os.Environ(), "DAXFS_TEST_PLUGIN="+string(cfg))
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	stdin, err := cmd.StdinPipe()
	must(t, err)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	must(t, cg.add(cmd.Process.Pid))
	fmt.Fprintln(stdin, "go")
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if strings.TrimSpace(s) != "published" {
			t.Fatalf("plugin child: %q\n%s", s, readFile(t, logPath))
		}
	case <-time.After(time.Minute):
		t.Fatalf("plugin child did not publish:\n%s", readFile(t, logPath))
	}
	return cmd
}

// runPluginChild is the plugin side: once in its cgroup (a line on stdin),
// open the pool, publish, report, and block until killed.
func runPluginChild() int {
	var c pluginChild
	if err := json.Unmarshal([]byte(os.Getenv("DAXFS_TEST_PLUGIN")), &c); err != nil {
		fmt.Fprintln(os.Stderr, "config:", err)
		return 2
	}
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, "wait for go:", err)
		return 2
	}
	p, err := daxdev.OpenPool(c.PoolSpec, daxdev.PoolOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ns, err := New(Options{NodeID: c.NodeID, Pool: p, PoolSpec: c.PoolSpec, StateDir: c.StateDir,
		AllowSources: c.AllowSources, FuseServeCommand: c.FuseServeCommand,
		FuseHostSocket: c.FuseHostSocket, HealthInterval: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_, err = ns.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{
		VolumeId: c.VolumeID, TargetPath: c.Target,
		VolumeCapability: mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER),
		VolumeContext:    map[string]string{volume.AttrImage: c.URI, volume.AttrEphemeral: "true"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "publish:", err)
		return 1
	}
	fmt.Println("published")
	select {}
}

func manifestSHA(t *testing.T, manifest, path string) string {
	t.Helper()
	for _, en := range sharedtest.Manifest(t, manifest) {
		if en.Path == path {
			return en.SHA256
		}
	}
	t.Fatalf("%s not in %s", path, manifest)
	return ""
}
