package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

// poolFlags are the flags every pool subcommand shares.
type poolFlags struct {
	spec   string
	offset string
	tuning poolTuning
}

func newPoolFlagSet(name string, pf *poolFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("daxfs-csi "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.StringVar(&pf.spec, "pool", "", "pool spec: memfile:PATH, devdax:/dev/daxX.Y, pmem:/dev/pmemN, dmaheap:NAME or auto")
	pf.tuning.register(fs)
	fs.StringVar(&pf.offset, "offset", "0", "memfile only: where the pool starts in the file (e.g. a guest's dax data in a QEMU backing file), Ki/Mi/Gi suffixes, or \"find\" to scan for the pool header")
	return fs
}

// parsePoolArgs parses args and checks --pool and the positional count.
func parsePoolArgs(fs *flag.FlagSet, pf *poolFlags, args []string, nargs int, argName string) (daxdev.PoolOptions, error) {
	if err := parseFlags(fs, args); err != nil {
		return daxdev.PoolOptions{}, err
	}
	if pf.spec == "" {
		return daxdev.PoolOptions{}, usageError{"--pool SPEC is required"}
	}
	if fs.NArg() != nargs {
		if nargs == 0 {
			return daxdev.PoolOptions{}, usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
		}
		return daxdev.PoolOptions{}, usageError{fmt.Sprintf("want exactly one %s argument, got %d", argName, fs.NArg())}
	}
	var opts daxdev.PoolOptions
	if err := pf.tuning.apply(&opts, ""); err != nil {
		return opts, err
	}
	if pf.offset == "find" {
		s, err := daxdev.ParseSpec(pf.spec)
		if err != nil || s.Scheme != "memfile" {
			return daxdev.PoolOptions{}, usageError{"--offset find needs a memfile:PATH pool"}
		}
		opts.Offset, err = daxdev.FindPool(s.Path)
		return opts, err
	}
	off, err := daxdev.ParseSize(pf.offset)
	if err != nil {
		return daxdev.PoolOptions{}, usageError{"--offset: " + err.Error()}
	}
	opts.Offset = off
	return opts, nil
}

func closePool(p *daxdev.Pool, err *error) {
	if cerr := p.Close(); cerr != nil && *err == nil {
		*err = fmt.Errorf("close pool: %w", cerr)
	}
}

var stdout io.Writer = os.Stdout
