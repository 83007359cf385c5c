package main

import (
	"fmt"

	"github.com/daxfs-csi/daxfs-csi/internal/buildinfo"
)

func init() {
	register("version", "print the version", func(args []string) error {
		fmt.Println(buildinfo.Version())
		return nil
	})
}
