package nodeserver

import (
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func mountCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
	}
}

func TestCheckCapability(t *testing.T) {
	block := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
	}
	ext4 := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY)
	ext4.GetMount().FsType = "ext4"
	for _, c := range []struct {
		name string
		cap  *csi.VolumeCapability
		code codes.Code
	}{
		{"nil", nil, codes.InvalidArgument},
		{"block", block, codes.InvalidArgument},
		{"fs_type is ignored", ext4, codes.OK},
		{"no mode", &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}}, codes.InvalidArgument},
		{"reader", mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY), codes.OK},
		{"single writer (kubelet inline default)", mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER), codes.OK},
		{"multi writer", mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER), codes.FailedPrecondition},
		{"multi single writer", mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_SINGLE_WRITER), codes.FailedPrecondition},
	} {
		if got := status.Code(checkCapability(c.cap)); got != c.code {
			t.Errorf("%s: code %v, want %v", c.name, got, c.code)
		}
	}
	if status.Code(checkPath("target path", "rel/path")) != codes.InvalidArgument || checkPath("x", "/abs") != nil {
		t.Error("checkPath")
	}
}
