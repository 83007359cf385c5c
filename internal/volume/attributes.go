package volume

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/daxfs-csi/daxfs-csi/internal/ociref"
)

// Attribute keys accepted in PV volumeAttributes, StorageClass parameters and
// inline volumeAttributes.
const (
	AttrImage    = "image"
	AttrDigest   = "digest"
	AttrMount    = "mount"
	AttrWritable = "writable"
	// AttrExec "false" marks a data volume (weights, datasets): no program
	// runs from it and no file of it is mapped private and writable, so the
	// kernel daxfs module can serve it even when it cannot map files
	// privately (docs/kernel-mount.md). Default "true".
	AttrExec = "exec"

	// AttrEphemeral is set by the kubelet for CSI inline volumes.
	AttrEphemeral = "csi.storage.k8s.io/ephemeral"
	// attrPodNamespace is set by the kubelet when the CSIDriver has podInfoOnMount.
	attrPodNamespace = "csi.storage.k8s.io/pod.namespace"
	// kubeletPrefix marks keys the kubelet and external-provisioner add
	// (pod info, pv/pvc names, fstype); they are accepted and ignored.
	kubeletPrefix = "csi.storage.k8s.io/"
	// provisionerPrefix marks keys external-provisioner writes into every
	// PV it creates (storage.kubernetes.io/csiProvisionerIdentity); the node
	// sees them in the volume context and ignores them.
	provisionerPrefix = "storage.kubernetes.io/"
)

// MountMode selects how the shared image mount is made.
type MountMode string

const (
	MountAuto   MountMode = "auto"
	MountKernel MountMode = "kernel"
	MountFUSE   MountMode = "fuse"
)

// Attributes are the parsed, validated volume attributes.
type Attributes struct {
	Image    string // source URI: file:///abs/path, https://... or oci://REGISTRY/REPO...
	Digest   string // "sha256:<hex>" of the DAXFS image; empty when not given (file and oci sources)
	Mount    MountMode
	Writable bool
	// NoExec is exec: "false": the volume holds data only (see AttrExec).
	NoExec    bool
	Ephemeral bool
	// PullSecret names the dockerconfigjson secret for oci:// pulls:
	// NAME (in the pod's namespace) or NAMESPACE/NAME.
	PullSecret string
	// PodNamespace is the kubelet's csi.storage.k8s.io/pod.namespace
	// (podInfoOnMount); not part of the volume context.
	PodNamespace string
}

var (
	secretNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	namespaceRE  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
)

// Parse validates attrs. Every problem is reported at once in an *AttrError
// so a user fixes a StorageClass in one round.
func Parse(attrs map[string]string) (Attributes, error) {
	a := Attributes{Mount: MountAuto}
	var problems []string
	var unknown []string
	for k, v := range attrs {
		switch k {
		case AttrImage:
			a.Image = v
		case AttrDigest:
			a.Digest = v
		case AttrMount:
			a.Mount = MountMode(v)
		case AttrPullSecret:
			a.PullSecret = v
		case AttrWritable:
			b, err := parseBool(v)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", AttrWritable, err))
			}
			a.Writable = b
		case AttrExec:
			b, err := parseExec(v)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", AttrExec, err))
			}
			a.NoExec = !b
		case attrPodNamespace:
			a.PodNamespace = v
		case AttrEphemeral:
			b, err := parseBool(v)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", AttrEphemeral, err))
			}
			a.Ephemeral = b
		default:
			if !strings.HasPrefix(k, kubeletPrefix) && !strings.HasPrefix(k, provisionerPrefix) {
				unknown = append(unknown, k)
			}
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		problems = append(problems, fmt.Sprintf("unknown attributes %q (known: %s, %s, %s, %s, %s, %s)",
			unknown, AttrImage, AttrDigest, AttrMount, AttrWritable, AttrExec, AttrPullSecret))
	}
	if a.Image == "" {
		problems = append(problems, fmt.Sprintf("%s is required", AttrImage))
	} else if err := checkSource(a.Image); err != nil {
		problems = append(problems, fmt.Sprintf("%s: %v", AttrImage, err))
	} else if strings.HasPrefix(a.Image, "https://") && a.Digest == "" {
		problems = append(problems, fmt.Sprintf("%s is required for https sources", AttrDigest))
	}
	if a.PullSecret != "" {
		if !strings.HasPrefix(a.Image, ociref.Scheme) {
			problems = append(problems, fmt.Sprintf("%s applies to oci:// images only", AttrPullSecret))
		} else if err := checkPullSecret(a); err != nil {
			problems = append(problems, fmt.Sprintf("%s %q: %v", AttrPullSecret, a.PullSecret, err))
		}
	}
	if a.Digest != "" && !ociref.IsDigest(a.Digest) {
		problems = append(problems, fmt.Sprintf("%s %q: want sha256:<64 lowercase hex>", AttrDigest, a.Digest))
	}
	switch a.Mount {
	case MountAuto, MountKernel, MountFUSE:
	default:
		problems = append(problems, fmt.Sprintf("%s %q: want auto, kernel or fuse", AttrMount, a.Mount))
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return Attributes{}, &AttrError{Problems: problems}
	}
	return a, nil
}

