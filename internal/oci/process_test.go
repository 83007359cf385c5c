package oci

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

func convertInChild(src, dir string) int {
	c, err := New(Options{Dir: dir, Keychain: anonymousKeychain{}})
	if err == nil {
		var e Entry
		if e, err = c.Convert(context.Background(), src); err == nil {
			fmt.Println(e.Digest)
			return 0
		}
	}
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// Separate processes converting one image into one cache directory pull
// each layer once: the flock makes the others wait and take the result.
func TestConvertOnceAcrossProcesses(t *testing.T) {
	reg := newRegistry(t)
	img := imageOf(t, runtimeLayers(t)...)
	src := reg.push(t, "app", "v1", img)
	gate := make(chan struct{})
	reg.set(func() { reg.gate = gate })
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	outs := make([]string, 3)
	errs := make([]error, 3)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(exe, "-test.run", "^$")
			cmd.Env = append(os.Environ(), "OCI_TEST_CONVERT_SRC="+src, "OCI_TEST_CONVERT_DIR="+dir)
			b, err := cmd.Output()
			outs[i], errs[i] = strings.TrimSpace(string(b)), err
		}()
	}
	time.Sleep(500 * time.Millisecond) // let every child reach the registry or the lock
	close(gate)
	wg.Wait()
	for i := range outs {
		if errs[i] != nil || !strings.HasPrefix(outs[i], "sha256:") || outs[i] != outs[0] {
			t.Fatalf("child %d: %q, %v (child 0: %q)", i, outs[i], errs[i], outs[0])
		}
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		if g := reg.gets(d); g != 1 {
			t.Errorf("layer %s fetched %d times by 3 processes", d, g)
		}
	}
}
