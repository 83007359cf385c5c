// Command e2etool is the tiny static binary of the kube e2e images:
//
//	e2etool pause        wait for SIGTERM/SIGINT (the pod sandbox image)
//	e2etool read DIR     print "sha256  relpath" for every regular file under
//	                     DIR (sorted), then "READ-DONE N", then wait for SIGTERM
//	e2etool hash DIR     the same lines, then exit (run on the host to get the
//	                     expected output)
//	e2etool loop FILE    open and read FILE again and again (stat and list its
//	                     dir too), checking each read against the first; print
//	                     "LOOP reads=N errors=M" every second and "LOOP-ERR …"
//	                     for each failure, until SIGTERM
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
	"time"
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
	case "loop":
		if len(os.Args) != 3 {
			fmt.Fprintln(os.Stderr, "usage: e2etool loop FILE")
			os.Exit(2)
		}
		loop(os.Args[2])
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}

// loop reads file until SIGTERM; every failure or differing read is an
// error line, so a reader that saw a volume go away says so.
func loop(file string) {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	var first [32]byte
	var reads, errs int
	readOnce := func() error {
		if _, err := os.Stat(file); err != nil {
			return err
		}
		if _, err := os.ReadDir(filepath.Dir(file)); err != nil {
			return err
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		if reads == 0 {
			first = sum
		} else if sum != first {
			return fmt.Errorf("content changed: sha256 %x, first read %x", sum, first)
		}
		return nil
	}
	tick := time.NewTicker(20 * time.Millisecond)
	report := time.NewTicker(time.Second)
	for {
		select {
		case <-stop:
			fmt.Printf("LOOP reads=%d errors=%d\n", reads, errs)
			return
		case <-report.C:
			fmt.Printf("LOOP reads=%d errors=%d\n", reads, errs)
		case <-tick.C:
			if err := readOnce(); err != nil {
				errs++
				fmt.Printf("LOOP-ERR %s: %v\n", time.Now().UTC().Format(time.RFC3339Nano), err)
				continue
			}
			reads++
		}
	}
}
