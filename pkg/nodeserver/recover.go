package nodeserver

import (
	"context"
	"os"
	"path/filepath"
	"sort"

	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

// recover rebuilds the in-memory view from the state dir after a restart
// (or kill -9). Mounts that answer are left alone: pods keep reading. Dead
// image mounts are cleaned (never left as "transport endpoint is not
// connected") and remounted from the pool, and their volumes' bind mounts
// are redone. A volume that cannot be repaired is logged and reported by
// NodeGetVolumeHealth; it does not stop the plugin. It runs before the
// server answers, so it takes no volume or path lock; each step takes mu
// for map work only and an image lock through the helpers it calls.
func (s *NodeServer) recover(ctx context.Context) error {
	ims, vols, err := s.loadRecords()
	if err != nil {
		return err
	}
	s.adopt(ims, vols)
	// Before images are checked, so an image only they used is released.
	s.forgetEarlierBootTargets()
	remount := s.checkImageMounts(ims)
	// Targets removed while we were down are forgotten before anything is
	// remounted, so no repair recreates them.
	s.forgetRemovedTargets()
	s.remountImages(ctx, remount)
	n := s.rebindVolumes()
	klog.InfoS("Node state recovered", "images", len(s.images), "volumes", n, "remounted", len(remount))
	return nil
}

// loadRecords reads every image and volume record and cleans the
// directories a crash left without one.
func (s *NodeServer) loadRecords() ([]*state.Image, []*state.Volume, error) {
	ims, skippedIms, err := s.store.Images()
	if err != nil {
		return nil, nil, err
	}
	vols, skippedVols, err := s.store.Volumes()
	if err != nil {
		return nil, nil, err
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
	return ims, vols, nil
}

// adopt puts the records in memory.
func (s *NodeServer) adopt(ims []*state.Image, vols []*state.Volume) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, im := range ims {
		s.images[im.Digest] = im
	}
	for _, v := range vols {
		if v.Targets == nil {
			v.Targets = map[string]state.Target{}
		}
		s.putVolumeLocked(v)
	}
}

// forgetEarlierBootTargets drops the targets recorded in another boot: a
// reboot took their mounts down, and their records were not synced, so
// they may name targets unpublished since (see package state). The kubelet
// publishes again what its pods still need.
func (s *NodeServer) forgetEarlierBootTargets() {
	for _, v := range s.volumeList() {
		for t := range v.Targets {
			if !s.store.FromEarlierBoot(v, t) {
				continue
			}
			klog.InfoS("Target recorded in an earlier boot; forgetting it", "volume", v.VolumeID, "target", t)
			s.forgetTarget(v, t)
		}
	}
}

// checkImageMounts leaves the image mounts that answer alone (dropping the
// unused ones unless kept as cache), cleans the dead ones, and returns the
// digests in use that must be mounted again.
func (s *NodeServer) checkImageMounts(ims []*state.Image) map[string]bool {
	remount := map[string]bool{}
	hostPID := -1 // read once, when a record needs it
	for _, im := range ims {
		s.mu.Lock()
		refs := s.refsLocked(im.Digest)
		s.mu.Unlock()
		if im.Backend != "" {
			err := s.imageHealthy(im)
			if err == nil {
				if refs == 0 && !s.opts.KeepUnused {
					s.dropLogged(im, "unused after restart")
					continue
				}
				if im.FuseHost != "" {
					// The recorded pid is the last plugin's view: this one
					// may live in another pid namespace.
					if hostPID < 0 {
						hostPID = s.fuse.hostPID()
					}
					s.mu.Lock()
					im.HostPID = hostPID
					s.mu.Unlock()
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
		remount[im.Digest] = true
	}
	return remount
}

// forgetRemovedTargets drops the targets whose directory is gone.
func (s *NodeServer) forgetRemovedTargets() {
	for _, v := range s.volumeList() {
		for t := range v.Targets {
			if _, err := os.Lstat(t); os.IsNotExist(err) {
				s.forgetTarget(v, t)
			}
		}
	}
}

// remountImages mounts again the images in remount still in use, and those
// of volumes whose image record is missing (unreadable). It goes through a
// volume: it knows the source if the pool lost the image.
func (s *NodeServer) remountImages(ctx context.Context, remount map[string]bool) {
	vols := s.volumeList()
	s.mu.Lock()
	for _, v := range vols {
		if s.images[v.Digest] == nil {
			remount[v.Digest] = true
		}
	}
	s.mu.Unlock()
	for _, v := range vols {
		if remount[v.Digest] {
			if err := s.ensureImageFor(ctx, v); err != nil {
				klog.ErrorS(err, "Remount image after restart", "digest", v.Digest, "volume", v.VolumeID)
			}
		}
	}
}

// rebindVolumes redoes the staging and target mounts that are gone or
// bound to an older image mount; it returns the number of volumes.
func (s *NodeServer) rebindVolumes() int {
	vols := s.volumeList()
	for _, v := range vols {
		if err := s.repairMounts(v, false); err != nil {
			klog.ErrorS(err, "Repair volume after restart", "volume", v.VolumeID)
		}
	}
	return len(vols)
}

// volumeList is the volumes in memory, by volume id.
func (s *NodeServer) volumeList() []*state.Volume {
	s.mu.Lock()
	vols := make([]*state.Volume, 0, len(s.volumes))
	for _, v := range s.volumes {
		vols = append(vols, v)
	}
	s.mu.Unlock()
	sort.Slice(vols, func(i, j int) bool { return vols[i].VolumeID < vols[j].VolumeID })
	return vols
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
	if err := s.store.DeleteTarget(next, target); err != nil {
		klog.ErrorS(err, "Forget target", "volume", v.VolumeID)
		return
	}
	s.setVolume(next)
}
