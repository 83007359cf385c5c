package image

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// FS is the io/fs view of the base image. Symlinks are followed inside the
// image (absolute targets resolve from the image root, as in a container).
type FS struct{ im *Image }

var (
	_ fs.ReadDirFS   = (*FS)(nil)
	_ fs.ReadFileFS  = (*FS)(nil)
	_ fs.StatFS      = (*FS)(nil)
	_ fs.ReadLinkFS  = (*FS)(nil)
	_ fs.ReadDirFile = (*dirFile)(nil)
	_ io.ReaderAt    = (*regFile)(nil)
	_ io.Seeker      = (*regFile)(nil)
)

// FS returns the io/fs view of the image.
func (im *Image) FS() *FS { return &FS{im: im} }

const maxSymlinkHops = 40 // as Linux MAXSYMLINKS

// FileMode converts a Linux st_mode to an fs.FileMode.
func FileMode(mode uint32) fs.FileMode {
	m := fs.FileMode(mode & modePerm)
	if mode&modeSetuid != 0 {
		m |= fs.ModeSetuid
	}
	if mode&modeSetgid != 0 {
		m |= fs.ModeSetgid
	}
	if mode&modeSticky != 0 {
		m |= fs.ModeSticky
	}
	switch mode & modeTypeMask {
	case modeRegular:
	case modeDir:
		m |= fs.ModeDir
	case modeSymlink:
		m |= fs.ModeSymlink
	case modeFIFO:
		m |= fs.ModeNamedPipe
	case modeSocket:
		m |= fs.ModeSocket
	case modeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case modeBlock:
		m |= fs.ModeDevice
	default:
		m |= fs.ModeIrregular
	}
	return m
}

// resolve walks name from the root; follow says whether a symlink in the
// last component is followed (intermediate ones always are).
func (f *FS) resolve(op, name string, follow bool) (Inode, error) {
	if !fs.ValidPath(name) {
		return Inode{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	root, err := f.im.Inode(RootIno)
	if err != nil {
		return Inode{}, &fs.PathError{Op: op, Path: name, Err: err}
	}
	stack := []Inode{root} // ancestors, for ".." in symlink targets
	var pending []string
	if name != "." {
		pending = strings.Split(name, "/")
	}
	hops := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		child, err := f.im.Lookup(stack[len(stack)-1].Ino, c)
		if err != nil {
			return Inode{}, &fs.PathError{Op: op, Path: name, Err: err}
		}
		if child.IsSymlink() && (len(pending) > 0 || follow) {
			if hops++; hops > maxSymlinkHops {
				return Inode{}, &fs.PathError{Op: op, Path: name, Err: errors.New("daxfs: too many levels of symbolic links")}
			}
			t, err := f.im.ReadLink(child.Ino)
			if err != nil {
				return Inode{}, &fs.PathError{Op: op, Path: name, Err: err}
			}
			if strings.HasPrefix(t, "/") {
				stack = stack[:1]
			}
			pending = append(strings.Split(t, "/"), pending...)
			continue
		}
		stack = append(stack, child)
	}
	return stack[len(stack)-1], nil
}

func baseName(name string) string {
	if name == "." {
		return "."
	}
	return path.Base(name)
}

// Open opens name, following symlinks.
func (f *FS) Open(name string) (fs.File, error) {
	in, err := f.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	info := fileInfo{name: baseName(name), in: in}
	if in.IsDir() {
		return &dirFile{fsys: f, info: info, path: name}, nil
	}
	return &regFile{im: f.im, info: info}, nil
}

// Stat returns the FileInfo of name, following symlinks.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	in, err := f.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return fileInfo{name: baseName(name), in: in}, nil
}

// Lstat returns the FileInfo of name without following a final symlink.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	in, err := f.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return fileInfo{name: baseName(name), in: in}, nil
}

// ReadLink returns the target of symlink name.
func (f *FS) ReadLink(name string) (string, error) {
	in, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	t, err := f.im.ReadLink(in.Ino)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return t, nil
}

// ReadDir lists directory name sorted by name, as io/fs requires.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	in, err := f.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	return f.readDir("readdir", name, in.Ino)
}

func (f *FS) readDir(op, name string, ino uint32) ([]fs.DirEntry, error) {
	ents, err := f.im.ReadDir(ino)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(ents))
	for i, e := range ents {
		out[i] = dirEntry{im: f.im, e: e}
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// ReadFile returns a copy of the contents of regular file name.
func (f *FS) ReadFile(name string) ([]byte, error) {
	in, err := f.resolve("readfile", name, true)
	if err != nil {
		return nil, err
	}
	// fileInode bounds the size by the image before anything is allocated.
	if in, err = f.im.fileInode(in.Ino); err != nil {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	buf := make([]byte, in.Size)
	if _, err := f.im.ReadAt(in.Ino, buf, 0); err != nil && err != io.EOF {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	return buf, nil
}

// fileInfo is the fs.FileInfo of an inode; Sys returns the Inode.
type fileInfo struct {
	name string
	in   Inode
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return int64(fi.in.Size) }
func (fi fileInfo) Mode() fs.FileMode  { return FileMode(fi.in.Mode) }
func (fi fileInfo) ModTime() time.Time { return time.Unix(0, 0) }
func (fi fileInfo) IsDir() bool        { return fi.in.IsDir() }
func (fi fileInfo) Sys() any           { return fi.in }

// dirEntry is an fs.DirEntry; its type comes from the entry's stored mode.
type dirEntry struct {
	im *Image
	e  DirEntry
}

func (d dirEntry) Name() string      { return d.e.Name }
func (d dirEntry) IsDir() bool       { return d.e.Mode&modeTypeMask == modeDir }
func (d dirEntry) Type() fs.FileMode { return FileMode(d.e.Mode).Type() }
func (d dirEntry) Info() (fs.FileInfo, error) {
	in, err := d.im.Inode(d.e.Ino)
	if err != nil {
		return nil, err
	}
	return fileInfo{name: d.e.Name, in: in}, nil
}
func (d dirEntry) String() string { return fs.FormatDirEntry(d) }

// regFile is an open non-directory; only regular files can be read.
type regFile struct {
	im   *Image
	info fileInfo
	off  int64
}

func (f *regFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *regFile) Close() error               { return nil }

func (f *regFile) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (f *regFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.im.ReadAt(f.info.in.Ino, p, off)
	if err != nil && err != io.EOF {
		return n, &fs.PathError{Op: "read", Path: f.info.name, Err: err}
	}
	return n, err
}

func (f *regFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += int64(f.info.in.Size)
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.info.name, Err: fs.ErrInvalid}
	}
	f.off = offset
	return offset, nil
}

// dirFile is an open directory.
type dirFile struct {
	fsys   *FS
	info   fileInfo
	path   string
	ents   []fs.DirEntry
	loaded bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: errors.New("is a directory")}
}

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.loaded {
		ents, err := d.fsys.readDir("readdir", d.path, d.info.in.Ino)
		if err != nil {
			return nil, err
		}
		d.ents, d.loaded = ents, true
	}
	if n <= 0 {
		out := d.ents
		d.ents = nil
		return out, nil
	}
	if len(d.ents) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.ents))
	out := d.ents[:n:n]
	d.ents = d.ents[n:]
	return out, nil
}
