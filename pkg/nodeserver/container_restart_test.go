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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/daxfs-csi/daxfs-csi/internal/fusehost"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"

	"github.com/daxfs-csi/daxfs-csi/internal/proc"
	"github.com/daxfs-csi/daxfs-csi/internal/sharedtest"
)

// A container restart kills every process in the container's cgroup. The
// plugin runs as a child process placed in a cgroup standing in for its
// container; it publishes a volume, then the whole cgroup is SIGKILLed.
// With the fuse-host sidecar (outside that cgroup) the FUSE server, open
// files and fresh opens survive, and a restarted plugin unpublishes
// cleanly. With the local launcher the server dies with the plugin: its
// Setsid does not take it out of the cgroup.
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
	if withHost {
		e.opts.FuseHostSocket = e.path("fuse-host.sock")
		host = startFuseHost(t, e.opts.FuseHostSocket, e.path("fuse-host.log"))
	}
	uri, _ := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	target := e.path("pods", "p", "vol")
	const volID = "inline-restart"

	plugin := startPluginChild(t, cg, e, pluginChild{
		NodeID: e.opts.NodeID, PoolSpec: e.poolSpec, StateDir: e.opts.StateDir, FuseHostSocket: e.opts.FuseHostSocket,
		AllowSources: e.opts.AllowSources, FuseServeCommand: e.opts.FuseServeCommand,
		VolumeID: volID, URI: uri, Target: target})
	servers := fuseServePIDs(e.root)
	if len(servers) != 1 {
		t.Fatalf("fuse-serve processes %v, want 1", servers)
	}
	server := servers[0]
	if withHost {
		if pp := parentPID(server); pp != host.Process.Pid {
			t.Fatalf("fuse-serve %d has parent %d, want fuse-host %d", server, pp, host.Process.Pid)
		}
		if cg.has(server) {
			t.Fatalf("fuse-serve %d is in the plugin's cgroup", server)
		}
	} else if !cg.has(server) {
		t.Fatalf("fuse-serve %d is not in the plugin's cgroup %v", server, cg.pids())
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
	t.Logf("container restart killed %v (plugin %d, fuse-serve %d)", killed, plugin.Process.Pid, server)
	rest, readErr := io.ReadAll(f)
	if withHost {
		if !proc.Alive(server) {
			t.Fatalf("fuse-serve %d died with the plugin container", server)
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
	if withHost && !slices.Equal(now, []int{server}) {
		t.Errorf("fuse-serve %v after the restart, want the untouched %d", now, server)
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
		// Stopped by SIGTERM (clean exit) and reaped by fuse-host.
		st, err := fusehost.Client{Socket: e.opts.FuseHostSocket}.Status(context.Background(), server)
		if err != nil || !st.Known || st.Alive || st.Exit != "exit status 0" {
			t.Errorf("fuse-host status of %d: %+v %v; want reaped after a clean exit", server, st, err)
		}
	}
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
