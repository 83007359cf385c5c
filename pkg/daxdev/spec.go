package daxdev

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind names the kind of memory behind a device or pool.
type Kind string

const (
	KindDevDAX  Kind = "devdax"  // /dev/daxX.Y on pmem or e820 memory
	KindCXL     Kind = "cxl"     // /dev/daxX.Y carved from a CXL region (opened with devdax:)
	KindPmem    Kind = "pmem"    // fsdax block device /dev/pmemN
	KindDMAHeap Kind = "dmaheap" // /dev/dma_heap/NAME
	KindMemfile Kind = "memfile" // a file on tmpfs or hugetlbfs
)

// DefaultMemfile is the memory file used by the spec "memfile:" with no path.
const DefaultMemfile = "/dev/shm/daxfs-pool"

// Spec is a parsed pool spec.
type Spec struct {
	Scheme string // memfile, devdax, pmem, dmaheap, auto
	Path   string // file or device path, or heap name for dmaheap
}

// ParseSpec parses "memfile:PATH", "devdax:/dev/daxX.Y", "pmem:/dev/pmemN",
// "dmaheap:NAME" or "auto".
func ParseSpec(spec string) (Spec, error) {
	if spec == "auto" {
		return Spec{Scheme: "auto"}, nil
	}
	scheme, rest, ok := strings.Cut(spec, ":")
	if !ok {
		return Spec{}, fmt.Errorf("%w %q: want memfile:PATH, devdax:/dev/daxX.Y, pmem:/dev/pmemN, dmaheap:NAME or auto", ErrBadSpec, spec)
	}
	switch scheme {
	case "memfile":
		if rest == "" {
			rest = DefaultMemfile
		}
	case "devdax", "pmem":
		if !strings.HasPrefix(rest, "/") {
			return Spec{}, fmt.Errorf("%w %q: %s needs an absolute device path", ErrBadSpec, spec, scheme)
		}
	case "dmaheap":
		if rest == "" || strings.Contains(rest, "/") {
			return Spec{}, fmt.Errorf("%w %q: dmaheap needs a heap name such as \"system\"", ErrBadSpec, spec)
		}
	default:
		return Spec{}, fmt.Errorf("%w %q: unknown scheme %q", ErrBadSpec, spec, scheme)
	}
	return Spec{Scheme: scheme, Path: rest}, nil
}

func (s Spec) String() string {
	if s.Scheme == "auto" {
		return "auto"
	}
	return s.Scheme + ":" + s.Path
}

// ParseSize parses a byte count with an optional Ki, Mi, Gi or Ti suffix.
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	num := s
	for i, suf := range []string{"Ki", "Mi", "Gi", "Ti"} {
		if strings.HasSuffix(s, suf) {
			mult = 1 << (10 * (i + 1))
			num = strings.TrimSuffix(s, suf)
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: size %q: want a non-negative integer with optional Ki/Mi/Gi/Ti suffix", ErrBadArgument, s)
	}
	if n > (1<<63-1)/mult {
		return 0, fmt.Errorf("%w: size %q overflows", ErrBadArgument, s)
	}
	return n * mult, nil
}
