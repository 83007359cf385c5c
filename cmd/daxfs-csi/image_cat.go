package main

import (
	"fmt"
	"io"
	"strings"
)

func init() {
	register("image cat", "write the file at PATH of IMG to stdout (symlinks followed inside the image)", imageCat)
}

func imageCat(args []string) error {
	fs := imageFlagSet("image cat", "IMG PATH")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return fs.usageError()
	}
	im, err := openImageFile(pos[0])
	if err != nil {
		return err
	}
	defer im.close()
	name := strings.Trim(pos[1], "/")
	if name == "" {
		name = "."
	}
	f, err := im.FS().Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file (%v)", pos[1], st.Mode())
	}
	_, err = io.Copy(stdout, f)
	return err
}
