package image

import (
	"testing"

	"golang.org/x/sys/unix"
)

// Helpers that make trees deeper than PATH_MAX from directory fds.

func openDir(t testing.TB, p string) int {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	return fd
}

// mkdirAt makes name in dir fd, closes fd and returns the new directory's fd.
func mkdirAt(t testing.TB, fd int, name string) int {
	t.Helper()
	must(t, unix.Mkdirat(fd, name, 0o755))
	sub, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	closeFd(fd)
	return sub
}

func writeAt(t testing.TB, fd int, name string, data []byte) {
	t.Helper()
	f, err := unix.Openat(fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	must(t, err)
	defer closeFd(f)
	if _, err := unix.Write(f, data); err != nil {
		t.Fatal(err)
	}
}

func closeFd(fd int) { unix.Close(fd) }

func mkfifo(p string) error { return unix.Mkfifo(p, 0o644) }