// checkPullSecret accepts NAME or NAMESPACE/NAME; an inline volume may
// only name a secret of its own pod's namespace.
func checkPullSecret(a Attributes) error {
	ns, n, qualified := strings.Cut(a.PullSecret, "/")
	if !qualified {
		ns, n = "", ns
	}
	if !secretNameRE.MatchString(n) || (qualified && !namespaceRE.MatchString(ns)) {
		return fmt.Errorf("want NAME or NAMESPACE/NAME")
	}
	if a.Ephemeral && qualified && a.PodNamespace != "" && ns != a.PodNamespace {
		return fmt.Errorf("an inline volume may only use secrets of its pod's namespace %q", a.PodNamespace)
	}
	return nil
}

// PullSecretRef is the secret to pull with as NAMESPACE/NAME, or the bare
// NAME when no namespace is known; "" when none is named. A bare name
// lives in the pod's namespace.
func (a Attributes) PullSecretRef() string {
	if a.PullSecret == "" || strings.Contains(a.PullSecret, "/") || a.PodNamespace == "" {
		return a.PullSecret
	}
	return a.PodNamespace + "/" + a.PullSecret
}

func parseBool(v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false", "":
		return false, nil
	}
	return false, fmt.Errorf("%q: want \"true\" or \"false\"", v)
}

// parseExec reads exec: unset means "true" (a volume may hold programs).
func parseExec(v string) (bool, error) {
	switch v {
	case "true", "":
		return true, nil
	case "false":
		return false, nil
	}
	return true, fmt.Errorf("%q: want \"true\" or \"false\"", v)
}

// NeedsExec reports whether programs may run from the volume (or its files
// be mapped private and writable, which is what an ELF loader does).
func (a Attributes) NeedsExec() bool { return !a.NoExec }

// checkSource accepts absolute, clean file:// URIs and https URLs with a host.
func checkSource(src string) error {
	if strings.HasPrefix(src, ociref.Scheme) {
		_, err := ociref.Parse(src)
		return err
	}
	u, err := url.Parse(src)
	if err != nil {
		return fmt.Errorf("%q is not a URI: %w", src, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" {
			return fmt.Errorf("%q: file URIs name a path on the node (file:///path), not host %q", src, u.Host)
		}
		if !path.IsAbs(u.Path) || path.Clean(u.Path) != u.Path {
			return fmt.Errorf("%q: path must be absolute and clean (no '..', '.', '//' or trailing '/')", src)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("%q: file URIs take no query or fragment", src)
		}
	case "https":
		if u.Host == "" {
			return fmt.Errorf("%q: https URL without a host", src)
		}
		if u.User != nil {
			return fmt.Errorf("https URL must not carry credentials")
		}
	default:
		return fmt.Errorf("%q: unsupported scheme %q (want file://, https:// or oci://)", src, u.Scheme)
	}
	return nil
}

// Context is the canonical volume context handed from CreateVolume to the
// node: only the keys that define the volume, digest included when known.
func (a Attributes) Context() map[string]string {
	m := map[string]string{AttrImage: a.Image}
	if a.Digest != "" {
		m[AttrDigest] = a.Digest
	}
	if a.Mount != "" && a.Mount != MountAuto {
		m[AttrMount] = string(a.Mount)
	}
	if a.Writable {
		m[AttrWritable] = "true"
	}
	if a.NoExec {
		m[AttrExec] = "false"
	}
	if a.PullSecret != "" {
		m[AttrPullSecret] = a.PullSecret
	}
	return m
}
