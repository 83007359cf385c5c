package daxdev

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

var pageSize = int64(os.Getpagesize())

func mapShared(f *os.File, off, n int64) ([]byte, error) {
	b, err := unix.Mmap(int(f.Fd()), off, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s [%d, +%d) MAP_SHARED: %w", f.Name(), off, n, err)
	}
	return b, nil
}

// msyncRange writes back [off, off+n) of mapping b, widened to whole pages as
// msync requires.
func msyncRange(b []byte, off, n int64) error {
	if n <= 0 {
		return nil
	}
	start := off / pageSize * pageSize
	end := roundUp(off+n, pageSize)
	if end > int64(len(b)) {
		end = int64(len(b))
	}
	if err := unix.Msync(b[start:end], unix.MS_SYNC); err != nil {
		return fmt.Errorf("msync [%d, %d): %w", start, end, err)
	}
	return nil
}
