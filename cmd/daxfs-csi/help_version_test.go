package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Every spelling of help lists every command on stdout and exits 0.
func TestHelpListsEveryCommand(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "-help", "help"} {
		out, errs, code := runImageCLI(t, nil, arg)
		if code != 0 || errs != "" {
			t.Errorf("daxfs-csi %s: exit %d, stderr %q; want 0 and nothing", arg, code, errs)
		}
		if !strings.HasPrefix(out, "usage: daxfs-csi COMMAND") {
			t.Errorf("daxfs-csi %s: stdout does not start with the usage line:\n%s", arg, out)
		}
		for name := range commands {
			if !strings.Contains(out, "\n  "+name+" ") {
				t.Errorf("daxfs-csi %s: command %q not listed:\n%s", arg, name, out)
			}
		}
	}
}

// help narrows to a group, passes a command's -h through, and refuses words
// that name no command.
func TestHelpGroupCommandAndUnknown(t *testing.T) {
	for _, args := range [][]string{{"help", "pool"}, {"pool", "--help"}, {"pool", "-h"}} {
		out, errs, code := runImageCLI(t, nil, args...)
		if code != 0 || errs != "" {
			t.Errorf("%v: exit %d, stderr %q; want 0 and nothing", args, code, errs)
		}
		if !strings.Contains(out, "  pool stage ") || strings.Contains(out, "  serve ") {
			t.Errorf("%v: want the pool commands only:\n%s", args, out)
		}
	}

	// help COMMAND is COMMAND -h: the flags, exit 0.
	_, errs, code := runImageCLI(t, nil, "help", "serve")
	if code != 0 || !strings.Contains(errs, "-allow-source") {
		t.Errorf("help serve: exit %d, want 0 and the serve flags:\n%s", code, errs)
	}

	for _, args := range [][]string{{"help", "nope"}, {"nope"}, {}} {
		out, errs, code := runImageCLI(t, nil, args...)
		if code != 2 || out != "" || !strings.Contains(errs, "usage: daxfs-csi COMMAND") {
			t.Errorf("%v: exit %d, stdout %q; want 2, nothing on stdout and the usage on stderr:\n%s", args, code, out, errs)
		}
	}
}

// version and --version print the same three lines; stray arguments are a
// usage error.
func TestVersionForms(t *testing.T) {
	want, _, code := runImageCLI(t, nil, "version")
	if code != 0 {
		t.Fatalf("version: exit %d", code)
	}
	lines := strings.Split(strings.TrimSuffix(want, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "daxfs-csi ") || !strings.HasPrefix(lines[1], "commit ") {
		t.Fatalf("version: want 'daxfs-csi V', 'commit C', 'goX os/arch':\n%s", want)
	}
	for _, arg := range []string{"--version", "-version"} {
		if got, _, code := runImageCLI(t, nil, arg); code != 0 || got != want {
			t.Errorf("%s: exit %d, output %q; want 0 and %q", arg, code, got, want)
		}
	}
	if _, _, code := runImageCLI(t, nil, "version", "extra"); code != 2 {
		t.Errorf("version extra: exit %d, want 2", code)
	}
}

// `make build` stamps the binary with git describe and the full commit id.
func TestVersionStampedByMakeBuild(t *testing.T) {
	root := gitOut(t, "rev-parse", "--show-toplevel")
	bin := filepath.Join(t.TempDir(), "daxfs-csi")
	if out, err := exec.Command("make", "-C", root, "build", "BIN="+bin).CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	describe := gitOut(t, "describe", "--always", "--dirty")
	commit := gitOut(t, "rev-parse", "HEAD")
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("--version: %v", err)
	}
	lines := strings.Split(string(out), "\n")
	if lines[0] != "daxfs-csi "+describe || lines[1] != "commit "+commit {
		t.Errorf("--version of make build:\n%s\nwant 'daxfs-csi %s' and 'commit %s'", out, describe, commit)
	}
}

func gitOut(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}
