package nodeserver

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

// The kernel daxfs module (docs/daxfs-format.md section 10,
// docs/kernel-mount.md) mounts a region by physical address or by dma-buf
// fd. It does not exist on every node, and what it can do is probed once
// per module instance (kernel_probe.go), so the backend is chosen per image.

// kernelModule is how the node reaches the kernel daxfs module: realModule
// on a node, a fake that behaves like upstream aa9c212 in tests (the module
// cannot be built here). The probe and the image mounts both go through it.
type kernelModule interface {
	// Instance identifies the loaded module; "" when it is not loaded.
	Instance() (string, error)
	// MountPhys is mount("none", dir, "daxfs", read-only, data).
	MountPhys(dir, data string) error
	// MountDmabuf mounts the whole dma-buf at dir with the new mount API,
	// setting flags as fsconfig flags.
	MountDmabuf(dir string, dmabuf *os.File, flags []string) error
	// Map is mmap(2) of a file on a daxfs mount.
	Map(f *os.File, length, prot, flags int) ([]byte, error)
}

// realModule is the module of the running kernel.
type realModule struct {
	procFilesystems string // /proc/filesystems
	sysModule       string // /sys/module/daxfs
	bootID          string // state.BootIDFile; a test file in tests
}

func newRealModule(procFilesystems string) realModule {
	return realModule{procFilesystems: procFilesystems, sysModule: "/sys/module/daxfs", bootID: state.BootIDFile}
}

// Instance names one load of the module. The boot id and the inode of
// /sys/module/daxfs together change on every load: kernfs numbers its
// nodes cyclically, so a reloaded module gets a new directory inode, and the
// boot id separates boots. srcversion (a hash of the module's source) and
// coresize make the key readable and change with the build. refcnt is not
// used: it counts mounts, so it changes without a new module.
// A built-in daxfs has no directory there (unless it has parameters); the
// boot id alone then names it.
func (m realModule) Instance() (string, error) {
	listed, err := kernelListed(m.procFilesystems)
	if err != nil || !listed {
		return "", err
	}
	boot, err := readTrim(m.bootID)
	if err != nil {
		return "", err
	}
	var st unix.Stat_t
	if err := unix.Stat(m.sysModule, &st); err != nil {
		return fmt.Sprintf("boot=%s builtin", boot), nil
	}
	src, _ := readTrim(filepath.Join(m.sysModule, "srcversion"))
	core, _ := readTrim(filepath.Join(m.sysModule, "coresize"))
	return fmt.Sprintf("boot=%s sysfs-ino=%d srcversion=%s coresize=%s", boot, st.Ino, src, core), nil
}

func (realModule) MountPhys(dir, data string) error {
	return unix.Mount("none", dir, "daxfs", roFlags, data)
}

// MountDmabuf: the fd can only be passed with fsconfig(FSCONFIG_SET_FD, "dmabuf").
func (realModule) MountDmabuf(dir string, dmabuf *os.File, flags []string) error {
	fsfd, err := unix.Fsopen("daxfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen daxfs: %w", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigSetFd(fsfd, "dmabuf", int(dmabuf.Fd())); err != nil {
		return fmt.Errorf("fsconfig dmabuf: %w", err)
	}
	for _, f := range flags {
		if err := unix.FsconfigSetFlag(fsfd, f); err != nil {
			return fmt.Errorf("fsconfig %s: %w", f, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("fsconfig create: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return fmt.Errorf("fsmount daxfs: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, dir, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount daxfs to %s: %w", dir, err)
	}
	return nil
}

func (realModule) Map(f *os.File, length, prot, flags int) ([]byte, error) {
	return unix.Mmap(int(f.Fd()), 0, length, prot, flags)
}

// kernelListed reports whether the filesystems file (/proc/filesystems) lists daxfs.
func kernelListed(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[len(fields)-1] == "daxfs" {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	return false, nil
}

func readTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// kernelOptions is the data string of a phys mount. It never carries
// `validate`: the node has validated every byte of the image (pkg/image,
// stricter than the module) before it was staged, and the module's
// validator refuses every image there is (its hard-link rule counts the
// entries pointing at each inode, and none points at the root: "inode 1
// nlink mismatch: nlink=1 refcount=0"; docs/daxfs-format.md section 7).
func kernelOptions(phys uint64, size int64) string {
	return fmt.Sprintf("phys=0x%x,size=%d", phys, size)
}

// kernelDmabufFlags are the fsconfig flags of a dma-buf mount: none, for
// the reason kernelOptions gives.
var kernelDmabufFlags []string

// mountKernelPhys mounts the region at dir read-only.
func mountKernelPhys(m kernelModule, dir string, phys uint64, size int64) error {
	opts := kernelOptions(phys, size)
	if err := m.MountPhys(dir, opts); err != nil {
		return fmt.Errorf("mount daxfs %s at %s: %w", opts, dir, err)
	}
	return nil
}

// mountKernelDmabuf mounts a dma-buf holding exactly one image.
func mountKernelDmabuf(m kernelModule, dir string, dmabuf *os.File) error {
	if err := m.MountDmabuf(dir, dmabuf, kernelDmabufFlags); err != nil {
		return fmt.Errorf("mount daxfs dmabuf at %s: %w", dir, err)
	}
	return nil
}
