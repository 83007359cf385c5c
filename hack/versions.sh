# Tool versions, one home: sourced by hack/*.sh, test/e2e/kube/run.sh and
# the Makefile. Each tool is built from the Go module proxy once and cached
# under ${DAXFS_CACHE:-~/.cache/daxfs-csi} by this version.
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"                       # helm.sh/helm/v3/cmd/helm
CSI_PROVISIONER_VERSION="${CSI_PROVISIONER_VERSION:-v6.4.0}" # external-provisioner
