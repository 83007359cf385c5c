package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"strings"
)

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// AddTar stacks a tar stream onto the image as the next layer, with OCI
// layer semantics: ".wh.NAME" removes NAME from lower layers,
// ".wh..wh..opq" hides everything lower layers put in its directory, and a
// hard link shares the inode of a regular file already in the tree.
//
// When r can seek and read at offsets (an *os.File of an uncompressed tar),
// file data is read from r again at WriteTo time, so r must stay open and
// unchanged until then. Otherwise (pipes, decompressors) and for sparse
// members, the data is spooled to a temporary file.
func (b *Builder) AddTar(r io.Reader) error {
	b.layer++
	if ra, ok := r.(tarFile); ok {
		if _, err := ra.Seek(0, io.SeekCurrent); err == nil { // os.Stdin "seeks" only when it is a file
			b.tarFile = ra
		}
	}
	defer func() { b.tarFile = nil }()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("daxfs build: reading tar: %w", err)
		}
		if err := b.addTarEntry(hdr, tr); err != nil {
			return err
		}
	}
}

// tarPath cleans a member name into components; nil means the root.
func tarPath(name string) ([]string, error) {
	p := path.Clean("/" + name)
	if p == "/" {
		return nil, nil
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return nil, fmt.Errorf("daxfs build: tar member %q leaves the root", name)
		}
	}
	parts := strings.Split(p[1:], "/")
	for _, c := range parts {
		if err := checkName(name, c); err != nil {
			return nil, err
		}
	}
	return parts, nil
}

func tarOwner(hdr *tar.Header) (uint32, uint32, error) {
	if hdr.Uid < 0 || hdr.Uid > math.MaxUint32 || hdr.Gid < 0 || hdr.Gid > math.MaxUint32 {
		return 0, 0, fmt.Errorf("daxfs build: tar member %q: uid %d or gid %d out of range", hdr.Name, hdr.Uid, hdr.Gid)
	}
	return uint32(hdr.Uid), uint32(hdr.Gid), nil
}

func (b *Builder) addTarEntry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeDir, tar.TypeReg, '\x00', tar.TypeGNUSparse, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return nil // pax/GNU metadata members carry no file
	}
	parts, err := tarPath(hdr.Name)
	if err != nil {
		return err
	}
	uid, gid, err := tarOwner(hdr)
	if err != nil {
		return err
	}
	perm := uint32(hdr.Mode) & 0o7777
	if parts == nil {
		if hdr.Typeflag == tar.TypeDir {
			b.lay = nil
			b.root.mode, b.root.uid, b.root.gid = modeDir|perm, uid, gid
		}
		return nil
	}
	name := parts[len(parts)-1]
	if strings.HasPrefix(name, whiteoutPrefix) {
		return b.whiteout(parts, name)
	}
	n := &node{uid: uid, gid: gid}
	switch hdr.Typeflag {
	case tar.TypeDir:
		n.mode, n.children = modeDir|perm, map[string]child{}
	case tar.TypeReg, '\x00', tar.TypeGNUSparse: // the tar reader expands sparse members
		n.mode, n.size = modeRegular|perm, hdr.Size
		if err := b.memberData(n, hdr, r); err != nil {
			return err
		}
	case tar.TypeSymlink:
		n.mode, n.target = modeSymlink|perm, hdr.Linkname
		if err := checkTarget(hdr.Name, n.target); err != nil {
			return err
		}
	case tar.TypeLink:
		lparts, err := tarPath(hdr.Linkname)
		if err != nil {
			return err
		}
		t := b.find(lparts)
		switch {
		case t == nil:
			return fmt.Errorf("daxfs build: tar member %q: hard link target %q not found", hdr.Name, hdr.Linkname)
		case t.isDir() || t == b.root:
			return fmt.Errorf("daxfs build: tar member %q: hard link to directory %q", hdr.Name, hdr.Linkname)
		case t.mode&modeTypeMask == modeRegular:
			n = t
		default: // only regular files share inodes
			cp := *t
			n = &cp
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		n.mode = map[byte]uint32{tar.TypeChar: modeChar, tar.TypeBlock: modeBlock, tar.TypeFifo: modeFIFO}[hdr.Typeflag] | perm
		if b.opts.Specials != SpecialsKeep {
			b.skipped = append(b.skipped, "/"+strings.Join(parts, "/"))
			return nil
		}
	}
	b.put(b.parent(parts), name, n)
	return nil
}

// whiteout applies ".wh.NAME" or the opaque marker in parts' directory.
func (b *Builder) whiteout(parts []string, name string) error {
	dir := b.find(parts[:len(parts)-1])
	if dir == nil || !dir.isDir() {
		return nil // nothing below to hide
	}
	b.lay = nil
	if name == opaqueMarker {
		for k, c := range dir.children {
			if c.layer < b.layer {
				delete(dir.children, k)
			}
		}
		return nil
	}
	delete(dir.children, strings.TrimPrefix(name, whiteoutPrefix))
	return nil
}

// tarFile is a tar stream whose member data can be read again later.
type tarFile interface {
	io.ReaderAt
	io.Seeker
}

// memberData records where a regular member's bytes are: in place when
// the tar is a seekable file and the member is stored contiguously, else
// in the spool.
func (b *Builder) memberData(n *node, hdr *tar.Header, r io.Reader) error {
	if max := b.opts.MaxSize; max > 0 && hdr.Size > max {
		return fmt.Errorf("daxfs build: tar member %q: %w: %d data bytes, limit %d", hdr.Name, ErrTooLarge, hdr.Size, max)
	}
	if b.tarFile != nil && !sparse(hdr) {
		// The tar reader reads whole blocks without read-ahead, so after
		// Next the file offset is the start of the member's data.
		if off, err := b.tarFile.Seek(0, io.SeekCurrent); err == nil {
			n.data, n.dataOff = b.tarFile, off
			return nil
		}
	}
	return b.spoolData(n, hdr, r)
}

// sparse reports members whose stored bytes are not their content.
func sparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// spoolData appends a member's data to the spool file.
func (b *Builder) spoolData(n *node, hdr *tar.Header, r io.Reader) error {
	if max := b.opts.MaxSize; max > 0 && hdr.Size > max-b.spoolAt {
		return fmt.Errorf("daxfs build: tar member %q: %w: %d data bytes to spool after %d, limit %d", hdr.Name, ErrTooLarge, hdr.Size, b.spoolAt, max)
	}
	if b.spool == nil {
		f, err := os.CreateTemp(b.opts.TempDir, "daxfs-build-spool-*")
		if err != nil {
			return fmt.Errorf("daxfs build: creating spool file: %w", err)
		}
		b.spool = f
	}
	n.data, n.dataOff = b.spool, b.spoolAt
	w, err := io.Copy(b.spool, r)
	b.spoolAt += w
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("daxfs build: tar member %q: truncated data: %w", hdr.Name, err)
		}
		return fmt.Errorf("daxfs build: tar member %q: spooling data: %w", hdr.Name, err)
	}
	if w != hdr.Size {
		return fmt.Errorf("daxfs build: tar member %q: %d data bytes, header says %d", hdr.Name, w, hdr.Size)
	}
	return nil
}
