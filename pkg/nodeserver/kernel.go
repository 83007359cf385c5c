package nodeserver

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/pkg/volume"
	"google.golang.org/grpc/codes"
)

// The kernel daxfs module (docs/daxfs-format.md section 10) mounts a region
// by physical address or by dma-buf fd. It does not exist on every node, so
// the backend is chosen per image.

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

// region says how the kernel could reach an extent.
type region struct {
	phys   uint64 // 0: no physical address
	size   int64  // image bytes
	dmabuf bool   // the pool hands out dma-buf fds
}

// selectBackend picks kernel or FUSE for a mount mode.
func selectBackend(mode volume.MountMode, listed bool, r region) (string, error) {
	kernelOK := listed && (r.phys != 0 || r.dmabuf)
	switch mode {
	case volume.MountFUSE:
		return backendFUSE, nil
	case volume.MountKernel:
		if !listed {
			return "", volume.WithCode(codes.FailedPrecondition,
				fmt.Errorf("mount=kernel: the daxfs kernel module is not loaded on this node (/proc/filesystems does not list daxfs); use mount=auto or fuse"))
		}
		if !kernelOK {
			return "", volume.WithCode(codes.FailedPrecondition,
				fmt.Errorf("mount=kernel: the pool gives neither a physical address nor a dma-buf for this region; use mount=auto or fuse"))
		}
		return backendKernel, nil
	default:
		if kernelOK {
			return backendKernel, nil
		}
		return backendFUSE, nil
	}
}

// kernelOptions is the data string of a phys mount; validate makes the module
// check the image once more (section 7).
func kernelOptions(phys uint64, size int64) string {
	return fmt.Sprintf("phys=0x%x,size=%d,validate", phys, size)
}

// mountKernelPhys mounts the region at dir read-only.
func mountKernelPhys(dir string, phys uint64, size int64) error {
	opts := kernelOptions(phys, size)
	if err := unix.Mount("none", dir, "daxfs", roFlags, opts); err != nil {
		return fmt.Errorf("mount daxfs %s at %s: %w", opts, dir, err)
	}
	return nil
}

// mountKernelDmabuf mounts a dma-buf through the new mount API: the fd can
// only be passed with fsconfig(FSCONFIG_SET_FD, "dmabuf").
func mountKernelDmabuf(dir string, dmabuf *os.File) error {
	fsfd, err := unix.Fsopen("daxfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen daxfs: %w", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigSetFd(fsfd, "dmabuf", int(dmabuf.Fd())); err != nil {
		return fmt.Errorf("fsconfig dmabuf: %w", err)
	}
	if err := unix.FsconfigSetFlag(fsfd, "validate"); err != nil {
		return fmt.Errorf("fsconfig validate: %w", err)
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
