package main

import (
	"fmt"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

func init() {
	register("pool init", "create a pool on a device (keeps an existing pool unless --force)", poolInit)
}

func poolInit(args []string) (err error) {
	var pf poolFlags
	fs := newPoolFlagSet("pool init", &pf)
	size := fs.String("size", "0", "pool size (memfile: created or grown to it; dmaheap: allocated); 0 = whole device")
	align := fs.String("align", "0", "extent align; 0 = the device align (memfile: 2Mi)")
	force := fs.Bool("force", false, "overwrite whatever the device holds, an existing pool included")
	opts, err := parsePoolArgs(fs, &pf, args, 0, "")
	if err != nil {
		return err
	}
	if opts.Size, err = daxdev.ParseSize(*size); err != nil {
		return usageError{"--size: " + err.Error()}
	}
	if opts.Align, err = daxdev.ParseSize(*align); err != nil {
		return usageError{"--align: " + err.Error()}
	}
	opts.Init, opts.Force = true, *force
	p, err := daxdev.OpenPool(pf.spec, opts)
	if err != nil {
		return err
	}
	defer closePool(p, &err)
	info, st := p.Info(), p.Status()
	fmt.Fprintf(stdout, "pool %s on %s %s: %d bytes, %d free, align %d, %d extents\n",
		info.ID, info.Kind, info.Path, st.Size, st.Free, st.Align, len(st.Extents))
	return nil
}
