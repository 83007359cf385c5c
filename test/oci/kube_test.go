package oci_test

import (
	"context"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/daxfs-csi/daxfs-csi/internal/machine"
	"github.com/daxfs-csi/daxfs-csi/internal/oci"
	"github.com/daxfs-csi/daxfs-csi/internal/source"
)

// A pullSecret read from a real kube-apiserver authenticates a pull from
// a registry that requires credentials. Needs KUBEBUILDER_ASSETS (see
// hack/envtest-assets.sh; see machine.Lacks).
func TestPullSecretFromKubeAPI(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		machine.Lacks(t, "KUBEBUILDER_ASSETS is unset: export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Stop() })
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := newRegistry(t)
	src := r.push(t, "team/app", appImage(t))
	r.auth.Store("puller:api-pa55")
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dcj := `{"auths":{"` + r.host + `":{"username":"puller","password":"api-pa55"}}}`
	if _, err := cs.CoreV1().Secrets("team").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(dcj)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	conv, err := oci.New(oci.Options{Dir: t.TempDir(), Keychain: anon{}, PullSecrets: oci.KubeSecrets(cs)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conv.Convert(ctx, src); err == nil {
		t.Fatal("anonymous pull of a private image succeeded")
	}
	_, err = conv.Convert(source.WithPullSecret(ctx, "team/missing"), src)
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing secret: %v", err)
	}
	e, err := conv.Convert(source.WithPullSecret(ctx, "team/regcred"), src)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(e.Digest, "sha256:") {
		t.Fatalf("entry %+v", e)
	}
}
