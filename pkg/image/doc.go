// Package image reads, validates and builds DAXFS version 5 images, the
// format the daxfs kernel module mounts (../shared/docs/daxfs-format.md).
//
// Reading works like debug/elf: Open takes an io.ReaderAt, OpenBytes takes
// mapped memory and then hands out file data as sub-slices without copying.
// Open checks only the structure its accessors rely on; Validate checks
// every rule. Every accessor bounds-checks with overflow-safe arithmetic, so
// even an image that was never validated cannot make the reader panic or
// read outside the region. Only the read-only base image is served; the
// branch table and delta region of branching images are ignored.
//
// Errors about the bytes are *FormatError values naming the inode, the
// directory entry and the rule broken. ErrVersion (v1–v4 magics, named) and
// ErrSplitMode (external data flag) work with errors.Is.
//
// The Builder writes static images sequentially and deterministically: the
// layout is computed from metadata first and file data is then streamed, so
// the output may be a pipe or a hasher. nlink is the number of entries
// pointing at an inode (root: 1); special files are skipped unless
// SpecialsKeep. docs/image-format-notes.md records every such choice.
package image
