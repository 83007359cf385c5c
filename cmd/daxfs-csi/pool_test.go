package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/daxfs-csi/daxfs-csi/internal/sharedtest"
)

// The pool CLI tests run this test binary as daxfs-csi: with the variable
// set, it dispatches its arguments like main and exits before any test.
const poolCLIEnv = "DAXFS_CSI_POOL_CLI_TEST"

func init() {
	if os.Getenv(poolCLIEnv) == "1" {
		os.Exit(dispatch(os.Args[1:]))
	}
}

// runCLI runs daxfs-csi with args and returns stdout, stderr and exit code.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), poolCLIEnv+"=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

type poolStatusOut struct {
	Size, Free, Align int64
	Extents           []struct {
		Digest         string
		Offset, Length int64
		State          string
		Owners         []string
	}
}

func poolStatusJSON(t *testing.T, spec string) poolStatusOut {
	t.Helper()
	out, errs, code := runCLI(t, "pool", "status", "--pool", spec, "--json")
	if code != 0 {
		t.Fatalf("pool status: exit %d: %s", code, errs)
	}
	var st poolStatusOut
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("pool status --json: %v\n%s", err, out)
	}
	return st
}

func TestPoolCLI(t *testing.T) {
	img := poolSampleImage(t, "tree1.static.daxfs")
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	spec := "memfile:" + filepath.Join(t.TempDir(), "pool")

	if _, errs, code := runCLI(t, "pool", "init", "--pool", spec, "--size", "64Mi"); code != 0 {
		t.Fatalf("pool init: exit %d: %s", code, errs)
	}
	// Three stagers at once: all print the digest, one copy is made.
	var wg sync.WaitGroup
	outs := make([]string, 3)
	codes := make([]int, 3)
	for i, owner := range []string{"a", "b", "c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], _, codes[i] = runCLI(t, "pool", "stage", "--pool", spec, "--owner", owner, img)
		}()
	}
	wg.Wait()
	for i := range outs {
		if codes[i] != 0 || strings.TrimSpace(outs[i]) != digest {
			t.Fatalf("stager %d: exit %d, printed %q, want %s", i, codes[i], outs[i], digest)
		}
	}
	st := poolStatusJSON(t, spec)
	if st.Size != 64<<20 || st.Align != 2<<20 || len(st.Extents) != 1 {
		t.Fatalf("status %+v", st)
	}
	e := st.Extents[0]
	if e.Digest != digest || e.Length != int64(len(raw)) || e.State != "ready" || len(e.Owners) != 3 || e.Offset%st.Align != 0 {
		t.Fatalf("extent %+v", e)
	}
	reserved := (int64(len(raw)) + st.Align - 1) / st.Align * st.Align
	freeBefore := st.Free

	for _, owner := range []string{"a", "b"} {
		if _, errs, code := runCLI(t, "pool", "release", "--pool", spec, "--owner", owner, digest); code != 0 {
			t.Fatalf("release %s: exit %d: %s", owner, code, errs)
		}
	}
	if st := poolStatusJSON(t, spec); len(st.Extents) != 1 || strings.Join(st.Extents[0].Owners, ",") != "c" {
		t.Fatalf("after releasing a and b: %+v", st.Extents)
	}
	out, _, code := runCLI(t, "pool", "release", "--pool", spec, "--owner", "c", digest)
	if code != 0 || !strings.Contains(out, "freed") {
		t.Fatalf("last release: exit %d %q", code, out)
	}
	st = poolStatusJSON(t, spec)
	if len(st.Extents) != 0 || st.Free != freeBefore+reserved {
		t.Fatalf("after the last release: %+v, want no extents and free %d", st, freeBefore+reserved)
	}
	if out, _, code := runCLI(t, "pool", "status", "--pool", spec); code != 0 || !strings.Contains(out, "align 2097152") {
		t.Fatalf("text status: exit %d %q", code, out)
	}
}

