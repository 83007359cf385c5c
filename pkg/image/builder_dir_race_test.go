package image

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// raceTree is a source root and a directory outside it holding a secret
// file of the same size as the placeholder in the root at s2/z/passwd.
func raceTree(t *testing.T) (root, outside string, secret []byte) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "src"), filepath.Join(base, "outside")
	secret = []byte("root:x:0:0:SECRET-FROM-OUTSIDE:/root:/bin/sh\n")
	mustWrite(t, filepath.Join(root, "s1", "a"), pattern(9000, 1))
	mustWrite(t, filepath.Join(root, "s2", "z", "passwd"), bytes.Repeat([]byte{'.'}, len(secret)))
	mustWrite(t, filepath.Join(outside, "passwd"), secret)
	mustWrite(t, filepath.Join(outside, "z", "passwd"), secret)
	return root, outside, secret
}

// bothOpeners runs f with openat2 and with the O_NOFOLLOW walk that
// serves kernels without it.
func bothOpeners(t *testing.T, f func(t *testing.T)) {
	for _, fallback := range []bool{false, true} {
		name := "openat2"
		if fallback {
			name = "openat-walk"
		}
		t.Run(name, func(t *testing.T) {
			was := noOpenat2.Load()
			noOpenat2.Store(fallback)
			t.Cleanup(func() { noOpenat2.Store(was) })
			f(t)
		})
	}
}

// TestBuildCopiesOnlyWhatItWalked swaps parts of the tree between AddDir
// (the walk) and WriteTo (the copy): the build must fail naming the path,
// and no byte from outside the root may reach the image.
func TestBuildCopiesOnlyWhatItWalked(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(t *testing.T, root, outside string)
		want   string // "" means the build succeeds with the walked data
	}{
		{"directory became a symlink to outside", func(t *testing.T, root, outside string) {
			z := filepath.Join(root, "s2", "z")
			must(t, os.Rename(z, z+".old"))
			must(t, os.Symlink(outside, z))
		}, "/s2/z/passwd: changed since the walk: a symlink is now in its path"},
		{"directory became a relative symlink to outside", func(t *testing.T, root, outside string) {
			s2 := filepath.Join(root, "s2")
			must(t, os.Rename(s2, s2+".old"))
			must(t, os.Symlink("../outside", s2))
		}, "/s2/z/passwd: changed since the walk: a symlink is now in its path"},
		{"file became a symlink to outside", func(t *testing.T, root, outside string) {
			p := filepath.Join(root, "s2", "z", "passwd")
			must(t, os.Remove(p))
			must(t, os.Symlink(filepath.Join(outside, "passwd"), p))
		}, "/s2/z/passwd: changed since the walk: a symlink is now in its path"},
		{"directory from outside renamed in", func(t *testing.T, root, outside string) {
			z := filepath.Join(root, "s2", "z")
			must(t, os.Rename(z, z+".old"))
			must(t, os.Rename(filepath.Join(outside, "z"), z))
		}, "/s2/z/passwd: changed since the walk: another file (inode "},
		{"file replaced by one of the same size", func(t *testing.T, root, outside string) {
			p := filepath.Join(root, "s2", "z", "passwd")
			data, err := os.ReadFile(filepath.Join(outside, "passwd"))
			must(t, err)
			must(t, os.WriteFile(p+".new", data, 0o644))
			must(t, os.Rename(p+".new", p))
		}, "/s2/z/passwd: changed since the walk: another file (inode "},
		{"file became a FIFO", func(t *testing.T, root, outside string) {
			p := filepath.Join(root, "s2", "z", "passwd")
			must(t, os.Remove(p))
			must(t, mkfifo(p))
		}, "/s2/z/passwd: changed since the walk: no longer a regular file (mode 010644)"},
		{"file in its path became a file", func(t *testing.T, root, outside string) {
			z := filepath.Join(root, "s2", "z")
			must(t, os.RemoveAll(z))
			must(t, os.WriteFile(z, nil, 0o644))
		}, "/s2/z/passwd: changed since the walk: a directory of its path is no longer one"},
		{"source root became a symlink to outside", func(t *testing.T, root, outside string) {
			must(t, os.Rename(root, root+".old"))
			must(t, os.Symlink(outside, root))
		}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			bothOpeners(t, func(t *testing.T) {
				root, outside, secret := raceTree(t)
				b := NewBuilder(BuildOptions{})
				t.Cleanup(func() { b.Close() })
				must(t, b.AddDir(root))
				c.change(t, root, outside)
				var buf bytes.Buffer
				done := make(chan error, 1)
				go func() { _, err := b.WriteTo(&buf); done <- err }()
				var err error
				select {
				case err = <-done:
				case <-time.After(30 * time.Second): // a FIFO opened for reading blocks
					t.Fatal("WriteTo hangs")
				}
				if bytes.Contains(buf.Bytes(), secret) {
					t.Fatalf("the image holds the secret from outside the root (err %v)", err)
				}
				if c.want == "" {
					must(t, err)
					im := openValid(t, buf.Bytes())
					in, err := im.LookupPath("/s2/z/passwd")
					must(t, err)
					if data, _ := im.FileBytes(in.Ino); !bytes.Equal(data, bytes.Repeat([]byte{'.'}, len(secret))) {
						t.Errorf("/s2/z/passwd holds %q, not the walked placeholder", data)
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), root) {
					t.Fatalf("WriteTo = %v, want an error naming %s and containing %q", err, root, c.want)
				}
			})
		})
	}
}

// TestBuildWalkNeverLeavesRoot swaps a directory for a symlink to outside
// after the walk lstat'ed it and before it opens it.
func TestBuildWalkNeverLeavesRoot(t *testing.T) {
	root, outside, _ := raceTree(t)
	testHookStatted = func(rel string) {
		if rel == "/s2/z" {
			z := filepath.Join(root, "s2", "z")
			must(t, os.Rename(z, z+".old"))
			must(t, os.Symlink(outside, z))
		}
	}
	t.Cleanup(func() { testHookStatted = nil })
	b := NewBuilder(BuildOptions{})
	defer b.Close()
	err := b.AddDir(root)
	want := filepath.Join(root, "s2", "z") + ": changed during the walk: no longer a directory"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("AddDir = %v, want an error containing %q", err, want)
	}
}

// TestBuildDeeperThanPathMax: the walk and the copy go from directory fds,
// so a tree whose paths exceed PATH_MAX builds (and stays beneath root).
func TestBuildDeeperThanPathMax(t *testing.T) {
	root := t.TempDir()
	name := strings.Repeat("d", 255)
	fd := openDir(t, root)
	for range 40 { // 40 × 256 bytes: past PATH_MAX (4096)
		fd = mkdirAt(t, fd, name)
	}
	writeAt(t, fd, "leaf", []byte("deep"))
	closeFd(fd)
	bothOpeners(t, func(t *testing.T) {
		im := openValid(t, build(t, BuildOptions{}, func(b *Builder) error { return b.AddDir(root) }))
		in, err := im.LookupPath(strings.Repeat("/"+name, 40) + "/leaf")
		must(t, err)
		if data, _ := im.FileBytes(in.Ino); string(data) != "deep" {
			t.Errorf("leaf holds %q", data)
		}
	})
}
