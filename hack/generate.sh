#!/usr/bin/env bash
# Regenerates deepcopy code and CRD manifests from pkg/apis markers with
# controller-gen at $CONTROLLER_TOOLS_VERSION (hack/versions.sh; built once
# by hack/tools.sh). CRDs go to deploy/crds/ and, identical, to
# charts/daxfs-csi/crds/: both are written from scratch, so a CRD whose type
# is gone goes too. `make verify` runs this in a copy and diffs.
set -euo pipefail
cd "$(dirname "$0")/.."
CONTROLLER_GEN="${CONTROLLER_GEN:-$(hack/tools.sh controller-gen)}"
"$CONTROLLER_GEN" object paths=./pkg/apis/...
rm -f deploy/crds/*.yaml
"$CONTROLLER_GEN" crd paths=./pkg/apis/... output:crd:artifacts:config=deploy/crds
mkdir -p charts/daxfs-csi/crds
rm -f charts/daxfs-csi/crds/*.yaml
cp deploy/crds/*.yaml charts/daxfs-csi/crds/
