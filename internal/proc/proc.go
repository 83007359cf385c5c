// Package proc reads a process's state from /proc/PID/stat: whether it
// still runs, and when it started (which tells it from a reused pid).
package proc

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// statFields are the fields of /proc/PID/stat after the command name:
// [0] is the state, [19] the start time. The name (field 2) may hold
// spaces and parentheses, so fields resume after the last ')'.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil, fmt.Errorf("parse /proc/%d/stat: no ')'", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
}

func zombie(f []string) bool { return len(f) > 0 && (f[0] == "Z" || f[0] == "X") }

// Alive is false for a gone or zombie process. A pidfd answers in three
// cheap syscalls (it polls readable once the process has exited, zombie
// or not); /proc/PID/stat, which the kernel builds by summing over every
// thread (~30 µs for a Go server, on each publish), is the fallback where
// pidfd_open is missing (before Linux 5.3) or refused.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err == nil {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		if err == nil {
			return n == 0
		}
	} else if errors.Is(err, unix.ESRCH) {
		return false
	}
	f, err := statFields(pid)
	return err == nil && !zombie(f)
}

// StartTime is the process's start in clock ticks since boot (field 22);
// a zombie reports an error wrapping os.ErrNotExist.
func StartTime(pid int) (uint64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields after the name", pid, len(f))
	}
	if zombie(f) {
		return 0, fmt.Errorf("process %d is a zombie: %w", pid, os.ErrNotExist)
	}
	return strconv.ParseUint(f[19], 10, 64)
}
