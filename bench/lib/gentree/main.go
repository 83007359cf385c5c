// Command gentree writes the benchmark's generated trees, deterministically
// from a seed, so every run on every machine measures the same bytes.
//
//	gentree small -files 60000 DIR   # many small files in a two-level tree
//	gentree big -files 2 -size 1073741824 DIR
//
// Small files: sizes are log-uniform between 0 and 64 KiB (median ~1 KiB,
// like a source tree or /usr/share), contents half incompressible and half
// text-like, 100 files per directory, 100 directories per top-level dir.
// Big files: pseudo-random (incompressible) bytes.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gentree small|big [flags] DIR")
		os.Exit(2)
	}
	kind := os.Args[1]
	fs := flag.NewFlagSet(kind, flag.ExitOnError)
	files := fs.Int("files", 0, "number of files")
	size := fs.Int64("size", 1<<30, "big: bytes per file")
	seed := fs.Uint64("seed", 1, "PRNG seed")
	fs.Parse(os.Args[2:])
	if fs.NArg() != 1 || *files <= 0 {
		fmt.Fprintln(os.Stderr, "usage: gentree small|big -files N [-size B] [-seed S] DIR")
		os.Exit(2)
	}
	dir := fs.Arg(0)
	var err error
	switch kind {
	case "small":
		err = small(dir, *files, *seed)
	case "big":
		err = big(dir, *files, *size, *seed)
	default:
		err = fmt.Errorf("unknown kind %q", kind)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gentree:", err)
		os.Exit(1)
	}
}

const text = "the quick brown fox jumps over the lazy dog 0123456789\n" +
	"lorem ipsum dolor sit amet consectetur adipiscing elit\n"

func small(dir string, n int, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	buf := make([]byte, 64<<10)
	for i := 0; i < n; i++ {
		d := filepath.Join(dir, fmt.Sprintf("d%03d", i/10000), fmt.Sprintf("s%03d", i/100%100))
		if i%100 == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		sz := int(math.Exp(r.Float64()*math.Log(64<<10))) - 1
		if i%2 == 0 {
			for j := 0; j < sz; j += 8 {
				v := r.Uint64()
				for k := 0; k < 8 && j+k < sz; k++ {
					buf[j+k] = byte(v >> (8 * k))
				}
			}
		} else {
			off := r.IntN(len(text))
			for j := 0; j < sz; j++ {
				buf[j] = text[(off+j)%len(text)]
			}
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%06d.dat", i)), buf[:sz], 0o644); err != nil {
			return err
		}
	}
	return nil
}

func big(dir string, n int, size int64, seed uint64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'd', 'a', 'x'})
	buf := make([]byte, 1<<20)
	for i := 0; i < n; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("big%d.bin", i)))
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(f, 1<<20)
		for left := size; left > 0; {
			r.Read(buf)
			c := int64(len(buf))
			if left < c {
				c = left
			}
			if _, err := w.Write(buf[:c]); err != nil {
				f.Close()
				return err
			}
			left -= c
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
