package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/internal/machine"
)

const dg = "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestRoundTrip(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveImage(&Image{Digest: dg, Size: 42, Backend: BackendFUSE, PID: 7}); err != nil {
		t.Fatal(err)
	}
	pv := &Volume{VolumeID: "vol/1", Digest: dg, StagingPath: "/s", Targets: map[string]Target{"/t": {Writable: true}}}
	eph := &Volume{VolumeID: "vol/1", Digest: dg, Ephemeral: true, Targets: map[string]Target{"/e": {}}}
	for _, v := range []*Volume{pv, eph} {
		if err := s.SaveVolume(v); err != nil {
			t.Fatal(err)
		}
	}
	must(t, s.SaveTarget(pv, "/t"))
	if pv.Key() == eph.Key() || strings.ContainsAny(pv.Key(), "/") {
		t.Fatalf("keys %q %q must differ and be path-safe", pv.Key(), eph.Key())
	}
	// A crash before the first record leaves an empty dir: skipped, not fatal.
	os.MkdirAll(filepath.Join(s.Dir, "volumes", "junk"), 0o700)
	os.WriteFile(filepath.Join(s.Dir, "images", "x"), nil, 0o600)

	ims, skipped, err := s.Images()
	if err != nil || len(ims) != 1 || ims[0].PID != 7 || ims[0].Size != 42 || len(skipped) != 0 {
		t.Fatalf("Images = %+v %v %v", ims, skipped, err)
	}
	vols, skipped, err := s.Volumes()
	if err != nil || len(vols) != 2 || len(skipped) != 1 {
		t.Fatalf("Volumes = %+v %v %v", vols, skipped, err)
	}
	if !vols[0].Targets["/t"].Writable && !vols[1].Targets["/t"].Writable {
		t.Fatalf("target lost: %+v %+v", vols[0], vols[1])
	}
	if err := s.DeleteVolume(pv.Key()); err != nil {
		t.Fatal(err)
	}
	if vols, _, _ := s.Volumes(); len(vols) != 1 || !vols[0].Ephemeral {
		t.Fatalf("after delete: %+v", vols)
	}
	if err := s.DeleteImage(dg); err != nil {
		t.Fatal(err)
	}
	if ims, _, _ := s.Images(); len(ims) != 0 {
		t.Fatalf("image not deleted: %+v", ims)
	}
	// No temp files left behind.
	m, _ := filepath.Glob(filepath.Join(s.Dir, "*", "*", ".tmp-*"))
	if len(m) != 0 {
		t.Fatalf("temp files left: %v", m)
	}
}

func TestHexRejectsUnsafeDigests(t *testing.T) {
	for _, d := range []string{"", "sha256:", "sha256:../../etc", "md5:" + dg[7:], "sha256:" + strings.ToUpper(dg[7:]), dg + "00"} {
		if _, err := Hex(d); err == nil {
			t.Errorf("Hex(%q) accepted", d)
		}
	}
	if h, err := Hex(dg); err != nil || h != dg[7:] {
		t.Fatalf("Hex(valid) = %q %v", h, err)
	}
	s := &Store{Dir: t.TempDir()}
	if err := s.SaveImage(&Image{Digest: "sha256:../x"}); err == nil {
		t.Fatal("SaveImage accepted a bad digest")
	}
}

func TestRemoveRefusesMountedDir(t *testing.T) {
	machine.NeedRoot(t, "a bind mount")
	s, _ := Open(t.TempDir())
	s.SaveImage(&Image{Digest: dg})
	mnt := s.ImageMount(dg)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "precious"), []byte("x"), 0o600)
	os.MkdirAll(mnt, 0o700)
	if err := unix.Mount(src, mnt, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	if err := s.DeleteImage(dg); err == nil || !strings.Contains(err.Error(), "still mounted") {
		t.Fatalf("DeleteImage on a mounted dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(src, "precious")); err != nil {
		t.Fatalf("deleted through the mount: %v", err)
	}
}

func TestUnescapeOctal(t *testing.T) {
	if got := unescapeOctal(`/a\040b\134c\0`); got != `/a b\c\0` {
		t.Fatalf("got %q", got)
	}
}

// The statx walk and the mountinfo scan (kernels before 5.8) find the same
// nested mount, and nothing once it is gone.
func TestMountedUnderFindsNestedMount(t *testing.T) {
	machine.NeedRoot(t, "a bind mount")
	dir := t.TempDir()
	deep := filepath.Join(dir, "rw", "x", "upper")
	must(t, os.MkdirAll(deep, 0o700))
	os.WriteFile(filepath.Join(dir, "volume.json"), []byte("{}"), 0o600)
	if err := unix.Mount(t.TempDir(), deep, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(deep, unix.MNT_DETACH) })
	for name, f := range map[string]func(string) (string, error){"statx": mountedUnder, "mountinfo": mountedUnderByMountinfo} {
		if m, err := f(dir); err != nil || m != deep {
			t.Errorf("%s: mountedUnder = %q, %v; want %s", name, m, err, deep)
		}
	}
	must(t, unix.Unmount(deep, 0))
	for name, f := range map[string]func(string) (string, error){"statx": mountedUnder, "mountinfo": mountedUnderByMountinfo} {
		if m, err := f(dir); err != nil || m != "" {
			t.Errorf("%s after unmount: %q, %v", name, m, err)
		}
	}
	if m, err := mountedUnder(filepath.Join(dir, "missing")); err != nil || m != "" {
		t.Errorf("missing dir: %q, %v", m, err)
	}
}

