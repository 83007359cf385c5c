package main

import (
	"fmt"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

func init() {
	register("pool release", "remove an owner from a staged extent; frees it after the last owner", poolRelease)
}

func poolRelease(args []string) (err error) {
	var pf poolFlags
	fs := newPoolFlagSet("pool release", &pf)
	owner := fs.String("owner", "", "owner name to remove (required)")
	opts, err := parsePoolArgs(fs, &pf, args, 1, "DIGEST")
	if err != nil {
		return err
	}
	if *owner == "" {
		return usageError{"--owner NAME is required"}
	}
	p, err := daxdev.OpenPool(pf.spec, opts)
	if err != nil {
		return err
	}
	defer closePool(p, &err)
	freed, err := p.Release(fs.Arg(0), *owner)
	if err != nil {
		return err
	}
	if freed {
		fmt.Fprintf(stdout, "released %s: freed\n", fs.Arg(0))
	} else {
		fmt.Fprintf(stdout, "released %s: other owners remain\n", fs.Arg(0))
	}
	return nil
}
