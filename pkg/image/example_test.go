package image_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// Build an image from a directory tree, then open and validate it.
func ExampleBuilder_AddDir() {
	dir, err := os.MkdirTemp("", "daxfs-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "motd"), []byte("hello from daxfs\n"), 0o644); err != nil {
		log.Fatal(err)
	}

	b := image.NewBuilder(image.BuildOptions{})
	defer b.Close()
	if err := b.AddDir(dir); err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		log.Fatal(err)
	}

	im, err := image.OpenBytes(buf.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	if err := im.Validate(); err != nil {
		log.Fatal(err)
	}
	motd, err := fs.ReadFile(im.FS(), "etc/motd")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("version %d, %d inodes\n", im.Info().Version, im.Info().InodeCount)
	fmt.Print(string(motd))
	// Output:
	// version 5, 3 inodes
	// hello from daxfs
}

// Open an image and walk its tree: the order is depth first, each
// directory's entries sorted by name, whatever order the image stores.
func ExampleImage_Walk() {
	im, err := image.OpenBytes(sampleImage())
	if err != nil {
		log.Fatal(err)
	}
	err = im.Walk(func(p string, in image.Inode) error {
		if in.IsDir() { // a directory's size is its entries' bytes
			fmt.Printf("%s %s\n", image.FileMode(in.Mode), p)
			return nil
		}
		fmt.Printf("%s %s %d\n", image.FileMode(in.Mode), p, in.Size)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// drwxr-xr-x /
	// drwxr-xr-x /bin
	// -rwxr-xr-x /bin/tool 6
	// Lrwxrwxrwx /bin/tool-link 4
	// -rw-r--r-- /readme 12
}

// Read through the io/fs view: fs.ReadFile, fs.WalkDir and fs.Glob work
// on any image.
func ExampleImage_FS() {
	im, err := image.OpenBytes(sampleImage())
	if err != nil {
		log.Fatal(err)
	}
	b, err := fs.ReadFile(im.FS(), "readme")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", b)
	matches, err := fs.Glob(im.FS(), "bin/*")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(matches)
	// Output:
	// "read me too\n"
	// [bin/tool bin/tool-link]
}

// sampleImage builds a small image from a tar stream, so modes and owners
// are exact whatever the umask.
func sampleImage() []byte {
	var t bytes.Buffer
	tw := tar.NewWriter(&t)
	add := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			log.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			log.Fatal(err)
		}
	}
	add(&tar.Header{Name: "readme", Mode: 0o644, Typeflag: tar.TypeReg}, "read me too\n")
	add(&tar.Header{Name: "bin/", Mode: 0o755, Typeflag: tar.TypeDir}, "")
	add(&tar.Header{Name: "bin/tool", Mode: 0o755, Typeflag: tar.TypeReg}, "#!/bin")
	add(&tar.Header{Name: "bin/tool-link", Linkname: "tool", Mode: 0o777, Typeflag: tar.TypeSymlink}, "")
	if err := tw.Close(); err != nil {
		log.Fatal(err)
	}

	b := image.NewBuilder(image.BuildOptions{})
	defer b.Close()
	if err := b.AddTar(&t); err != nil {
		log.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := b.WriteTo(&out); err != nil {
		log.Fatal(err)
	}
	return out.Bytes()
}
