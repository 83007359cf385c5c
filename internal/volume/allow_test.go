package volume

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
)

// A file:// source is checked where its symlinks lead, and a refusal says
// nothing about what lies there.
func TestAllowListResolvesSymlinks(t *testing.T) {
	root := t.TempDir()
	images, outside := filepath.Join(root, "images"), filepath.Join(root, "outside")
	for _, d := range []string{images, outside, filepath.Join(images, "real")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string) {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(outside, "o.daxfs"))
	write(filepath.Join(images, "a.daxfs"))
	links := map[string]string{
		"linkout":  filepath.Join(outside, "o.daxfs"),
		"linkpw":   "/etc/passwd",
		"dangling": filepath.Join(outside, "missing.daxfs"),
		"rel":      "../outside/o.daxfs",
		"sub":      outside,
		"loop":     filepath.Join(images, "loop"),
		"latest":   "a.daxfs",
		"insub":    "real",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(images, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(images, filepath.Join(root, "imglink")); err != nil {
		t.Fatal(err)
	}
	l := AllowList{"file://" + images + "/"}
	for _, bad := range []string{"linkout", "linkpw", "dangling", "rel", "sub/o.daxfs", "sub/missing.daxfs", "loop"} {
		src := "file://" + filepath.Join(images, bad)
		err := l.Check(src)
		if !errors.Is(err, ErrSourceNotAllowed) || grpccode.Of(err) != codes.PermissionDenied {
			t.Errorf("Check(%s) = %v, want PermissionDenied", bad, err)
			continue
		}
		if strings.Contains(err.Error(), outside) || strings.Contains(err.Error(), "/etc") {
			t.Errorf("Check(%s) tells where the link leads: %v", bad, err)
		}
	}
	for _, ok := range []string{"a.daxfs", "latest", "insub/x.daxfs", "new.daxfs"} {
		if err := l.Check("file://" + filepath.Join(images, ok)); err != nil {
			t.Errorf("Check(%s) = %v, want allowed", ok, err)
		}
	}
	// The allowed dir itself behind a symlink, as an admin may write it.
	if err := (AllowList{"file://" + filepath.Join(root, "imglink") + "/"}).Check("file://" + filepath.Join(root, "imglink", "a.daxfs")); err != nil {
		t.Errorf("prefix through a symlink: %v", err)
	}
	if err := l.CheckFile(filepath.Join(images, "a.daxfs")); err != nil {
		t.Errorf("CheckFile(inside) = %v", err)
	}
	for _, bad := range []string{"/etc/passwd", images, filepath.Join(root, "imagesX", "a"), "", "relative/a"} {
		if err := l.CheckFile(bad); grpccode.Of(err) != codes.PermissionDenied {
			t.Errorf("CheckFile(%q) = %v, want PermissionDenied", bad, err)
		}
	}
	if err := (AllowList{"file://" + filepath.Join(images, "a.daxfs")}).CheckFile(filepath.Join(images, "a.daxfs")); err != nil {
		t.Errorf("exact file prefix: %v", err)
	}
}
