package nodeserver

import (
	"path/filepath"

	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

// volIndex answers what each call would otherwise scan every volume for
// (a node may hold thousands): how many volumes use a digest, and which
// staging and target paths are recorded. It changes with s.volumes, under
// s.mu.
type volIndex struct {
	refs  map[string]int // digest → volumes using it
	paths map[string]int // staging or target path → records naming it
}

func newVolIndex() volIndex {
	return volIndex{refs: map[string]int{}, paths: map[string]int{}}
}

func (x volIndex) count(v *state.Volume, d int) {
	bump(x.refs, v.Digest, d)
	if v.StagingPath != "" {
		bump(x.paths, v.StagingPath, d)
	}
	for t := range v.Targets {
		bump(x.paths, t, d)
	}
}

func bump(m map[string]int, k string, d int) {
	if m[k] += d; m[k] <= 0 {
		delete(m, k)
	}
}

// putVolumeLocked records v in memory, replacing the record of its key.
func (s *NodeServer) putVolumeLocked(v *state.Volume) {
	key := v.Key()
	if old := s.volumes[key]; old != nil {
		s.idx.count(old, -1)
	}
	s.volumes[key] = v
	s.idx.count(v, 1)
}

// deleteVolumeLocked forgets the in-memory record of key.
func (s *NodeServer) deleteVolumeLocked(key string) {
	if old := s.volumes[key]; old != nil {
		s.idx.count(old, -1)
		delete(s.volumes, key)
	}
}

// refsLocked counts the volumes that use digest.
func (s *NodeServer) refsLocked(digest string) int { return s.idx.refs[digest] }

// recordedAncestorLocked returns the volume id and path of a recorded
// staging or target path that p lies strictly beneath, or "", "". It looks
// up p's ancestors, not every record.
func (s *NodeServer) recordedAncestorLocked(p string) (id, q string) {
	for q = filepath.Dir(p); ; q = filepath.Dir(q) {
		if s.idx.paths[q] > 0 {
			return s.ownerOfPathLocked(q), q
		}
		if q == "/" || q == "." {
			return "", ""
		}
	}
}

// ownerOfPathLocked names a volume recording path q (for an error message).
func (s *NodeServer) ownerOfPathLocked(q string) string {
	for _, v := range s.volumes {
		if _, ok := v.Targets[q]; ok || v.StagingPath == q {
			return v.VolumeID
		}
	}
	return ""
}
