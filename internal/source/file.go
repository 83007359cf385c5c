package source

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// openFile opens a file:// source without following a symlink at its last
// component and without blocking: an O_PATH descriptor is taken first, so
// a FIFO or a device is refused from its fstat before anything opens it
// for reading (open() of a FIFO would block until a writer came, of some
// devices would act). Only a regular file is then reopened for reading.
func (f *Fetcher) openFile(ctx context.Context, p string) (io.ReadCloser, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("open image %s: %w", p, err)
	}
	pfd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("open image %s: %w", p, &os.PathError{Op: "open", Path: p, Err: err})
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, 0, fmt.Errorf("open image %s: %w", p, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFLNK:
		return nil, 0, fmt.Errorf("open image %s: %w: it is a symlink; name the file itself", p, ErrUnsupported)
	default:
		return nil, 0, fmt.Errorf("open image %s: %w: not a regular file (%s)", p, ErrUnsupported, fileType(st.Mode))
	}
	// The descriptor names the file actually reached, whatever directory
	// symlinks were swapped in since the caller checked the path.
	self := "/proc/self/fd/" + strconv.Itoa(pfd)
	if f.CheckFile != nil {
		real, err := os.Readlink(self)
		if err != nil {
			return nil, 0, fmt.Errorf("open image %s: %w", p, err)
		}
		if err := f.CheckFile(real); err != nil {
			return nil, 0, fmt.Errorf("open image %s: %w", p, err)
		}
	}
	rfd, err := unix.Open(self, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("open image %s: %w", p, err)
	}
	var rst unix.Stat_t
	if err := unix.Fstat(rfd, &rst); err != nil || rst.Dev != st.Dev || rst.Ino != st.Ino {
		unix.Close(rfd)
		return nil, 0, fmt.Errorf("open image %s: %w: the file changed while it was opened", p, ErrFetch)
	}
	if err := unix.SetNonblock(rfd, false); err != nil {
		unix.Close(rfd)
		return nil, 0, fmt.Errorf("open image %s: %w", p, err)
	}
	fh := os.NewFile(uintptr(rfd), p)
	return ctxFile{ctxReader{ctx, fh}, fh}, st.Size, nil
}

// ctxFile reads until ctx is done.
type ctxFile struct {
	ctxReader
	f *os.File
}

func (c ctxFile) Close() error { return c.f.Close() }

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	}
	return "unknown type"
}
