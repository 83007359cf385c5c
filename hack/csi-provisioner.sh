#!/usr/bin/env bash
# Prints the path of a csi-provisioner (external-provisioner) binary of
# $CSI_PROVISIONER_VERSION (hack/versions.sh), built once from the Go module
# proxy into the cache dir and never rebuilt. The kube e2e packs it as the
# chart's csi-provisioner image (no registry here).
#
# Built in a scratch module beside the cache that copies external-
# provisioner's own replace lines (k8s.io/* => v0.36.1); never in our
# go.mod. Cold: ~5 min on 2 cores; cached: instant.
set -euo pipefail
cd "$(dirname "$0")"
source ./versions.sh
CACHE_ROOT="${DAXFS_CACHE:-$HOME/.cache/daxfs-csi}"
OUT="$CACHE_ROOT/csi-provisioner-$CSI_PROVISIONER_VERSION"
if [[ ! -x $OUT ]]; then
	mkdir -p "$CACHE_ROOT"
	exec 9>"$OUT.lock"
	flock 9
fi
if [[ ! -x $OUT ]]; then
	scratch="$CACHE_ROOT/scratch-csi-provisioner-$CSI_PROVISIONER_VERSION"
	echo "csi-provisioner.sh: building csi-provisioner $CSI_PROVISIONER_VERSION in $scratch" >&2
	mkdir -p "$scratch"
	cd "$scratch"
	if [[ ! -f go.sum ]]; then
		rm -f go.mod
		go mod init scratch/prov >/dev/null 2>&1
		pgomod="$(go mod download -json "github.com/kubernetes-csi/external-provisioner/v6@$CSI_PROVISIONER_VERSION" |
			sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
		echo "require github.com/kubernetes-csi/external-provisioner/v6 $CSI_PROVISIONER_VERSION" >>go.mod
		# its own replace lines, local ones left out
		awk '/^replace \(/{f=1;next} f&&/^\)/{f=0} f{print "replace " $0} /^replace [^(]/{print}' "$pgomod" |
			grep -v '=> \.' >>go.mod || true
		printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner"\n' >tools.go
		go mod tidy >&2
	fi
	CGO_ENABLED=0 go build -o "$OUT.tmp" github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner >&2
	mv "$OUT.tmp" "$OUT"
fi
echo "$OUT"
