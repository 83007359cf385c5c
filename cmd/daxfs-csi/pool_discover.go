package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

func init() {
	register("pool discover", "list the DAX, CXL, pmem devices and dma-buf heaps a pool can live on", poolDiscover)
}

func poolDiscover(args []string) error {
	fs := flag.NewFlagSet("daxfs-csi pool discover", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	sys := fs.String("sys", "/sys", "sysfs root")
	dev := fs.String("dev", "/dev", "device node root")
	asJSON := fs.Bool("json", false, "print the inventory as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	inv, err := daxdev.Discover(*sys, *dev)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(inv)
	}
	if len(inv.Devices) == 0 {
		fmt.Fprintln(stdout, "no devices found")
	}
	for _, d := range inv.Devices {
		fmt.Fprintf(stdout, "%-8s %-10s size %d align %d phys %#x numa %d", d.Kind, d.Name, d.Size, d.Align, d.PhysAddr, d.NUMANode)
		if d.CXLRegion != "" {
			fmt.Fprintf(stdout, " cxl %s shared %s", d.CXLRegion, d.SharedID)
		}
		fmt.Fprintf(stdout, "  --pool %s\n", d.Spec)
	}
	return nil
}
