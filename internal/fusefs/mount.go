package fusefs

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// Server is one mounted image.
type Server struct {
	srv        *fuse.Server
	mountpoint string
	fsys       *filesys
}

// Mount serves im read-only at mountpoint; the mount answers when it
// returns. It mounts directly (mount(2)), which needs CAP_SYS_ADMIN.
func Mount(mountpoint string, im *image.Image, opts Options) (*Server, error) {
	root, err := im.Inode(image.RootIno)
	if err != nil {
		return nil, fmt.Errorf("fusefs: reading root inode: %w", err)
	}
	if !root.IsDir() {
		return nil, fmt.Errorf("fusefs: root inode is not a directory (mode %#o)", root.Mode)
	}
	fsys := &filesys{
		im:     im,
		mapped: im.Mapped(),
		info:   im.Info(),
		idx:    newIndexCache(opts.indexBudget()),
		errs:   &errLog{fsName: opts.fsName()},

		pushBudget: opts.pushBudget(),
	}
	timeout := cacheTimeout
	fopts := &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther: opts.allowOther(),
			// The kernel checks modes itself (no ACCESS round trips).
			Options:              []string{"default_permissions"},
			FsName:               opts.fsName(),
			Name:                 "daxfs",
			MaxWrite:             maxRequest,
			MaxBackground:        64,
			DisableXAttrs:        true,
			DisableSplice:        true, // replies are mapped bytes, never fds
			EnableSymlinkCaching: true,
			// The image never changes: no AUTO_INVAL_DATA, whose attribute
			// check on every read cost ~7% of warm 4 KiB random reads.
			ExplicitDataCacheControl: true,
			DirectMountStrict:        true,
			DirectMountFlags:         syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV,
			Debug:                    opts.Debug,
			Logger:                   klog.NewStandardLogger("INFO"),
			PanicHandler:             panicHandler(opts.fsName()),
		},
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		// Report modes exactly as stored, 0000 included.
		NullPermissions: true,
		RootStableAttr:  &fs.StableAttr{Ino: image.RootIno, Mode: syscall.S_IFDIR},
		Logger:          klog.NewStandardLogger("INFO"),
	}
	srv, err := fuse.NewServer(wrapRaw(fs.NewNodeFS(fsys.newNode(root), fopts)), mountpoint, &fopts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("fusefs: mounting %s: %w", mountpoint, err)
	}
	fsys.ra = newReadAhead(mountpoint, opts.readAheadKB())
	go srv.Serve()
	// Requests that arrive during the FUSE handshake wait for it, so the
	// mount is usable now. The poll probe (see Options.NoSelfAccess) waits
	// for the handshake too.
	if !opts.NoSelfAccess {
		if err := srv.WaitMount(); err != nil {
			srv.Unmount()
			return nil, fmt.Errorf("fusefs: mount %s did not come up: %w", mountpoint, err)
		}
	}
	s := &Server{srv: srv, mountpoint: mountpoint, fsys: fsys}
	return s, nil
}

// panicHandler turns a panic in a request (including a fault on a mapped
// image that shrank underneath us) into EIO instead of a dead mount.
// Only the first few carry a stack, so a broken image cannot flood the log.
func panicHandler(fsName string) func(any) fuse.Status {
	var n atomic.Int64
	return func(obj any) fuse.Status {
		switch c := n.Add(1); {
		case c <= 3:
			klog.ErrorS(nil, "Panic in FUSE request; answering EIO", "fs", fsName, "panic", fmt.Sprint(obj), "stack", string(debug.Stack()))
		case c == 4:
			klog.ErrorS(nil, "More panics in FUSE requests; no longer logged", "fs", fsName)
		}
		return fuse.EIO
	}
}

// Mountpoint is where the image is mounted.
func (s *Server) Mountpoint() string { return s.mountpoint }

// Wait blocks until the mount is gone (unmounted here or by anyone else).
func (s *Server) Wait() { s.srv.Wait() }

// Unmount unmounts. When files are still open it detaches the mount
// lazily instead: it disappears from the namespace now, open files keep
// working, and Wait returns once the last one is closed.
func (s *Server) Unmount() error {
	err := s.srv.Unmount()
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EBUSY) {
		return fmt.Errorf("fusefs: unmounting %s: %w", s.mountpoint, err)
	}
	if err := unix.Unmount(s.mountpoint, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("fusefs: detaching busy mount %s: %w", s.mountpoint, err)
	}
	klog.InfoS("Mount busy; detached lazily, serving open files until closed", "mountpoint", s.mountpoint)
	return nil
}
