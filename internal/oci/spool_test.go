package oci

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// Spool files of a dead process are removed; a live one's are kept.
func TestSpoolOfDeadProcessRemoved(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(dir, "spool", strconv.Itoa(cmd.Process.Pid))
	live := filepath.Join(dir, "spool", "1") // init never dies
	for _, d := range []string{dead, live} {
		os.MkdirAll(d, 0o700)
		os.WriteFile(filepath.Join(d, "daxfs-build-spool-1"), []byte("x"), 0o600)
	}
	c := newConverter(t, dir, nil)
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("dead process's spool kept: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("live process's spool removed: %v", err)
	}
	if c.spool != filepath.Join(dir, "spool", strconv.Itoa(os.Getpid())) {
		t.Errorf("spool dir %s", c.spool)
	}
}
