package fusefs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"k8s.io/klog/v2"
)

// readAhead raises the readahead window of the mount's backing device info
// (FUSE's default is 128 KiB) so big files stream in 1 MiB requests. The
// FUSE handshake lowers it, so it is set on the first request, which comes
// after the handshake. The device comes from mountinfo, not from a stat of
// the mount: a request to itself in flight when the server is killed would
// hang its exit forever (the kernel waits for an answer only it could give).
type readAhead struct {
	once sync.Once
	path string // /sys/class/bdi/MAJ:MIN/read_ahead_kb; "" to skip
	kb   int
}

func newReadAhead(mountpoint string, kb int) *readAhead {
	ra := &readAhead{kb: kb}
	if kb <= 0 {
		return ra
	}
	dev, err := mountDevice(mountpoint)
	if err != nil {
		klog.V(2).InfoS("Cannot find the mount's device; keeping the kernel readahead", "mountpoint", mountpoint, "err", err)
		return ra
	}
	ra.path = "/sys/class/bdi/" + dev + "/read_ahead_kb"
	return ra
}

// set runs once, on the first request.
func (ra *readAhead) set() {
	if ra == nil {
		return
	}
	ra.once.Do(func() {
		if ra.path == "" {
			return
		}
		if err := os.WriteFile(ra.path, []byte(strconv.Itoa(ra.kb)), 0); err != nil {
			klog.V(2).InfoS("Could not raise readahead; keeping the kernel default", "path", ra.path, "err", err)
		}
	})
}

// mountDevice is the "MAJ:MIN" of the topmost mount at mountpoint, from
// /proc/self/mountinfo.
func mountDevice(mountpoint string) (string, error) {
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return "", err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	dev := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMountinfo(fields[4]) == abs {
			dev = fields[2]
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading mountinfo: %w", err)
	}
	if dev == "" {
		return "", fmt.Errorf("%s not in /proc/self/mountinfo", abs)
	}
	return dev, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
