// Command e2etool is the tiny static binary of the kube e2e images:
//
//	e2etool pause        wait for SIGTERM/SIGINT (the pod sandbox image)
//	e2etool read DIR     print "sha256  relpath" for every regular file under
//	                     DIR (sorted), then "READ-DONE N", then wait for SIGTERM
//	e2etool hash DIR     the same lines, then exit (run on the host to get the
//	                     expected output)
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
)

func wait() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}

func hashTree(dir string) ([]string, error) {
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		lines = append(lines, hex.EncodeToString(h.Sum(nil))+"  "+rel)
		return nil
	})
	sort.Strings(lines)
	return lines, err
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: e2etool pause | read DIR | hash DIR")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "pause":
		wait()
	case "read", "hash":
		if len(os.Args) != 3 {
			fmt.Fprintln(os.Stderr, "usage: e2etool read|hash DIR")
			os.Exit(2)
		}
		lines, err := hashTree(os.Args[2])
		for _, l := range lines {
			fmt.Println(l)
		}
		if err != nil {
			fmt.Println("READ-ERROR", err)
		} else if os.Args[1] == "read" {
			fmt.Println("READ-DONE", len(lines))
		}
		if os.Args[1] == "read" {
			wait()
		}
		if err != nil {
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}
