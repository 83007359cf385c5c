package main

import (
	"encoding/json"
	"fmt"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

func init() {
	register("image inspect", "print the version, layout, regions, counts and sizes of IMG", imageInspect)
}

// inspectOut is what `image inspect --json` prints.
type inspectOut struct {
	image.Info
	Files, Dirs, Symlinks, Specials int    // reachable inodes by type
	HardLinks                       int    // extra names of regular files
	FileBytes                       uint64 // sum of regular file sizes (each inode once)
}

func imageInspect(args []string) error {
	fs := imageFlagSet("image inspect", "[--json] IMG")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fs.usageError()
	}
	im, err := openImageFile(pos[0])
	if err != nil {
		return err
	}
	defer im.close()
	out := inspectOut{Info: im.Info()}
	seen := make(map[uint32]bool)
	err = im.WalkPathBytes("/", func(_ []byte, in image.Inode) error {
		if seen[in.Ino] {
			out.HardLinks++
			return nil
		}
		seen[in.Ino] = true
		switch {
		case in.IsRegular():
			out.Files++
			out.FileBytes += in.Size
		case in.IsDir():
			out.Dirs++
		case in.IsSymlink():
			out.Symlinks++
		default:
			out.Specials++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	i := out.Info
	fmt.Fprintf(stdout, "version:       %d\n", i.Version)
	fmt.Fprintf(stdout, "layout:        %s\n", i.Layout)
	fmt.Fprintf(stdout, "region size:   %d (superblock total_size %d)\n", i.RegionSize, i.TotalSize)
	fmt.Fprintf(stdout, "base image:    offset %#x, size %#x (data ends at %#x)\n", i.BaseOffset, i.BaseSize, i.BaseTotalSize)
	fmt.Fprintf(stdout, "inode table:   offset %#x, %d slots, root %d\n", i.InodeOffset, i.InodeCount, i.RootInode)
	fmt.Fprintf(stdout, "data area:     offset %#x\n", i.DataOffset)
	if i.Layout == image.LayoutBranching {
		fmt.Fprintf(stdout, "branch table:  offset %#x, %d entries\n", i.BranchTableOffset, i.BranchTableEntries)
		fmt.Fprintf(stdout, "delta region:  offset %#x, size %#x\n", i.DeltaRegionOffset, i.DeltaRegionSize)
	}
	fmt.Fprintf(stdout, "reachable:     %d files, %d dirs, %d symlinks, %d special, %d extra hard links\n",
		out.Files, out.Dirs, out.Symlinks, out.Specials, out.HardLinks)
	fmt.Fprintf(stdout, "file bytes:    %d\n", out.FileBytes)
	return nil
}
