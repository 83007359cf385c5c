package fusefs

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// otherTargets mounts the tmpfs tree the ways a user would otherwise pick:
// squashfuse (mksquashfs defaults) and kernel erofs on a loop device
// (mkfs.erofs, uncompressed). A missing tool skips that target.
func otherTargets(b *testing.B, tree string) map[string]string {
	out := map[string]string{}
	work := b.TempDir()
	if have("mksquashfs", "squashfuse") {
		img := filepath.Join(work, "tree.sqfs")
		mnt := filepath.Join(work, "sqfs")
		if run(b, "mksquashfs", tree, img, "-quiet", "-no-progress") && mkdir(b, mnt) && run(b, "squashfuse", img, mnt) {
			b.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
			out["squashfuse"] = mnt
		}
	}
	if have("mkfs.erofs", "losetup") {
		img := filepath.Join(work, "tree.erofs")
		mnt := filepath.Join(work, "erofs")
		if run(b, "mkfs.erofs", "--quiet", img, tree) && mkdir(b, mnt) && run(b, "mount", "-t", "erofs", "-o", "ro,loop", img, mnt) {
			b.Cleanup(func() { run(b, "umount", "-d", mnt) })
			out["erofs"] = mnt
		}
	}
	return out
}

func have(tools ...string) bool {
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return false
		}
	}
	return true
}

func mkdir(b *testing.B, p string) bool {
	if err := os.Mkdir(p, 0o755); err != nil {
		b.Logf("mkdir %s: %v", p, err)
		return false
	}
	return true
}

func run(b *testing.B, name string, args ...string) bool {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Logf("%s %v: %v: %s", name, args, err, out)
		return false
	}
	return true
}
