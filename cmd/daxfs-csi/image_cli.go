package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/daxfs-csi/daxfs-csi/internal/fusehost"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// imageFlags is an image subcommand's flag set and what its usage says.
type imageFlags struct {
	*flag.FlagSet
	name  string // "image ls"
	args  string // "[--json] IMG [PATH]"
	about string // more lines for --help, if any
}

// imageFlagSet returns a quiet flag set for an image subcommand: errors
// come back as usageError, -h and --help print the usage on stdout.
func imageFlagSet(name, args string) *imageFlags {
	fs := flag.NewFlagSet("daxfs-csi "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &imageFlags{FlagSet: fs, name: name, args: args}
}

// parse parses flags and positional arguments in any order.
func (f *imageFlags) parse(args []string) ([]string, error) {
	pos, err := parseInterleaved(f.FlagSet, args)
	if errors.Is(err, flag.ErrHelp) {
		f.help(stdout)
	}
	return pos, err
}

func (f *imageFlags) usageError() error { return usageError{"usage: " + f.name + " " + f.args} }

func (f *imageFlags) help(w io.Writer) {
	fmt.Fprintf(w, "usage: daxfs-csi %s %s\n\n%s\n", f.name, f.args, commands[f.name].summary)
	if f.about != "" {
		fmt.Fprintf(w, "%s\n", f.about)
	}
	n := 0
	f.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintf(w, "\nflags:\n")
		f.SetOutput(w)
		f.PrintDefaults()
		f.SetOutput(io.Discard)
	}
}

// parseInterleaved parses flags that may come before or after positional
// arguments ("ls IMG --json"); "--" ends flag parsing.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		consumed := args[:len(args)-len(rest)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// openedImage is an image file mapped read-only.
type openedImage struct {
	*image.Image
	close func()
}

// openImageFile maps path (zero copy, like fuse-serve) and opens it.
func openImageFile(path string) (*openedImage, error) {
	data, unmap, err := fusehost.MapFile(path)
	if err != nil {
		return nil, err
	}
	im, err := image.OpenBytes(data)
	if err != nil {
		unmap()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &openedImage{Image: im, close: unmap}, nil
}

// typeName is the manifest's name for the file type in st_mode.
func typeName(mode uint32) string {
	switch mode & 0o170000 {
	case 0o100000:
		return "file"
	case 0o040000:
		return "dir"
	case 0o120000:
		return "symlink"
	case 0o010000:
		return "fifo"
	case 0o140000:
		return "socket"
	case 0o020000:
		return "chardev"
	case 0o060000:
		return "blockdev"
	}
	return "unknown"
}
