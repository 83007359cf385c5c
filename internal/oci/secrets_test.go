package oci

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/daxfs-csi/daxfs-csi/internal/source"
)

// Pull secrets read through the Kubernetes API (a fake clientset standing
// in for the API server) authenticate a real pull from a registry that
// requires basic auth.
func TestKubePullSecret(t *testing.T) {
	reg := newRegistry(t)
	reg.set(func() { reg.auth = "puller:k8s-pa55" })
	src := reg.push(t, "private", "v1", imageOf(t, tarOf(t, file("x", "x", 0o644))))
	cfg := `{"auths":{"` + reg.host + `":{"username":"puller","password":"k8s-pa55"}}}`
	cs := fake.NewSimpleClientset(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "regcred"},
			Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(cfg)}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "opaque"},
			Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"password": []byte("k8s-pa55")}},
	)
	ctx := context.Background()
	c := newConverter(t, t.TempDir(), func(o *Options) { o.PullSecrets = KubeSecrets(cs) })
	for _, bad := range []string{"team/opaque", "other/regcred", "regcred"} {
		_, err := c.Convert(source.WithPullSecret(ctx, bad), src)
		if err == nil {
			t.Fatalf("pull with %q succeeded", bad)
		}
		if strings.Contains(err.Error(), "pa55") {
			t.Fatalf("error leaks the password: %v", err)
		}
	}
	if _, err := c.Convert(source.WithPullSecret(ctx, "team/regcred"), src); err != nil {
		t.Fatal(err)
	}
}
