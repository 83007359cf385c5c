// Package state keeps the node plugin's record of image mounts and volumes in
// a directory, one small JSON file per image and per volume, written
// atomically, so a restarted (even kill -9'ed) plugin knows every mount it made.
//
// Image records and stagings are synced to disk. Publish records (a PV's
// target, one small file each; an inline volume) are not: such a record
// only has to
// outlive the plugin process, not the machine. A write and rename the
// plugin made before a kill -9 or a container restart sits in the kernel's
// page cache, and the next plugin reads it whole (rename is atomic for
// every reader in one boot). A power loss or reboot takes every mount down,
// so what such a record names no longer exists whatever the disk kept;
// the record carries the boot that wrote it and recovery trusts it only in
// that boot (FromEarlierBoot). The kubelet publishes again after
// a reboot. The disk may keep an old copy of a record written unsynced, or
// none (then the directory counts as unrecorded): both name nothing mounted.
package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Backends of an image mount.
const (
	BackendKernel = "kernel"
	BackendFUSE   = "fuse"
)

// Image is one staged image and its read-only image mount.
type Image struct {
	Digest  string `json:"digest"` // sha256:<hex>
	Size    int64  `json:"size"`
	Source  string `json:"source,omitempty"`
	Backend string `json:"backend,omitempty"` // empty until mounted
	PID     int    `json:"pid,omitempty"`     // fuse-serve process
	// FuseHost is the fuse-host handle of a mount fuse-host serves itself
	// (no process of its own: PID is 0).
	FuseHost string `json:"fuseHost,omitempty"`
	// HostPID is that fuse-host's pid as the plugin sees it (SO_PEERCRED;
	// 0 unknown): a publish's cheap check that the mount has a server.
	// Never signalled.
	HostPID  int       `json:"hostPid,omitempty"`
	LastUsed time.Time `json:"lastUsed"`
	// Generation counts image mounts: a volume bound at an older one points
	// at a dead mount and must be bound again.
	Generation int `json:"generation,omitempty"`
	// Reason (a CamelCase code) and ReasonMessage say why Backend was chosen.
	Reason        string `json:"reason,omitempty"`
	ReasonMessage string `json:"reasonMessage,omitempty"`
}

// Target is one published path of a volume.
type Target struct {
	Writable bool   `json:"writable,omitempty"` // overlay view
	Flags    string `json:"flags,omitempty"`    // extra mount flags, canonical ("noatime,noexec")
}

// Volume is a PV staging (Ephemeral false, keyed by volume id) or an inline
// ephemeral publish (keyed by volume id and target). A PV's volume.json
// holds no targets: each is a file of its own (SaveTarget), so a publish
// writes a new small file instead of replacing a record that grows with
// the targets (on ext4 a rename over an existing file also flushes it).
type Volume struct {
	VolumeID    string            `json:"volumeID"`
	Digest      string            `json:"digest"`
	Ephemeral   bool              `json:"ephemeral,omitempty"`
	StagingPath string            `json:"stagingPath,omitempty"`
	Context     map[string]string `json:"context,omitempty"`
	Targets     map[string]Target `json:"targets,omitempty"`
	ImageGen    int               `json:"imageGen,omitempty"` // Image.Generation its mounts were made at
	// Boot is the boot id of an inline volume's unsynced record
	// (SavePublish); empty: synced.
	Boot string `json:"boot,omitempty"`
	// targetBoot is the Boot of each PV target read from its file.
	targetBoot map[string]string
}

// targetRecord is a PV target's file, targets/<TargetKey>.json.
type targetRecord struct {
	Path string `json:"path"`
	Target
	Boot string `json:"boot,omitempty"`
}

// Key names the volume's directory: a hash, since volume ids and paths may
// hold any characters.
func (v *Volume) Key() string {
	if v.Ephemeral {
		for t := range v.Targets {
			return VolumeKey(v.VolumeID, t)
		}
	}
	return VolumeKey(v.VolumeID, "")
}

// VolumeKey is the directory name of a PV (target "") or of an inline volume.
func VolumeKey(volumeID, target string) string {
	if target == "" {
		return "pv-" + shortHash(volumeID)
	}
	return "eph-" + shortHash(volumeID+"\x00"+target)
}

// TargetKey names a target's writable-layer directory inside its volume dir.
func TargetKey(target string) string { return shortHash(target) }

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:16])
}

// BootIDFile names this boot of the machine.
const BootIDFile = "/proc/sys/kernel/random/boot_id"

// Store is a state directory.
type Store struct {
	Dir string
	// Boot is this boot's id; empty when unknown, and then publish records
	// are synced like the others.
	Boot string
}

// Open creates the directory layout when missing.
func Open(dir string) (*Store, error) {
	for _, d := range []string{dir, filepath.Join(dir, "images"), filepath.Join(dir, "volumes")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
	}
	boot, _ := os.ReadFile(BootIDFile)
	return &Store{Dir: dir, Boot: strings.TrimSpace(string(boot))}, nil
}

