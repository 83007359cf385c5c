package main

import (
	"fmt"
	"strings"
)

func init() {
	register("image verify", "validate IMG strictly; exit 1 and print the reasons when it is not sound", imageVerify)
}

func imageVerify(args []string) error {
	fs := imageFlagSet("image verify", "IMG")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fs.usageError()
	}
	im, err := openImageFile(pos[0])
	if err == nil {
		defer im.close()
		err = im.Validate()
	}
	if err != nil {
		fmt.Fprintf(stdout, "%s: invalid\n", pos[0])
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stdout, "  %s\n", line)
		}
		return exitError{1}
	}
	info := im.Info()
	fmt.Fprintf(stdout, "%s: ok (%s layout, %d inodes, %d bytes)\n", pos[0], info.Layout, info.InodeCount, info.RegionSize)
	return nil
}
