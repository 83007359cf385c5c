#!/usr/bin/env bash
# make verify (part of make test): what is generated or pinned has not
# drifted from its one source.
#  1. hack/generate.sh, run in a scratch copy of the module (go.mod, go.sum,
#     pkg/apis without its generated files, hack/), writes the same deepcopy
#     code and CRDs (deploy/crds, charts/daxfs-csi/crds) as the tree holds:
#     no file differs, is missing or is extra. The worktree is only read.
#  2. every tool version written outside hack/versions.sh (the chart's
#     csi-provisioner tag, go.mod's csi-test, the docs) is the pinned one.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/versions.sh
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# --- 1. generated files ---------------------------------------------------
gen="$(hack/tools.sh controller-gen)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/pkg" "$tmp/deploy/crds" "$tmp/charts/daxfs-csi/crds"
cp go.mod go.sum "$tmp/"
cp -r hack "$tmp/hack"
cp -r pkg/apis "$tmp/pkg/apis"
find "$tmp/pkg/apis" -name 'zz_generated*.go' -delete
(cd "$tmp" && CONTROLLER_GEN="$gen" hack/generate.sh) || fail "hack/generate.sh failed"
for d in pkg/apis deploy/crds charts/daxfs-csi/crds; do
	if diff -ru "$d" "$tmp/$d"; then
		echo "ok: $d matches hack/generate.sh"
	else
		fail "$d differs from what hack/generate.sh writes (diff above, - tree + generated): run hack/generate.sh and commit"
	fi
done

# --- 2. versions ------------------------------------------------------------
# want NAME VERSION EXTENDED-REGEX: each match in the tracked files (history
# and measurements aside) must end in VERSION.
files() { git ls-files -- . ':!CHANGELOG.md' ':!docs/benchmarks.md' ':!go.sum' ':!hack/versions.sh' ':!bench/*'; }
want() {
	local name=$1 version=$2 re=$3 all bad
	all=$(files | xargs grep -noE "$re" 2>/dev/null || true)
	bad=$(grep -vE "${version//./\\.}\$" <<<"$all" || true)
	if [[ -n $bad ]]; then
		fail "$name is pinned at $version in hack/versions.sh; elsewhere:"$'\n'"$bad"
	else
		echo "ok: $name $version ($(grep -c . <<<"$all") mentions elsewhere agree)"
	fi
}
want csi-provisioner "$CSI_PROVISIONER_VERSION" 'csi-provisioner[:@ ]v[0-9]+\.[0-9]+\.[0-9]+|external-provisioner v[0-9]+\.[0-9]+\.[0-9]+'
want csi-test "$CSI_TEST_VERSION" '(csi-sanity|csi-test/v5) v[0-9]+\.[0-9]+\.[0-9]+'
want helm "$HELM_VERSION" 'helm[- ]v[0-9]+\.[0-9]+\.[0-9]+'
want controller-gen "$CONTROLLER_TOOLS_VERSION" '(controller-gen|controller-tools)[^ ]*[ :@]v[0-9]+\.[0-9]+\.[0-9]+'
want staticcheck "$STATICCHECK_VERSION" 'staticcheck[- @]v[0-9]+\.[0-9]+\.[0-9]+'
want Kubernetes "$K8S_VERSION" '(Kubernetes|kube-apiserver|kubelet|k8s-|kubernetes@) ?v1\.[0-9]+\.[0-9]+'
# The chart's default csi-provisioner tag (values.yaml: repository, then tag).
tag=$(awk '/repository: .*csi-provisioner/{getline; sub(/^ *tag: */, ""); print}' charts/daxfs-csi/values.yaml)
[[ $tag == "$CSI_PROVISIONER_VERSION" ]] && echo "ok: chart csi-provisioner tag $tag" ||
	fail "charts/daxfs-csi/values.yaml csi-provisioner tag '$tag', hack/versions.sh $CSI_PROVISIONER_VERSION"

((fails == 0)) || { echo "make verify: $fails check(s) failed" >&2; exit 1; }
echo "make verify: passed"
