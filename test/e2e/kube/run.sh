#!/usr/bin/env bash
# daxfs-csi on a real kubelet, end to end (see README.md here).
#
# As root: installs what is missing (apt), builds/caches the Kubernetes
# binaries by version, builds daxfs-csi, starts a throwaway single-node
# cluster under a work dir in /tmp (etcd, kube-apiserver, controller-manager,
# scheduler, containerd, kubelet), deploys the node plugin as a DaemonSet
# (plugin + fuse-host sidecar, registering itself with the kubelet), and
# checks inline and static-PV volumes, one pool extent per image, and the
# release on unpublish. Everything is torn down by a trap on exit; the logs
# stay in $W/logs.
#
# Environment: DAXFS_CACHE (binary cache, default ~/.cache/daxfs-csi),
# E2E_NODE_IP (default 192.0.2.231, put on a dummy interface), E2E_KEEP=1
# (leave the cluster running until Enter is pressed, for debugging),
# E2E_TIMEOUT (seconds per wait, default 120), E2E_DYNAMIC (auto: check
# dynamic provisioning when external-provisioner is cached; 1: build it,
# ~5 min cold; 0: skip).
set -euo pipefail

T0=$(date +%s)
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
CACHE_ROOT="${DAXFS_CACHE:-$HOME/.cache/daxfs-csi}"
KBIN="$CACHE_ROOT/k8s-$K8S_VERSION"
NODE_IP="${E2E_NODE_IP:-192.0.2.231}"
NODE=e2e-node
DUMMY=daxe2e0
DRIVER=daxfs.csi.io
TMO="${E2E_TIMEOUT:-120}"
PROV_VERSION=v6.4.0
DYNAMIC="${E2E_DYNAMIC:-auto}" # auto: when csi-provisioner is cached; 1: build it if missing; 0: skip

