package nodeserver

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/internal/machine"
)

// cgroup stands in for a container: the runtime ends a container by
// killing every process in its cgroup, whatever their session or parent.
type cgroup string

// newCgroup makes a fresh cgroup (v1 pids hierarchy, else v2), removed
// with everything in it at cleanup; without one, see machine.Lacks.
func newCgroup(t *testing.T) cgroup {
	t.Helper()
	name := fmt.Sprintf("daxfs-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	var errs []string
	for _, base := range []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
			os.Remove(dir)
			errs = append(errs, err.Error())
			continue
		}
		cg := cgroup(dir)
		t.Cleanup(func() {
			cg.killAll()
			if err := os.Remove(dir); err != nil {
				t.Errorf("remove cgroup: %v", err)
			}
		})
		return cg
	}
	machine.Lacks(t, "no writable cgroup hierarchy: %s", strings.Join(errs, "; "))
	return ""
}

func (c cgroup) add(pid int) error {
	return os.WriteFile(filepath.Join(string(c), "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

func (c cgroup) pids() []int {
	b, _ := os.ReadFile(filepath.Join(string(c), "cgroup.procs"))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

func (c cgroup) has(pid int) bool { return slices.Contains(c.pids(), pid) }

// killAll is what runc does when a container stops: SIGKILL every process
// of the cgroup until none is left. It returns the pids it killed.
func (c cgroup) killAll() []int {
	var killed []int
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		pids := c.pids()
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if unix.Kill(pid, unix.SIGKILL) == nil && !slices.Contains(killed, pid) {
				killed = append(killed, pid)
			}
		}
	}
	return killed
}

// parentPID reads field 4 of /proc/PID/stat.
func parentPID(pid int) int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 1 {
			ppid, _ := strconv.Atoi(f[1])
			return ppid
		}
	}
	return 0
}
