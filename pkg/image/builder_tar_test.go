package image

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daxfs-csi/daxfs-csi/internal/machine"
)

// tarMember is one member of a test tar.
type tarMember struct {
	name, body, link string
	typ              byte
	mode             int64
	uid              int
}

func makeTar(t *testing.T, members ...tarMember) []byte { return makeTarTB(t, members...) }

func makeTarTB(t testing.TB, members ...tarMember) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		h := &tar.Header{Name: m.name, Typeflag: m.typ, Mode: m.mode, Linkname: m.link, Uid: m.uid, Gid: m.uid, Format: tar.FormatPAX}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if m.typ == tar.TypeReg {
			h.Size = int64(len(m.body))
		}
		must(t, tw.WriteHeader(h))
		if m.typ == tar.TypeReg {
			_, err := tw.Write([]byte(m.body))
			must(t, err)
		}
	}
	must(t, tw.Close())
	return buf.Bytes()
}

func reg(name, body string) tarMember { return tarMember{name: name, body: body, typ: tar.TypeReg} }
func dir(name string) tarMember       { return tarMember{name: name, typ: tar.TypeDir, mode: 0o755} }

// onlyReader hides Seek so the builder must spool.
type onlyReader struct{ io.Reader }

func TestTarLayers(t *testing.T) {
	lower := makeTar(t,
		tarMember{name: "./", typ: tar.TypeDir, mode: 0o750, uid: 7},
		dir("a/"), reg("a/keep.txt", "keep"), reg("a/gone.txt", "gone"),
		dir("b/"), reg("b/x", "x"), dir("b/sub/"), reg("b/sub/y", "y"),
		reg("c.txt", "old c"), reg("f", "shared"),
		tarMember{name: "h", link: "f", typ: tar.TypeLink},
		tarMember{name: "s", link: "f", typ: tar.TypeSymlink, mode: 0o777},
		tarMember{name: "s2", link: "s", typ: tar.TypeLink}, // hard link to a symlink: a copy
		tarMember{name: "p", typ: tar.TypeFifo},
		reg("implicit/parent/file", "made parents"),
		tarMember{name: "suid", body: "s", typ: tar.TypeReg, mode: 0o4755, uid: 4000000000},
	)
	upper := makeTar(t,
		reg("a/.wh.gone.txt", ""),
		reg("b/z-before", "same layer, before the marker"),
		reg("b/.wh..wh..opq", ""),
		reg("b/z", "new z"),
		reg("c.txt", "new c"),
		tarMember{name: "a/f2", link: "f", typ: tar.TypeLink}, // links into a lower layer
		reg(".wh.nothing-here", ""),
		reg("nodir/.wh.x", ""),
	)
	img := build(t, BuildOptions{}, func(b *Builder) error {
		if err := b.AddTar(onlyReader{bytes.NewReader(lower)}); err != nil {
			return err
		}
		return b.AddTar(onlyReader{bytes.NewReader(upper)})
	})
	// Read in place from seekable tars instead of spooled: same bytes.
	inPlace := build(t, BuildOptions{}, func(b *Builder) error {
		if err := b.AddTar(bytes.NewReader(lower)); err != nil {
			return err
		}
		return b.AddTar(bytes.NewReader(upper))
	})
	if !bytes.Equal(img, inPlace) {
		t.Error("spooled and in-place tar data give different images")
	}
	im := openValid(t, img)
	fsys := im.FS()
	got := map[string]string{}
	must(t, fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		in := info.Sys().(Inode)
		v := FileMode(in.Mode).String()
		if d.Type().IsRegular() {
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		if in.Nlink != 1 {
			v += " nlink=" + string(rune('0'+in.Nlink))
		}
		got[p] = v
		return nil
	}))
	want := map[string]string{
		".":                    "drwxr-x---",
		"a":                    "drwxr-xr-x",
		"a/keep.txt":           "-rw-r--r-- keep",
		"a/f2":                 "-rw-r--r-- shared nlink=3",
		"b":                    "drwxr-xr-x",
		"b/z-before":           "-rw-r--r-- same layer, before the marker",
		"b/z":                  "-rw-r--r-- new z",
		"c.txt":                "-rw-r--r-- new c",
		"f":                    "-rw-r--r-- shared nlink=3",
		"h":                    "-rw-r--r-- shared nlink=3",
		"s":                    "Lrwxrwxrwx",
		"s2":                   "Lrwxrwxrwx",
		"implicit":             "drwxr-xr-x",
		"implicit/parent":      "drwxr-xr-x",
		"implicit/parent/file": "-rw-r--r-- made parents",
		"suid":                 "urwxr-xr-x s",
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %q, want %q", p, got[p], w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected %s (%s)", p, got[p])
		}
	}
	root, _ := im.Inode(RootIno)
	suid, err := fsys.Lstat("suid")
	must(t, err)
	if root.UID != 7 || suid.Sys().(Inode).UID != 4000000000 {
		t.Errorf("owners: root %d, suid %d", root.UID, suid.Sys().(Inode).UID)
	}
	f, _ := fsys.Lstat("f")
	h, _ := fsys.Lstat("h")
	s, _ := fsys.Lstat("s")
	s2, _ := fsys.Lstat("s2")
	if f.Sys().(Inode).Ino != h.Sys().(Inode).Ino || s.Sys().(Inode).Ino == s2.Sys().(Inode).Ino {
		t.Errorf("hard links: f %d h %d s %d s2 %d", f.Sys().(Inode).Ino, h.Sys().(Inode).Ino, s.Sys().(Inode).Ino, s2.Sys().(Inode).Ino)
	}
}

