# shellcheck shell=bash
# One home for the versions of the tools the build and the tests fetch.
# Sourced by hack/ and test/ scripts, read by the Makefile; the environment
# overrides each (K8S_VERSION=v1.35.0 hack/envtest-assets.sh).

# honnef.co/go/tools/cmd/staticcheck (2026.2.2): supports Go 1.26.
: "${STATICCHECK_VERSION:=v0.8.2}"
# csi-sanity (github.com/kubernetes-csi/csi-test/v5); go.mod requires the
# same version for test/sanity, and test/sanity/run-csi-sanity.sh checks so.
: "${CSI_TEST_VERSION:=v5.6.0}"
# helm.sh/helm/v3/cmd/helm, which renders the chart in deploy/examples.
: "${HELM_VERSION:=v3.22.0}"
# etcd, kube-apiserver, kubectl for envtest and the kube e2e's cluster.
: "${K8S_VERSION:=v1.34.4}"
# etcd from the module proxy, only when apt has no etcd-server.
: "${ETCD_MODULE_VERSION:=v3.6.16}"
# external-provisioner, for the kube e2e's dynamic provisioning.
: "${CSI_PROVISIONER_VERSION:=v6.4.0}"
# controller-gen, for hack/generate.sh.
: "${CONTROLLER_TOOLS_VERSION:=v0.23.0}"
