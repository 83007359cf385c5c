package oci

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// SecretGetter returns the .dockerconfigjson of pull secret namespace/name.
type SecretGetter func(ctx context.Context, namespace, name string) ([]byte, error)

// KubeSecrets reads pull secrets through the Kubernetes API with the
// client's credentials (the node plugin's service account, which needs
// get on secrets), as warm-metal's csi-driver-image does.
func KubeSecrets(cs kubernetes.Interface) SecretGetter {
	return func(ctx context.Context, namespace, name string) ([]byte, error) {
		s, err := cs.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("pull secret %s/%s: %w", namespace, name, err)
		}
		switch s.Type {
		case corev1.SecretTypeDockerConfigJson:
			return s.Data[corev1.DockerConfigJsonKey], nil
		case corev1.SecretTypeDockercfg:
			// The legacy format is the bare auths map.
			return append(append([]byte(`{"auths":`), s.Data[corev1.DockerConfigKey]...), '}'), nil
		}
		return nil, fmt.Errorf("pull secret %s/%s: type %q, want %s", namespace, name, s.Type, corev1.SecretTypeDockerConfigJson)
	}
}

// secretKeychain finds the keychain for a pullSecret reference (NAME or
// NAMESPACE/NAME): through the API when the Converter has a SecretGetter
// and the namespace is known, else from PullSecretDir/NAME/.dockerconfigjson.
func (c *Converter) secretKeychain(ctx context.Context, ref string) (authn.Keychain, error) {
	ns, n, qualified := strings.Cut(ref, "/")
	if !qualified {
		ns, n = "", ns
	}
	if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\\") || strings.Contains(ns, "..") {
		return nil, fmt.Errorf("pullSecret %q: not a secret name", ref)
	}
	if c.opts.PullSecrets != nil && ns != "" {
		b, err := c.opts.PullSecrets(ctx, ns, n)
		if err != nil {
			return nil, err
		}
		return bytesKeychain{config: b, name: "secret " + ref}, nil
	}
	if c.opts.PullSecretDir != "" && !qualified {
		return KeychainFromFile(filepath.Join(c.opts.PullSecretDir, n, ".dockerconfigjson")), nil
	}
	return nil, fmt.Errorf("pullSecret %q: this node can read neither the Kubernetes API for it nor a mounted secret", ref)
}
