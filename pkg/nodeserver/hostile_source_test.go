package nodeserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
)

// publishWithin is an inline publish under a deadline; the test fails
// if the call outlives it by far (the FIFO open of old never returned).
func (e *env) publishWithin(t *testing.T, d time.Duration, id, uri, digest, target string) error {
	t.Helper()
	vctx := map[string]string{"image": uri, "csi.storage.k8s.io/ephemeral": "true"}
	if digest != "" {
		vctx["digest"] = digest
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := e.ns.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, TargetPath: target,
			VolumeCapability: roCap(), VolumeContext: vctx})
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(d + 5*time.Second):
		t.Fatalf("publish %s of %s still blocked %v after its deadline", id, uri, 5*time.Second)
		return nil
	}
}

// Sources in the allowed dir that are FIFOs, or symlinks leading out of
// it, are refused at once, and no error tells anything about a file
// outside the allowed dir.
func TestHostileSources(t *testing.T) {
	e := newEnv(t, 16<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "t1.daxfs")
	tgt := func(n string) string { return e.path("pods", n, "vol") }

	fifo := filepath.Join(e.images, "fifo.daxfs")
	must(t, unix.Mkfifo(fifo, 0o644))
	t.Cleanup(func() { // unblock an open() the old code left waiting
		if fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			unix.Close(fd)
		}
	})
	for i := 0; i < 2; i++ { // the retry gets the same answer, not "waiting for another operation"
		wantCode(t, "FIFO source", e.publishWithin(t, 3*time.Second, "fifo", "file://"+fifo, "", tgt("fifo")), codes.InvalidArgument)
		wantCode(t, "FIFO source with digest", e.publishWithin(t, 3*time.Second, "fifo", "file://"+fifo, dg, tgt("fifo")), codes.InvalidArgument)
	}

	outside := e.path("outside")
	must(t, os.MkdirAll(outside, 0o755))
	b := readFile(t, samplePath(t, "tree1.static.daxfs"))
	must(t, os.WriteFile(filepath.Join(outside, "o.daxfs"), b, 0o644))
	must(t, os.Symlink(filepath.Join(outside, "o.daxfs"), filepath.Join(e.images, "linkout")))
	must(t, os.Symlink("/etc/passwd", filepath.Join(e.images, "linkpw")))
	must(t, os.Symlink(outside, filepath.Join(e.images, "sub")))
	must(t, os.Symlink("t1.daxfs", filepath.Join(e.images, "latest")))
	pw := readFile(t, "/etc/passwd")
	pwSum := sha256.Sum256(pw)
	secrets := []string{hex.EncodeToString(pwSum[:]), fmt.Sprintf("%d bytes", len(pw)), outside + "/", "/etc/passwd"}
	for _, c := range []struct{ name, uri, digest string }{
		{"link out", "file://" + e.images + "/linkout", ""},
		{"link out with digest", "file://" + e.images + "/linkout", dg},
		{"link to /etc/passwd", "file://" + e.images + "/linkpw", ""},
		{"link to /etc/passwd with digest", "file://" + e.images + "/linkpw", dg},
		{"through a dir link", "file://" + e.images + "/sub/o.daxfs", ""},
	} {
		err := e.publishWithin(t, 10*time.Second, "x", c.uri, c.digest, tgt("x"))
		wantCode(t, c.name, err, codes.PermissionDenied)
		for _, s := range secrets {
			if err != nil && strings.Contains(err.Error(), s) {
				t.Errorf("%s: error tells %q about a file outside the allowed dir: %v", c.name, s, err)
			}
		}
	}
	// A link inside the allowed dir is still a link: name the file itself.
	wantCode(t, "link within the allowed dir", e.publishWithin(t, 10*time.Second, "l", "file://"+e.images+"/latest", "", tgt("l")), codes.InvalidArgument)
	if st := e.pool.Status(); len(st.Extents) != 0 || e.pool.fills.Load() != 0 {
		t.Errorf("%d images staged, %d fills for refused sources", len(st.Extents), e.pool.fills.Load())
	}
	// The real thing still works.
	must(t, e.publishWithin(t, 30*time.Second, "ok", uri, "", tgt("ok")))
	checkTree(t, tgt("ok"), "tree1.manifest.json")
}

// --max-image-size refuses larger images with ResourceExhausted before
// anything reaches the pool; an image at the limit stages.
func TestMaxImageSize(t *testing.T) {
	size := int64(len(readFile(t, samplePath(t, "tree1.static.daxfs"))))
	e := newEnv(t, 16<<20, func(o *Options) { o.MaxImageSize = size - 1 })
	uri, dg := e.addImage("tree1.static.daxfs", "t1.daxfs")
	wantCode(t, "inline, digest given", e.publish("i1", uri, dg, "", e.path("pods", "1", "vol"), nil), codes.ResourceExhausted)
	wantCode(t, "inline, digest computed", e.publish("i2", uri, "", "", e.path("pods", "2", "vol"), nil), codes.ResourceExhausted)
	wantCode(t, "PV stage", e.stage("pv", uri, dg, e.path("stg"), nil), codes.ResourceExhausted)
	if st := e.pool.Status(); len(st.Extents) != 0 || e.pool.fills.Load() != 0 {
		t.Errorf("%d images staged, %d fills over the limit", len(st.Extents), e.pool.fills.Load())
	}
	if m := mountsUnder(e.root); len(m) != 0 {
		t.Errorf("mounts made: %v", m)
	}
	e.ns.Shutdown()
	e.opts.MaxImageSize = size
	e.ns = e.newServer()
	must(t, e.publish("i3", uri, "", "", e.path("pods", "3", "vol"), nil))
	checkTree(t, e.path("pods", "3", "vol"), "tree1.manifest.json")
}
