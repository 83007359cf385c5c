#!/usr/bin/env bash
# The chart's checks (make chart-test; part of make test, never skipped):
# helm lint --strict with the default and the all-features values, the
# schema refusing mistyped or misspelt values, flags rendered only when
# their value is set, and the chart's CRDs equal to deploy/crds (one source:
# hack/generate.sh writes both). helm comes from hack/helm.sh (module proxy,
# cached by version).
set -euo pipefail
cd "$(dirname "$0")/.."
HELM="$(hack/helm.sh)"
CHART=charts/daxfs-csi
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

# 1. lint --strict: defaults and every option on.
"$HELM" lint --strict "$CHART" && ok "lint --strict (defaults)" || fail "lint --strict (defaults)"
"$HELM" lint --strict "$CHART" -f "$CHART/ci/all-features-values.yaml" &&
	ok "lint --strict (all features)" || fail "lint --strict (all features)"

render() { "$HELM" template t "$CHART" --namespace daxfs "$@"; }

# 2. the schema: each of these must fail, naming the bad value.
bad() { # what want-in-error helm-args...
	local what=$1 want=$2 out
	shift 2
	if out=$(render "$@" 2>&1); then
		fail "schema accepted $what ($*)"
	elif ! grep -qiF -- "$want" <<<"$out"; then
		fail "$what: error does not mention '$want': $(head -c 300 <<<"$out")"
	else
		ok "refused $what"
	fi
}
bad "a misspelt key" "nodeSelecter" --set node.nodeSelecter.a=b
bad "an unknown top-level key" "imagePullSecret" --set imagePullSecret=regcred
bad "a pull policy" "pullPolicy" --set image.pullPolicy=Sometimes
bad "a pool spec" "spec" --set node.pool.spec=/dev/dax0.0
bad "a pool size" "size" --set node.pool.size=1GB
bad "a replica count" "replicas" --set controller.replicas=two
bad "a duration" "heartbeat" --set node.pool.heartbeat=5
bad "a mount mode" "mountMode" --set node.mountMode=kernal
bad "a registrar mode" "mode" --set node.registrar.mode=none
bad "a binding mode" "volumeBindingMode" --set storageClass.volumeBindingMode=Later
bad "a StorageClass without image" "parameters.image" --set storageClass.create=true
bad "node.pool as a string (the old layout)" "pool" --set node.pool=auto

# 3. values that are set become flags; unset ones render nothing.
out=$(render)
for f in --pool-heartbeat --pool-stale-after --pool-coherence --max-image-size --keep-unused --max-volumes; do
	grep -qF -- "$f" <<<"$out" && fail "default render has $f" || ok "no $f by default"
done
grep -qF 'kind: StorageClass' <<<"$out" && fail "StorageClass rendered by default" || ok "no StorageClass by default"
grep -qF 'image: "daxfs-csi:'"$(sed -n 's/^appVersion: "\(.*\)"/\1/p' "$CHART/Chart.yaml")"'"' <<<"$out" &&
	ok "image tag defaults to appVersion" || fail "image tag is not the appVersion"
out=$(render -f "$CHART/ci/all-features-values.yaml")
for f in --pool=devdax:/dev/dax0.0 --pool-heartbeat=5s --pool-stale-after=30s --pool-coherence=cxl \
	--max-image-size=4Gi --mount-mode=fuse --keep-unused --max-volumes=100 'kind: StorageClass' \
	'kind: ServiceMonitor' 'node-driver-registrar' 'name: regcred' 'volumeBindingMode: WaitForFirstConsumer' \
	'feature.node.kubernetes.io/memory-nv.dax' 'storageclass.kubernetes.io/is-default-class'; do
	grep -qF -- "$f" <<<"$out" && ok "all features: $f" || fail "all features render lacks $f"
done

# 4. one CRD source.
diff -r deploy/crds "$CHART/crds" && ok "chart CRDs = deploy/crds" ||
	fail "charts/daxfs-csi/crds differs from deploy/crds: run hack/generate.sh"

((fails == 0)) || { echo "$fails chart check(s) failed" >&2; exit 1; }
echo "chart checks passed"
