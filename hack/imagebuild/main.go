// Command imagebuild packs the static daxfs-csi binary into a container
// image without a Docker daemon (go-containerregistry), the way `make image`
// calls it:
//
//	imagebuild -binary bin/image/daxfs-csi -ref daxfs-csi:v0.1.0 \
//	    -version v0.1.0 -revision <commit> -created <unix seconds> \
//	    -oci-layout bin/image/oci -tarball bin/image/daxfs-csi.tar [-push]
//
// The image is one layer (/daxfs-csi, /tmp) on an empty base, with OCI
// media types and org.opencontainers.image.* labels. Every timestamp is
// -created (the commit time), so the same binary gives the same digest.
// It writes an OCI layout (the ref as org.opencontainers.image.ref.name) and
// a docker-archive tarball (`ctr images import`, `docker load`), and with
// -push writes it to the ref's registry (credentials: ~/.docker/config.json).
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type options struct {
	binary, ref, version, revision, source string
	created                                int64
	ociLayout, tarball, arch               string
	push                                   bool
}

func main() {
	var o options
	flag.StringVar(&o.binary, "binary", "", "static daxfs-csi binary (required)")
	flag.StringVar(&o.ref, "ref", "", "image reference, REPOSITORY:TAG (required)")
	flag.StringVar(&o.version, "version", "", "org.opencontainers.image.version")
	flag.StringVar(&o.revision, "revision", "", "org.opencontainers.image.revision (git commit)")
	flag.StringVar(&o.source, "source", "https://github.com/daxfs-csi/daxfs-csi", "org.opencontainers.image.source")
	flag.Int64Var(&o.created, "created", 0, "creation time, unix seconds (SOURCE_DATE_EPOCH; the commit time)")
	flag.StringVar(&o.ociLayout, "oci-layout", "", "write an OCI image layout to this dir (replaced)")
	flag.StringVar(&o.tarball, "tarball", "", "write a docker-archive tarball to this file")
	flag.StringVar(&o.arch, "arch", runtime.GOARCH, "image architecture (the binary's GOARCH)")
	flag.BoolVar(&o.push, "push", false, "push the image to the ref's registry")
	flag.Parse()
	if o.binary == "" || o.ref == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(o); err != nil {
		log.Fatalf("imagebuild: %v", err)
	}
}

func run(o options) error {
	ref, err := name.ParseReference(o.ref)
	if err != nil {
		return fmt.Errorf("ref %q: %w", o.ref, err)
	}
	img, err := build(o)
	if err != nil {
		return err
	}
	dg, err := img.Digest()
	if err != nil {
		return err
	}
	if o.ociLayout != "" {
		if err := os.RemoveAll(o.ociLayout); err != nil {
			return err
		}
		p, err := layout.Write(o.ociLayout, empty.Index)
		if err != nil {
			return fmt.Errorf("oci layout %s: %w", o.ociLayout, err)
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
			"org.opencontainers.image.ref.name": ref.String(),
		})); err != nil {
			return fmt.Errorf("oci layout %s: %w", o.ociLayout, err)
		}
	}
	if o.tarball != "" {
		if err := tarball.MultiRefWriteToFile(o.tarball, map[name.Reference]v1.Image{ref: img}); err != nil {
			return fmt.Errorf("tarball %s: %w", o.tarball, err)
		}
	}
	if o.push {
		if err := remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
	}
	fmt.Printf("%s@%s\n", ref, dg)
	return nil
}

// build assembles the image; everything in it derives from the options and
// the binary's bytes.
func build(o options) (v1.Image, error) {
	bin, err := os.ReadFile(o.binary)
	if err != nil {
		return nil, err
	}
	when := time.Unix(o.created, 0).UTC()
	layerTar, err := rootfs(bin, when)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: when}, CreatedBy: "hack/imagebuild: /daxfs-csi", Comment: o.version},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", o.arch
	cf.Created = v1.Time{Time: when}
	cf.Config.Entrypoint = []string{"/daxfs-csi"}
	cf.Config.Env = []string{"PATH=/"}
	cf.Config.WorkingDir = "/"
	labels := map[string]string{
		"org.opencontainers.image.title":       "daxfs-csi",
		"org.opencontainers.image.description": "CSI driver serving read-only DAXFS images from DAX/CXL device memory",
		"org.opencontainers.image.source":      o.source,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     when.Format(time.RFC3339),
	}
	if o.version != "" {
		labels["org.opencontainers.image.version"] = o.version
	}
	if o.revision != "" {
		labels["org.opencontainers.image.revision"] = o.revision
	}
	cf.Config.Labels = labels
	return mutate.ConfigFile(img, cf)
}

// rootfs is the layer's tar: /tmp (the Go runtime and FUSE logs may want
// it) and the binary, owned by root, all stamped with when.
func rootfs(bin []byte, when time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdrs := []*tar.Header{
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
		{Name: "daxfs-csi", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))},
	}
	for _, h := range hdrs {
		h.ModTime, h.Format = when, tar.FormatUSTAR
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bin); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
