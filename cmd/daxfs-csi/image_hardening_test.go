package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestImageHelp: -h and --help print the usage on stdout and exit 0.
func TestImageHelp(t *testing.T) {
	for _, c := range []struct{ cmd, usage string }{
		{"build", "usage: daxfs-csi image build SRC... -o OUT [--specials skip|keep] [--max-size SIZE]"},
		{"inspect", "usage: daxfs-csi image inspect [--json] IMG"},
		{"verify", "usage: daxfs-csi image verify IMG"},
		{"ls", "usage: daxfs-csi image ls [--json] IMG [PATH]"},
		{"cat", "usage: daxfs-csi image cat IMG PATH"},
	} {
		for _, flag := range []string{"-h", "--help"} {
			out, errs, code := runImageCLI(t, nil, "image", c.cmd, flag)
			if code != 0 || !strings.HasPrefix(out, c.usage+"\n") || errs != "" {
				t.Errorf("image %s %s: exit %d, stdout %q, stderr %q", c.cmd, flag, code, out, errs)
			}
		}
	}
	out, _, _ := runImageCLI(t, nil, "image", "build", "--help")
	for _, want := range []string{"-max-size SIZE", "-specials", "SRC: a directory"} {
		if !strings.Contains(out, want) {
			t.Errorf("image build --help lacks %q:\n%s", want, out)
		}
	}
}

// TestImageBuildMaxSize: --max-size refuses a too-large image before any
// byte of it (or of a spooled tar member) is written, and leaves nothing.
func TestImageBuildMaxSize(t *testing.T) {
	src := t.TempDir()
	f, err := os.Create(filepath.Join(src, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(2 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sparseTar := filepath.Join(t.TempDir(), "sparse.tar") // GNU tar stores the 2 GiB hole in a few KB
	if out, err := exec.Command("tar", "-S", "-C", src, "-cf", sparseTar, "sparse").CombinedOutput(); err != nil {
		t.Fatalf("tar -S: %v: %s", err, out)
	}
	if st, err := os.Stat(sparseTar); err != nil || st.Size() > 10<<10 {
		t.Fatalf("sparse tar: %v, %v", st, err)
	}
	for _, c := range []struct {
		name  string
		src   string
		stdin bool
		want  string
	}{
		{"directory", src, false, "bytes exceeds --max-size 1Gi (1073741824 bytes); nothing written"},
		{"tar file", sparseTar, false, `tar member "sparse": image exceeds the size limit: 2147483648 data bytes, limit 1073741824 (--max-size 1Gi)`},
		{"tar on stdin", "-", true, `tar member "sparse": image exceeds the size limit: 2147483648 data bytes, limit 1073741824 (--max-size 1Gi)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdin []byte
			if c.stdin {
				if stdin, err = os.ReadFile(sparseTar); err != nil {
					t.Fatal(err)
				}
			}
			dir := t.TempDir()
			_, errs, code := runImageCLI(t, stdin, "image", "build", c.src, "-o", filepath.Join(dir, "out.daxfs"), "--max-size", "1Gi")
			if code != 1 || !strings.Contains(errs, c.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, errs, c.want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("refused build left %v", ents)
			}
		})
	}
	small := t.TempDir()
	if err := os.WriteFile(filepath.Join(small, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := runImageCLI(t, nil, "image", "build", small, "-o", filepath.Join(t.TempDir(), "ok.daxfs"), "--max-size", "20Ki")
	if code != 0 || !strings.HasSuffix(out, " 20480\n") {
		t.Errorf("build of 20 KiB under --max-size 20Ki: exit %d: %s %s", code, out, errs)
	}
	if _, errs, code := runImageCLI(t, nil, "image", "build", small, "-o", filepath.Join(t.TempDir(), "no.daxfs"), "--max-size", "20479"); code != 1 || !strings.Contains(errs, "image of 20480 bytes exceeds --max-size 20479") {
		t.Errorf("build of 20 KiB under --max-size 20479: exit %d: %s", code, errs)
	}
	if _, errs, code := runImageCLI(t, nil, "image", "build", src, "-o", "/tmp/x", "--max-size", "2GB"); code != 2 || !strings.Contains(errs, `--max-size: `) {
		t.Errorf("--max-size 2GB: exit %d: %s", code, errs)
	}
}

// chainDir makes depth nested directories with 255-byte names under root,
// from directory fds (the paths pass PATH_MAX).
func chainDir(t *testing.T, root string, depth int) {
	t.Helper()
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	for i := 0; err == nil && i < depth; i++ {
		name := strings.Repeat(string(rune('a'+i%26)), 255)
		if err = unix.Mkdirat(fd, name, 0o755); err == nil {
			var sub int
			sub, err = unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			unix.Close(fd)
			fd = sub
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
}

// lineCounter counts what a command streams out without keeping it.
type lineCounter struct{ bytes, lines int }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.bytes += len(p)
	c.lines += bytes.Count(p, []byte("\n"))
	return len(p), nil
}

// peakRSS runs the binary with args, streaming stdout into out, and
// returns its peak RSS in bytes.
func peakRSS(t *testing.T, out io.Writer, args ...string) int64 {
	t.Helper()
	var errb bytes.Buffer
	cmd := exec.Command(testBinary, args...)
	cmd.Stdout, cmd.Stderr = out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %v: %s", args, err, errb.String())
	}
	return cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
}

// TestImageLsInspectDeepChainBoundedMemory: ls, ls --json and inspect of a
// chain 1,000 directories deep with 255-byte names (its paths sum to
// 128 MB) peak at most 32 MB of RSS above inspect of a one-file image:
// the walk holds one path, and the listing streams out. (Before, they
// peaked 130-250 MB above it.)
func TestImageLsInspectDeepChainBoundedMemory(t *testing.T) {
	const depth, bound = 1000, 32 << 20
	src := t.TempDir()
	chainDir(t, src, depth)
	img := filepath.Join(t.TempDir(), "chain.daxfs")
	if out, errs, code := runImageCLI(t, nil, "image", "build", src, "-o", img); code != 0 {
		t.Fatalf("build: exit %d: %s %s", code, out, errs)
	}
	base := peakRSS(t, io.Discard, "image", "inspect", sampleImage(t, "tree4.static.daxfs"))
	pathBytes := 0
	for d := 1; d <= depth; d++ {
		pathBytes += d * 256
	}
	for _, c := range []struct {
		args     []string
		minBytes int
		minLines int
	}{
		{[]string{"image", "ls", img}, pathBytes, depth + 1},
		{[]string{"image", "ls", "--json", img}, pathBytes, depth + 3},
		{[]string{"image", "inspect", img}, 0, 1},
	} {
		var out lineCounter
		rss := peakRSS(t, &out, c.args...)
		if out.bytes < c.minBytes || out.lines < c.minLines {
			t.Errorf("%v: %d bytes in %d lines, want at least %d in %d", c.args[1:], out.bytes, out.lines, c.minBytes, c.minLines)
		}
		if rss-base > bound {
			t.Errorf("%v: peak RSS %d MB, %d MB above a one-file inspect; bound %d MB", c.args[1:], rss>>20, (rss-base)>>20, bound>>20)
		}
		t.Logf("%v: %d MB out, peak RSS %d MB (one-file inspect: %d MB)", c.args[1:], out.bytes>>20, rss>>20, base>>20)
	}
	out, _, code := runImageCLI(t, nil, "image", "inspect", img)
	if code != 0 || !strings.Contains(out, "reachable:     0 files, 1001 dirs") {
		t.Errorf("inspect: exit %d: %s", code, out)
	}
}
