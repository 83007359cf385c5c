// Command randread does 4 KiB preads at random 4 KiB-aligned offsets within
// the first -span bytes of a file and prints the elapsed seconds. The
// offsets come from a fixed seed, so every filesystem serves the same reads.
//
//	randread -n 20000 -span 1073741824 FILE
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"
)

func main() {
	n := flag.Int("n", 20000, "number of reads")
	span := flag.Int64("span", 1<<30, "offsets are drawn from [0, span) of the file")
	bs := flag.Int("bs", 4096, "read size and alignment")
	seed := flag.Uint64("seed", 1, "PRNG seed")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: randread [-n N] [-span BYTES] [-bs B] FILE")
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "randread:", err)
		os.Exit(1)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		fmt.Fprintln(os.Stderr, "randread:", err)
		os.Exit(1)
	}
	sp := min(*span, st.Size())
	blocks := sp / int64(*bs)
	if blocks <= 0 {
		fmt.Fprintln(os.Stderr, "randread: file smaller than one block")
		os.Exit(1)
	}
	r := rand.New(rand.NewPCG(*seed, 4096))
	offs := make([]int64, *n)
	for i := range offs {
		offs[i] = r.Int64N(blocks) * int64(*bs)
	}
	buf := make([]byte, *bs)
	var sum byte
	start := time.Now()
	for _, off := range offs {
		m, err := f.ReadAt(buf, off)
		if m != len(buf) {
			fmt.Fprintf(os.Stderr, "randread: short read at %d: %d bytes: %v\n", off, m, err)
			os.Exit(1)
		}
		sum ^= buf[0]
	}
	el := time.Since(start)
	fmt.Printf("%.6f\n", el.Seconds())
	fmt.Fprintf(os.Stderr, "randread: %d reads of %d B in %v (%.0f IOPS, xor %d)\n", *n, *bs, el, float64(*n)/el.Seconds(), sum)
}
