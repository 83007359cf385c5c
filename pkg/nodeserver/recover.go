package nodeserver

import (
	"context"
	"os"
	"path/filepath"

	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

// recover rebuilds the in-memory view from the state dir after a restart
// (or kill -9). Mounts that answer are left alone: pods keep reading. Dead
// image mounts are cleaned (never left as "transport endpoint is not
// connected") and remounted from the pool, and their volumes' bind mounts
// are redone. A volume that cannot be repaired is logged and reported by
// NodeGetVolumeHealth; it does not stop the plugin.
func (s *NodeServer) recover(ctx context.Context) error {
	ims, skippedIms, err := s.store.Images()
	if err != nil {
		return err
	}
	vols, skippedVols, err := s.store.Volumes()
	if err != nil {
		return err
	}
	// Directories without a record: a crash before the first write.
	for _, dir := range skippedIms {
		if err := stopFuse(0, "", filepath.Join(dir, "mnt")); err != nil {
			klog.ErrorS(err, "Clean unrecorded image dir", "dir", dir)
			continue
		}
		os.RemoveAll(dir)
	}
	for _, dir := range skippedVols {
		if m, _ := mountAt(dir); m == nil {
			os.RemoveAll(dir)
		}
	}
	s.mu.Lock()
	for _, im := range ims {
		s.images[im.Digest] = im
	}
	for _, v := range vols {
		if v.Targets == nil {
			v.Targets = map[string]state.Target{}
		}
		s.volumes[v.Key()] = v
	}
	s.mu.Unlock()

	remounted := map[string]bool{}
	for _, im := range ims {
		s.mu.Lock()
		refs := s.refsLocked(im.Digest)
		s.mu.Unlock()
		if im.Backend != "" {
			err := s.imageHealthy(im)
			if err == nil {
				if refs == 0 && !s.opts.KeepUnused {
					s.dropLogged(im, "unused after restart")
				}
				continue
			}
			klog.InfoS("Image mount did not survive, cleaning", "digest", im.Digest, "reason", err)
			if err := s.unmountImage(im); err != nil {
				klog.ErrorS(err, "Clean dead image mount", "digest", im.Digest)
				continue
			}
		}
		if refs == 0 {
			s.dropLogged(im, "unused and not mounted after restart")
			continue
		}
		remounted[im.Digest] = true
	}
	// Targets removed while we were down are forgotten before anything is
	// remounted, so no repair recreates them.
	for _, v := range vols {
		for t := range v.Targets {
			if _, err := os.Lstat(t); os.IsNotExist(err) {
				s.forgetTarget(v, t)
			}
		}
	}
	// A volume whose image record is missing (unreadable) gets it back.
	s.mu.Lock()
	for _, v := range vols {
		if s.images[v.Digest] == nil {
			remounted[v.Digest] = true
		}
	}
	s.mu.Unlock()
	// Remount through a volume: it knows the source if the pool lost the image.
	for _, v := range vols {
		if remounted[v.Digest] {
			if err := s.ensureImageFor(ctx, v); err != nil {
				klog.ErrorS(err, "Remount image after restart", "digest", v.Digest, "volume", v.VolumeID)
			}
		}
	}
	s.mu.Lock()
	vols = vols[:0]
	for _, v := range s.volumes {
		vols = append(vols, v)
	}
	s.mu.Unlock()
	for _, v := range vols {
		if err := s.repairMounts(v, false); err != nil {
			klog.ErrorS(err, "Repair volume after restart", "volume", v.VolumeID)
		}
	}
	klog.InfoS("Node state recovered", "images", len(s.images), "volumes", len(vols), "remounted", len(remounted))
	return nil
}

func (s *NodeServer) dropLogged(im *state.Image, why string) {
	if err := s.dropImage(im); err != nil {
		klog.ErrorS(err, "Release image", "digest", im.Digest, "why", why)
		return
	}
	klog.InfoS("Released image", "digest", im.Digest, "why", why)
}

// forgetTarget drops a target whose directory is gone; an inline volume
// with it, releasing its image reference.
func (s *NodeServer) forgetTarget(v *state.Volume, target string) {
	klog.InfoS("Target directory is gone; forgetting it", "volume", v.VolumeID, "target", target)
	if v.Ephemeral {
		if err := s.removeVolume(v); err != nil {
			klog.ErrorS(err, "Forget inline volume", "volume", v.VolumeID)
		}
		return
	}
	s.mu.Lock()
	cur := s.volumes[v.Key()]
	s.mu.Unlock()
	if cur == nil {
		return
	}
	next := cloneVolume(cur)
	delete(next.Targets, target)
	os.RemoveAll(s.layerDir(v, target))
	if err := s.store.SaveVolume(next); err != nil {
		klog.ErrorS(err, "Forget target", "volume", v.VolumeID)
		return
	}
	s.setVolume(next)
}
