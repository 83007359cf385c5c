package oci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// spoolDir is this process's directory for the builder's tar spool files,
// <dir>/spool/<pid>; spools of processes that died (crash, kill -9) are
// removed when a Converter starts.
func spoolDir(dir string) (string, error) {
	root := filepath.Join(dir, "spool")
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
	d := filepath.Join(root, strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", fmt.Errorf("oci cache: %w", err)
	}
	return d, nil
}
