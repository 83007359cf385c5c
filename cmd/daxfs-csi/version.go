package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/daxfs-csi/daxfs-csi/internal/buildinfo"
)

func init() {
	register("version", "print the version and the commit it was built from", func(args []string) error {
		fs := flag.NewFlagSet("daxfs-csi version", flag.ContinueOnError)
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
		}
		printVersion(os.Stdout)
		return nil
	})
}

// printVersion is the output of `version` and `--version`.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "daxfs-csi %s\ncommit %s\n%s %s/%s\n",
		buildinfo.Version(), buildinfo.Commit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
