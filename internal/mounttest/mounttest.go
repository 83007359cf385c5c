// Package mounttest finds and cleans up what a test's real mounts and
// fuse-serve processes leave under its root directory.
package mounttest

import (
	"bytes"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/internal/proc"
)

// MountsUnder lists the mount points at or below root, from this process's
// mountinfo.
func MountsUnder(root string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == root || strings.HasPrefix(f[4], root+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

// FuseServePIDs are the live fuse-serve processes whose arguments name root.
func FuseServePIDs(root string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, _ := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if bytes.Contains(b, []byte("fuse-serve\x00")) && bytes.Contains(b, []byte(root)) && proc.Alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// CleanupRoot kills the fuse-serve processes of root and detaches every
// mount below it, deepest first; mounts still left fail the test.
func CleanupRoot(t testing.TB, root string) {
	for _, pid := range FuseServePIDs(root) {
		unix.Kill(pid, unix.SIGKILL)
	}
	for i := 0; i < 3; i++ {
		mps := MountsUnder(root)
		if len(mps) == 0 {
			return
		}
		sort.Sort(sort.Reverse(sort.StringSlice(mps)))
		for _, mp := range mps {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	}
	if mps := MountsUnder(root); len(mps) > 0 {
		t.Errorf("mounts left under %s: %v", root, mps)
	}
}
