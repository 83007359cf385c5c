package nodeserver

import (
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
)

// mountFlagBits are the mount_flags (a PV's mountOptions) a target can
// carry; everything else would need a filesystem that parses options, and
// the image is read-only whatever it says.
var mountFlagBits = map[string]uintptr{
	"ro":         0, // always
	"nosuid":     0, // always
	"nodev":      0, // always
	"noexec":     unix.MS_NOEXEC,
	"noatime":    unix.MS_NOATIME,
	"nodiratime": unix.MS_NODIRATIME,
	"relatime":   unix.MS_RELATIME,
}

// parseMountFlags checks mount_flags and returns them canonical (sorted,
// comma-joined) for the record, so an idempotent retry compares equal.
func parseMountFlags(flags []string) (string, error) {
	var ok, bad []string
	for _, f := range flags {
		if _, known := mountFlagBits[f]; known {
			ok = append(ok, f)
		} else {
			bad = append(bad, f)
		}
	}
	if len(bad) > 0 {
		known := make([]string, 0, len(mountFlagBits))
		for k := range mountFlagBits {
			known = append(known, k)
		}
		sort.Strings(known)
		return "", status.Errorf(codes.InvalidArgument, "mount flags %q are not supported (supported: %s)", bad, strings.Join(known, ", "))
	}
	sort.Strings(ok)
	return strings.Join(ok, ","), nil
}

// flagBits turns a canonical flag string into mount(2) flags.
func flagBits(canon string) uintptr {
	var b uintptr
	for _, f := range strings.Split(canon, ",") {
		b |= mountFlagBits[f]
	}
	return b
}

// DefaultMaxImageSize is the default of serve's --max-image-size: room for
// any real image, not for a sparse file or tar bomb blown up to fill the
// pool and evict what others use.
const DefaultMaxImageSize = "4Gi"

// imageTooLarge is the refusal of an image over --max-image-size; size is
// -1 when the refusal comes before the source was checked against the
// allow-list where it landed (the size is then not told).
func (s *NodeServer) imageTooLarge(uri string, size int64) error {
	what := "is larger than"
	if size >= 0 {
		what = fmt.Sprintf("has %d bytes, more than", size)
	}
	return grpccode.With(codes.ResourceExhausted,
		fmt.Errorf("image %s %s the %d bytes this node stages at most (--max-image-size)", uri, what, s.opts.MaxImageSize))
}
