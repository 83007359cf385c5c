#!/usr/bin/env bash
# Regenerates deepcopy code and CRD manifests from pkg/apis markers.
# CRDs go to deploy/crds/ and, identical, to charts/daxfs-csi/crds/.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/versions.sh
CONTROLLER_GEN="go run sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_TOOLS_VERSION"
$CONTROLLER_GEN object paths=./pkg/apis/...
$CONTROLLER_GEN crd paths=./pkg/apis/... output:crd:artifacts:config=deploy/crds
mkdir -p charts/daxfs-csi/crds
cp deploy/crds/*.yaml charts/daxfs-csi/crds/
