package nodeserver

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
)

// checkCapability accepts mount access with any single-node mode and
// multi-node readers. Writer modes get a read-only view unless the volume is
// writable; a multi-node writer cannot be honoured (each node's writable
// layer is its own), so it exceeds the volume's capabilities.
func checkCapability(c *csi.VolumeCapability) error {
	if c == nil {
		return status.Error(codes.InvalidArgument, "volume capability is required")
	}
	if c.GetBlock() != nil {
		return status.Error(codes.InvalidArgument, "block access is not supported: daxfs volumes are filesystems")
	}
	m := c.GetMount()
	if m == nil {
		return status.Error(codes.InvalidArgument, "volume capability must have mount access type")
	}
	// fs_type is ignored, as the controller does: nothing is formatted, and
	// hand-written PVs often carry the "ext4" of examples.
	if c.GetAccessMode() == nil {
		return status.Error(codes.InvalidArgument, "volume capability has no access mode")
	}
	switch c.GetAccessMode().GetMode() {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER,
		csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY:
		return nil
	case csi.VolumeCapability_AccessMode_MULTI_NODE_SINGLE_WRITER,
		csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER:
		return status.Errorf(codes.FailedPrecondition,
			"access mode %s is not supported: images are read-only and writable views are per node", c.GetAccessMode().GetMode())
	}
	return status.Errorf(codes.InvalidArgument, "access mode %s is unknown", c.GetAccessMode().GetMode())
}

// checkPath requires an absolute path in clean form: records and
// mountinfo are matched by text, so "/a/x/../b" would never match "/a/b".
func checkPath(name, p string) error {
	if p == "" {
		return status.Errorf(codes.InvalidArgument, "%s is required", name)
	}
	if !filepath.IsAbs(p) {
		return status.Errorf(codes.InvalidArgument, "%s %q must be absolute", name, p)
	}
	if c := filepath.Clean(p); c != p {
		return status.Errorf(codes.InvalidArgument, "%s %q is not in clean form (want %q)", name, p, c)
	}
	return nil
}

func requireID(id string) error {
	if id == "" {
		return status.Error(codes.InvalidArgument, "volume id is required")
	}
	return nil
}

var errNotStaged = errors.New("volume is not staged on this node")

func notStaged(id string) error {
	return status.Error(codes.FailedPrecondition, fmt.Sprintf("volume %s: %v", id, errNotStaged))
}

// checkUnmountRequest validates what NodeUnstageVolume and
// NodeUnpublishVolume carry: a volume id and an absolute path.
func checkUnmountRequest(id, pathName, path string) error {
	if err := requireID(id); err != nil {
		return err
	}
	return checkPath(pathName, path)
}

// checkMountRequest validates what NodeStageVolume and NodePublishVolume
// both carry and parses the volume context.
func checkMountRequest(id, pathName, path string, c *csi.VolumeCapability, volCtx map[string]string) (volume.Attributes, error) {
	if err := checkUnmountRequest(id, pathName, path); err != nil {
		return volume.Attributes{}, err
	}
	if err := checkNoSymlinks(pathName, path); err != nil {
		return volume.Attributes{}, err
	}
	if err := checkCapability(c); err != nil {
		return volume.Attributes{}, err
	}
	a, err := volume.Parse(volCtx)
	if err != nil {
		return volume.Attributes{}, grpccode.ToStatus(err)
	}
	return a, nil
}
