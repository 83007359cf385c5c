package examples

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/daxfs-csi/daxfs-csi/internal/machine"
)

// helm is $DAXFS_HELM (`make unit` sets it to the version pinned in
// hack/versions.sh, built by hack/tools.sh), else helm on PATH.
func helm(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DAXFS_HELM"); p != "" {
		return p
	}
	p, err := exec.LookPath("helm")
	if err != nil {
		machine.Lacks(t, "no helm: run with DAXFS_HELM=$(hack/tools.sh helm) or put helm on PATH")
	}
	return p
}

// renderChart renders charts/daxfs-csi with its default values.
func renderChart(t *testing.T) []runtime.Object {
	t.Helper()
	cmd := exec.Command(helm(t), "template", "t", "../../charts/daxfs-csi", "--namespace", "kube-system")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	dec := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	var objs []runtime.Object
	for i, doc := range bytes.Split(out, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("rendered document %d: %v\n%s", i, err, doc)
		}
		objs = append(objs, obj)
	}
	return objs
}

// allows reports whether the role grants verb on group/resource.
func allows(r *rbacv1.ClusterRole, group, resource, verb string) bool {
	for _, rule := range r.Rules {
		if slices.Contains(rule.APIGroups, group) && slices.Contains(rule.Resources, resource) && slices.Contains(rule.Verbs, verb) {
			return true
		}
	}
	return false
}

func argsOf(c *corev1.Container) string { return strings.Join(c.Args, " ") }

func container(spec corev1.PodSpec, name string) *corev1.Container {
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	return nil
}

func TestChart(t *testing.T) {
	var (
		ds    *appsv1.DaemonSet
		dep   *appsv1.Deployment
		drv   *storagev1.CSIDriver
		roles = map[string]*rbacv1.ClusterRole{}
	)
	for _, o := range renderChart(t) {
		switch x := o.(type) {
		case *appsv1.DaemonSet:
			ds = x
		case *appsv1.Deployment:
			dep = x
		case *storagev1.CSIDriver:
			drv = x
		case *rbacv1.ClusterRole:
			roles[x.Name] = x
		}
	}
	if ds == nil || dep == nil || drv == nil || roles["t-node"] == nil || roles["t-controller"] == nil {
		t.Fatalf("chart lacks objects: DaemonSet %v Deployment %v CSIDriver %v roles %v", ds != nil, dep != nil, drv != nil, roles)
	}
	if !*drv.Spec.PodInfoOnMount || !*drv.Spec.StorageCapacity || *drv.Spec.AttachRequired ||
		!slices.Equal(drv.Spec.VolumeLifecycleModes, []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent, storagev1.VolumeLifecycleEphemeral}) {
		t.Errorf("CSIDriver = %+v", drv.Spec)
	}

	spec := ds.Spec.Template.Spec
	plugin, host := container(spec, "plugin"), container(spec, "fuse-host")
	if plugin == nil || host == nil {
		t.Fatalf("node pod containers: %v", spec.Containers)
	}
	checkFuseHostPod(t, spec, plugin, host)
	for _, want := range []string{"serve", "--mode=node", "--cluster", "--fuse-host-socket=/run/daxfs-csi/fuse-host.sock"} {
		if !strings.Contains(argsOf(plugin), want) {
			t.Errorf("plugin args %q lack %s", argsOf(plugin), want)
		}
	}
	if !strings.Contains(argsOf(host), "--socket=/run/daxfs-csi/fuse-host.sock") {
		t.Errorf("fuse-host args %q: not the plugin's socket", argsOf(host))
	}

	csiCtl, prov := container(dep.Spec.Template.Spec, "csi-controller"), container(dep.Spec.Template.Spec, "csi-provisioner")
	if csiCtl == nil || prov == nil || container(dep.Spec.Template.Spec, "controller") == nil {
		t.Fatalf("controller pod containers: %v", dep.Spec.Template.Spec.Containers)
	}
	if a := argsOf(csiCtl); !strings.Contains(a, "--mode=controller") || !strings.Contains(a, "--cluster") || strings.Contains(a, "--pool") {
		t.Errorf("csi-controller args %q: want a cluster-mode controller without a pool", a)
	}
	if a := argsOf(prov); !strings.Contains(a, "--enable-capacity") || strings.Contains(a, "--node-deployment") {
		t.Errorf("csi-provisioner args %q: want central mode with --enable-capacity", a)
	}

	node := roles["t-node"]
	for _, r := range []struct{ group, resource, verbs string }{
		{"daxfs.csi.io", "daxnodes", "get list watch create update patch"},
		{"daxfs.csi.io", "daxnodes/status", "get update patch"},
		{"daxfs.csi.io", "daximages", "get list watch"},
		{"", "secrets", "get"},
		{"", "nodes", "get"},
	} {
		for _, v := range strings.Fields(r.verbs) {
			if !allows(node, r.group, r.resource, v) {
				t.Errorf("node role cannot %s %s", v, r.resource)
			}
		}
	}
	if allows(node, "", "secrets", "list") {
		t.Error("node role may list secrets: get is enough")
	}
	ctl := roles["t-controller"]
	for _, r := range []struct{ group, resource, verbs string }{
		{"daxfs.csi.io", "daxnodes", "get list watch"},
		{"daxfs.csi.io", "daximages", "get list watch"},
		{"daxfs.csi.io", "daximages/status", "update patch"},
		{"daxfs.csi.io", "daxnodes/status", "get"},
		{"coordination.k8s.io", "leases", "get create update"},
		{"storage.k8s.io", "csistoragecapacities", "get list watch create update patch delete"},
		{"storage.k8s.io", "csinodes", "get list watch"},
		{"", "persistentvolumes", "create delete"},
		{"apps", "deployments", "get"},
	} {
		for _, v := range strings.Fields(r.verbs) {
			if !allows(ctl, r.group, r.resource, v) {
				t.Errorf("controller role cannot %s %s/%s", v, r.group, r.resource)
			}
		}
	}
}