// FromEarlierBoot reports whether v's target was recorded in another boot:
// its mount cannot exist now.
func (s *Store) FromEarlierBoot(v *Volume, target string) bool {
	boot := v.Boot
	if !v.Ephemeral {
		boot = v.targetBoot[target]
	}
	return boot != "" && boot != s.Boot
}

// Hex is the hex part of a sha256:<hex> digest, validated so it is a safe
// path element.
func Hex(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(h) != 64 {
		return "", fmt.Errorf("digest %q: want sha256:<64 hex digits>", digest)
	}
	if _, err := hex.DecodeString(h); err != nil || strings.ToLower(h) != h {
		return "", fmt.Errorf("digest %q: want lower-case hex", digest)
	}
	return h, nil
}

// ImageDir is <dir>/images/<hex>; the caller validated the digest.
func (s *Store) ImageDir(digest string) string {
	h, _ := Hex(digest)
	return filepath.Join(s.Dir, "images", h)
}

// ImageMount is where the image's read-only mount lives.
func (s *Store) ImageMount(digest string) string { return filepath.Join(s.ImageDir(digest), "mnt") }

// VolumeDir is <dir>/volumes/<key>.
func (s *Store) VolumeDir(key string) string { return filepath.Join(s.Dir, "volumes", key) }

// SaveImage writes <hex>/image.json atomically.
func (s *Store) SaveImage(im *Image) error {
	if _, err := Hex(im.Digest); err != nil {
		return err
	}
	return writeJSON(filepath.Join(s.ImageDir(im.Digest), "image.json"), im, true)
}

// DeleteImage removes the image's directory; its mount must be gone.
func (s *Store) DeleteImage(digest string) error {
	if _, err := Hex(digest); err != nil {
		return err
	}
	return removeDir(s.ImageDir(digest))
}

// SaveVolume writes volumes/<key>/volume.json atomically and durably; a
// PV's targets are not in it (SaveTarget).
func (s *Store) SaveVolume(v *Volume) error {
	if !v.Ephemeral {
		c := *v
		c.Targets = nil
		v = &c
	}
	return writeJSON(filepath.Join(s.VolumeDir(v.Key()), "volume.json"), v, true)
}

// SavePublish writes an inline volume's record atomically but without
// fsync (see the package comment), stamped with this boot.
func (s *Store) SavePublish(v *Volume) error {
	if !v.Ephemeral || s.Boot == "" {
		return s.SaveVolume(v)
	}
	v.Boot = s.Boot
	return writeJSON(filepath.Join(s.VolumeDir(v.Key()), "volume.json"), v, false)
}

func (s *Store) targetPath(v *Volume, target string) string {
	return filepath.Join(s.VolumeDir(v.Key()), "targets", TargetKey(target)+".json")
}

// SaveTarget records PV v's target v.Targets[target] in a file of its own,
// without fsync (see the package comment), stamped with this boot. It is
// written in place, not renamed: the caller mounts only after it returns,
// so a file a kill -9 left torn names no mount, and loadTargets drops it.
func (s *Store) SaveTarget(v *Volume, target string) error {
	if s.Boot == "" {
		return writeJSON(s.targetPath(v, target), targetRecord{Path: target, Target: v.Targets[target]}, true)
	}
	p := s.targetPath(v, target)
	b, err := json.Marshal(targetRecord{Path: target, Target: v.Targets[target], Boot: s.Boot})
	if err != nil {
		return fmt.Errorf("encode %s: %w", p, err)
	}
	err = os.WriteFile(p, b, 0o600)
	if errors.Is(err, fs.ErrNotExist) { // the volume's first target
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fmt.Errorf("write state: %w", err)
		}
		err = os.WriteFile(p, b, 0o600)
	}
	if err != nil {
		return fmt.Errorf("write state %s: %w", p, err)
	}
	return nil
}

// DeleteTarget removes PV v's record of target.
func (s *Store) DeleteTarget(v *Volume, target string) error {
	if err := os.Remove(s.targetPath(v, target)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove state of target %s: %w", target, err)
	}
	return nil
}

// DeleteVolume removes the volume's directory, writable layers included.
func (s *Store) DeleteVolume(key string) error { return removeDir(s.VolumeDir(key)) }

// Images loads every image record, sorted by digest. Directories without a
// readable record are reported in skipped (a crash before the first write).
func (s *Store) Images() (ims []*Image, skipped []string, err error) {
	err = s.each("images", "image.json", func(dir string, b []byte) {
		im := &Image{}
		if json.Unmarshal(b, im) != nil || im.Digest == "" {
			skipped = append(skipped, dir)
			return
		}
		ims = append(ims, im)
	}, &skipped)
	sort.Slice(ims, func(i, j int) bool { return ims[i].Digest < ims[j].Digest })
	return ims, skipped, err
}

