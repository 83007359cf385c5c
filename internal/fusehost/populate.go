package fusehost

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// populateChunk: small enough that Close waits little for the chunk in hand.
const populateChunk = 8 << 20

// populator maps the page tables of an image already in memory (a pool's
// extent) in the background, MADV_POPULATE_READ a chunk at a time. Without
// it every first READ of each 4 KiB page of a freshly mapped pool faults on
// its own in the kernel's copy of the reply (46,000 faults for a 180 MB
// image, each costly in a virtual machine), where populating the same
// range takes milliseconds. It only maps what is resident: no I/O, no
// memory beyond page tables.
type populator struct {
	stop atomic.Bool
	done chan struct{} // closed when the whole range is populated or stopped
}

func startPopulate(b []byte) *populator {
	p := &populator{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for off := 0; off < len(b) && !p.stop.Load(); off += populateChunk {
			// Errors (an old kernel without MADV_POPULATE_READ) only leave
			// the faults to the reads.
			if unix.Madvise(b[off:min(off+populateChunk, len(b))], unix.MADV_POPULATE_READ) != nil {
				return
			}
		}
	}()
	return p
}

// halt stops populating and waits for the chunk in hand: the range must
// stay mapped until then.
func (p *populator) halt() {
	p.stop.Store(true)
	<-p.done
}