func TestTarLayerReplacesTypes(t *testing.T) {
	img := build(t, BuildOptions{}, func(b *Builder) error {
		must(t, b.AddTar(bytes.NewReader(makeTar(t, reg("x", "file"), dir("d/"), reg("d/in", "in")))))
		return b.AddTar(bytes.NewReader(makeTar(t, dir("x/"), reg("x/now-a-dir", "1"), reg("d", "now a file"))))
	})
	fsys := openValid(t, img).FS()
	if b, err := fs.ReadFile(fsys, "x/now-a-dir"); err != nil || string(b) != "1" {
		t.Errorf("x/now-a-dir: %q, %v", b, err)
	}
	if b, err := fs.ReadFile(fsys, "d"); err != nil || string(b) != "now a file" {
		t.Errorf("d: %q, %v", b, err)
	}
}

func TestTarErrors(t *testing.T) {
	truncated := makeTar(t, reg("f", strings.Repeat("z", 2000)))
	for _, c := range []struct {
		name string
		tar  []byte
		want string
	}{
		{"escapes root", makeTar(t, reg("../evil", "x")), `tar member "../evil" leaves the root`},
		{"dangling hard link", makeTar(t, tarMember{name: "h", link: "missing", typ: tar.TypeLink}), `hard link target "missing" not found`},
		{"hard link to dir", makeTar(t, dir("d/"), tarMember{name: "h", link: "d", typ: tar.TypeLink}), `hard link to directory "d"`},
		{"long name", makeTar(t, reg(strings.Repeat("n", 256), "x")), "name of 256 bytes exceeds 255"},
		{"truncated data", truncated[:1024], "unexpected EOF"},
		{"garbage", bytes.Repeat([]byte{0xff}, 1024), "reading tar"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, r := range []io.Reader{onlyReader{bytes.NewReader(c.tar)}, bytes.NewReader(c.tar)} {
				b := NewBuilder(BuildOptions{})
				defer b.Close()
				err := b.AddTar(r)
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("AddTar(%T) = %v, want an error containing %q", r, err, c.want)
				}
			}
		})
	}
}

func TestTarSpecials(t *testing.T) {
	tr := makeTar(t, tarMember{name: "p", typ: tar.TypeFifo}, tarMember{name: "c", typ: tar.TypeChar}, tarMember{name: "blk", typ: tar.TypeBlock})
	img := build(t, BuildOptions{Specials: SpecialsKeep}, func(b *Builder) error { return b.AddTar(bytes.NewReader(tr)) })
	im := openValid(t, img)
	for name, typ := range map[string]uint32{"p": modeFIFO, "c": modeChar, "blk": modeBlock} {
		in, err := im.Lookup(RootIno, name)
		if err != nil || in.Mode != typ|0o644 {
			t.Errorf("%s: %+v, %v", name, in, err)
		}
	}
	b := NewBuilder(BuildOptions{})
	defer b.Close()
	must(t, b.AddTar(bytes.NewReader(tr)))
	if got := strings.Join(b.Skipped(), ","); got != "/p,/c,/blk" {
		t.Errorf("Skipped = %q", got)
	}
}

