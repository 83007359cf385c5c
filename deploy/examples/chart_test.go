package examples

import (
	"bytes"
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
)

// renderChart renders charts/daxfs-csi with its default values and args.
// helm comes from hack/helm.sh (built from the module proxy once, cached
// by version): the test never skips for want of it.
func renderChart(t *testing.T, args ...string) []runtime.Object {
	t.Helper()
	helm, err := exec.Command("../../hack/helm.sh").Output()
	if err != nil {
		t.Fatalf("hack/helm.sh: %v", err)
	}
	args = append([]string{"template", "t", "../../charts/daxfs-csi", "--namespace", "kube-system"}, args...)
	cmd := exec.Command(strings.TrimSpace(string(helm)), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	dec := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	var objs []runtime.Object
	for i, doc := range bytes.Split(out, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 || bytes.Contains(doc, []byte("\nkind: ServiceMonitor\n")) {
			continue // prometheus-operator's type is not in client-go's scheme
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
		dss   = map[string]*appsv1.DaemonSet{}
		dep   *appsv1.Deployment
		drv   *storagev1.CSIDriver
		roles = map[string]*rbacv1.ClusterRole{}
	)
	for _, o := range renderChart(t) {
		switch x := o.(type) {
		case *appsv1.DaemonSet:
			dss[x.Name] = x
		case *appsv1.Deployment:
			dep = x
		case *storagev1.CSIDriver:
			drv = x
		case *rbacv1.ClusterRole:
			roles[x.Name] = x
		}
	}
	ds, fh := dss["t-node"], dss["t-fuse-host"]
	if ds == nil || fh == nil || dep == nil || drv == nil || roles["t-node"] == nil || roles["t-controller"] == nil {
		t.Fatalf("chart lacks objects: DaemonSets %v Deployment %v CSIDriver %v roles %v", dss, dep != nil, drv != nil, roles)
	}
	if drv.Spec.FSGroupPolicy == nil || *drv.Spec.FSGroupPolicy != storagev1.NoneFSGroupPolicy {
		t.Errorf("CSIDriver fsGroupPolicy = %v, want None", drv.Spec.FSGroupPolicy)
	}
	if !*drv.Spec.PodInfoOnMount || !*drv.Spec.StorageCapacity || *drv.Spec.AttachRequired ||
		!slices.Equal(drv.Spec.VolumeLifecycleModes, []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent, storagev1.VolumeLifecycleEphemeral}) {
		t.Errorf("CSIDriver = %+v", drv.Spec)
	}

	spec := ds.Spec.Template.Spec
	plugin, host := container(spec, "plugin"), container(fh.Spec.Template.Spec, "fuse-host")
	if plugin == nil || host == nil {
		t.Fatalf("node pod containers: %v, fuse-host pod: %v", spec.Containers, fh.Spec.Template.Spec.Containers)
	}
	checkFuseHostDaemonSet(t, ds, fh, plugin, host)
	for _, want := range []string{"serve", "--mode=node", "--cluster", "--fuse-host-socket=/var/lib/daxfs-csi/fuse-host.sock",
		"--registration-dir=/registration", "--kubelet-registration-path=/var/lib/kubelet/plugins/daxfs.csi.io/csi.sock"} {
		if !strings.Contains(argsOf(plugin), want) {
			t.Errorf("plugin args %q lack %s", argsOf(plugin), want)
		}
	}
	if !strings.Contains(argsOf(host), "--socket=/var/lib/daxfs-csi/fuse-host.sock") {
		t.Errorf("fuse-host args %q: not the plugin's socket", argsOf(host))
	}
	// A node without DAX memory must not run the plugin (it cannot open a
	// pool there): only labelled nodes do.
	if spec.NodeSelector["daxfs.io/pool"] != "true" || fh.Spec.Template.Spec.NodeSelector["daxfs.io/pool"] != "true" {
		t.Errorf("node selectors %v / %v: want daxfs.io/pool=true", spec.NodeSelector, fh.Spec.Template.Spec.NodeSelector)
	}
	if ps := dep.Spec.Template.Spec.SecurityContext; ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
		t.Errorf("controller pod security context %+v: want non-root", ps)
	}
	if c := container(dep.Spec.Template.Spec, "controller"); c.Image != plugin.Image || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("controller image %s (%s), plugin image %s: want the same, IfNotPresent", c.Image, c.ImagePullPolicy, plugin.Image)
	}
	// The scheduler resolves DaxImages' file:// sources itself.
	if m := mountsOf(container(dep.Spec.Template.Spec, "controller"))["/var/lib/daxfs/images"]; m.Name == "" || !m.ReadOnly {
		t.Errorf("controller container lacks the read-only images mount: %+v", container(dep.Spec.Template.Spec, "controller").VolumeMounts)
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

// checkFuseHostDaemonSet: the chart runs fuse-host as a DaemonSet of its
// own (updated OnDelete) so a rolling update of the plugin leaves the FUSE
// servers alone; both pods use the host pid namespace (the plugin watches
// fuse-serve by pid), the same image, and the kubelet and state dirs at the
// same paths with Bidirectional propagation.
func checkFuseHostDaemonSet(t *testing.T, node, fh *appsv1.DaemonSet, plugin, host *corev1.Container) {
	t.Helper()
	if !node.Spec.Template.Spec.HostPID || !fh.Spec.Template.Spec.HostPID {
		t.Error("plugin and fuse-host pods do not both use the host pid namespace")
	}
	if fh.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType {
		t.Errorf("fuse-host update strategy %s: want OnDelete", fh.Spec.UpdateStrategy.Type)
	}
	if node.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		t.Errorf("node update strategy %s: want RollingUpdate", node.Spec.UpdateStrategy.Type)
	}
	if host.Image != plugin.Image || host.SecurityContext == nil || !*host.SecurityContext.Privileged ||
		plugin.SecurityContext == nil || !*plugin.SecurityContext.Privileged {
		t.Errorf("plugin %s / fuse-host %s: want the same image, both privileged", plugin.Image, host.Image)
	}
	pm, hm := mountsOf(plugin), mountsOf(host)
	for p, want := range map[string]corev1.MountPropagationMode{
		"/var/lib/kubelet":   corev1.MountPropagationBidirectional,
		"/var/lib/daxfs-csi": corev1.MountPropagationBidirectional,
		"/dev":               corev1.MountPropagationHostToContainer,
	} {
		a, b := pm[p], hm[p]
		if a.Name == "" || b.Name == "" || a.MountPropagation == nil || *a.MountPropagation != want || b.MountPropagation == nil || *b.MountPropagation != want {
			t.Errorf("%s: plugin %+v, fuse-host %+v: want it in both, %s", p, a, b, want)
		}
	}
}

