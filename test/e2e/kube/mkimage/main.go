// Command mkimage writes a docker-archive tarball of single-layer images,
// each holding one static binary, for `ctr images import` (no registry here).
//
//	mkimage -o images.tar -bin /path/to/daxfs-csi -entrypoint /daxfs-csi -tag daxfs-csi:e2e \
//	        -bin /path/to/e2etool -entrypoint /e2etool,pause -tag registry.k8s.io/pause:3.10 ...
//
// Each -bin/-entrypoint/-tag triple is one image; -tag may hold several
// names separated by commas.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, " ") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func layerOf(bin string) (v1.Layer, error) {
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"tmp/", "etc/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o1777}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: path.Base(bin), Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(b); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

func main() {
	var bins, eps, tags multi
	out := flag.String("o", "images.tar", "output docker-archive tarball")
	flag.Var(&bins, "bin", "static binary (repeatable)")
	flag.Var(&eps, "entrypoint", "comma-separated entrypoint of the matching -bin")
	flag.Var(&tags, "tag", "comma-separated names of the matching -bin")
	flag.Parse()
	if len(bins) == 0 || len(bins) != len(eps) || len(bins) != len(tags) {
		log.Fatal("need as many -bin, -entrypoint and -tag")
	}
	refs := map[name.Reference]v1.Image{}
	for i, bin := range bins {
		layer, err := layerOf(bin)
		if err != nil {
			log.Fatal(err)
		}
		img, err := mutate.AppendLayers(empty.Image, layer)
		if err != nil {
			log.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			log.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", runtime.GOARCH
		cf.Config.Entrypoint = strings.Split(eps[i], ",")
		cf.Config.Env = []string{"PATH=/"}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			log.Fatal(err)
		}
		for _, t := range strings.Split(tags[i], ",") {
			ref, err := name.ParseReference(t)
			if err != nil {
				log.Fatal(err)
			}
			refs[ref] = img
		}
	}
	if err := tarball.MultiRefWriteToFile(*out, refs); err != nil {
		log.Fatal(err)
	}
	fmt.Println(*out)
}
