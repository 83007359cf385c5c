package fusefs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// TestOtherUsersAndModes: pods run as other users (allow_other) and the
// kernel enforces the stored modes (default_permissions).
func TestOtherUsersAndModes(t *testing.T) {
	_, mnt := mountTest(t, openSample(t, "tree1.static.daxfs", true), Options{})
	if err := os.Chmod(filepath.Dir(mnt), 0o755); err != nil { // t.TempDir is 0700
		t.Fatal(err)
	}
	asNobody := func(name string, args ...string) (string, error) {
		cmd := exec.Command(name, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := asNobody("cat", filepath.Join(mnt, "small.txt")); err != nil || out != "hello daxfs\n" {
		t.Errorf("nobody reading small.txt (0644): %q %v", out, err)
	}
	if out, err := asNobody("cat", filepath.Join(mnt, "dir1/sub1/readonly")); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("nobody reading readonly (0400 root): %q %v; want permission denied", out, err)
	}
	if out, err := asNobody("ls", filepath.Join(mnt, "dir1/sub1/subsub")); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("nobody listing subsub (0700 root): %q %v; want permission denied", out, err)
	}
	if out, err := asNobody("ls", "-ld", filepath.Join(mnt, "emptydir")); err != nil || !strings.HasPrefix(out, "drwxrwxrwt") {
		t.Errorf("nobody: ls -ld emptydir: %q %v; want drwxrwxrwt", out, err)
	}
}

// TestTruncatedMappedImageGivesEIO: a mapped image file cut short under a
// live mount faults on access; the server answers EIO and keeps running.
func TestTruncatedMappedImageGivesEIO(t *testing.T) {
	src, err := os.ReadFile(samplePath(t, "tree1.static.daxfs"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(p, src, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := unix.Mmap(int(f.Fd()), 0, len(src), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	im, err := image.OpenBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	_, mnt := mountTest(t, im, Options{})
	t.Cleanup(func() { unix.Munmap(b) }) // runs after the unmount (last in, first out)
	big := filepath.Join(mnt, "dir1/sub1/multi_mib.bin")
	if _, err := os.Lstat(big); err != nil { // looked up while intact
		t.Fatal(err)
	}
	if err := os.Truncate(p, 8192); err != nil { // keep the superblocks, lose the inode table
		t.Fatal(err)
	}
	if _, err := os.ReadFile(big); errnoOf(err) != unix.EIO {
		t.Errorf("reading data cut off the mapping: %v, want EIO", err)
	}
	if _, err := os.ReadDir(mnt); errnoOf(err) != unix.EIO {
		t.Errorf("readdir of a truncated image: %v, want EIO", err)
	}
	if _, err := os.Lstat(filepath.Join(mnt, "small.txt")); errnoOf(err) != unix.EIO {
		t.Errorf("lookup in a truncated image: %v, want EIO", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Errorf("server died: %v", err)
	}
}

// TestAllowOtherOff: without allow_other only the mounting user gets in.
func TestAllowOtherOff(t *testing.T) {
	off := false
	_, mnt := mountTest(t, openSample(t, "tree1.static.daxfs", true), Options{AllowOther: &off})
	if err := os.Chmod(filepath.Dir(mnt), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cat", filepath.Join(mnt, "small.txt"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("nobody read through a mount without allow_other: %q", out)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "small.txt")); err != nil || len(b) != 12 {
		t.Errorf("owner read: %q %v", b, err)
	}
	if strings.Contains(mountinfoLine(t, mnt), "allow_other") {
		t.Errorf("allow_other in %q", mountinfoLine(t, mnt))
	}
}