// Volumes loads every volume record, a PV's target files included, sorted
// by volume id.
func (s *Store) Volumes() (vols []*Volume, skipped []string, err error) {
	err = s.each("volumes", "volume.json", func(dir string, b []byte) {
		v := &Volume{}
		if json.Unmarshal(b, v) != nil || v.VolumeID == "" {
			skipped = append(skipped, dir)
			return
		}
		vols = append(vols, v)
	}, &skipped)
	for _, v := range vols {
		if !v.Ephemeral {
			if err := s.loadTargets(v); err != nil {
				return nil, nil, err
			}
		}
	}
	sort.Slice(vols, func(i, j int) bool { return vols[i].VolumeID < vols[j].VolumeID })
	return vols, skipped, err
}

// loadTargets reads PV v's target files. Targets an older version kept in
// volume.json (synced) move to files here. A torn file (a power loss) names
// nothing mounted and is removed.
func (s *Store) loadTargets(v *Volume) error {
	if len(v.Targets) > 0 {
		for t := range v.Targets {
			if err := writeJSON(s.targetPath(v, t), targetRecord{Path: t, Target: v.Targets[t]}, true); err != nil {
				return err
			}
		}
		if err := s.SaveVolume(v); err != nil {
			return err
		}
	}
	dir := filepath.Join(s.VolumeDir(v.Key()), "targets")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	v.Targets, v.targetBoot = map[string]Target{}, map[string]string{}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if !strings.HasSuffix(e.Name(), ".json") {
			os.Remove(p) // a temp file a kill -9 left
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read state: %w", err)
		}
		var r targetRecord
		if json.Unmarshal(b, &r) != nil || r.Path == "" || e.Name() != TargetKey(r.Path)+".json" {
			os.Remove(p)
			continue
		}
		v.Targets[r.Path] = r.Target
		v.targetBoot[r.Path] = r.Boot
	}
	return nil
}

func (s *Store) each(sub, file string, fn func(dir string, b []byte), skipped *[]string) error {
	ents, err := os.ReadDir(filepath.Join(s.Dir, sub))
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(s.Dir, sub, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, file))
		if errors.Is(err, fs.ErrNotExist) {
			*skipped = append(*skipped, dir)
			continue
		}
		if err != nil {
			return fmt.Errorf("read state: %w", err)
		}
		fn(dir, b)
	}
	return nil
}

// writeJSON writes path via a temp file and rename, so a reader sees the
// old or the new record. With sync it fsyncs the file before the rename and
// the directory after: a power loss then leaves one of the two as well.
func writeJSON(path string, v any, sync bool) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write state %s: %w", path, err)
	}
	if !sync {
		return nil
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// removeDir removes a state directory. It refuses when anything below is
// still mounted: RemoveAll would descend into the mount and delete through it.
func removeDir(dir string) error {
	if m, err := mountedUnder(dir); err != nil {
		return err
	} else if m != "" {
		return fmt.Errorf("remove state %s: %s is still mounted", dir, m)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove state %s: %w", dir, err)
	}
	return nil
}

// mountedUnder returns a mount point at or below dir, or "". It walks dir
// and asks statx of each directory whether it is a mount root, so it costs
// what the removal itself costs, not a read of the whole mount table (the
// node has one mount per published volume). A directory statx cannot look
// at (a dead FUSE mount) counts as mounted. Kernels before 5.8 lack
// STATX_ATTR_MOUNT_ROOT and get the mountinfo scan.
func mountedUnder(dir string) (string, error) {
	dir = filepath.Clean(dir)
	found := ""
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			found = p // unreadable: maybe a dead mount
			return fs.SkipAll
		}
		if !d.IsDir() {
			return nil
		}
		root, known, err := MountRoot(p, false)
		switch {
		case err != nil:
			found = p
			return fs.SkipAll
		case !known:
			return errNoMountRoot
		case root:
			found = p
			return fs.SkipAll
		}
		return nil
	})
	if errors.Is(err, errNoMountRoot) {
		return mountedUnderByMountinfo(dir)
	}
	return found, err
}

var errNoMountRoot = errors.New("statx has no STATX_ATTR_MOUNT_ROOT")

// MountRoot asks statx whether p is the root of a mount. known is false
// where the kernel cannot say (before Linux 5.8, no STATX_ATTR_MOUNT_ROOT).
// With cached, the inode's cached attributes answer (AT_STATX_DONT_SYNC):
// no round trip to a FUSE server beneath p.
func MountRoot(p string, cached bool) (root, known bool, err error) {
	flags, mask := unix.AT_SYMLINK_NOFOLLOW, uint32(unix.STATX_BASIC_STATS)
	if cached {
		flags, mask = flags|unix.AT_STATX_DONT_SYNC, 0
	}
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, flags, int(mask), &stx); err != nil {
		return false, false, err
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return false, false, nil
	}
	return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, true, nil
}

func mountedUnderByMountinfo(dir string) (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeOctal(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			return mp, nil
		}
	}
	return "", nil
}

// unescapeOctal undoes mountinfo's \ooo escapes (space, tab, newline, backslash).
func unescapeOctal(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, ok := octal3(s[i+1 : i+4]); ok {
				b.WriteByte(n)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal3(s string) (byte, bool) {
	if len(s) != 3 {
		return 0, false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, false
		}
		n = n*8 + int(c-'0')
	}
	if n > 255 {
		return 0, false
	}
	return byte(n), true
}
