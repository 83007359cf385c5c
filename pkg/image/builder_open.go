package image

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// noOpenat2 is set once openat2 proved missing (kernels before 5.6, or a
// seccomp filter refusing it); opens then walk from directory fds.
var noOpenat2 atomic.Bool

// Regular files are opened non-blocking (a FIFO swapped in must not hang
// the build) and never through a symlink.
const openFileFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY

// open opens f (rel: its appendRel) beneath its source root without
// following any symlink, and checks it is still the file the walk saw:
// same device, inode and size. Anything else fails with the path named.
func (f *srcFile) open(rel []byte, size int64) (*os.File, error) {
	fd, err := openBeneath(int(f.root.dir.Fd()), rel)
	switch {
	case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV):
		return nil, fmt.Errorf("daxfs build: %s: changed since the walk: a symlink is now in its path", f.path())
	case errors.Is(err, unix.ENOTDIR):
		return nil, fmt.Errorf("daxfs build: %s: changed since the walk: a directory of its path is no longer one", f.path())
	case err != nil:
		return nil, fmt.Errorf("daxfs build: %w", &os.PathError{Op: "open", Path: f.path(), Err: err})
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("daxfs build: %w", &os.PathError{Op: "stat", Path: f.path(), Err: err})
	}
	var changed string
	switch {
	case st.Mode&modeTypeMask != modeRegular:
		changed = fmt.Sprintf("no longer a regular file (mode %#o)", st.Mode)
	case st.Dev != f.dev || st.Ino != f.ino:
		changed = fmt.Sprintf("another file (inode %d:%d, walked %d:%d)", st.Dev, st.Ino, f.dev, f.ino)
	case st.Size != size:
		changed = fmt.Sprintf("%d bytes, walked %d", st.Size, size)
	}
	if changed != "" {
		unix.Close(fd)
		return nil, fmt.Errorf("daxfs build: %s: changed since the walk: %s", f.path(), changed)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("daxfs build: %s: %w", f.path(), err)
	}
	return os.NewFile(uintptr(fd), f.name), nil
}

// openBeneath opens rel (relative, '/'-separated) below directory root with
// no symlink followed in any component and no escape from root.
func openBeneath(root int, rel []byte) (int, error) {
	if !noOpenat2.Load() && len(rel) < unix.PathMax {
		how := unix.OpenHow{Flags: openFileFlags, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS}
		for range 8 { // EAGAIN: a rename raced the lookup; RESOLVE_BENEATH asks for a retry
			fd, err := unix.Openat2(root, string(rel), &how)
			switch {
			case err == nil:
				return fd, nil
			case errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM):
				noOpenat2.Store(true)
			case errors.Is(err, unix.EAGAIN):
				continue
			default:
				return -1, err
			}
			break
		}
	}
	return openNoFollow(root, string(rel))
}

// openNoFollow is openBeneath by hand: one openat with O_NOFOLLOW per
// component from root's fd ("." and ".." never occur in rel: the walk
// rejected such names). It also serves paths longer than PATH_MAX.
func openNoFollow(root int, rel string) (int, error) {
	dir := root
	defer func() {
		if dir != root {
			unix.Close(dir)
		}
	}()
	for {
		c, rest, more := strings.Cut(rel, "/")
		if !more {
			return unix.Openat(dir, c, openFileFlags, 0)
		}
		fd, err := unix.Openat(dir, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		var st unix.Stat_t
		if errors.Is(err, unix.ENOTDIR) && unix.Fstatat(dir, c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&modeTypeMask == modeSymlink {
			err = unix.ELOOP // as openat2 says it: O_DIRECTORY answers ENOTDIR for a symlink
		}
		if err != nil {
			return -1, err
		}
		if dir != root {
			unix.Close(dir)
		}
		dir, rel = fd, rest
	}
}