log() { echo "[$(($(date +%s) - T0))s] $*" >&2; }
die() { log "FATAL: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root"

# ------------------------------------------------------------ 1. installs
need_apt=()
command -v containerd >/dev/null || need_apt+=(containerd)
command -v runc >/dev/null || need_apt+=(runc)
[[ -x /usr/lib/cni/bridge ]] || need_apt+=(containernetworking-plugins)
command -v iptables >/dev/null || need_apt+=(iptables)
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v openssl >/dev/null || need_apt+=(openssl)
if ((${#need_apt[@]})); then
	log "apt-get install ${need_apt[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends "${need_apt[@]}" >&2 ||
		{ apt-get update >&2 && apt-get install -y --no-install-recommends "${need_apt[@]}" >&2; }
	# Debian's packages may start services we do not want.
	for s in etcd containerd; do service "$s" stop >/dev/null 2>&1 || true; done
fi

# ------------------------------------------------------------ 1b. binaries
# etcd and the Kubernetes binaries: hack/envtest-assets.sh, built once into
# the same cache dir by version.
DAXFS_CACHE="$CACHE_ROOT" K8S_VERSION="$K8S_VERSION" \
	K8S_EXTRA="kubelet kube-controller-manager kube-scheduler" "$REPO/hack/envtest-assets.sh" >/dev/null
ETCD="$(command -v etcd || echo "$KBIN/etcd")"

# external-provisioner (dynamic provisioning), in a scratch module of its own.
PROV="$CACHE_ROOT/csi-provisioner-$PROV_VERSION"
if [[ $DYNAMIC == 1 && ! -x $PROV ]]; then
	scratch="$CACHE_ROOT/scratch-csi-provisioner-$PROV_VERSION"
	log "building csi-provisioner $PROV_VERSION in $scratch (cold: ~5 min)"
	mkdir -p "$scratch"
	(
		cd "$scratch"
		if [[ ! -f go.sum ]]; then
			rm -f go.mod
			go mod init scratch/prov >/dev/null 2>&1
			pgomod="$(go mod download -json "github.com/kubernetes-csi/external-provisioner/v6@$PROV_VERSION" |
				sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
			echo "require github.com/kubernetes-csi/external-provisioner/v6 $PROV_VERSION" >>go.mod
			# its own replace lines (k8s.io/* => v0.36.1), local ones left out
			awk '/^replace \(/{f=1;next} f&&/^\)/{f=0} f{print "replace " $0} /^replace [^(]/{print}' "$pgomod" |
				grep -v '=> \.' >>go.mod || true
			printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner"\n' >tools.go
			go mod tidy >&2
		fi
		CGO_ENABLED=0 go build -o "$PROV.tmp" github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner >&2
		mv "$PROV.tmp" "$PROV"
	)
fi
[[ $DYNAMIC != 0 && -x $PROV ]] && DYNAMIC=1 || DYNAMIC=0

# ------------------------------------------------------------ work dir, trap
W="$(mktemp -d /tmp/daxfs-kube-e2e.XXXXXX)"
chmod 755 "$W"
L="$W/logs"
KR="$W/kubelet" # kubelet root dir
CTRD="$W/containerd"
SOCK="$CTRD/containerd.sock"
mkdir -p "$L" "$KR" "$CTRD" "$W/bin" "$W/images" "$W/state" "$W/pki" "$W/cni/net.d" "$W/pod-logs"
export KUBECONFIG="$W/admin.kubeconfig"
K="$KBIN/kubectl"
log "work dir $W (logs in $L)"

# iptables chains the kubelet adds (KUBE-FIREWALL, KUBE-KUBELET-CANARY, ...):
# remembered so the teardown removes only those this run created.
ipt_chains() { local ipt t; for ipt in iptables ip6tables; do for t in filter nat mangle; do
	"$ipt" -t "$t" -S 2>/dev/null | awk -v i="$ipt" -v t="$t" '$1 == "-N" && $2 ~ /^KUBE-/ {print i, t, $2}'; done; done; }
ipt_cleanup() {
	local ipt t c
	while read -r ipt t c; do
		grep -qxF "$ipt $t $c" <<<"$IPT_BEFORE" && continue
		"$ipt" -t "$t" -S 2>/dev/null | grep -E -- "-j $c( |\$)" | grep -v "^-A $c " | sed 's/^-A /-D /' |
			while read -r rule; do eval "$ipt -t $t $rule" 2>/dev/null; done
		"$ipt" -t "$t" -F "$c" 2>/dev/null
		echo "$ipt $t $c"
	done < <(ipt_chains) >"$W/.ipt-new"
	while read -r ipt t c; do "$ipt" -t "$t" -X "$c" 2>/dev/null; done <"$W/.ipt-new"
}
IPT_BEFORE="$(ipt_chains)"
PIDS=()
CGROUPS_BEFORE="$(ls -d /sys/fs/cgroup/*/kubepods* /sys/fs/cgroup/unified/kubepods* 2>/dev/null || true)"
DUMMY_CREATED=0
ADDR_ADDED=0
ADDR_DEV=lo

teardown() {
	rc=$?
	set +e
	if [[ ${E2E_KEEP:-0} == 1 && -t 0 ]]; then
		echo "E2E_KEEP=1: cluster left running (KUBECONFIG=$KUBECONFIG); press Enter to tear down" >&2
		read -r _
	fi
	log "teardown"
	if [[ -S "$SOCK" ]]; then
		"$K" get pods -A -o wide >"$L/final-pods.txt" 2>&1
		"$K" get events -A --sort-by=.lastTimestamp >"$L/final-events.txt" 2>&1
	fi
	# kubelet first, so it does not restart what we stop.
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		[[ ${PIDN[$i]} == kubelet ]] && kill "${PIDS[$i]}" 2>/dev/null && wait "${PIDS[$i]}" 2>/dev/null
	done
	if [[ -S "$SOCK" ]]; then
		for t in $(ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
			ctr -a "$SOCK" -n k8s.io tasks kill -a -s SIGKILL "$t" >/dev/null 2>&1
		done
		sleep 1
		for t in $(ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
			ctr -a "$SOCK" -n k8s.io tasks delete -f "$t" >/dev/null 2>&1
		done
		for c in $(ctr -a "$SOCK" -n k8s.io containers ls -q 2>/dev/null); do
			ctr -a "$SOCK" -n k8s.io containers delete "$c" >/dev/null 2>&1
		done
	fi
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill "${PIDS[$i]}" 2>/dev/null && wait "${PIDS[$i]}" 2>/dev/null
	done
	# Every mount under the work dir (kubelet dir, containerd state, FUSE),
	# deepest first, and every mount of a file of the work dir elsewhere
	# (defensive: a pod with a Bidirectional /dev would leave its
	# /dev/termination-log on the host's /dev; check f fails on that).
	for _ in 1 2 3; do
		mapfile -t mnts < <(awk -v w="$W/" 'index($5, w) == 1 || index($4, w) == 1 {print $5}' /proc/self/mountinfo | sort -r)
		((${#mnts[@]})) || break
		for m in "${mnts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
	done
	# Mounts that appeared on the host's /dev during the run (check f reports
	# them): take each extra one off again, topmost first.
	if [[ -n ${DEV_MOUNTS_BEFORE+x} ]]; then
		while read -r mp extra; do
			for ((k = 0; k < extra; k++)); do umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null; done
		done < <(diff <(echo "$DEV_MOUNTS_BEFORE") <(dev_mounts) | awk '$1 == ">" {n[$2]++} END {for (m in n) print m, n[m]}')
	fi
	# Cgroups the kubelet made.
	for d in /sys/fs/cgroup/*/kubepods* /sys/fs/cgroup/unified/kubepods*; do
		[[ -d $d ]] || continue
		grep -qxF "$d" <<<"$CGROUPS_BEFORE" && continue
		find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
	ipt_cleanup
	((ADDR_ADDED)) && ip addr del "$NODE_IP/32" dev "$ADDR_DEV" 2>/dev/null
	((DUMMY_CREATED)) && ip link del "$DUMMY" 2>/dev/null
	# Keep the logs, drop the rest.
	find "$W" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} + 2>/dev/null
	log "logs kept in $L; total $(($(date +%s) - T0))s; exit $rc"
	exit $rc
}
trap teardown EXIT

# The host's mounts at and under /dev, before any pod runs: the driver's
# containers must leave them as they were.
dev_mounts() { awk '$5 == "/dev" || index($5, "/dev/") == 1 {print $5, $9, $10}' /proc/self/mountinfo | sort; }
DEV_MOUNTS_BEFORE="$(dev_mounts)"
trap 'exit 130' INT TERM

PIDN=()
start() { # name cmd...
	local n=$1
	shift
	"$@" >"$L/$n.log" 2>&1 &
	PIDS+=($!)
	PIDN+=("$n")
	log "started $n (pid $!)"
}
alive() { # name: fail if it died
	local i
	for i in "${!PIDN[@]}"; do
		if [[ ${PIDN[$i]} == "$1" ]] && ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
			tail -20 "$L/$1.log" >&2
			die "$1 exited"
		fi
	done
}
waitfor() { # what timeout cmd...: retry cmd until it succeeds
	local what=$1 t=$2 end
	shift 2
	end=$(($(date +%s) + t))
	until "$@" >/dev/null 2>&1; do
		(($(date +%s) < end)) || { log "timeout (${t}s) waiting for $what"; return 1; }
		sleep 1
	done
}

# ------------------------------------------------------------ builds
log "building daxfs-csi, e2etool, mkimage"
(cd "$REPO" && CGO_ENABLED=0 go build -o "$W/bin/daxfs-csi" ./cmd/daxfs-csi &&
	CGO_ENABLED=0 go build -o "$W/bin/e2etool" ./test/e2e/kube/e2etool &&
	CGO_ENABLED=0 go build -o "$W/bin/mkimage" ./test/e2e/kube/mkimage) >&2
DAX="$W/bin/daxfs-csi"

# The image tree and its DAXFS image (in the allow-listed dir).
TREE="$W/tree"
mkdir -p "$TREE/sub/deeper"
head -c 1048576 /dev/urandom >"$TREE/random-1MiB.bin"
head -c 12345 /dev/urandom >"$TREE/sub/odd-size.bin"
echo "hello from daxfs-csi e2e" >"$TREE/hello.txt"
: >"$TREE/sub/empty"
seq 1 20000 >"$TREE/sub/deeper/numbers.txt"
ln -s ../hello.txt "$TREE/sub/link-to-hello"
IMG="$W/images/e2e.daxfs"
"$DAX" image build "$TREE" -o "$IMG" >"$L/image-build.log" 2>&1 || { cat "$L/image-build.log" >&2; die "image build"; }
"$W/bin/e2etool" hash "$TREE" >"$W/expected.txt"
log "image $IMG ($(stat -c %s "$IMG") bytes), $(wc -l <"$W/expected.txt") files"

"$W/bin/mkimage" -o "$W/images.tar" \
	-bin "$DAX" -entrypoint /daxfs-csi -tag daxfs-csi:e2e \
	-bin "$W/bin/e2etool" -entrypoint /e2etool,pause -tag registry.k8s.io/pause:3.10 \
	-bin "$W/bin/e2etool" -entrypoint /e2etool,read,/data -tag daxfs-e2e-reader:e2e >/dev/null

# ------------------------------------------------------------ network, pki
# A dummy interface when the kernel has the module, else the loopback.
if ip link show "$DUMMY" >/dev/null 2>&1 || ip link add "$DUMMY" type dummy 2>/dev/null; then
	DUMMY_CREATED=1
	ip link set "$DUMMY" up
	ADDR_DEV=$DUMMY
else
	ADDR_DEV=lo
fi
ip -o addr show | grep -qF " $NODE_IP/" && die "$NODE_IP is already in use here; set E2E_NODE_IP"
ip addr add "$NODE_IP/32" dev "$ADDR_DEV"
ADDR_ADDED=1
log "node address $NODE_IP/32 on $ADDR_DEV"
mount --make-rshared /

openssl genrsa -out "$W/pki/sa.key" 2048 2>/dev/null
openssl rsa -in "$W/pki/sa.key" -pubout -out "$W/pki/sa.pub" 2>/dev/null
TOKEN="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "$TOKEN,admin,admin,system:masters" >"$W/pki/tokens.csv"
cat >"$KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "https://$NODE_IP:16443", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: "$TOKEN"}
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
EOF

# ------------------------------------------------------------ control plane
start etcd "$ETCD" --name e2e --data-dir "$W/etcd" \
	--listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
	--listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
	--initial-cluster e2e=http://127.0.0.1:23800
start kube-apiserver "$KBIN/kube-apiserver" --etcd-servers=http://127.0.0.1:23790 \
	--bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port=16443 \
	--cert-dir="$W/pki/apiserver" --token-auth-file="$W/pki/tokens.csv" \
	--authorization-mode=AlwaysAllow --allow-privileged=true \
	--service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$W/pki/sa.pub" \
	--service-account-signing-key-file="$W/pki/sa.key" --service-cluster-ip-range=10.96.0.0/24 \
	--kubelet-preferred-address-types=InternalIP
waitfor "kube-apiserver /readyz" "$TMO" "$K" get --raw /readyz || { alive kube-apiserver; die "apiserver not ready"; }
log "kube-apiserver ready"
start kube-controller-manager "$KBIN/kube-controller-manager" --kubeconfig="$KUBECONFIG" \
	--leader-elect=false --service-account-private-key-file="$W/pki/sa.key" \
	--bind-address=127.0.0.1 --secure-port=0 --cert-dir="$W/pki/kcm" --controllers='*'
start kube-scheduler "$KBIN/kube-scheduler" --kubeconfig="$KUBECONFIG" --leader-elect=false \
	--bind-address=127.0.0.1 --secure-port=0 --cert-dir="$W/pki/sched"

# ------------------------------------------------------------ containerd
cat >"$W/cni/net.d/10-e2e.conflist" <<'EOF'
{"cniVersion": "0.4.0", "name": "e2e", "plugins": [
  {"type": "bridge", "bridge": "daxe2ebr0", "isGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.251.0/24"}]]}},
  {"type": "loopback"}]}
EOF
cat >"$CTRD/config.toml" <<EOF
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
[grpc]
  address = "$SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$W/cni/net.d"
EOF
start containerd containerd --config "$CTRD/config.toml"
waitfor "containerd socket" 30 ctr -a "$SOCK" version || { alive containerd; die "containerd"; }
ctr -a "$SOCK" -n k8s.io images import "$W/images.tar" >"$L/ctr-import.log" 2>&1 || { cat "$L/ctr-import.log" >&2; die "ctr import"; }
log "images imported: $(ctr -a "$SOCK" -n k8s.io images ls -q | tr '\n' ' ')"

# ------------------------------------------------------------ kubelet
cat >"$W/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: "$NODE_IP"
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: "unix://$SOCK"
podLogsDir: "$W/pod-logs"
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: /etc/resolv.conf
serializeImagePulls: false
EOF
start kubelet "$KBIN/kubelet" --config="$W/kubelet.yaml" --kubeconfig="$KUBECONFIG" \
	--root-dir="$KR" --hostname-override="$NODE" --node-ip="$NODE_IP" --cert-dir="$W/pki/kubelet" --v=2
waitfor "node Ready" "$TMO" bash -c "'$K' get node $NODE -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True" ||
	{ alive kubelet; "$K" describe node "$NODE" >&2; die "node not Ready"; }
log "node $NODE Ready"
waitfor "default service account" "$TMO" "$K" get serviceaccount default -n default || die "no default service account"

# ------------------------------------------------------------ driver
"$K" apply -f "$REPO/deploy/examples/csidriver.yaml" >&2
sed -e "s#@KR@#$KR#g" -e "s#@STATE@#$W/state#g" -e "s#@IMAGES@#$W/images#g" \
	"$HERE/manifests/node.yaml" >"$W/node.yaml"
"$K" apply -f "$W/node.yaml" >&2
waitfor "driver registered in CSINode" "$TMO" bash -c "'$K' get csinode $NODE -o jsonpath='{.spec.drivers[*].name}' | grep -qw $DRIVER" || {
	"$K" -n kube-system get pods -o wide >&2
	"$K" -n kube-system describe pods -l app=daxfs-csi-node >&2 || true
	die "driver did not register with the kubelet"
}
log "driver registered with the kubelet"
if ((DYNAMIC)); then
	# A host process (no registry to hold its image), central mode, talking
	# to the plugin's socket; the plugin serves the per-node controller.
	start csi-provisioner "$PROV" --csi-address="$KR/plugins/$DRIVER/csi.sock" --kubeconfig="$KUBECONFIG" \
		--leader-election=false --timeout=60s --v=4
fi
POOL="memfile:$W/state/pool"

# ------------------------------------------------------------ assertions
FAILS=0
declare -A RESULT
ORDER=()
result() { # name ok|fail detail
	ORDER+=("$1")
	RESULT[$1]="$2"
	if [[ $2 == ok ]]; then log "PASS $1${3:+: $3}"; else
		log "FAIL $1${3:+: $3}"
		FAILS=$((FAILS + 1))
	fi
}
pod_reads() { # pod: its log equals the tree's hashes
	local p=$1
	if ! waitfor "pod $p output" "$TMO" bash -c "'$K' logs $p 2>/dev/null | grep -q '^READ-'"; then
		"$K" describe pod "$p" >"$L/describe-$p.txt" 2>&1
		echo "pod $p produced no output (see $L/describe-$p.txt)"
		return 1
	fi
	"$K" logs "$p" >"$L/pod-$p.out" 2>&1
	if ! diff <(grep -v '^READ-' "$L/pod-$p.out") "$W/expected.txt" >"$L/diff-$p.txt"; then
		echo "pod $p read different bytes: $(head -c 400 "$L/diff-$p.txt")"
		return 1
	fi
	grep -q '^READ-DONE' "$L/pod-$p.out" || { echo "pod $p: $(grep '^READ-' "$L/pod-$p.out")"; return 1; }
	echo "$(wc -l <"$W/expected.txt") file hashes match"
}
extents() { "$DAX" pool status --json --pool "$POOL" 2>>"$L/pool-status.log" | tee -a "$L/pool-status.json" | grep -c '"digest"'; }
pool_empty() { [[ $(extents) == 0 ]]; }
# Mounts left by volumes: under the given pods' dirs, the CSI staging dirs,
# and FUSE mounts anywhere under the work dir (the node's image mounts).
vol_mounts() { # pod uids...
	local u
	{
		for u in "$@"; do awk -v p="$KR/pods/$u/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo; done
		awk -v c="$KR/plugins/kubernetes.io/csi/" -v w="$W/" \
			'index($5, c) == 1 || (index($5, w) == 1 && $0 ~ / - fuse/) {print $5}' /proc/self/mountinfo
	} | sort -u
}
no_vol_mounts() { [[ -z $(vol_mounts "$@") ]]; }
pod_mounts() { # uid: mounts under that pod's dir
	awk -v p="$KR/pods/$1/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo
}
uid() { "$K" get pod "$1" -o jsonpath='{.metadata.uid}'; }
inline_pod() { sed -e "s#@IMAGE@#file://$IMG#g" -e "s#@NAME@#$1#g" "$HERE/manifests/inline-pod.yaml" | "$K" apply -f - >&2; }
check() { # name cmd...: PASS when cmd succeeds; its stdout is the detail
	local n=$1 out
	shift
	if out=$("$@"); then result "$n" ok "$out"; else result "$n" fail "$out"; fi
}

# (a) inline ephemeral volume reads the image
inline_pod reader-inline
check a-inline-volume-reads-image pod_reads reader-inline
# (a2) deleting it unpublishes and releases the extent
a_release() {
	local u n
	u=$(uid reader-inline)
	echo "extents while running: $(extents)"
	"$K" delete pod reader-inline --wait=true --timeout="${TMO}s" >&2 || { echo "pod not deleted"; return 1; }
	if ! waitfor "pool empty after the inline pod" "$TMO" pool_empty; then
		echo "extents left after the inline pod went: $(extents)"
		return 1
	fi
	if ! waitfor "inline mounts gone" 30 no_vol_mounts "$u"; then
		echo "mounts left: $(vol_mounts "$u" | tr '\n' ' ')"
		return 1
	fi
	echo "pool empty, no mounts left"
}
check a2-inline-delete-releases-extent a_release

# (b) static PV + PVC, alongside a second inline pod of the same image
inline_pod reader-inline-2
sed -e "s#@IMAGE@#file://$IMG#g" "$HERE/manifests/static-pv-pod.yaml" | "$K" apply -f - >&2
check b-static-pv-reads-image pod_reads reader-pvc
check b-inline-2-reads-image pod_reads reader-inline-2
"$K" get pv,pvc -o wide >"$L/pv-pvc.txt" 2>&1

# (c) two running pods of one image: one extent
c_one_extent() {
	local n
	n=$(extents || true)
	"$DAX" pool status --pool "$POOL" >"$L/pool-status-two-pods.txt" 2>&1
	[[ $n == 1 ]] || { echo "pool holds ${n:-?} extents with both pods running (want 1): $(cat "$L/pool-status-two-pods.txt")"; return 1; }
	echo "pool holds 1 extent for 2 pods"
}
check c-two-pods-one-extent c_one_extent

# (d) delete the pods: unpublish, unstage, the extent released, no mounts
UID_I2=$(uid reader-inline-2)
UID_PVC=$(uid reader-pvc)
d_unpublish() {
	"$K" delete pod reader-inline-2 reader-pvc --wait=true --timeout="${TMO}s" >&2 || { echo "pods not deleted"; return 1; }
	if ! waitfor "pod mounts gone" 30 bash -c "[[ -z \"\$(awk -v a='$KR/pods/$UID_I2/' -v b='$KR/pods/$UID_PVC/' 'index(\$5, a) == 1 || index(\$5, b) == 1' /proc/self/mountinfo)\" ]]"; then
		echo "mounts left under the pods' dirs: $(pod_mounts "$UID_I2") $(pod_mounts "$UID_PVC")"
		return 1
	fi
	echo "no mounts left under the deleted pods' dirs"
}
check d1-delete-unpublishes d_unpublish
"$K" delete pvc e2e-static-pvc --wait=false >&2 || true
d_release() {
	local ok=1
	waitfor "pool empty" "$TMO" pool_empty || ok=0
	waitfor "no volume mounts" 10 no_vol_mounts "$UID_I2" "$UID_PVC" || ok=0
	if ((ok)); then
		echo "pool empty, no staging/FUSE mounts left"
		return 0
	fi
	echo "extents left: $(extents); mounts left: $(vol_mounts "$UID_I2" "$UID_PVC" | tr '\n' ' ')"
	local why
	why=$(grep -o 'GetDeviceMountRefs check failed.*' "$L/kubelet.log" 2>/dev/null | tail -1 || true)
	[[ -z $why ]] || echo "; kubelet never calls NodeUnstageVolume: ${why:0:600}"
	return 1
}
check d2-unstage-releases-extent d_release

# (e) dynamic provisioning through external-provisioner
if ((DYNAMIC)); then
	sed -e "s#@IMAGE@#file://$IMG#g" "$HERE/manifests/dynamic-pvc-pod.yaml" | "$K" apply -f - >&2
	e_dynamic() {
		if ! waitfor "dynamic PVC Bound" "$TMO" bash -c "[[ \$('$K' get pvc e2e-dynamic-pvc -o jsonpath='{.status.phase}') == Bound ]]"; then
			"$K" describe pvc e2e-dynamic-pvc >"$L/describe-e2e-dynamic-pvc.txt" 2>&1
			echo "PVC not Bound (see $L/describe-e2e-dynamic-pvc.txt, csi-provisioner.log)"
			return 1
		fi
		echo "PV $("$K" get pvc e2e-dynamic-pvc -o jsonpath='{.spec.volumeName}') provisioned;"
		pod_reads reader-dynamic
	}
	check e-dynamic-pv-reads-image e_dynamic
	"$K" get pv -o yaml >"$L/pv-dynamic.yaml" 2>&1
	"$K" delete pod reader-dynamic --wait=true --timeout="${TMO}s" >&2 || true
	"$K" delete pvc e2e-dynamic-pvc --wait=false >&2 || true
else
	log "dynamic provisioning skipped (no cached csi-provisioner; E2E_DYNAMIC=1 builds it)"
fi

# (f) the driver pod's /dev mount must not carry the runtime's own mounts
# (shm, termination-log) onto the host's /dev.
f_host_dev() {
	local now
	now="$(dev_mounts)"
	if [[ $now == "$DEV_MOUNTS_BEFORE" ]]; then
		echo "host /dev mounts unchanged"
		return 0
	fi
	echo "host /dev mounts changed:"
	diff <(echo "$DEV_MOUNTS_BEFORE") <(echo "$now") | grep '^[<>]' | head -5
	return 1
}
check f-host-dev-untouched f_host_dev

"$K" -n kube-system logs -l app=daxfs-csi-node -c daxfs-csi --tail=-1 >"$L/daxfs-csi-plugin.log" 2>&1 || true
"$K" -n kube-system logs -l app=daxfs-csi-node -c fuse-host --tail=-1 >"$L/daxfs-csi-fuse-host.log" 2>&1 || true

echo
echo "=== daxfs-csi kube e2e ($(($(date +%s) - T0))s) ==="
for r in "${ORDER[@]}"; do printf '%-4s %s\n' "$([[ ${RESULT[$r]} == ok ]] && echo PASS || echo FAIL)" "$r"; done
((FAILS == 0)) || { echo "$FAILS assertion(s) failed; logs in $L"; exit 1; }
echo "all passed"