func TestPoolCLIOffsetFind(t *testing.T) {
	// A pool 6 MiB into a file, as /dev/dax0.0 sits inside a QEMU backing file.
	path := filepath.Join(t.TempDir(), "backing.img")
	os.WriteFile(path, bytes.Repeat([]byte{0xa5}, 6<<20), 0o600)
	spec := "memfile:" + path
	if _, errs, code := runCLI(t, "pool", "init", "--pool", spec, "--offset", "6Mi", "--size", "8Mi", "--force"); code != 0 {
		t.Fatalf("init at an offset: %s", errs)
	}
	out, errs, code := runCLI(t, "pool", "status", "--pool", spec, "--offset", "find", "--json")
	if code != 0 || !strings.Contains(out, `"size": 8388608`) {
		t.Fatalf("status --offset find: exit %d %q %s", code, out, errs)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b[:6<<20], bytes.Repeat([]byte{0xa5}, 6<<20)) {
		t.Fatal("bytes before the offset changed")
	}
	if _, errs, code := runCLI(t, "pool", "status", "--pool", spec); code != 1 || !strings.Contains(errs, "not a daxfs pool") {
		t.Fatalf("status without the offset: exit %d %s", code, errs)
	}
}

func TestPoolCLIErrors(t *testing.T) {
	dir := t.TempDir()
	spec := "memfile:" + filepath.Join(dir, "pool")
	if _, errs, code := runCLI(t, "pool", "init", "--pool", spec, "--size", "8Mi"); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	junk := filepath.Join(dir, "junk.daxfs")
	os.WriteFile(junk, bytes.Repeat([]byte("not an image "), 1000), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"pool", "stage", "--pool", spec, junk}, 1, "junk.daxfs"},
		{[]string{"pool", "stage", "--pool", spec}, 2, "IMAGE"},
		{[]string{"pool", "stage", junk}, 2, "--pool"},
		{[]string{"pool", "init", "--pool", spec, "--size", "lots"}, 2, "--size"},
		{[]string{"pool", "init", "--pool", "memfile:" + junk}, 1, "not a daxfs pool"},
		{[]string{"pool", "release", "--pool", spec, "sha256:" + strings.Repeat("0", 64)}, 2, "--owner"},
		{[]string{"pool", "release", "--pool", spec, "--owner", "x", "sha256:" + strings.Repeat("0", 64)}, 1, "not found"},
		{[]string{"pool", "status", "--pool", "tape:/dev/st0"}, 1, "bad pool spec"},
		{[]string{"pool", "status", "--pool", "devdax:" + filepath.Join(dir, "dax0.0")}, 1, filepath.Join(dir, "dax0.0")},
	} {
		_, errs, code := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errs, tc.code, tc.msg)
		}
	}
	if st := poolStatusJSON(t, spec); len(st.Extents) != 0 {
		t.Fatalf("a refused stage left extents: %+v", st.Extents)
	}
	// The foreign file is untouched; --force overwrites it.
	if b, _ := os.ReadFile(junk); !bytes.HasPrefix(b, []byte("not an image")) {
		t.Fatal("init without --force changed foreign data")
	}
	if _, errs, code := runCLI(t, "pool", "init", "--pool", "memfile:"+junk, "--force", "--size", "4Mi", "--align", "4Ki"); code != 0 {
		t.Fatalf("init --force: %s", errs)
	}
}

// poolSampleImage is an upstream sample image from ../shared beside the
// repository (or $DAXFS_SHARED).
func poolSampleImage(t *testing.T, name string) string { return sharedtest.Sample(t, name) }

func TestPoolCLIDiscover(t *testing.T) {
	root := filepath.Join("..", "..", "pkg", "daxdev", "testdata", "fixtures", "cxl-devdax")
	out, errs, code := runCLI(t, "pool", "discover", "--sys", filepath.Join(root, "sys"), "--dev", "/dev", "--json")
	if code != 0 {
		t.Fatalf("discover: exit %d: %s", code, errs)
	}
	var inv struct {
		Devices []struct{ Kind, Name, CXLRegion, Spec string }
	}
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(inv.Devices) == 0 || inv.Devices[0].Kind != "cxl" || inv.Devices[0].CXLRegion != "region0" || inv.Devices[0].Spec != "devdax:/dev/dax0.0" {
		t.Fatalf("inventory %+v", inv)
	}
	if out, _, code := runCLI(t, "pool", "discover", "--sys", filepath.Join(root, "sys")); code != 0 || !strings.Contains(out, "--pool devdax:/dev/dax0.0") {
		t.Fatalf("text discover: exit %d %q", code, out)
	}
	if _, _, code := runCLI(t, "pool", "discover", "extra"); code != 2 {
		t.Fatalf("extra argument: exit %d, want 2", code)
	}
}
