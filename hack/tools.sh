#!/usr/bin/env bash
# Builds (once) the Go tools the tests run, at the versions in
# hack/versions.sh, into a cache dir keyed by version, and prints the path of
# each binary asked for, one a line:
#
#   hack/tools.sh staticcheck   ->  ~/.cache/daxfs-csi/tools/staticcheck-$STATICCHECK_VERSION/staticcheck
#
# Tools: staticcheck, csi-sanity, helm, controller-gen. A cached binary is
# never rebuilt.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/versions.sh
. "$here/versions.sh"
CACHE_ROOT="${DAXFS_CACHE:-$HOME/.cache/daxfs-csi}"

log() { echo "tools: $*" >&2; }

for name in "$@"; do
	case "$name" in
	staticcheck) pkg=honnef.co/go/tools/cmd/staticcheck version=$STATICCHECK_VERSION ;;
	csi-sanity) pkg=github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity version=$CSI_TEST_VERSION ;;
	helm) pkg=helm.sh/helm/v3/cmd/helm version=$HELM_VERSION ;;
	controller-gen) pkg=sigs.k8s.io/controller-tools/cmd/controller-gen version=$CONTROLLER_TOOLS_VERSION ;;
	*) log "unknown tool $name (want staticcheck, csi-sanity, helm or controller-gen)"; exit 2 ;;
	esac
	dir="$CACHE_ROOT/tools/$name-$version"
	if [[ ! -x "$dir/$name" ]]; then
		mkdir -p "$dir"
		# One builder per tool at a time; the others wait and find it built.
		exec 9>"$dir.lock"
		flock 9
		if [[ ! -x "$dir/$name" ]]; then
			log "go install $pkg@$version"
			# Outside the repo: the tool's own go.mod decides its dependencies.
			(cd "$dir" && GOBIN="$dir/.bin" go install "$pkg@$version" >&2)
			mv "$dir/.bin/$name" "$dir/$name"
			rmdir "$dir/.bin"
		fi
		exec 9>&-
	fi
	echo "$dir/$name"
done
