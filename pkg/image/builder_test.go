package image

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
)

// want is what an image entry must show for a source path.
type want struct {
	mode, uid, gid, nlink uint32
	size                  uint64
	sum                   [32]byte
	target                string
}

// sourceTree records every path under root with lstat, the way the
// builder must store it: nlink counts the paths sharing a regular file,
// directories and the root get 1.
func sourceTree(t *testing.T, root string, keepSpecials bool) map[string]want {
	t.Helper()
	out := map[string]want{}
	byIno := map[uint64][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		if isSpecial(st.Mode) && !keepSpecials {
			return nil
		}
		w := want{mode: st.Mode, uid: st.Uid, gid: st.Gid, nlink: 1}
		switch st.Mode & modeTypeMask {
		case modeRegular:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			w.size, w.sum = uint64(len(b)), sha256.Sum256(b)
			byIno[st.Ino] = append(byIno[st.Ino], rel)
		case modeSymlink:
			if w.target, err = os.Readlink(p); err != nil {
				return err
			}
			w.size = uint64(len(w.target))
		}
		out[rel] = w
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, paths := range byIno {
		for _, p := range paths {
			w := out[p]
			w.nlink = uint32(len(paths))
			out[p] = w
		}
	}
	return out
}

// imageTree reads every reachable entry of im the same way.
func imageTree(t *testing.T, im *Image) map[string]want {
	t.Helper()
	out := map[string]want{}
	err := im.Walk(func(p string, in Inode) error {
		w := want{mode: in.Mode, uid: in.UID, gid: in.GID, nlink: in.Nlink, size: in.Size}
		switch {
		case in.IsRegular():
			b, err := im.FileBytes(in.Ino)
			if err != nil {
				return err
			}
			w.sum = sha256.Sum256(b)
		case in.IsSymlink():
			var err error
			if w.target, err = im.ReadLink(in.Ino); err != nil {
				return err
			}
		case in.IsDir():
			ents, err := im.ReadDir(in.Ino)
			if err != nil {
				return err
			}
			if in.Size != uint64(DirentSize*len(ents)) {
				return fmt.Errorf("%s: size %d for %d entries", p, in.Size, len(ents))
			}
			w.size = 0
		}
		out[p] = w
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compareTrees(t *testing.T, src, img map[string]want) {
	t.Helper()
	for p, w := range src {
		g, ok := img[p]
		if !ok {
			t.Errorf("%s: missing from the image", p)
			continue
		}
		if w.mode&modeTypeMask == modeDir {
			w.size = 0
		}
		if g != w {
			t.Errorf("%s: image %+v\nsource %+v", p, g, w)
		}
	}
	for p := range img {
		if _, ok := src[p]; !ok {
			t.Errorf("%s: in the image, not in the source", p)
		}
	}
}

func mustWrite(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// pattern returns n deterministic non-zero-ish bytes.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

// featureTree builds a source tree with every feature the format carries.
func featureTree(t *testing.T, withHuge bool) string {
	t.Helper()
	root := t.TempDir()
	long := strings.Repeat("N", 251) + ".255"
	mustWrite(t, filepath.Join(root, "dir1", long), []byte("long name"))
	for _, n := range []int{0, 1, 4095, 4096, 4097, 3<<20 + 17} {
		mustWrite(t, filepath.Join(root, "sizes", fmt.Sprintf("f%d", n)), pattern(n, byte(n)))
	}
	must(t, os.Mkdir(filepath.Join(root, "emptydir"), 0o755))
	must(t, os.Chmod(filepath.Join(root, "emptydir"), 0o1777|os.ModeSticky))
	mustWrite(t, filepath.Join(root, "suid"), []byte("suid"))
	must(t, os.Chmod(filepath.Join(root, "suid"), 0o755|os.ModeSetuid))
	mustWrite(t, filepath.Join(root, "sgid"), []byte("sgid"))
	must(t, os.Chmod(filepath.Join(root, "sgid"), 0o2750|os.ModeSetgid))
	mustWrite(t, filepath.Join(root, "bigowner"), []byte("owner"))
	must(t, os.Lchown(filepath.Join(root, "bigowner"), 4000000000, 4000000001))
	must(t, os.Symlink("sizes/f1", filepath.Join(root, "rel")))
	must(t, os.Symlink("/etc/passwd", filepath.Join(root, "abs")))
	must(t, os.Symlink("nonexistent", filepath.Join(root, "dangling")))
	must(t, os.Symlink("/"+strings.Repeat("x", MaxSymlinkLen-1), filepath.Join(root, "long4095")))
	must(t, os.Lchown(filepath.Join(root, "rel"), 1000, 1001))
	must(t, os.Link(filepath.Join(root, "sizes", "f4097"), filepath.Join(root, "dir1", "hard1")))
	must(t, os.Link(filepath.Join(root, "sizes", "f4097"), filepath.Join(root, "hard2")))
	deep := root
	for i := range 64 {
		deep = filepath.Join(deep, fmt.Sprintf("d%02d", i))
	}
	mustWrite(t, filepath.Join(deep, "bottom"), []byte("bottom"))
	if withHuge {
		many := filepath.Join(root, "many")
		must(t, os.Mkdir(many, 0o755))
		for i := range 10000 {
			f, err := os.Create(filepath.Join(many, fmt.Sprintf("e%05d", i)))
			must(t, err)
			if i%1000 == 0 {
				f.WriteString("x")
			}
			f.Close()
		}
	}
	must(t, syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	return root
}

func build(t testing.TB, opts BuildOptions, add func(b *Builder) error) []byte {
	t.Helper()
	b := NewBuilder(opts)
	t.Cleanup(func() { b.Close() })
	if err := add(b); err != nil {
		t.Fatal(err)
	}
	size, err := b.Size()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := b.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != size || int64(buf.Len()) != size {
		t.Fatalf("WriteTo wrote %d (buffer %d), Size said %d", n, buf.Len(), size)
	}
	return buf.Bytes()
}

func openValid(t testing.TB, img []byte) *Image {
	t.Helper()
	im, err := OpenBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := im.Validate(); err != nil {
		t.Fatalf("built image does not validate: %v", err)
	}
	return im
}

func TestRoundTripDir(t *testing.T) {
	root := featureTree(t, true)
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keepSpecials=%v", keep), func(t *testing.T) {
			opts := BuildOptions{}
			if keep {
				opts.Specials = SpecialsKeep
			}
			var skipped []string
			img := build(t, opts, func(b *Builder) error {
				err := b.AddDir(root)
				skipped = b.Skipped()
				return err
			})
			im := openValid(t, img)
			compareTrees(t, sourceTree(t, root, keep), imageTree(t, im))
			if keep != (len(skipped) == 0) || (!keep && skipped[0] != "/fifo") {
				t.Errorf("skipped %q with keep=%v", skipped, keep)
			}
			if keep {
				in, err := im.Lookup(RootIno, "fifo")
				if err != nil || in.Mode != modeFIFO|0o644 || in.Size != 0 || in.DataOffset != 0 {
					t.Errorf("fifo: %+v, %v", in, err)
				}
			}
		})
	}
}

func TestBuiltImageKernelRules(t *testing.T) {
	root := featureTree(t, false)
	im := openValid(t, build(t, BuildOptions{}, func(b *Builder) error { return b.AddDir(root) }))
	info := im.Info()
	if info.BaseOffset != BlockSize || info.TotalSize != uint64(info.RegionSize) || info.BaseTotalSize != info.BaseSize {
		t.Errorf("header: %+v", info)
	}
	// Every kernel validate rule but the root's: nlink equals the entries
	// pointing at the inode and exceeds 1 only for regular files.
	refs := map[uint32]uint32{}
	for ino := uint32(1); ino <= info.InodeCount; ino++ {
		if ents, err := im.ReadDir(ino); err == nil {
			for _, e := range ents {
				refs[e.Ino]++
			}
		}
	}
	for ino := uint32(1); ino <= info.InodeCount; ino++ {
		in, err := im.Inode(ino)
		must(t, err)
		want := refs[ino]
		if ino == RootIno {
			want = 1
		}
		if in.Nlink != want || (in.Nlink > 1 && !in.IsRegular()) {
			t.Errorf("inode %d: nlink %d, %d entries point at it", ino, in.Nlink, refs[ino])
		}
	}
	// Directories and symlinks come first in the data area, then file
	// data, each in inode order: a cold tree walk reads one run of blocks.
	var lastMeta, firstFile uint64 = 0, ^uint64(0)
	var prev [2]uint64 // last offset seen per class, for inode order
	for ino := uint32(1); ino <= info.InodeCount; ino++ {
		in, err := im.Inode(ino)
		must(t, err)
		if in.DataOffset == 0 {
			continue
		}
		class := 0
		if in.IsRegular() {
			class = 1
			firstFile = min(firstFile, in.DataOffset)
		} else {
			lastMeta = max(lastMeta, in.DataOffset)
		}
		if in.DataOffset <= prev[class] {
			t.Errorf("inode %d: data at %#x, not after the previous one of its class (%#x)", ino, in.DataOffset, prev[class])
		}
		prev[class] = in.DataOffset
	}
	if lastMeta == 0 || firstFile == ^uint64(0) || lastMeta > firstFile {
		t.Errorf("metadata ends at %#x, file data starts at %#x: want all metadata first", lastMeta, firstFile)
	}
	// Entries are sorted bytewise in stored order.
	ents, err := im.ReadDir(RootIno)
	must(t, err)
	for i := 1; i < len(ents); i++ {
		if ents[i-1].Name >= ents[i].Name {
			t.Errorf("root entries not sorted: %q before %q", ents[i-1].Name, ents[i].Name)
		}
	}
}

func TestDeterministic(t *testing.T) {
	root := featureTree(t, false)
	a := build(t, BuildOptions{}, func(b *Builder) error { return b.AddDir(root) })
	b := build(t, BuildOptions{}, func(b *Builder) error { return b.AddDir(root) })
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same tree differ")
	}
	// A copy of the tree elsewhere (other inode numbers, other readdir
	// order) gives the same bytes too.
	copyRoot := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", root, copyRoot).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	must(t, os.Chmod(copyRoot, 0o700)) // the root's mode is part of the image
	must(t, os.Chmod(root, 0o700))
	a = build(t, BuildOptions{}, func(b *Builder) error { return b.AddDir(root) })
	c := build(t, BuildOptions{}, func(b *Builder) error { return b.AddDir(copyRoot) })
	if !bytes.Equal(a, c) {
		t.Fatal("a copy of the tree gives different bytes")
	}
}

func TestFSTest(t *testing.T) {
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "a", "b.txt"), []byte("hello"))
	mustWrite(t, filepath.Join(root, "a", "c", "d"), pattern(9000, 1))
	mustWrite(t, filepath.Join(root, "empty"), nil)
	must(t, os.Mkdir(filepath.Join(root, "emptydir"), 0o700))
	must(t, os.Symlink("a/b.txt", filepath.Join(root, "link")))
	must(t, os.Symlink("/a/c", filepath.Join(root, "a", "abslink")))
	must(t, os.Link(filepath.Join(root, "empty"), filepath.Join(root, "a", "hard")))
	im := openValid(t, build(t, BuildOptions{}, func(b *Builder) error { return b.AddDir(root) }))
	fsys := im.FS()
	if err := fstest.TestFS(fsys, "a/b.txt", "a/c/d", "empty", "emptydir", "link", "a/abslink", "a/hard"); err != nil {
		t.Fatal(err)
	}
	if got, err := fs.ReadFile(fsys, "a/abslink/d"); err != nil || !bytes.Equal(got, pattern(9000, 1)) {
		t.Errorf("through absolute symlink: %d bytes, %v", len(got), err)
	}
	fi, err := fsys.Lstat("link")
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 || fi.Sys().(Inode).Mode&modeTypeMask != modeSymlink {
		t.Errorf("Lstat(link) = %v, %v", fi, err)
	}
}

