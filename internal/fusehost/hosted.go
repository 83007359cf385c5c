package fusehost

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/fusefs"
)

// stopTimeout bounds how long stop waits for a served mount to go away
// (a lazy unmount returns at once; Wait ends when the last file closes).
const stopTimeout = 10 * time.Second

// hosted is one image this process serves itself (the serve op): a FUSE
// connection and its goroutines, no process of its own.
type hosted struct {
	mountpoint string
	src        *Opened
	srv        *fusefs.Server
	done       chan struct{} // closed once the mount is gone and src unmapped
	exit       string        // how it ended; set before done closes
}

// newInstance names this fuse-host process: handles carry it, so a handle
// of a previous instance (whose mounts died with it) is never taken for one
// of ours.
func newInstance() string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return hex.EncodeToString(b)
}

// serve opens, validates and mounts src at mountpoint in this process and
// returns its handle; the mount answers when it returns.
func (s *Server) serve(src Source, mountpoint string, debug bool) (string, error) {
	if !filepath.IsAbs(mountpoint) {
		return "", fmt.Errorf("mountpoint %q is not absolute", mountpoint)
	}
	start := time.Now()
	o, err := Open(src)
	if err != nil {
		return "", err
	}
	opened := time.Now()
	srv, err := o.Mount(mountpoint, debug)
	if err != nil {
		o.Close()
		return "", err
	}
	h := &hosted{mountpoint: mountpoint, src: o, srv: srv, done: make(chan struct{})}
	s.mu.Lock()
	s.seq++
	handle := fmt.Sprintf("%s-%d", s.instance, s.seq)
	s.hosted[handle] = h
	s.mu.Unlock()
	klog.InfoS("Serving image", "handle", handle, "image", o.Name, "mountpoint", mountpoint, "fs", o.FSName,
		"bytes", o.Bytes, "duration", time.Since(start), "validate", opened.Sub(start), "mount", time.Since(opened))
	go s.waitHosted(handle, h)
	return handle, nil
}

// waitHosted releases an image once its mount is gone, whoever unmounted it.
func (s *Server) waitHosted(handle string, h *hosted) {
	h.srv.Wait()
	h.src.Close()
	klog.InfoS("Mount is gone; stopped serving", "handle", handle, "mountpoint", h.mountpoint)
	s.mu.Lock()
	h.exit = "unmounted"
	close(h.done)
	s.endedHandles = append(s.endedHandles, handle)
	if len(s.endedHandles) > keepExited {
		delete(s.hosted, s.endedHandles[0])
		s.endedHandles = s.endedHandles[1:]
	}
	s.mu.Unlock()
}

// stop unmounts a served image (lazily when files are open) and waits until
// it is released. An unknown or ended handle is not an error: there is
// nothing left to stop.
func (s *Server) stop(handle string) error {
	s.mu.Lock()
	h := s.hosted[handle]
	s.mu.Unlock()
	if h == nil {
		return nil
	}
	select {
	case <-h.done:
		return nil
	default:
	}
	if err := h.srv.Unmount(); err != nil {
		return fmt.Errorf("unmount %s: %w", h.mountpoint, err)
	}
	select {
	case <-h.done:
		return nil
	case <-time.After(stopTimeout):
		// Detached, but open files still hold the connection: it ends
		// when they close.
		klog.InfoS("Detached a served mount whose files are still open", "handle", handle, "mountpoint", h.mountpoint)
		return nil
	}
}

// handleStatus reports on a handle: known to this instance, still serving.
func (s *Server) handleStatus(handle string) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hosted[handle]
	if h == nil {
		return response{}
	}
	select {
	case <-h.done:
		return response{Handle: handle, Exit: h.exit}
	default:
		return response{Handle: handle, Alive: true}
	}
}

func (s *Server) servedHandles() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var hs []string
	for handle, h := range s.hosted {
		select {
		case <-h.done:
		default:
			hs = append(hs, handle)
		}
	}
	sort.Strings(hs)
	return hs
}
