package scale

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	binDir    string // removed by TestMain
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// controllerBinary builds cmd/daxfs-csi once per process ($DAXFS_BIN wins).
func controllerBinary(b *testing.B) string {
	b.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("DAXFS_BIN"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "daxfs-scale-")
		if err != nil {
			buildErr = err
			return
		}
		binDir, binPath = dir, filepath.Join(dir, "daxfs-csi")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/daxfs-csi").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	return binPath
}

// manager is `daxfs-csi controller` as its own process: its RSS and CPU
// time are its own, not the load generator's or the apiserver's.
type manager struct {
	cmd     *exec.Cmd
	logs    lockedBuffer
	metrics string // http://127.0.0.1:port/metrics
	done    chan struct{}
}

// lockedBuffer collects the child's output while the benchmark reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startManager(b *testing.B, kubeconfig string, extra ...string) *manager {
	b.Helper()
	port, err := freePort()
	if err != nil {
		b.Fatal(err)
	}
	m := &manager{metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", port), done: make(chan struct{})}
	args := append([]string{"controller", "--kubeconfig", kubeconfig, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", port), "--health-addr=0"}, extra...)
	m.cmd = exec.Command(controllerBinary(b), args...)
	m.cmd.Stdout, m.cmd.Stderr = &m.logs, &m.logs
	if err := m.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { m.cmd.Wait(); close(m.done) }()
	return m
}

func (m *manager) stop(b *testing.B) {
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		m.cmd.Process.Kill()
		<-m.done
		b.Errorf("controller did not stop within 30 s of SIGTERM")
	}
}

// passes is the number of finished placement reconciles, and whether one
// is running or queued.
func (m *manager) passes(ctx context.Context) (done int, busy bool, err error) {
	c, err := scrape(ctx, http.DefaultClient, m.metrics, "controller_runtime_reconcile_total",
		"controller_runtime_active_workers", "workqueue_depth")
	if err != nil {
		return 0, false, err
	}
	for s, v := range c {
		switch {
		case strings.HasPrefix(s, "controller_runtime_reconcile_total{"):
			done += int(v)
		case strings.HasPrefix(s, "controller_runtime_active_workers{"), strings.HasPrefix(s, "workqueue_depth{"):
			busy = busy || v > 0
		}
	}
	return done, busy, nil
}

// procStats reads the manager's resident set (now and peak, MiB) and CPU
// seconds (user+system) from /proc.
func procStats(pid int) (rss, hwm, cpu float64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	// Fields after the command's closing paren; utime and stime are 14 and 15.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return rss, hwm, (ut + st) / 100, nil // USER_HZ is 100 on Linux
}
