package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// runImageCLI runs the built binary and returns stdout, stderr, exit code.
func runImageCLI(t *testing.T, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(testBinary, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

// manifestToLs turns a manifest (nlink_in_source) into the ls --json form.
func manifestToLs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m []map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, e := range m {
		e["nlink"] = e["nlink_in_source"]
		delete(e, "nlink_in_source")
	}
	return m
}

func lsJSON(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	out, errs, code := runImageCLI(t, nil, append([]string{"image", "ls", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("image ls --json %v: exit %d: %s", args, code, errs)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("image ls --json output is not one JSON array: %v\n%s", err, out)
	}
	return got
}

func TestImageLsMatchesManifests(t *testing.T) {
	for _, c := range []struct{ image, manifest string }{
		{"tree1.static.daxfs", "tree1.manifest.json"},
		{"tree1.branching.daxfs", "tree1.manifest.json"},
		{"tree2.static.daxfs", "tree2.manifest.json"},
		{"tree4.static.daxfs", "tree4.manifest.json"},
	} {
		t.Run(c.image, func(t *testing.T) {
			got := lsJSON(t, sampleImage(t, c.image))
			want := manifestToLs(t, sampleImage(t, c.manifest))
			if len(got) != len(want) {
				t.Fatalf("%d entries, manifest has %d", len(got), len(want))
			}
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("entry %d:\n got  %v\n want %v", i, got[i], want[i])
				}
			}
		})
	}
}

func TestImageVerify(t *testing.T) {
	out, _, code := runImageCLI(t, nil, "image", "verify", sampleImage(t, "tree1.static.daxfs"))
	if code != 0 || !strings.Contains(out, ": ok (static layout, 21 inodes") {
		t.Errorf("verify tree1: exit %d: %s", code, out)
	}
	out, _, code = runImageCLI(t, nil, "image", "verify", sampleImage(t, "tree5-q1-overflow.static.daxfs"))
	if code != 1 || !strings.Contains(out, "inode 1: directory of 136 entries at 0x4000 runs past base_size 0xd000") {
		t.Errorf("verify tree5: exit %d: %s", code, out)
	}
	junk := filepath.Join(t.TempDir(), "junk")
	if err := os.WriteFile(junk, bytes.Repeat([]byte{1}, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code = runImageCLI(t, nil, "image", "verify", junk)
	if code != 1 || !strings.Contains(out, "bad magic 0x1010101") {
		t.Errorf("verify junk: exit %d: %s", code, out)
	}
}

func TestImageBuildStacksDirAndTar(t *testing.T) {
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "etc", "hostname"), []byte("lower\n"), 0o644)
	os.WriteFile(filepath.Join(src, "gone"), []byte("x"), 0o644)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, m := range []struct{ name, body string }{{"etc/hostname", "upper\n"}, {".wh.gone", ""}} {
		tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o600, Size: int64(len(m.body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(m.body))
	}
	tw.Close()
	layers := t.TempDir()
	plain, gz := filepath.Join(layers, "l3.tar"), filepath.Join(layers, "l4.tar.gz")
	if err := os.WriteFile(plain, tarOf(t, "etc/motd", "plain tar\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(tarOf(t, "etc/issue", "gzipped tar\n"))
	zw.Close()
	if err := os.WriteFile(gz, zb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "out.daxfs")
	// Flags after the sources; the second layer comes on stdin.
	out, errs, code := runImageCLI(t, tb.Bytes(), "image", "build", src, "-", plain, gz, "-o", img)
	if code != 0 || !strings.Contains(out, img+" sha256:") {
		t.Fatalf("build: exit %d: %s %s", code, out, errs)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("build left temp files: %v", ents)
	}
	if out, _, code := runImageCLI(t, nil, "image", "verify", img); code != 0 {
		t.Errorf("verify built image: %s", out)
	}
	if out, _, code := runImageCLI(t, nil, "image", "cat", img, "/etc/hostname"); code != 0 || out != "upper\n" {
		t.Errorf("cat: exit %d: %q", code, out)
	}
	got := lsJSON(t, img)
	var paths []string
	for _, e := range got {
		paths = append(paths, e["path"].(string))
	}
	if strings.Join(paths, " ") != "/ /etc /etc/hostname /etc/issue /etc/motd" {
		t.Errorf("paths %v", paths)
	}
	for p, want := range map[string]string{"/etc/motd": "plain tar\n", "/etc/issue": "gzipped tar\n"} {
		if out, _, code := runImageCLI(t, nil, "image", "cat", img, p); code != 0 || out != want {
			t.Errorf("cat %s: exit %d: %q", p, code, out)
		}
	}
	if m := got[2]; m["mode"].(float64) != 0o100600 || m["nlink"].(float64) != 1 || m["size"].(float64) != 6 {
		t.Errorf("/etc/hostname: %v", m)
	}
	out, _, code = runImageCLI(t, nil, "image", "inspect", img)
	if code != 0 || !strings.Contains(out, "reachable:     3 files, 2 dirs, 0 symlinks") {
		t.Errorf("inspect: exit %d: %s", code, out)
	}
}

func TestImageUsageErrors(t *testing.T) {
	img := sampleImage(t, "tree4.static.daxfs")
	for _, args := range [][]string{
		{"image", "build", "/tmp"},
		{"image", "build", "-o", "/tmp/x"},
		{"image", "build", "/tmp", "-o", "/tmp/x", "--specials", "maybe"},
		{"image", "ls"},
		{"image", "ls", img, "/", "extra"},
		{"image", "cat", img},
		{"image", "verify"},
		{"image", "inspect", "--bogus", img},
	} {
		if _, errs, code := runImageCLI(t, nil, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, errs)
		}
	}
	if _, errs, code := runImageCLI(t, nil, "image", "cat", img, "/missing"); code != 1 || !strings.Contains(errs, "file does not exist") {
		t.Errorf("cat missing: exit %d: %s", code, errs)
	}
}

func tarOf(t *testing.T, name, body string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(body))
	tw.Close()
	return b.Bytes()
}
