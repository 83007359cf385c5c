package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

func init() {
	register("image ls", "list every entry under PATH of IMG, depth first (--json: the manifest format)", imageLs)
}

// lsEntry is one element of `image ls --json`: the acceptance contract.
type lsEntry struct {
	Path   string  `json:"path"`
	Type   string  `json:"type"`
	Mode   uint32  `json:"mode"`
	UID    uint32  `json:"uid"`
	GID    uint32  `json:"gid"`
	Nlink  uint32  `json:"nlink"`
	Size   *uint64 `json:"size,omitempty"`
	SHA256 string  `json:"sha256,omitempty"`
	Target *string `json:"target,omitempty"`
}

func imageLs(args []string) error {
	fs := imageFlagSet("image ls", "[--json] IMG [PATH]")
	asJSON := fs.Bool("json", false, "print one JSON array (path, type, mode, uid, gid, nlink, size, sha256, target)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return fs.usageError()
	}
	root := "/"
	if len(pos) == 2 {
		root = pos[1]
	}
	im, err := openImageFile(pos[0])
	if err != nil {
		return err
	}
	defer im.close()

	w := bufio.NewWriterSize(stdout, 64<<10)
	var line bytes.Buffer
	enc := json.NewEncoder(&line)
	enc.SetEscapeHTML(false)
	first := true
	if *asJSON {
		w.WriteString("[")
	}
	// The walk reuses one path buffer, so memory stays linear in the depth
	// and each line goes out as it is made.
	err = im.WalkPathBytes(root, func(p []byte, in image.Inode) error {
		if !*asJSON {
			fmt.Fprintf(w, "%s %10d %10d %5d %12d ", image.FileMode(in.Mode), in.UID, in.GID, in.Nlink, in.Size)
			w.Write(p) // not through fmt, whose buffer would grow to each path
			if in.IsSymlink() {
				t, err := im.ReadLink(in.Ino)
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				fmt.Fprintf(w, " -> %s", t)
			}
			_, err := w.WriteString("\n")
			return err
		}
		e, err := describe(im.Image, string(p), in)
		if err != nil {
			return err
		}
		if first {
			w.WriteString("\n")
		} else {
			w.WriteString(",\n")
		}
		first = false
		line.Reset()
		if err := enc.Encode(e); err != nil {
			return err
		}
		_, err = w.Write(bytes.TrimSuffix(line.Bytes(), []byte("\n")))
		return err
	})
	if err != nil {
		return err
	}
	if *asJSON {
		w.WriteString("\n]\n")
	}
	return w.Flush()
}

// describe fills an ls entry, hashing file data straight from the mapping.
func describe(im *image.Image, p string, in image.Inode) (lsEntry, error) {
	e := lsEntry{Path: p, Type: typeName(in.Mode), Mode: in.Mode, UID: in.UID, GID: in.GID, Nlink: in.Nlink}
	switch {
	case in.IsRegular():
		data, err := im.FileBytes(in.Ino)
		if err != nil {
			return e, fmt.Errorf("%s: %w", p, err)
		}
		sum := sha256.Sum256(data)
		size := in.Size
		e.Size, e.SHA256 = &size, hex.EncodeToString(sum[:])
	case in.IsSymlink():
		t, err := im.ReadLink(in.Ino)
		if err != nil {
			return e, fmt.Errorf("%s: %w", p, err)
		}
		e.Target = &t
	}
	return e, nil
}
