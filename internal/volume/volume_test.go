package volume

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
)

const dgst = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		attrs   map[string]string
		want    Attributes
		wantErr []string // substrings of the error
	}{
		{"file minimal", map[string]string{"image": "file:///var/lib/daxfs/a.daxfs"},
			Attributes{Image: "file:///var/lib/daxfs/a.daxfs", Mount: MountAuto}, nil},
		{"https with digest, fuse, writable, kubelet keys", map[string]string{
			"image": "https://images.corp/a.daxfs", "digest": dgst, "mount": "fuse", "writable": "true",
			"csi.storage.k8s.io/ephemeral": "true", "csi.storage.k8s.io/pod.name": "p"},
			Attributes{Image: "https://images.corp/a.daxfs", Digest: dgst, Mount: MountFUSE, Writable: true, Ephemeral: true}, nil},
		{"external-provisioner's PV keys", map[string]string{"image": "file:///a",
			"storage.kubernetes.io/csiProvisionerIdentity": "1732450000000-1234-daxfs.csi.io",
			"csi.storage.k8s.io/pv/name":                   "pvc-1"},
			Attributes{Image: "file:///a", Mount: MountAuto}, nil},
		{"missing image", map[string]string{}, Attributes{}, []string{"image is required"}},
		{"unknown attributes named", map[string]string{"image": "file:///a", "colour": "red", "size": "1"}, Attributes{},
			[]string{`unknown attributes ["colour" "size"]`}},
		{"https needs digest", map[string]string{"image": "https://h/a"}, Attributes{}, []string{"digest is required"}},
		{"bad digest", map[string]string{"image": "file:///a", "digest": "sha256:ABC"}, Attributes{}, []string{"want sha256:<64"}},
		{"bad mount", map[string]string{"image": "file:///a", "mount": "nfs"}, Attributes{}, []string{`mount "nfs"`}},
		{"bad writable", map[string]string{"image": "file:///a", "writable": "yes"}, Attributes{}, []string{"writable"}},
		{"relative file", map[string]string{"image": "file://a/b"}, Attributes{}, []string{"not host"}},
		{"dotdot", map[string]string{"image": "file:///srv/images/../../etc/shadow"}, Attributes{}, []string{"absolute and clean"}},
		{"scheme", map[string]string{"image": "ftp://h/a"}, Attributes{}, []string{`unsupported scheme "ftp"`}},
		{"credentials", map[string]string{"image": "https://u:p@h/a", "digest": dgst}, Attributes{}, []string{"credentials"}},
		{"several problems at once", map[string]string{"mount": "x", "bogus": "1"}, Attributes{},
			[]string{"image is required", `mount "x"`, `"bogus"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.attrs)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if got != tt.want {
					t.Fatalf("Parse = %+v, want %+v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse = %+v, want error", got)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if grpccode.Of(err) != codes.InvalidArgument {
				t.Errorf("Code = %v, want InvalidArgument", grpccode.Of(err))
			}
		})
	}
}

func TestContextRoundTrip(t *testing.T) {
	a := Attributes{Image: "https://h/a", Digest: dgst, Mount: MountKernel, Writable: true}
	b, err := Parse(a.Context())
	if err != nil || b != a {
		t.Fatalf("Parse(Context()) = %+v, %v; want %+v", b, err, a)
	}
	if _, ok := (Attributes{Image: "file:///a", Mount: MountAuto}).Context()[AttrMount]; ok {
		t.Error("default mount mode should be left out of the canonical context")
	}
}

func TestAllowList(t *testing.T) {
	l := AllowList{"file:///var/lib/daxfs/images/", "https://images.corp"}
	for _, ok := range []string{"file:///var/lib/daxfs/images/a.daxfs", "https://images.corp/x/y", "https://images.corp"} {
		if err := l.Check(ok); err != nil {
			t.Errorf("Check(%q) = %v, want allowed", ok, err)
		}
	}
	for _, bad := range []string{"file:///var/lib/daxfs/imagesX/a", "https://images.corp.evil/x", "https://images.corpx", "file:///etc/shadow"} {
		err := l.Check(bad)
		if !errors.Is(err, ErrSourceNotAllowed) || grpccode.Of(err) != codes.PermissionDenied {
			t.Errorf("Check(%q) = %v, want PermissionDenied", bad, err)
		}
	}
	if err := (AllowList{}).Check("file:///a"); err == nil {
		t.Error("empty allow-list must allow nothing")
	}
}

func TestVolumeID(t *testing.T) {
	a := Attributes{Image: "file:///a", Mount: MountAuto}
	id := VolumeID("pvc-1", a, dgst)
	if id != VolumeID("pvc-1", a, dgst) {
		t.Fatal("VolumeID not deterministic")
	}
	if !strings.HasPrefix(id, "daxfs-0123456789abcdef-") || len(id) > 128 {
		t.Fatalf("VolumeID = %q", id)
	}
	w := a
	w.Writable = true
	for _, other := range []string{VolumeID("pvc-2", a, dgst), VolumeID("pvc-1", w, dgst), VolumeID("pvc-1", a, "sha256:"+strings.Repeat("f", 64))} {
		if other == id {
			t.Errorf("different inputs gave the same id %q", id)
		}
	}
}
