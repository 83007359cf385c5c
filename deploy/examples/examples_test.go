// Package examples checks that every manifest here decodes strictly into
// the Kubernetes API types (a misspelt field fails) and holds what the
// driver relies on.
package examples

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
)

func decodeAll(t *testing.T) map[string][]runtime.Object {
	t.Helper()
	dec := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	files, _ := filepath.Glob("*.yaml")
	if len(files) < 4 {
		t.Fatalf("found %d manifests", len(files))
	}
	out := map[string][]runtime.Object{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			obj, _, err := dec.Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			out[f] = append(out[f], obj)
		}
	}
	return out
}

func TestManifests(t *testing.T) {
	objs := decodeAll(t)

	d := objs["csidriver.yaml"][0].(*storagev1.CSIDriver)
	if d.Name != "daxfs.csi.io" || *d.Spec.AttachRequired || !*d.Spec.PodInfoOnMount ||
		len(d.Spec.VolumeLifecycleModes) != 2 {
		t.Errorf("CSIDriver = %+v", d.Spec)
	}

	sc := objs["storageclass-pvc-pod.yaml"][0].(*storagev1.StorageClass)
	if sc.Provisioner != "daxfs.csi.io" || sc.Parameters["image"] == "" {
		t.Errorf("StorageClass = %+v", sc)
	}
	if _, ok := objs["storageclass-pvc-pod.yaml"][1].(*corev1.PersistentVolumeClaim); !ok {
		t.Error("second document is not a PVC")
	}

	inline := objs["inline-pod.yaml"][0].(*corev1.Pod)
	if v := inline.Spec.Volumes[0].CSI; v == nil || v.Driver != "daxfs.csi.io" || v.VolumeAttributes["image"] == "" {
		t.Errorf("inline volume = %+v", inline.Spec.Volumes[0])
	}

	var ds *appsv1.DaemonSet
	for _, o := range objs["node-daemonset.yaml"] {
		if x, ok := o.(*appsv1.DaemonSet); ok {
			ds = x
		}
	}
	if ds == nil {
		t.Fatal("no DaemonSet")
	}
	c := ds.Spec.Template.Spec.Containers[0]
	if c.SecurityContext == nil || !*c.SecurityContext.Privileged {
		t.Error("plugin container is not privileged")
	}
	prop := map[string]corev1.MountPropagationMode{}
	for _, m := range c.VolumeMounts {
		if m.MountPropagation != nil {
			prop[m.MountPath] = *m.MountPropagation
		}
	}
	// /dev only needs the host's devices (hot-plugged DAX ones too): with
	// Bidirectional, the runtime's own mounts in the container's /dev (shm,
	// termination-log) would pile up on the host's /dev at every start.
	if prop["/var/lib/kubelet"] != corev1.MountPropagationBidirectional || prop["/dev"] != corev1.MountPropagationHostToContainer {
		t.Errorf("mount propagation = %v, want Bidirectional for the kubelet dir and HostToContainer for /dev", prop)
	}
	// The fuse-host sidecar: same image, same kubelet and state paths,
	// one pid namespace.
	spec := ds.Spec.Template.Spec
	if spec.ShareProcessNamespace == nil || !*spec.ShareProcessNamespace {
		t.Error("pod does not share its pid namespace with fuse-host")
	}
	var host *corev1.Container
	for i := range spec.Containers {
		if spec.Containers[i].Name == "fuse-host" {
			host = &spec.Containers[i]
		}
	}
	if host == nil || host.Image != c.Image || !*host.SecurityContext.Privileged {
		t.Fatalf("fuse-host sidecar = %+v", host)
	}
	paths := map[string]bool{}
	for _, m := range host.VolumeMounts {
		paths[m.MountPath] = m.MountPropagation != nil && *m.MountPropagation == corev1.MountPropagationBidirectional
	}
	if !paths["/var/lib/kubelet"] || !paths["/var/lib/daxfs-csi"] {
		t.Errorf("fuse-host mounts %v: kubelet and state dirs must match the plugin's, Bidirectional", paths)
	}
	checkFuseHostPod(t, spec, &c, host)
	if !strings.Contains(argsOf(&c), "--fuse-host-socket=/run/daxfs-csi/fuse-host.sock") ||
		!strings.Contains(argsOf(host), "--socket=/run/daxfs-csi/fuse-host.sock") {
		t.Errorf("plugin %q and fuse-host %q do not name the same socket", argsOf(&c), argsOf(host))
	}
}
