package volume

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
	"github.com/daxfs-csi/daxfs-csi/internal/ociref"
)

// ErrSourceNotAllowed is returned for an image source outside the allow-list:
// whoever can create a pod controls inline attributes, so the node decides.
// It carries PermissionDenied (grpccode.Coded).
var ErrSourceNotAllowed = grpccode.With(codes.PermissionDenied, errors.New("image source not allowed"))

// AllowList holds the --allow-source prefixes. An empty list allows nothing.
type AllowList []string

// Check reports whether source falls under one of the prefixes. A prefix
// matches at a path boundary only, so "https://images.corp" does not admit
// "https://images.corp.evil/". Sources must already be clean (Parse checks).
// oci:// sources match by registry and repository path (see checkOCIAllowed).
// A file:// source must also lie under a file:// prefix once symlinks are
// resolved in both, so a link in the allowed dir cannot lead outside it.
// Errors never say anything about where a link leads or what it reaches.
func (l AllowList) Check(source string) error {
	if strings.HasPrefix(source, ociref.Scheme) {
		ref, err := ociref.Parse(source)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrSourceNotAllowed, err)
		}
		for _, p := range l {
			if checkOCIAllowed(ref, p) {
				return nil
			}
		}
		return fmt.Errorf("%w: %q matches no --allow-source prefix %q (tag-only references need an oci+tags:// entry)",
			ErrSourceNotAllowed, source, []string(l))
	}
	if !l.matchText(source) {
		return fmt.Errorf("%w: %q matches no --allow-source prefix %q", ErrSourceNotAllowed, source, []string(l))
	}
	if p, ok := filePath(source); ok {
		if err := l.CheckFile(resolveSymlinks(p)); err != nil {
			return fmt.Errorf("%w: %q leads outside every file:// --allow-source prefix through a symlink", ErrSourceNotAllowed, source)
		}
	}
	return nil
}

func (l AllowList) matchText(source string) bool {
	for _, p := range l {
		if p == "" {
			continue
		}
		if source == p {
			return true
		}
		if strings.HasPrefix(source, p) && (strings.HasSuffix(p, "/") || source[len(p)] == '/') {
			return true
		}
	}
	return false
}

// CheckFile reports whether realPath (absolute, symlinks resolved: what a
// source actually opened) lies under one of the file:// prefixes, each
// with its own symlinks resolved. The node's fetcher calls it on every
// file it opens, closing the gap between Check and the open.
func (l AllowList) CheckFile(realPath string) error {
	if realPath != "" && filepath.IsAbs(realPath) {
		for _, p := range l {
			pp, ok := filePath(p)
			if !ok || pp == "" {
				continue
			}
			dirOnly := strings.HasSuffix(pp, "/")
			rp := resolveSymlinks(pp)
			if rp == "" {
				continue
			}
			if (realPath == rp && !dirOnly) || strings.HasPrefix(realPath, strings.TrimSuffix(rp, "/")+"/") {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: the file opened lies outside every file:// --allow-source prefix", ErrSourceNotAllowed)
}

// filePath is the path of a file:// URI.
func filePath(uri string) (string, bool) {
	if !strings.HasPrefix(strings.ToLower(uri), "file://") {
		return "", false
	}
	u, err := url.Parse(uri)
	if err != nil || u.Path == "" {
		return "", false
	}
	return u.Path, true
}

// maxLinks is the kernel's limit on symlinks in one lookup.
const maxLinks = 40

// resolveSymlinks replaces every symlink in p by its target, as far as the
// path exists; missing components are kept as written. A dangling link
// still resolves to where it points, so a refusal does not tell whether
// the file outside exists. "" for a symlink loop.
func resolveSymlinks(p string) string {
	done, links := "/", 0
	rest := strings.Split(p, "/")
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			done = filepath.Dir(done)
			continue
		}
		next := filepath.Join(done, c)
		fi, err := os.Lstat(next)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			done = next
			continue
		}
		if links++; links > maxLinks {
			return ""
		}
		target, err := os.Readlink(next)
		if err != nil {
			return ""
		}
		if filepath.IsAbs(target) {
			done = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return done
}
