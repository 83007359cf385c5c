package main

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

func init() {
	register("image build", "build a static image from directories and tar layers: SRC... -o OUT [--specials skip|keep]", imageBuild)
}

func imageBuild(args []string) error {
	fs := imageFlagSet("image build")
	out := fs.String("o", "", "output image `file` (written to a temp file, then renamed)")
	specials := fs.String("specials", "skip", "FIFOs, sockets, device nodes: skip (kernel validate rejects them) or keep")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 || *out == "" {
		return usageError{"usage: image build SRC... -o OUT [--specials skip|keep] (SRC: a directory, a tar or tar.gz file, or - for a tar on stdin)"}
	}
	opts := image.BuildOptions{TempDir: filepath.Dir(*out)}
	switch *specials {
	case "skip":
	case "keep":
		opts.Specials = image.SpecialsKeep
	default:
		return usageError{fmt.Sprintf("--specials %q: want skip or keep", *specials)}
	}
	if isTerminal(os.Stderr) {
		opts.Progress = progressPrinter(os.Stderr)
	}
	b := image.NewBuilder(opts)
	defer b.Close()
	for _, src := range pos {
		if err := addSource(b, src); err != nil {
			return err
		}
	}
	if s := b.Skipped(); len(s) > 0 {
		fmt.Fprintf(os.Stderr, "daxfs-csi image build: skipped %d special files (use --specials keep), first: %s\n", len(s), s[0])
	}
	size, sum, err := writeImageFile(b, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s sha256:%s %d\n", *out, sum, size)
	return nil
}

// addSource stacks one SRC: a directory, a tar (optionally gzipped) or "-".
func addSource(b *image.Builder, src string) error {
	if src != "-" {
		st, err := os.Stat(src)
		if err != nil {
			return err
		}
		if st.IsDir() {
			return b.AddDir(src)
		}
	}
	var r io.Reader = os.Stdin
	if src != "-" {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	br := bufio.NewReaderSize(r, 1<<20)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		defer zr.Close()
		return wrapSrc(src, b.AddTar(zr))
	}
	return wrapSrc(src, b.AddTar(br))
}

func wrapSrc(src string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	return nil
}

// writeImageFile writes the image beside out, syncs it and renames it into
// place, hashing it on the way.
func writeImageFile(b *image.Builder, out string) (int64, string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return 0, "", err
	}
	h := sha256.New()
	n, err := b.WriteTo(io.MultiWriter(tmp, h))
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	err = errors.Join(err, tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressPrinter redraws one status line at most every 200 ms.
func progressPrinter(w io.Writer) func(done, total int64) {
	var last time.Time
	return func(done, total int64) {
		if now := time.Now(); done == total || now.Sub(last) >= 200*time.Millisecond {
			last = now
			fmt.Fprintf(w, "\r%3d%%  %d / %d MiB", done*100/max(total, 1), done>>20, total>>20)
			if done == total {
				fmt.Fprintln(w)
			}
		}
	}
}