func mountsOf(c *corev1.Container) map[string]corev1.VolumeMount {
	m := map[string]corev1.VolumeMount{}
	for _, v := range c.VolumeMounts {
		m[v.MountPath] = v
	}
	return m
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

// TestChartAllFeatures: every optional value reaches the objects it is for.
func TestChartAllFeatures(t *testing.T) {
	var (
		dss = map[string]*appsv1.DaemonSet{}
		dep *appsv1.Deployment
		sc  *storagev1.StorageClass
	)
	for _, o := range renderChart(t, "-f", "../../charts/daxfs-csi/ci/all-features-values.yaml") {
		switch x := o.(type) {
		case *appsv1.DaemonSet:
			dss[x.Name] = x
		case *appsv1.Deployment:
			dep = x
		case *storagev1.StorageClass:
			sc = x
		}
	}
	if sc == nil || dep == nil || dss["t-node"] == nil || dss["t-fuse-host"] == nil {
		t.Fatalf("objects: StorageClass %v Deployment %v DaemonSets %v", sc != nil, dep != nil, dss)
	}
	if sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer ||
		sc.Parameters["image"] != "file:///var/lib/daxfs/images/app.daxfs" || len(sc.AllowedTopologies) != 1 ||
		sc.Annotations["storageclass.kubernetes.io/is-default-class"] != "true" {
		t.Errorf("StorageClass %+v", sc)
	}
	for name, spec := range map[string]corev1.PodSpec{
		"controller": dep.Spec.Template.Spec, "node": dss["t-node"].Spec.Template.Spec, "fuse-host": dss["t-fuse-host"].Spec.Template.Spec,
	} {
		if len(spec.ImagePullSecrets) != 1 || spec.ImagePullSecrets[0].Name != "regcred" {
			t.Errorf("%s: imagePullSecrets %v", name, spec.ImagePullSecrets)
		}
		if len(spec.Tolerations) == 0 || len(spec.NodeSelector) == 0 || spec.PriorityClassName == "" {
			t.Errorf("%s: tolerations %v nodeSelector %v priorityClass %q", name, spec.Tolerations, spec.NodeSelector, spec.PriorityClassName)
		}
		if c := spec.Containers[0]; c.Image != "registry.example.com/daxfs/daxfs-csi:v0.1.0" {
			t.Errorf("%s: image %s", name, c.Image)
		}
	}
	node := dss["t-node"].Spec.Template.Spec
	if node.Affinity == nil || node.Affinity.NodeAffinity == nil || node.NodeSelector["feature.node.kubernetes.io/memory-nv.dax"] != "true" {
		t.Errorf("node affinity %v, selector %v", node.Affinity, node.NodeSelector)
	}
	if container(node, "node-driver-registrar") == nil || strings.Contains(argsOf(container(node, "plugin")), "--registration-dir") {
		t.Errorf("registrar mode sidecar: containers %v, plugin args %q", node.Containers, argsOf(container(node, "plugin")))
	}
	if r := container(node, "plugin").Resources.Requests; r.Cpu().String() != "50m" {
		t.Errorf("plugin resources %v", r)
	}
	if r := container(dep.Spec.Template.Spec, "controller").Resources.Requests; r.Memory().String() != "64Mi" {
		t.Errorf("controller resources %v", r)
	}
}
