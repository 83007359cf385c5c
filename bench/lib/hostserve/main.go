// Command hostserve asks a running `daxfs-csi fuse-host` to serve an image
// file at a mount point (printing the handle once the mount answers), or to
// stop a handle: the request the node plugin makes, from a shell. Stdlib
// only, so its own start costs little next to what it measures; it speaks
// the JSON-lines protocol of internal/fusehost (doc.go there).
//
//	hostserve -socket S -image FILE -mountpoint DIR
//	hostserve -socket S -pool SPEC -digest sha256:... -mountpoint DIR
//	hostserve -socket S -stop HANDLE
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	socket := flag.String("socket", "", "fuse-host's unix socket")
	image := flag.String("image", "", "image file to serve")
	mnt := flag.String("mountpoint", "", "where to mount it")
	pool := flag.String("pool", "", "pool spec (memfile:PATH, ...) holding the image, instead of -image")
	digest := flag.String("digest", "", "digest of the image's ready extent in -pool")
	stop := flag.String("stop", "", "handle to stop")
	flag.Parse()
	req := map[string]string{"op": "serve", "image": *image, "mountpoint": *mnt}
	if *pool != "" {
		req = map[string]string{"op": "serve", "pool": *pool, "digest": *digest, "mountpoint": *mnt}
	}
	if *stop != "" {
		req = map[string]string{"op": "stop", "handle": *stop}
	}
	if *socket == "" || (*stop == "" && ((*image == "") == (*pool == "") || *mnt == "")) {
		fmt.Fprintln(os.Stderr, "usage: hostserve -socket S (-image FILE | -pool SPEC -digest D) -mountpoint DIR | -stop HANDLE")
		os.Exit(2)
	}
	c, err := net.DialTimeout("unix", *socket, 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostserve:", err)
		os.Exit(1)
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		fmt.Fprintln(os.Stderr, "hostserve:", err)
		os.Exit(1)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostserve: reply:", err)
		os.Exit(1)
	}
	var r struct{ Handle, Error string }
	if err := json.Unmarshal(line, &r); err != nil || r.Error != "" {
		fmt.Fprintln(os.Stderr, "hostserve:", r.Error, err)
		os.Exit(1)
	}
	if r.Handle != "" {
		fmt.Println(r.Handle)
	}
}
