package volume

import (
	"errors"
	"maps"
	"reflect"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
)

// FuzzAttributes feeds arbitrary attribute maps to Parse. Nothing may
// panic; a refusal is an *AttrError with InvalidArgument; accepted
// attributes round-trip through the canonical context (what CreateVolume
// hands the node) to the same Attributes, context and volume id.
//
//	go test ./internal/volume -run '^$' -fuzz FuzzAttributes -fuzztime 60s
func FuzzAttributes(f *testing.F) {
	// image, digest, mount, writable, ephemeral, pullSecret, pod namespace,
	// one more key and its value; "" leaves a key out.
	for _, s := range [][9]string{
		{"file:///var/lib/daxfs/a.daxfs", "", "", "", "", "", "", "", ""},
		{"https://images.corp/a.daxfs", dgst, "fuse", "true", "true", "", "ns1", "csi.storage.k8s.io/pod.name", "p"},
		{"file:///a", dgst, "kernel", "false", "", "", "", "storage.kubernetes.io/csiProvisionerIdentity", "1-2-daxfs.csi.io"},
		{"oci://registry.corp/team/app:v1", "", "auto", "", "true", "pull", "team", "", ""},
		{"oci://registry.corp/team/app@" + dgst, "", "", "", "true", "other/pull", "team", "", ""},
		{"oci://ghcr.io/x/y", "", "", "", "", "ns/secret", "", "", ""},
		{"file:///srv/images/../../etc/shadow", "", "", "", "", "", "", "", ""},
		{"file:///srv/%2e%2e/etc/shadow", "", "", "", "", "", "", "", ""},
		{"file://host/a", "", "", "", "", "", "", "", ""},
		{"https://u:p@h/a", dgst, "", "", "", "", "", "", ""},
		{"https://h/a", "sha256:ABC", "nfs", "yes", "maybe", "Bad_Name", "", "colour", "red"},
		{"ftp://h/a", "", "", "", "", "", "", "mount", ""},
		{"file:///a?x=1#f", "", "", "", "", "", "", "image", "file:///b"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8])
	}
	f.Fuzz(func(t *testing.T, image, digest, mount, writable, ephemeral, secret, ns, key, val string) {
		attrs := map[string]string{}
		for k, v := range map[string]string{
			AttrImage: image, AttrDigest: digest, AttrMount: mount, AttrWritable: writable,
			AttrEphemeral: ephemeral, AttrPullSecret: secret, attrPodNamespace: ns,
		} {
			if v != "" {
				attrs[k] = v
			}
		}
		if key != "" {
			attrs[key] = val
		}
		a, err := Parse(attrs)
		if err != nil {
			var ae *AttrError
			if !errors.As(err, &ae) || grpccode.Of(err) != codes.InvalidArgument || len(ae.Problems) == 0 {
				t.Fatalf("Parse(%q) refused with %v (code %v), want an *AttrError with InvalidArgument", attrs, err, grpccode.Of(err))
			}
			return
		}
		ctx := a.Context()
		b, err := Parse(ctx)
		if err != nil {
			t.Fatalf("Parse(%q) accepted %+v, but its context %q is refused: %v", attrs, a, ctx, err)
		}
		want := a
		want.Ephemeral, want.PodNamespace = false, "" // kubelet facts, not part of the volume
		if !reflect.DeepEqual(b, want) {
			t.Fatalf("Parse(Context()) = %+v, want %+v", b, want)
		}
		if !maps.Equal(b.Context(), ctx) {
			t.Fatalf("context %q became %q", ctx, b.Context())
		}
		id := VolumeID("pvc-x", a, a.Digest)
		if len(id) > 128 || id != VolumeID("pvc-x", b, b.Digest) {
			t.Fatalf("volume id %q (%d bytes) differs after the round trip or passes 128 bytes", id, len(id))
		}
	})
}
