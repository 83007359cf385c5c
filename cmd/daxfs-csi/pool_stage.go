package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

func init() {
	register("pool stage", "validate an image and stage it once into a pool; prints its digest", poolStage)
}

func poolStage(args []string) (err error) {
	var pf poolFlags
	fs := newPoolFlagSet("pool stage", &pf)
	host, _ := os.Hostname()
	owner := fs.String("owner", host, "owner name recorded on the extent (default: the host name)")
	opts, err := parsePoolArgs(fs, &pf, args, 1, "IMAGE")
	if err != nil {
		return err
	}
	path := fs.Arg(0)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open image: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat image: %w", err)
	}
	im, err := image.Open(f, st.Size())
	if err != nil {
		return fmt.Errorf("image %s: %w", path, err)
	}
	if err := im.Validate(); err != nil {
		return fmt.Errorf("image %s does not validate: %w", path, err)
	}
	digest, err := fileDigest(f)
	if err != nil {
		return fmt.Errorf("digest of %s: %w", path, err)
	}
	p, err := daxdev.OpenPool(pf.spec, opts)
	if err != nil {
		return err
	}
	defer closePool(p, &err)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err = p.Stage(ctx, digest, st.Size(), *owner, func(dst []byte) error {
		_, err := io.ReadFull(io.NewSectionReader(f, 0, st.Size()), dst)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, digest)
	return nil
}

func fileDigest(f *os.File) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
