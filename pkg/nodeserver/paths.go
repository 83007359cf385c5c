package nodeserver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

// Staging and target paths are recorded and matched against mountinfo as
// text, so they must name the place the mount lands: clean, absolute and
// without a symlink anywhere (a symlink would put the mount elsewhere, where
// unmount and unstage never look).

// checkNoSymlinks refuses a path with a symlink in any existing component;
// the components that do not exist yet are created by us as directories.
// One openat2 that refuses symlinks answers for the common case; the
// component walk names the culprit (and serves kernels before 5.6).
func checkNoSymlinks(name, p string) error {
	fd, err := unix.Openat2(unix.AT_FDCWD, p, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS})
	if err == nil {
		unix.Close(fd)
		return nil
	}
	if errors.Is(err, unix.ENOENT) {
		return nil // every component before the missing one is no symlink
	}
	return walkNoSymlinks(name, p)
}

func walkNoSymlinks(name, p string) error {
	cur := "/"
	for _, c := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if c == "" {
			continue
		}
		cur = filepath.Join(cur, c)
		fi, err := os.Lstat(cur)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return status.Errorf(codes.Internal, "%s %q: %v", name, p, err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return status.Errorf(codes.InvalidArgument,
				"%s %q: %s is a symlink; give the path with symlinks resolved", name, p, cur)
		}
	}
	return nil
}

// makeDir creates p and checks again, now that every component exists,
// that none of them is a symlink (one may have appeared since the request
// was checked).
func makeDir(name, p string) error {
	if err := os.MkdirAll(p, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if err := checkNoSymlinks(name, p); err != nil {
		return grpccode.With(status.Code(err), errors.New(status.Convert(err).Message()))
	}
	return nil
}

// isMountPoint reports whether something is mounted at p (false when p
// does not exist). statx says so directly since Linux 5.8; older kernels
// get a mountinfo lookup.
func isMountPoint(p string) (bool, error) {
	root, known, err := state.MountRoot(p, false)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("statx %s: %w", p, err)
	}
	if known {
		return root, nil
	}
	mi, err := mountAt(p)
	return mi != nil, err
}

// isMountRootCached reports whether p is a mount point, from the inode's
// cached attributes (no round trip to a FUSE server beneath). False when
// the kernel cannot tell (before 5.8).
func isMountRootCached(p string) bool {
	root, _, err := state.MountRoot(p, true)
	return err == nil && root
}

// checkFreePath refuses a path a new staging or target mount would stack on
// or nest in: one that is already a mount point, or that lies in the state
// dir or inside a staging or target path of a recorded volume. A mount
// there would change what another volume shows.
func (s *NodeServer) checkFreePath(name, p string) error {
	if within(p, filepath.Clean(s.opts.StateDir)) {
		return status.Errorf(codes.InvalidArgument, "%s %q lies in the plugin's state dir", name, p)
	}
	s.mu.Lock()
	id, q := s.recordedAncestorLocked(p)
	s.mu.Unlock()
	if q != "" {
		return status.Errorf(codes.FailedPrecondition, "%s %q lies inside %s of volume %s", name, p, q, id)
	}
	mounted, err := isMountPoint(p)
	if err != nil {
		return status.Errorf(codes.Internal, "%s %q: %v", name, p, err)
	}
	if mounted {
		return status.Errorf(codes.FailedPrecondition, "%s %q is already a mount point of something else; unmount it first", name, p)
	}
	return nil
}

// within reports whether p is dir or lies beneath it (both clean).
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// makePrivate stops mount and unmount events from crossing path's mount in
// either direction. Binds of a shared mount join its peer group: a mount
// made later on one target would appear on the image mount, the staging
// path and every other target bound from it. Unmounts still reach the
// host's copy, since their propagation follows the parent mount.
func makePrivate(path string) error {
	if err := unix.Mount("", path, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", path, err)
	}
	return nil
}
