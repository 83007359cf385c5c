package daxdev

import "fmt"

// openBackend opens the device a spec names; "auto" takes the first device
// discovery finds.
func openBackend(s Spec, opts PoolOptions) (backend, error) {
	switch s.Scheme {
	case "memfile":
		return openMemfile(s.Path, opts)
	case "devdax":
		return openDevDAX(s.Path, opts)
	case "pmem":
		return openPmem(s.Path, opts)
	case "dmaheap":
		return openDMAHeap(s.Path, opts)
	case "auto":
		sys, dev := opts.SysRoot, opts.DevRoot
		if sys == "" {
			sys = "/sys"
		}
		if dev == "" {
			dev = "/dev"
		}
		inv, err := Discover(sys, dev)
		if err != nil {
			return nil, fmt.Errorf("auto pool: %w", err)
		}
		for _, d := range inv.Devices {
			switch d.Kind {
			case KindDevDAX, KindCXL:
				return openBackend(Spec{Scheme: "devdax", Path: d.Path}, opts)
			case KindPmem:
				return openBackend(Spec{Scheme: "pmem", Path: d.Path}, opts)
			}
			// dma-buf heaps are neither persistent nor shared: only when named.
		}
		return nil, fmt.Errorf("auto pool: %w: discovery under %s and %s found no device-dax, CXL or pmem device", ErrNoDevice, sys, dev)
	}
	return nil, fmt.Errorf("%w: scheme %q", ErrBadSpec, s.Scheme)
}