// TestRelayoutAfterChange: Size lays the tree out; adding a layer after
// that must give a fresh, valid layout (stale inode numbers ignored).
func TestRelayoutAfterChange(t *testing.T) {
	b := NewBuilder(BuildOptions{})
	defer b.Close()
	must(t, b.AddTar(bytes.NewReader(makeTar(t, dir("a/"), reg("a/1", "1"), reg("a/2", "2"), reg("a/3", "3"), reg("z", "z")))))
	small, err := b.Size()
	must(t, err)
	must(t, b.AddTar(bytes.NewReader(makeTar(t, reg(".wh.a", ""), dir("b/"), dir("b/c/"), reg("b/c/d", "d")))))
	var buf bytes.Buffer
	n, err := b.WriteTo(&buf)
	must(t, err)
	im := openValid(t, buf.Bytes())
	if n == small || im.Info().InodeCount != 5 {
		t.Errorf("size %d (was %d), %d inodes; want a new layout of 5", n, small, im.Info().InodeCount)
	}
	if got, err := im.FS().ReadFile("b/c/d"); err != nil || string(got) != "d" {
		t.Errorf("b/c/d: %q, %v", got, err)
	}
}

// TestTarFileReadInPlace: a tar file is not copied to the spool; its data
// is read at WriteTo time, so closing it first is a clear error.
func TestTarFileReadInPlace(t *testing.T) {
	p := filepath.Join(t.TempDir(), "layer.tar")
	must(t, os.WriteFile(p, makeTar(t, reg("a", "in place"), reg("b", strings.Repeat("b", 10000))), 0o644))
	f, err := os.Open(p)
	must(t, err)
	b := NewBuilder(BuildOptions{TempDir: t.TempDir()})
	defer b.Close()
	must(t, b.AddTar(f))
	if b.spool != nil {
		t.Error("a seekable tar file was spooled")
	}
	var buf bytes.Buffer
	_, err = b.WriteTo(&buf)
	must(t, err)
	if got, err := openValid(t, buf.Bytes()).FS().ReadFile("a"); err != nil || string(got) != "in place" {
		t.Errorf("a: %q, %v", got, err)
	}
	f.Close()
	if _, err := b.WriteTo(io.Discard); err == nil || !strings.Contains(err.Error(), "file already closed") {
		t.Errorf("WriteTo after closing the tar = %v, want a read error", err)
	}
}

// TestTarGNUSparse: sparse members (written by GNU tar -S) are expanded,
// through the spool, to their full content.
func TestTarGNUSparse(t *testing.T) {
	gnuTar, err := exec.LookPath("tar")
	if err != nil {
		machine.Lacks(t, "GNU tar not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "sparse")
	f, err := os.Create(src)
	must(t, err)
	must(t, f.Truncate(1<<20))
	_, err = f.WriteAt([]byte("middle"), 512<<10)
	must(t, err)
	_, err = f.WriteAt([]byte("end"), 1<<20-3)
	must(t, err)
	must(t, f.Close())
	want, err := os.ReadFile(src)
	must(t, err)
	for _, format := range []string{"gnu", "posix"} {
		t.Run(format, func(t *testing.T) {
			tarPath := filepath.Join(dir, format+".tar")
			if out, err := exec.Command(gnuTar, "-S", "--format="+format, "-C", dir, "-cf", tarPath, "sparse").CombinedOutput(); err != nil {
				machine.Lacks(t, "GNU tar: tar -S --format=%s: %v: %s", format, err, out)
			}
			tf, err := os.Open(tarPath)
			must(t, err)
			defer tf.Close()
			img := build(t, BuildOptions{TempDir: dir}, func(b *Builder) error { return b.AddTar(tf) })
			got, err := openValid(t, img).FS().ReadFile("sparse")
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("sparse member: %d bytes, %v; want the %d-byte file", len(got), err, len(want))
			}
		})
	}
}
