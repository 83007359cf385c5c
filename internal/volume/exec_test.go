package volume

import (
	"strings"
	"testing"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
)

// exec defaults to "true"; "false" marks a data volume, kept in the
// canonical context; anything else is refused like other bad values.
func TestParseExec(t *testing.T) {
	for _, c := range []struct {
		v      string
		set    bool
		noExec bool
	}{{"", false, false}, {"true", true, false}, {"false", true, true}} {
		attrs := map[string]string{"image": "file:///a"}
		if c.set {
			attrs[AttrExec] = c.v
		}
		a, err := Parse(attrs)
		if err != nil {
			t.Fatalf("exec=%q: %v", c.v, err)
		}
		if a.NoExec != c.noExec || a.NeedsExec() == c.noExec {
			t.Errorf("exec=%q (set %v): NoExec=%v NeedsExec=%v", c.v, c.set, a.NoExec, a.NeedsExec())
		}
		b, err := Parse(a.Context())
		if err != nil || b != a {
			t.Errorf("exec=%q: Parse(Context()) = %+v, %v; want %+v", c.v, b, err, a)
		}
		if _, kept := a.Context()[AttrExec]; kept != c.noExec {
			t.Errorf("exec=%q: context %v keeps exec=%v, want %v", c.v, a.Context(), kept, c.noExec)
		}
	}
	for _, bad := range []string{"no", "False", "0", "yes"} {
		_, err := Parse(map[string]string{"image": "file:///a", AttrExec: bad})
		if err == nil || grpccode.Of(err).String() != "InvalidArgument" || !strings.Contains(err.Error(), "exec") {
			t.Errorf("exec=%q: %v, want InvalidArgument naming exec", bad, err)
		}
	}
	a := Attributes{Image: "file:///a", Mount: MountAuto}
	d := a
	d.NoExec = true
	if VolumeID("pvc-1", a, dgst) == VolumeID("pvc-1", d, dgst) {
		t.Error("exec=false does not change the volume id")
	}
}
