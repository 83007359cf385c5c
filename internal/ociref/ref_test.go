package ociref

import "testing"

const ociDgst = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func TestParse(t *testing.T) {
	good := []struct {
		src  string
		want Ref
	}{
		{"oci://reg.example/team/app@" + ociDgst, Ref{"reg.example", "team/app", "", ociDgst}},
		{"oci://127.0.0.1:5000/app:v1@" + ociDgst, Ref{"127.0.0.1:5000", "app", "v1", ociDgst}},
		{"oci://localhost/a/b:latest", Ref{"localhost", "a/b", "latest", ""}},
		{"oci://docker.io/library/busybox@" + ociDgst, Ref{"index.docker.io", "library/busybox", "", ociDgst}},
	}
	for _, g := range good {
		got, err := Parse(g.src)
		if err != nil || got != g.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", g.src, got, err, g.want)
		}
	}
	for _, bad := range []string{
		"oci://ubuntu:22.04",               // implicit Docker Hub
		"oci://reg.example/app",            // neither tag nor digest
		"oci://reg.example/app@sha256:abc", // short digest
		"oci://reg.example/App@" + ociDgst, // upper case repository
		"oci://reg.example",                // no repository
		"oci://reg.example/app@md5:" + ociDgst[7:],
	} {
		if r, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %+v, want error", bad, r)
		}
	}
}
