package nodeserver

import (
	"context"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
)

func TestMountFlags(t *testing.T) {
	e := newEnv(t, 64<<20, nil)
	uri, dg := e.addImage("tree4.static.daxfs", "tree4.daxfs")
	pub := func(id, target string, writable bool, flags ...string) error {
		c := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
		c.GetMount().MountFlags = flags
		ctx := map[string]string{"image": uri, "digest": dg, "csi.storage.k8s.io/ephemeral": "true"}
		if writable {
			ctx["writable"] = "true"
		}
		_, err := e.ns.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{
			VolumeId: id, TargetPath: target, VolumeCapability: c, VolumeContext: ctx})
		return err
	}
	ro, rw := e.path("pods", "ro"), e.path("pods", "rw")
	must(t, pub("ro", ro, false, "noexec", "noatime", "ro"))
	must(t, pub("ro", ro, false, "noatime", "noexec", "ro")) // same set: idempotent
	wantCode(t, "other flags on a published target", pub("ro", ro, false, "noexec"), codes.AlreadyExists)
	must(t, pub("rw", rw, true, "noexec"))
	wantCode(t, "unsupported flag", pub("bad", e.path("pods", "bad"), false, "data=journal"), codes.InvalidArgument)

	for _, c := range []struct {
		path string
		want uint64
	}{
		{ro, unix.ST_RDONLY | unix.ST_NOEXEC | unix.ST_NOATIME | unix.ST_NOSUID | unix.ST_NODEV},
		{rw, unix.ST_NOEXEC | unix.ST_NOSUID | unix.ST_NODEV},
	} {
		var st unix.Statfs_t
		must(t, unix.Statfs(c.path, &st))
		if uint64(st.Flags)&c.want != c.want {
			t.Errorf("%s: flags %#x, want %#x set", c.path, st.Flags, c.want)
		}
	}
	must(t, e.unpublish("ro", ro))
	must(t, e.unpublish("rw", rw))
}
