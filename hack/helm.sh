#!/usr/bin/env bash
# Prints the path of a helm binary of $HELM_VERSION (hack/versions.sh),
# built once from the Go module proxy into the cache dir and never rebuilt:
#
#   HELM="$(hack/helm.sh)"; "$HELM" lint --strict charts/daxfs-csi
#
# Never in our go.mod. Cold: ~3-6 min on 2 cores; cached: instant.
set -euo pipefail
cd "$(dirname "$0")"
source ./versions.sh
CACHE_ROOT="${DAXFS_CACHE:-$HOME/.cache/daxfs-csi}"
OUT="$CACHE_ROOT/helm-$HELM_VERSION"
if [[ ! -x $OUT ]]; then
	mkdir -p "$CACHE_ROOT"
	echo "helm.sh: building helm $HELM_VERSION into $OUT" >&2
	# One builder at a time: make test and the e2e may ask together.
	exec 9>"$OUT.lock"
	flock 9
	if [[ ! -x $OUT ]]; then
		# helm's go.mod has no replace directives: `go install pkg@version`
		# builds it with its own requirements, outside our module.
		gobin="$(mktemp -d)"
		(cd / && CGO_ENABLED=0 GOBIN="$gobin" go install -trimpath "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2)
		mv "$gobin/helm" "$OUT.tmp"
		rmdir "$gobin"
		mv "$OUT.tmp" "$OUT"
	fi
fi
echo "$OUT"