// checkFuseHostPod: the node pod as docs/architecture.md "FUSE servers
// outlive the plugin" requires: one pid namespace, the same image, both
// privileged, the kubelet and state dirs at the same paths with
// Bidirectional propagation, and one shared emptyDir for the socket.
func checkFuseHostPod(t *testing.T, spec corev1.PodSpec, plugin, host *corev1.Container) {
	t.Helper()
	if spec.ShareProcessNamespace == nil || !*spec.ShareProcessNamespace {
		t.Error("pod does not share its pid namespace with fuse-host")
	}
	if host.Image != plugin.Image || host.SecurityContext == nil || !*host.SecurityContext.Privileged ||
		plugin.SecurityContext == nil || !*plugin.SecurityContext.Privileged {
		t.Errorf("plugin %s / fuse-host %s: want the same image, both privileged", plugin.Image, host.Image)
	}
	mounts := func(c *corev1.Container) map[string]corev1.VolumeMount {
		m := map[string]corev1.VolumeMount{}
		for _, v := range c.VolumeMounts {
			m[v.MountPath] = v
		}
		return m
	}
	pm, hm := mounts(plugin), mounts(host)
	for p, want := range map[string]corev1.MountPropagationMode{
		"/var/lib/kubelet":   corev1.MountPropagationBidirectional,
		"/var/lib/daxfs-csi": corev1.MountPropagationBidirectional,
		"/dev":               corev1.MountPropagationHostToContainer, // see examples_test
	} {
		a, b := pm[p], hm[p]
		if a.Name == "" || a.Name != b.Name || a.MountPropagation == nil || *a.MountPropagation != want || b.MountPropagation == nil || *b.MountPropagation != want {
			t.Errorf("%s: plugin %+v, fuse-host %+v: want the same volume, %s in both", p, a, b, want)
		}
	}
	sock := pm["/run/daxfs-csi"]
	if sock.Name == "" || hm["/run/daxfs-csi"].Name != sock.Name {
		t.Fatalf("socket dir /run/daxfs-csi not shared: plugin %+v fuse-host %+v", sock, hm["/run/daxfs-csi"])
	}
	for _, v := range spec.Volumes {
		if v.Name == sock.Name && v.EmptyDir == nil {
			t.Errorf("socket volume %s is not an emptyDir", v.Name)
		}
	}
}
