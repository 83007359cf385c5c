// Package fusefs serves a DAXFS image (*image.Image) read-only through FUSE
// with go-fuse. It is the fallback when the kernel daxfs module is absent.
//
// The image never changes while mounted, so everything the kernel can cache
// is cached for a long time: entries, attributes, negative lookups, symlink
// targets, directory listings and file pages. File data of images opened
// with image.OpenBytes is answered straight from the mapped bytes (no copy
// in this process). The first read of a file pushes the other small files
// of its directory into the kernel's page cache (FUSE NOTIFY_STORE,
// Options.PushSiblingsKB), so a cold walk that reads files does not pay a
// READ round trip per file.
package fusefs