// Publish records are stamped with the boot that wrote them; a record of
// another boot is reported as such, a synced one (no stamp) never. A PV's
// targets live in files of their own, and targets an older version kept in
// volume.json move there.
func TestPublishRecordsStampBoot(t *testing.T) {
	s, err := Open(t.TempDir())
	must(t, err)
	if s.Boot == "" {
		t.Fatalf("no boot id read from %s", BootIDFile)
	}
	other := &Store{Dir: s.Dir, Boot: "another-boot"}
	pv := &Volume{VolumeID: "v", Digest: dg, StagingPath: "/s", Targets: map[string]Target{"/t": {Flags: "noexec"}, "/u": {}}}
	eph := &Volume{VolumeID: "e", Digest: dg, Ephemeral: true, Targets: map[string]Target{"/e": {}}}
	// The format of older versions: targets in a synced volume.json.
	must(t, writeJSON(filepath.Join(s.VolumeDir(pv.Key()), "volume.json"), pv, true))
	must(t, s.SavePublish(eph))
	vols, _, err := s.Volumes()
	must(t, err)
	if len(vols) != 2 || vols[1].Targets["/t"].Flags != "noexec" || len(vols[1].Targets) != 2 {
		t.Fatalf("read back %+v", vols)
	}
	if s.FromEarlierBoot(vols[1], "/t") || other.FromEarlierBoot(vols[1], "/t") {
		t.Error("a synced target counts as another boot's")
	}
	if s.FromEarlierBoot(vols[0], "/e") || !other.FromEarlierBoot(vols[0], "/e") {
		t.Error("inline record: boot not told apart")
	}
	b, _ := os.ReadFile(filepath.Join(s.VolumeDir(pv.Key()), "volume.json"))
	if strings.Contains(string(b), "/t") {
		t.Errorf("volume.json still holds the targets: %s", b)
	}
	// A publish and an unpublish in this boot.
	pv.Targets["/w"] = Target{Writable: true}
	must(t, s.SaveTarget(pv, "/w"))
	must(t, s.DeleteTarget(pv, "/u"))
	vols, _, err = s.Volumes()
	must(t, err)
	v := vols[1]
	if len(v.Targets) != 2 || !v.Targets["/w"].Writable || s.FromEarlierBoot(v, "/w") || !other.FromEarlierBoot(v, "/w") {
		t.Fatalf("after publish and unpublish: %+v", v)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A target file a kill -9 left empty (created, not yet written: its mount
// was never made) or a temp file is dropped at load, not fatal.
func TestTornTargetFileDropped(t *testing.T) {
	s, err := Open(t.TempDir())
	must(t, err)
	pv := &Volume{VolumeID: "v", Digest: dg, StagingPath: "/s", Targets: map[string]Target{"/t": {}, "/torn": {}}}
	must(t, s.SaveVolume(pv))
	must(t, s.SaveTarget(pv, "/t"))
	torn := s.targetPath(pv, "/torn")
	must(t, os.WriteFile(torn, nil, 0o600))
	must(t, os.WriteFile(filepath.Join(filepath.Dir(torn), ".tmp-1"), []byte("{"), 0o600))
	vols, _, err := s.Volumes()
	must(t, err)
	if len(vols) != 1 || len(vols[0].Targets) != 1 || !hasKey(vols[0].Targets, "/t") {
		t.Fatalf("read back %+v", vols)
	}
	if ents, _ := os.ReadDir(filepath.Dir(torn)); len(ents) != 1 {
		t.Errorf("files left in targets/: %v", ents)
	}
}

func hasKey(m map[string]Target, k string) bool { _, ok := m[k]; return ok }

// A target record that cannot be written is an error, not a silent
// success: the publish must fail rather than leave a mount no record names.
func TestSaveTargetReportsWriteError(t *testing.T) {
	s, err := Open(t.TempDir())
	must(t, err)
	pv := &Volume{VolumeID: "v", Digest: dg, StagingPath: "/s", Targets: map[string]Target{"/t": {}}}
	must(t, s.SaveTarget(pv, "/t")) // makes the targets dir
	pv.Targets["/x"] = Target{}
	must(t, os.Mkdir(s.targetPath(pv, "/x"), 0o700)) // EISDIR on write
	if err := s.SaveTarget(pv, "/x"); err == nil {
		t.Fatal("SaveTarget over a directory: nil error")
	}
}
