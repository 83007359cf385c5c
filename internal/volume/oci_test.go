package volume

import (
	"errors"
	"strings"
	"testing"
)

const ociDgst = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func TestParseOCIAttributes(t *testing.T) {
	src := "oci://reg.example/team/app@" + ociDgst
	a, err := Parse(map[string]string{"image": src, "pullSecret": "regcred"})
	if err != nil || a.Image != src || a.PullSecret != "regcred" || a.Digest != "" {
		t.Fatalf("Parse = %+v, %v", a, err)
	}
	if c := a.Context(); c["pullSecret"] != "regcred" || c["image"] != src {
		t.Fatalf("Context = %v", c)
	}
	// The digest attribute is the DAXFS digest, accepted beside the OCI one.
	if _, err := Parse(map[string]string{"image": src, "digest": dgst}); err != nil {
		t.Fatal(err)
	}
	// A bare name lives in the pod's namespace; an inline volume cannot
	// reach into another namespace.
	a, err = Parse(map[string]string{"image": src, "pullSecret": "regcred", "csi.storage.k8s.io/pod.namespace": "team"})
	if err != nil || a.PullSecretRef() != "team/regcred" || a.Context()["pullSecret"] != "regcred" {
		t.Fatalf("Parse = %+v (%q), %v", a, a.PullSecretRef(), err)
	}
	a, err = Parse(map[string]string{"image": src, "pullSecret": "infra/regcred"})
	if err != nil || a.PullSecretRef() != "infra/regcred" {
		t.Fatalf("Parse qualified = %+v, %v", a, err)
	}
	for _, bad := range []map[string]string{
		{"image": src, "pullSecret": "infra/regcred", "csi.storage.k8s.io/ephemeral": "true", "csi.storage.k8s.io/pod.namespace": "team"},
		{"image": src, "pullSecret": "a/b/c"},
		{"image": "file:///a", "pullSecret": "regcred"},
		{"image": src, "pullSecret": "Bad_Name"},
		{"image": "oci://reg.example/app"},
	} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%v) accepted", bad)
		}
	}
}

func TestAllowListOCI(t *testing.T) {
	l := AllowList{"oci://reg.example/team", "oci+tags://127.0.0.1:5000/dev", "https://images.corp"}
	for _, ok := range []string{
		"oci://reg.example/team/app@" + ociDgst,
		"oci://reg.example/team@" + ociDgst,
		"oci://reg.example/team/app:v1@" + ociDgst,
		"oci://127.0.0.1:5000/dev/x:latest",
		"oci://127.0.0.1:5000/dev/x@" + ociDgst,
	} {
		if err := l.Check(ok); err != nil {
			t.Errorf("Check(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{
		"oci://reg.example/team/app:v1",             // tag-only needs oci+tags://
		"oci://reg.example/teamevil/app@" + ociDgst, // repository boundary
		"oci://reg.example.evil/team/app@" + ociDgst,
		"oci://127.0.0.1:5001/dev/x:latest",
		"oci://reg.example/other@" + ociDgst,
	} {
		if err := l.Check(bad); !errors.Is(err, ErrSourceNotAllowed) {
			t.Errorf("Check(%q) = %v, want ErrSourceNotAllowed", bad, err)
		} else if strings.HasPrefix(bad, "oci://reg.example/team/app:v1") && !strings.Contains(err.Error(), "oci+tags") {
			t.Errorf("tag-only refusal does not say how to allow it: %v", err)
		}
	}
	if err := (AllowList{"oci://docker.io/library"}).Check("oci://docker.io/library/busybox@" + ociDgst); err != nil {
		t.Errorf("docker.io entry: %v", err)
	}
	if err := (AllowList{"oci://reg.example"}).Check("oci://reg.example/any/repo@" + ociDgst); err != nil {
		t.Errorf("registry-wide entry: %v", err)
	}
}
