package daxdev

import (
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// FindPool scans a file (say, a QEMU backing file holding a guest's
// device-dax namespace) for a pool header at page offsets and returns the
// offset of the first one whose checksum holds, for PoolOptions.Offset.
func FindPool(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("find pool: %w", err)
	}
	defer f.Close()
	h := make([]byte, hdrCRCEnd+4)
	for off := int64(0); ; off += pageSize {
		if _, err := f.ReadAt(h, off); err == io.EOF {
			break
		} else if err != nil {
			return 0, fmt.Errorf("find pool in %s at %d: %w", path, off, err)
		}
		if string(h[:8]) == poolMagic && le32(h, hdrCRC) == crc32.Checksum(h[:hdrCRCEnd], castagnoli) {
			return off, nil
		}
	}
	return 0, fmt.Errorf("find pool in %s: %w: no pool header at any page offset", path, ErrNotAPool)
}
