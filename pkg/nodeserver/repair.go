package nodeserver

import (
	"context"
	"errors"
	"os"
	"time"

	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/proc"
	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

// Self-healing: when an image mount had to be made again (its FUSE server
// died), every bind and overlay of the old one is dead too. Each volume
// records the image-mount generation its mounts were made at; a volume at
// an older generation is bound again.

const defaultHealthInterval = 30 * time.Second

// imageGen is the generation of digest's image mount (0: not mounted).
func (s *NodeServer) imageGen(digest string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if im := s.images[digest]; im != nil && im.Backend != "" {
		return im.Generation
	}
	return 0
}

// repairVolume makes rec's image serve and rec's mounts point at it. The
// caller holds rec's volume lock.
func (s *NodeServer) repairVolume(ctx context.Context, rec *state.Volume) error {
	if err := s.ensureImageFor(ctx, rec); err != nil {
		return err
	}
	return s.repairMounts(rec, false)
}

// repairMounts binds again the mounts of rec that are gone or stale, or all
// of them when the image was mounted again since (force, or an older
// generation). A target whose directory is gone is skipped: only its
// owner (the kubelet) may create it. The caller holds rec's volume lock.
func (s *NodeServer) repairMounts(rec *state.Volume, force bool) error {
	s.mu.Lock()
	cur := s.volumes[rec.Key()]
	s.mu.Unlock()
	if cur == nil {
		return nil // removed meanwhile
	}
	gen := s.imageGen(cur.Digest)
	if gen == 0 {
		return errors.New("image " + cur.Digest + " is not mounted")
	}
	force = force || cur.ImageGen != gen
	var errs []error
	redo := func(path string, mount func() error) {
		if !force && mountHealthy(path) == nil {
			return
		}
		err := unmountAll(path)
		if err == nil {
			err = mount()
		}
		if err != nil {
			errs = append(errs, err)
			klog.ErrorS(err, "Repair volume mount", "volume", cur.VolumeID, "path", path)
			return
		}
		klog.InfoS("Volume mount repaired", "volume", cur.VolumeID, "path", path)
	}
	if !cur.Ephemeral && cur.StagingPath != "" {
		redo(cur.StagingPath, func() error { return s.mountStaging(cur) })
	}
	for t := range cur.Targets {
		if _, err := os.Lstat(t); os.IsNotExist(err) {
			continue
		}
		redo(t, func() error { return s.mountTarget(cur, t) })
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if cur.ImageGen != gen {
		next := cloneVolume(cur)
		next.ImageGen = gen
		if err := s.store.SaveVolume(next); err != nil {
			return err
		}
		s.setVolume(next)
	}
	return nil
}

// stagingServes is the cheap check a new target's publish makes instead of
// repairVolume: the volume is bound at the image's current mount, that
// mount has a live server (imageServesCheap), and the staging path is
// still a mount. It does not grow with the volume's other targets; when it
// fails, repairVolume does the full repair.
func (s *NodeServer) stagingServes(rec *state.Volume) bool {
	s.mu.Lock()
	im := s.images[rec.Digest]
	ok := im != nil && im.Generation == rec.ImageGen
	s.mu.Unlock()
	return ok && s.imageServesCheap(im) && isMountRootCached(rec.StagingPath)
}

// imageServesCheap tells, without a round trip to its FUSE server (most of
// a publish's time when it made one), that the image mount is up and its
// server runs: a killed server is what leaves a dead mount. A server that
// hangs alive is the health watch's to find. False means "check fully".
func (s *NodeServer) imageServesCheap(im *state.Image) bool {
	s.mu.Lock()
	ok := im.Backend != ""
	pid := -1 // the kernel mount has no server
	if ok && im.Backend != backendKernel {
		pid = im.PID
		if im.FuseHost != "" {
			pid = im.HostPID // its mounts die with fuse-host
		}
	}
	s.mu.Unlock()
	if !ok || pid == 0 || (pid > 0 && !proc.Alive(pid)) {
		return false
	}
	return isMountRootCached(s.store.ImageMount(im.Digest))
}

// repairOthers rebinds the volumes of digest still at an older image
// mount. It only takes free volume locks: a busy volume is in an RPC that
// repairs it, and waiting here could deadlock with it.
func (s *NodeServer) repairOthers(digest string) {
	gen := s.imageGen(digest)
	s.mu.Lock()
	var stale []*state.Volume
	for _, v := range s.volumes {
		if v.Digest == digest && v.ImageGen != gen {
			stale = append(stale, v)
		}
	}
	s.mu.Unlock()
	for _, v := range stale {
		unlock, ok := s.volLocks.TryLock(v.VolumeID)
		if !ok {
			continue
		}
		if err := s.repairMounts(v, false); err != nil {
			klog.ErrorS(err, "Rebind volume to the new image mount", "volume", v.VolumeID)
		}
		unlock()
	}
}

// watch checks every interval that each image in use serves, and repairs
// it and its volumes when its server died, so pods recover without waiting
// for an RPC or a plugin restart.
func (s *NodeServer) watch(interval time.Duration) {
	defer close(s.watchDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.heal()
		}
	}
}

func (s *NodeServer) heal() {
	s.mu.Lock()
	var vols []*state.Volume
	var ims []state.Image
	for _, v := range s.volumes {
		vols = append(vols, v)
	}
	for _, im := range s.images {
		ims = append(ims, *im)
	}
	s.mu.Unlock()
	broken := map[string]bool{}
	for i := range ims {
		if ims[i].Backend != "" && s.imageHealthy(&ims[i]) != nil {
			broken[ims[i].Digest] = true
		}
	}
	for _, v := range vols {
		if !broken[v.Digest] && v.ImageGen == s.imageGen(v.Digest) {
			continue
		}
		unlock, ok := s.volLocks.TryLock(v.VolumeID)
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), stageTimeout)
		if err := s.repairVolume(ctx, v); err != nil {
			klog.ErrorS(err, "Heal volume", "volume", v.VolumeID, "digest", v.Digest)
		} else {
			delete(broken, v.Digest)
		}
		cancel()
		unlock()
	}
}
