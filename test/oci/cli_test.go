package oci_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/daxfs-csi/daxfs-csi/internal/oci"
)

// image build of an oci://, docker-archive: or oci-layout: source writes the same bytes
// the node's converter makes.
func TestImageBuildCommand(t *testing.T) {
	r := newRegistry(t)
	img := appImage(t)
	src := r.push(t, "team/app", img)
	conv, err := oci.New(oci.Options{Dir: t.TempDir(), Keychain: anon{}})
	if err != nil {
		t.Fatal(err)
	}
	want, err := conv.Convert(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "app.tar")
	tag, _ := name.NewTag("example.com/app:v1")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		t.Fatal(err)
	}
	lp := filepath.Join(dir, "layout")
	p, err := layout.Write(lp, empty.Index)
	if err == nil {
		err = p.AppendImage(img)
	}
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range []string{src, "docker-archive:" + archive, "oci-layout:" + lp} {
		out := filepath.Join(dir, "out"+string(rune('0'+i))+".daxfs")
		cmd := exec.Command(daxfsCSI, "image", "build", s, "-o", out)
		cmd.Env = append(cmd.Environ(), "DOCKER_CONFIG="+dir) // no credentials: anonymous
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("image build %s: %v\n%s", s, err, b)
		}
		if !strings.Contains(string(b), want.Digest+" ") {
			t.Errorf("image build %s printed %q; want digest %s", s, b, want.Digest)
		}
		v, err := exec.Command(daxfsCSI, "image", "verify", out).CombinedOutput()
		if err != nil {
			t.Errorf("image verify %s: %v\n%s", out, err, v)
		}
	}
	if b, err := exec.Command(daxfsCSI, "image", "build", "oci://"+r.host+"/team/missing:v1", "-o", filepath.Join(dir, "x")).CombinedOutput(); err == nil {
		t.Fatalf("build of a missing image succeeded: %s", b)
	}
}