func TestFileModeConversion(t *testing.T) {
	for _, c := range []struct {
		st   uint32
		want fs.FileMode
	}{
		{modeRegular | 0o4755, fs.ModeSetuid | 0o755},
		{modeRegular | 0o2750, fs.ModeSetgid | 0o750},
		{modeDir | 0o1777, fs.ModeDir | fs.ModeSticky | 0o777},
		{modeSymlink | 0o777, fs.ModeSymlink | 0o777},
		{modeFIFO | 0o644, fs.ModeNamedPipe | 0o644},
		{modeSocket | 0o755, fs.ModeSocket | 0o755},
		{modeChar | 0o644, fs.ModeDevice | fs.ModeCharDevice | 0o644},
		{modeBlock | 0o644, fs.ModeDevice | 0o644},
		{0o070644, fs.ModeIrregular | 0o644},
	} {
		if got := FileMode(c.st); got != c.want {
			t.Errorf("FileMode(%#o) = %v, want %v", c.st, got, c.want)
		}
	}
}

func TestBuildReadErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(p string) error
		want   string
	}{
		{"removed", os.Remove, "no such file or directory"},
		{"shrank", func(p string) error { return os.Truncate(p, 10) }, "/f: changed since the walk: 10 bytes, walked 5000"},
		{"grew", func(p string) error { return os.WriteFile(p, pattern(6000, 0), 0o644) }, "/f: changed since the walk: 6000 bytes, walked 5000"},
		{"became a directory", func(p string) error { os.Remove(p); return os.Mkdir(p, 0o755) }, "/f: changed since the walk: no longer a regular file (mode 040755)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			p := filepath.Join(root, "f")
			mustWrite(t, p, pattern(5000, 3))
			b := NewBuilder(BuildOptions{})
			t.Cleanup(func() { b.Close() })
			must(t, b.AddDir(root))
			must(t, c.change(p))
			var buf bytes.Buffer
			_, err := b.WriteTo(&buf)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("WriteTo = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestBuildRejectsBadSources(t *testing.T) {
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, strings.Repeat("y", 256)[:255]), nil)
	b := NewBuilder(BuildOptions{})
	defer b.Close()
	if err := b.AddDir(filepath.Join(root, "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("AddDir(missing) = %v", err)
	}
	if err := b.AddDir(filepath.Join(root, strings.Repeat("y", 255))); err == nil || !strings.Contains(err.Error(), "is not a directory") {
		t.Errorf("AddDir(file) = %v", err)
	}
}

// TestAddDirThroughSymlink: a symlink naming the source root is followed;
// symlinks inside are stored as symlinks.
func TestAddDirThroughSymlink(t *testing.T) {
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "real", "f"), []byte("f"))
	must(t, os.Symlink("f", filepath.Join(root, "real", "l")))
	must(t, os.Symlink("real", filepath.Join(root, "alias")))
	im := openValid(t, build(t, BuildOptions{}, func(b *Builder) error { return b.AddDir(filepath.Join(root, "alias")) }))
	l, err := im.Lookup(RootIno, "l")
	if err != nil || !l.IsSymlink() {
		t.Fatalf("l: %+v, %v", l, err)
	}
	if f, err := im.Lookup(RootIno, "f"); err != nil || !f.IsRegular() || f.Size != 1 {
		t.Errorf("f: %+v, %v", f, err)
	}
}

// TestBuildTarDataShrank: a tar read in place that shrinks before WriteTo
// fails the build instead of giving zeros.
func TestBuildTarDataShrank(t *testing.T) {
	p := filepath.Join(t.TempDir(), "l.tar")
	mustWrite(t, p, makeTar(t, reg("f", string(pattern(5000, 4)))))
	f, err := os.Open(p)
	must(t, err)
	defer f.Close()
	b := NewBuilder(BuildOptions{})
	defer b.Close()
	must(t, b.AddTar(f))
	must(t, os.Truncate(p, 512+100))
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err == nil || !strings.Contains(err.Error(), "shrank to 100 bytes during the build (had 5000)") {
		t.Fatalf("WriteTo = %v", err)
	}
}
