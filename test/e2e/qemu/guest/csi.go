package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

// runCSI is the CSI client of the two-host test (twohost.sh): one call to
// the node plugin on -socket, reported as E2E-PASS/FAIL <check> and an
// E2E-RESULT line the host parses.
//
//	info                              NodeGetInfo: node id and topology
//	stage -volume V -image FILE       NodeStageVolume (mount=fuse), retried on Unavailable/Aborted
//	unstage -volume V                 NodeUnstageVolume
func runCSI(args []string) bool {
	fs := newFlags("csi")
	socket := fs.String("socket", "/run/csi.sock", "node plugin socket")
	check := fs.String("check", "csi", "name of the check in the PASS/FAIL line")
	volID := fs.String("volume", "", "volume id")
	img := fs.String("image", "", "image file (file:// source)")
	timeout := fs.Duration("timeout", 20*time.Second, "deadline of each call")
	total := fs.Duration("total", 120*time.Second, "give up retrying after this")
	stagingDir := fs.String("staging-dir", "/run/staging", "parent of the staging paths")
	_ = fs.Parse(args)
	r := &results{}
	if fs.NArg() != 1 {
		r.fail(*check, fmt.Errorf("want one operation: info, stage or unstage"))
		return true
	}
	conn, err := grpc.NewClient("unix://"+*socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if !r.check(*check+".connect", err, "%s", *socket) {
		return true
	}
	defer conn.Close()
	node := csi.NewNodeClient(conn)
	staging := filepath.Join(*stagingDir, *volID)
	start := time.Now()
	retries := 0
	var busy []string
	// call retries what the driver says is worth retrying.
	call := func(f func(ctx context.Context) error) error {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), *timeout)
			err := f(ctx)
			cancel()
			c := status.Code(err)
			if err == nil || (c != codes.Unavailable && c != codes.Aborted) || time.Since(start) > *total {
				return err
			}
			retries++
			busy = append(busy, fmt.Sprintf("%s after %.1fs: %s", c, time.Since(start).Seconds(), status.Convert(err).Message()))
			time.Sleep(200 * time.Millisecond)
		}
	}
	switch op := fs.Arg(0); op {
	case "info":
		var resp *csi.NodeGetInfoResponse
		err = call(func(ctx context.Context) (err error) {
			resp, err = node.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
			return err
		})
		if r.check(*check, err, "node=%s topology=%v", resp.GetNodeId(), resp.GetAccessibleTopology().GetSegments()) {
			fmt.Printf("E2E-RESULT %s node=%s pool=%s\n", *check, resp.GetNodeId(), resp.GetAccessibleTopology().GetSegments()["topology.daxfs.csi.io/pool"])
		}
	case "stage":
		err = call(func(ctx context.Context) error {
			_, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{
				VolumeId: *volID, StagingTargetPath: staging,
				VolumeCapability: &csi.VolumeCapability{
					AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
					AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY},
				},
				VolumeContext: map[string]string{"image": "file://" + *img, "mount": "fuse"},
			})
			return err
		})
		for _, b := range busy {
			fmt.Printf("  retried: %s\n", b)
		}
		secs := time.Since(start).Seconds()
		if err == nil {
			err = checkStaged(staging)
		}
		if r.check(*check, err, "%s staged in %.2fs (%d retries)", *volID, secs, retries) {
			fmt.Printf("E2E-RESULT %s seconds=%.3f retries=%d\n", *check, secs, retries)
		}
	case "unstage":
		err = call(func(ctx context.Context) error {
			_, err := node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: *volID, StagingTargetPath: staging})
			return err
		})
		r.check(*check, err, "%s unstaged", *volID)
	default:
		r.fail(*check, fmt.Errorf("unknown operation %q", op))
	}
	return r.failed
}

// checkStaged: the staging path shows the image tree through the mount.
func checkStaged(dir string) error {
	n := 0
	err := filepath.Walk(dir, func(string, os.FileInfo, error) error { n++; return nil })
	if err != nil || n < 2 {
		return fmt.Errorf("staging path %s lists %d entries (%v)", dir, n, err)
	}
	return nil
}

// runPoolCheck opens the pool as a second process of this host and checks
// the extent of an image: exact bytes and owners, or absence.
//
//	pool-check -pool SPEC -image FILE -owners a,b   ready, byte-exact, exactly these owners
//	pool-check -pool SPEC -image FILE -absent       not in the pool
//	pool-check -pool SPEC -image FILE -watch        wait until it is staging (prints E2E-STEP saw-staging)
func runPoolCheck(args []string) bool {
	fs := newFlags("pool-check")
	check := fs.String("check", "pool-check", "name of the check")
	spec := fs.String("pool", "devdax:/dev/dax0.0", "pool spec")
	img := fs.String("image", "", "image file")
	owners := fs.String("owners", "", "comma-separated owners expected")
	absent := fs.Bool("absent", false, "expect the image not in the pool")
	watch := fs.Bool("watch", false, "wait until the image is staging")
	_ = fs.Parse(args)
	r := &results{}
	data, err := os.ReadFile(*img)
	if !r.check(*check+".image", err, "%s", *img) {
		return true
	}
	digest := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
	p, err := daxdev.OpenPool(*spec, daxdev.PoolOptions{})
	if !r.check(*check+".open", err, "%s", *spec) {
		return true
	}
	defer p.Close()
	if *watch {
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			for _, e := range p.Status().Extents {
				if e.Digest == digest && e.State == daxdev.StateStaging {
					fmt.Println("E2E-STEP saw-staging")
					r.pass(*check, "%s staging at %d", digest, e.Offset)
					return false
				}
			}
		}
		r.fail(*check, errors.New("the image never appeared staging"))
		return true
	}
	e, ok := p.Lookup(digest)
	switch {
	case *absent:
		if ok {
			err = fmt.Errorf("%s still in the pool, owners %v", digest, e.OwnerNames())
		}
		r.check(*check, err, "%s not in the pool", digest)
	case !ok:
		r.fail(*check, fmt.Errorf("%s is not ready in the pool: %+v", digest, p.Status().Extents))
	default:
		got, derr := p.Data(e)
		switch {
		case derr != nil:
			err = derr
		case !bytes.Equal(got, data):
			err = fmt.Errorf("extent bytes differ from %s", *img)
		case strings.Join(slices.Sorted(slices.Values(e.OwnerNames())), ",") != *owners:
			err = fmt.Errorf("owners %v, want %s", e.OwnerNames(), *owners)
		}
		r.check(*check, err, "%s exact (%d bytes at %d), owners %v", digest, e.Length, e.Offset, e.OwnerNames())
	}
	return r.failed
}
