package image

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
)

var (
	// ErrVersion: the image is not format version 5 (v1–v4 magics are named).
	ErrVersion = errors.New("daxfs: unsupported format version")
	// ErrSplitMode: file data lives in an external backing file; not served.
	ErrSplitMode  = errors.New("daxfs: split-mode image (file data in an external backing file) is not supported")
	ErrNotDir     = errors.New("daxfs: not a directory")
	ErrNotRegular = errors.New("daxfs: not a regular file")
	ErrNotSymlink = errors.New("daxfs: not a symlink")
	// ErrNotMapped: FileBytes on an image opened from an io.ReaderAt.
	ErrNotMapped = errors.New("daxfs: image is not memory-backed (use OpenBytes)")
	// ErrTooLarge: a build would pass BuildOptions.MaxSize.
	ErrTooLarge = errors.New("image exceeds the size limit")
)

// errNotFound is shared so a negative Lookup (frequent under FUSE) does
// not allocate.
var errNotFound = fmt.Errorf("daxfs: no such entry: %w", fs.ErrNotExist)

// FormatError reports a malformed image: the inode (0 for image-level
// problems), the directory entry (-1 when none) and the rule broken.
type FormatError struct {
	Ino   uint32
	Entry int
	Name  string // entry name, when Entry >= 0
	Rule  string
}

func (e *FormatError) Error() string {
	b := []byte("daxfs: ")
	if e.Ino != 0 {
		b = append(b, "inode "...)
		b = strconv.AppendUint(b, uint64(e.Ino), 10)
		b = append(b, ": "...)
	}
	if e.Entry >= 0 {
		b = append(b, "directory entry "...)
		b = strconv.AppendInt(b, int64(e.Entry), 10)
		b = append(b, " ("...)
		b = strconv.AppendQuote(b, e.Name)
		b = append(b, "): "...)
	}
	return string(append(b, e.Rule...))
}

func imageErr(format string, args ...any) error {
	return &FormatError{Entry: -1, Rule: fmt.Sprintf(format, args...)}
}

func inodeErr(ino uint32, format string, args ...any) error {
	return &FormatError{Ino: ino, Entry: -1, Rule: fmt.Sprintf(format, args...)}
}

func entryErr(ino uint32, j int, name string, format string, args ...any) error {
	return &FormatError{Ino: ino, Entry: j, Name: name, Rule: fmt.Sprintf(format, args...)}
}

func kindErr(ino uint32, err error) error { return fmt.Errorf("daxfs: inode %d: %w", ino, err) }
