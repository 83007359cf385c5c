package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

func init() {
	register("pool status", "show a pool's size, free space and extents", poolStatus)
}

// statusJSON is the acceptance contract of `pool status --json`.
type statusJSON struct {
	ID          string       `json:"id"`
	Kind        daxdev.Kind  `json:"kind"`
	Path        string       `json:"path"`
	Size        int64        `json:"size"`
	Free        int64        `json:"free"`
	LargestFree int64        `json:"largestFree"`
	Align       int64        `json:"align"`
	Extents     []extentJSON `json:"extents"`
}

type extentJSON struct {
	Digest string       `json:"digest"`
	Offset int64        `json:"offset"`
	Length int64        `json:"length"`
	State  daxdev.State `json:"state"`
	Owners []string     `json:"owners"`
}

func poolStatus(args []string) (err error) {
	var pf poolFlags
	fs := newPoolFlagSet("pool status", &pf)
	asJSON := fs.Bool("json", false, "print one JSON object")
	opts, err := parsePoolArgs(fs, &pf, args, 0, "")
	if err != nil {
		return err
	}
	p, err := daxdev.OpenPool(pf.spec, opts)
	if err != nil {
		return err
	}
	defer closePool(p, &err)
	info, st := p.Info(), p.Status()
	out := statusJSON{
		ID: info.ID, Kind: info.Kind, Path: info.Path, Size: st.Size, Free: st.Free,
		LargestFree: st.LargestFree, Align: st.Align, Extents: []extentJSON{},
	}
	for _, e := range st.Extents {
		out.Extents = append(out.Extents, extentJSON{e.Digest, e.Offset, e.Length, e.State, e.OwnerNames()})
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(stdout, "pool %s on %s %s\nsize %d  free %d  largest free %d  align %d\n",
		out.ID, out.Kind, out.Path, out.Size, out.Free, out.LargestFree, out.Align)
	for _, e := range out.Extents {
		fmt.Fprintf(stdout, "%s  %-7s  offset %d  length %d  owners %s\n", e.Digest, e.State, e.Offset, e.Length, strings.Join(e.Owners, ","))
	}
	return nil
}
