package volume

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
)

// VolumeID derives a volume id from the request name, the canonical
// attributes and the image digest, so the controller needs no database to
// answer a retried CreateVolume with the same volume. The digest prefix keeps
// ids readable: every volume of one image shares it.
func VolumeID(name string, a Attributes, digest string) string {
	ctx := a.Context()
	keys := make([]string, 0, len(ctx))
	for k := range ctx {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	h.Write([]byte(name))
	for _, k := range keys {
		h.Write([]byte{0})
		h.Write([]byte(k + "=" + ctx[k]))
	}
	h.Write([]byte{0})
	h.Write([]byte(digest))
	short := strings.TrimPrefix(digest, "sha256:")
	if len(short) > 16 {
		short = short[:16]
	}
	return "daxfs-" + short + "-" + hex.EncodeToString(h.Sum(nil))[:24]
}
