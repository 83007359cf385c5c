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
		if bytes.Contains(b, []byte("fuse-serve\x00")) && bytes.Contains(b, []byte(root)) && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive is false for a gone or zombie process.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z' && b[i+2] != 'X'
	}
	return true
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
