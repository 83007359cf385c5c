#!/usr/bin/env bash
# Builds (once) the binaries envtest needs -- etcd, kube-apiserver, kubectl --
# into a cache dir keyed by Kubernetes version, and prints that dir on stdout:
#
#   export KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh)"
#
# etcd comes from Debian's etcd-server when available (no build); kube-apiserver
# and kubectl are built from the Go module proxy in a scratch module outside the
# repo, because k8s.io/kubernetes cannot be `go install`ed (replace directives)
# and must never enter our go.mod. Cold: ~10-14 min on 2 cores; cached: instant.
set -euo pipefail

# K8S_VERSION, ETCD_MODULE_VERSION (only when apt has no etcd).
# shellcheck source=hack/versions.sh
. "$(dirname "${BASH_SOURCE[0]}")/versions.sh"
ETCD_FROM="${DAXFS_ETCD_FROM:-apt}"                    # apt (falls back to proxy) or proxy
CACHE_ROOT="${DAXFS_CACHE:-$HOME/.cache/daxfs-csi}"
OUT="$CACHE_ROOT/k8s-$K8S_VERSION"

log() { echo "envtest-assets: $*" >&2; }

have() { [[ -x "$OUT/$1" ]]; }

mkdir -p "$OUT"

# --- etcd ---------------------------------------------------------------
if ! have etcd; then
	if [[ $ETCD_FROM == apt ]] && ! command -v etcd >/dev/null 2>&1 && [[ ! -x /usr/bin/etcd ]]; then
		if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
			log "installing etcd-server from apt"
			apt=(apt-get -o DPkg::Lock::Timeout=600)
			("${apt[@]}" install -y --no-install-recommends etcd-server >&2 ||
				{ "${apt[@]}" update >&2 && "${apt[@]}" install -y --no-install-recommends etcd-server >&2; }) || true
		fi
	fi
	# The Debian package ships a service we do not want running.
	if command -v service >/dev/null 2>&1; then service etcd stop >/dev/null 2>&1 || true; fi
	ETCD_BIN=""
	if [[ $ETCD_FROM == apt ]]; then ETCD_BIN="$(command -v etcd 2>/dev/null || true)"; fi
	if [[ -n "$ETCD_BIN" ]]; then
		log "etcd from $ETCD_BIN"
		cp "$ETCD_BIN" "$OUT/etcd.tmp" && mv "$OUT/etcd.tmp" "$OUT/etcd"
	else
		log "building etcd $ETCD_MODULE_VERSION from the module proxy"
		scratch="$(mktemp -d)"
		(
			cd "$scratch"
			go mod init scratch/etcd >/dev/null 2>&1
			go get "go.etcd.io/etcd/server/v3@$ETCD_MODULE_VERSION" >&2
			CGO_ENABLED=0 go build -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
		)
		mv "$OUT/etcd.tmp" "$OUT/etcd"
		rm -rf "$scratch"
	fi
fi

# --- kube-apiserver, kubectl (+ $K8S_EXTRA) ------------------------------
# K8S_EXTRA names more k8s.io/kubernetes/cmd binaries to build into the same
# dir (test/e2e/kube asks for kubelet, kube-controller-manager, kube-scheduler).
COMPONENTS=(kube-apiserver kubectl ${K8S_EXTRA:-})
missing=()
for c in "${COMPONENTS[@]}"; do have "$c" || missing+=("$c"); done
if ((${#missing[@]})); then
	scratch="${DAXFS_K8S_SCRATCH:-$CACHE_ROOT/scratch-k8s-$K8S_VERSION}"
	mkdir -p "$scratch"
	log "building ${missing[*]} $K8S_VERSION in $scratch"
	(
		cd "$scratch"
		# One module for every command either caller builds; a module made
		# for fewer commands lacks their sums and is made again.
		if [[ ! -f go.sum ]] || ! grep -q 'cmd/kubelet"' tools.go 2>/dev/null; then
			rm -f go.mod go.sum
			go mod init scratch/k8s >/dev/null 2>&1
			kgomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
				sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
			# Every staging module is replaced by its published vX => v0.Y.Z.
			{
				echo "require k8s.io/kubernetes $K8S_VERSION"
				grep -E '^[[:space:]]*k8s\.io/[^ ]+ => \./staging/' "$kgomod" |
					sed -E "s#^[[:space:]]*(k8s\.io/[^ ]+) => .*#replace \1 => \1 v0.${K8S_VERSION#v1.}#"
			} >>go.mod
			# kube-proxy too: without it `go mod tidy` misses knftables sums.
			cat >tools.go <<-'EOF'
			//go:build tools

			package tools

			import (
				_ "k8s.io/kubernetes/cmd/kube-apiserver"
				_ "k8s.io/kubernetes/cmd/kube-controller-manager"
				_ "k8s.io/kubernetes/cmd/kube-proxy"
				_ "k8s.io/kubernetes/cmd/kube-scheduler"
				_ "k8s.io/kubernetes/cmd/kubectl"
				_ "k8s.io/kubernetes/cmd/kubelet"
			)
			EOF
			go mod tidy >&2
		fi
		for cmd in "${missing[@]}"; do
			log "go build $cmd"
			CGO_ENABLED=0 go build -o "$OUT/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd" >&2
			mv "$OUT/$cmd.tmp" "$OUT/$cmd"
		done
	)
fi

for b in etcd "${COMPONENTS[@]}"; do
	have "$b" || { log "missing $OUT/$b"; exit 1; }
done
echo "$OUT"
