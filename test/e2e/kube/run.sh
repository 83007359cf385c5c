#!/usr/bin/env bash
# daxfs-csi installed with `helm install` on a real two-node cluster, end to
# end (see README.md here).
#
# As root: installs what is missing (apt), builds/caches the Kubernetes
# binaries, helm and csi-provisioner by version, builds the image with
# `make image` (twice: the upgrade needs a second tag), starts a throwaway
# cluster under a work dir in /tmp -- etcd, kube-apiserver,
# controller-manager, scheduler, kube-proxy and two nodes, each a kubelet
# with its own containerd, root dir, ports, pod CIDR and cgroup root --
# labels node A as a pool node, installs charts/daxfs-csi and checks what
# an admin and a user see. Everything is torn down by a trap on exit; the
# logs stay in $W/logs.
#
# Environment: DAXFS_CACHE (binary cache, default ~/.cache/daxfs-csi),
# E2E_NODE_IP / E2E_NODE_B_IP (default 192.0.2.231 / .232, put on a dummy
# interface or lo), E2E_KEEP=1 (leave the cluster running until Enter is
# pressed), E2E_TIMEOUT (seconds per wait, default 120).
set -euo pipefail

T0=$(date +%s)
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
source "$REPO/hack/versions.sh"
CACHE_ROOT="${DAXFS_CACHE:-$HOME/.cache/daxfs-csi}"
KBIN="$CACHE_ROOT/k8s-$K8S_VERSION"
IP_A="${E2E_NODE_IP:-192.0.2.231}"
IP_B="${E2E_NODE_B_IP:-192.0.2.232}"
NODE_A=e2e-node-a # the pool node
NODE_B=e2e-node-b # no pool: the node plugin must not run here
DUMMY=daxe2e0
DRIVER=daxfs.csi.io
NS=daxfs-csi
REL=daxfs
POOL_LABEL=daxfs.io/pool
TMO="${E2E_TIMEOUT:-120}"

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
	apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need_apt[@]}" >&2 ||
		{ apt-get -o DPkg::Lock::Timeout=600 update >&2 &&
			apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need_apt[@]}" >&2; }
	# Debian's packages may start services we do not want.
	for s in etcd containerd; do service "$s" stop >/dev/null 2>&1 || true; done
fi

# ------------------------------------------------------------ 1b. binaries
# etcd and the Kubernetes binaries: hack/envtest-assets.sh, built once into
# the same cache dir by version; helm: hack/helm.sh, the same way.
DAXFS_CACHE="$CACHE_ROOT" K8S_VERSION="$K8S_VERSION" \
	K8S_EXTRA="kubelet kube-controller-manager kube-scheduler kube-proxy" "$REPO/hack/envtest-assets.sh" >/dev/null
ETCD="$(command -v etcd || echo "$KBIN/etcd")"
HELM="$(DAXFS_CACHE="$CACHE_ROOT" "$REPO/hack/helm.sh")"

# external-provisioner (the chart's csi-provisioner container): every run
# checks dynamic provisioning with it.
PROV="$(DAXFS_CACHE="$CACHE_ROOT" "$REPO/hack/csi-provisioner.sh")"

# ------------------------------------------------------------ work dir, trap
W="$(mktemp -d /tmp/daxfs-kube-e2e.XXXXXX)"
chmod 755 "$W"
L="$W/logs"
STATE="$W/state"   # the node plugin's state dir (holds the memfile pool)
IMAGES="$W/images" # the allow-listed image dir
mkdir -p "$L" "$W/bin" "$IMAGES" "$STATE" "$W/pki"
export KUBECONFIG="$W/admin.kubeconfig"
K="$KBIN/kubectl"
log "work dir $W (logs in $L)"

# Per node: kubelet root dir, containerd, CNI config, cgroup root.
declare -A IP=([a]=$IP_A [b]=$IP_B) NAME=([a]=$NODE_A [b]=$NODE_B)
KR_A="$W/a/kubelet"
kr() { echo "$W/$1/kubelet"; }
sock() { echo "$W/$1/containerd/containerd.sock"; }
CGROOT_PREFIX=daxe2e
cg_hier() { awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts; }

# iptables chains the kubelets and kube-proxy add (KUBE-*): remembered so
# the teardown removes only those this run created.
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
IP_FORWARD_BEFORE="$(cat /proc/sys/net/ipv4/ip_forward)"
PIDS=()
PIDN=()
DUMMY_CREATED=0
ADDRS_ADDED=()
ADDR_DEV=lo

teardown() {
	rc=$?
	set +e
	if [[ ${E2E_KEEP:-0} == 1 && -t 0 ]]; then
		echo "E2E_KEEP=1: cluster left running (KUBECONFIG=$KUBECONFIG); press Enter to tear down" >&2
		read -r _
	fi
	log "teardown"
	if [[ -S "$(sock a)" ]]; then
		"$K" get pods -A -o wide >"$L/final-pods.txt" 2>&1
		"$K" get events -A --sort-by=.lastTimestamp >"$L/final-events.txt" 2>&1
	fi
	# kubelets first, so they do not restart what we stop.
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		[[ ${PIDN[$i]} == kubelet-* ]] && kill "${PIDS[$i]}" 2>/dev/null && wait "${PIDS[$i]}" 2>/dev/null
	done
	local n s
	for n in a b; do
		s="$(sock $n)"
		[[ -S $s ]] || continue
		for t in $(ctr -a "$s" -n k8s.io tasks ls -q 2>/dev/null); do
			ctr -a "$s" -n k8s.io tasks kill -a -s SIGKILL "$t" >/dev/null 2>&1
		done
		sleep 1
		for t in $(ctr -a "$s" -n k8s.io tasks ls -q 2>/dev/null); do
			ctr -a "$s" -n k8s.io tasks delete -f "$t" >/dev/null 2>&1
		done
		for c in $(ctr -a "$s" -n k8s.io containers ls -q 2>/dev/null); do
			ctr -a "$s" -n k8s.io containers delete "$c" >/dev/null 2>&1
		done
	done
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill "${PIDS[$i]}" 2>/dev/null && wait "${PIDS[$i]}" 2>/dev/null
	done
	# Every mount under the work dir (kubelet dirs, containerd state, FUSE),
	# deepest first, and every mount of a file of the work dir elsewhere.
	for _ in 1 2 3; do
		mapfile -t mnts < <(awk -v w="$W/" 'index($5, w) == 1 || index($4, w) == 1 {print $5}' /proc/self/mountinfo | sort -r)
		((${#mnts[@]})) || break
		for m in "${mnts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
	done
	# Mounts that appeared on the host's /dev during the run (check 5
	# reports them): take each extra one off again, topmost first.
	if [[ -n ${DEV_MOUNTS_BEFORE+x} ]]; then
		while read -r mp extra; do
			for ((k = 0; k < extra; k++)); do umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null; done
		done < <(diff <(echo "$DEV_MOUNTS_BEFORE") <(dev_mounts) | awk '$1 == ">" {n[$2]++} END {for (m in n) print m, n[m]}')
	fi
	# The kubelets' cgroup roots (and everything the kubelets made in them).
	for h in $(cg_hier); do
		for d in "$h/$CGROOT_PREFIX"-*; do
			[[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
		done
	done
	ipt_cleanup
	for n in a b; do ip link del "daxe2ebr-$n" 2>/dev/null; done
	echo "$IP_FORWARD_BEFORE" >/proc/sys/net/ipv4/ip_forward 2>/dev/null
	for a in "${ADDRS_ADDED[@]}"; do ip addr del "$a/32" dev "$ADDR_DEV" 2>/dev/null; done
	((DUMMY_CREATED)) && ip link del "$DUMMY" 2>/dev/null
	# Keep the logs, drop the rest.
	find "$W" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} + 2>/dev/null
	log "logs kept in $L; total $(($(date +%s) - T0))s; exit $rc"
	exit $rc
}
trap teardown EXIT

# The host's mounts at and under /dev, before any pod runs: the driver's
# containers must leave them as they were (both nodes share this /dev).
dev_mounts() { awk '$5 == "/dev" || index($5, "/dev/") == 1 {print $5, $9, $10}' /proc/self/mountinfo | sort; }
DEV_MOUNTS_BEFORE="$(dev_mounts)"
trap 'exit 130' INT TERM

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
# The image under test is what `make image` builds; a second build with
# another version stamp (so another binary and digest) is the upgrade.
VERSION="$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo devel)"
TAG1=e2e-1
TAG2=e2e-2
log "make image (tags $TAG1, $TAG2)"
make -s -C "$REPO" image IMAGE_DIR="$W/image-1" IMAGE_TAG="$TAG1" VERSION="$VERSION" >"$L/make-image-1.log" 2>&1 ||
	{ cat "$L/make-image-1.log" >&2; die "make image"; }
make -s -C "$REPO" image IMAGE_DIR="$W/image-2" IMAGE_TAG="$TAG2" VERSION="$VERSION-upgrade" >"$L/make-image-2.log" 2>&1 ||
	{ cat "$L/make-image-2.log" >&2; die "make image (upgrade)"; }
log "images $(cat "$W/image-1/ref") and $(cat "$W/image-2/ref")"
DAX="$W/image-1/daxfs-csi" # the same binary, run on the host for `pool status`
(cd "$REPO" && CGO_ENABLED=0 go build -o "$W/bin/e2etool" ./test/e2e/kube/e2etool &&
	CGO_ENABLED=0 go build -o "$W/bin/mkimage" ./test/e2e/kube/mkimage) >&2

# The image tree and its DAXFS image (in the allow-listed dir).
TREE="$W/tree"
mkdir -p "$TREE/sub/deeper"
head -c 1048576 /dev/urandom >"$TREE/random-1MiB.bin"
head -c 12345 /dev/urandom >"$TREE/sub/odd-size.bin"
echo "hello from daxfs-csi e2e" >"$TREE/hello.txt"
: >"$TREE/sub/empty"
seq 1 20000 >"$TREE/sub/deeper/numbers.txt"
ln -s ../hello.txt "$TREE/sub/link-to-hello"
IMG="$IMAGES/e2e.daxfs"
"$DAX" image build "$TREE" -o "$IMG" >"$L/image-build.log" 2>&1 || { cat "$L/image-build.log" >&2; die "image build"; }
chmod 644 "$IMG" # the controller reads it as non-root
"$W/bin/e2etool" hash "$TREE" >"$W/expected.txt"
log "image $IMG ($(stat -c %s "$IMG") bytes), $(wc -l <"$W/expected.txt") files"

# The sandbox, the reader and csi-provisioner (built from the same module
# version as the chart's default image, under that image's name).
PROV_IMAGE="registry.k8s.io/sig-storage/csi-provisioner:$CSI_PROVISIONER_VERSION"
"$W/bin/mkimage" -o "$W/images.tar" \
	-bin "$W/bin/e2etool" -entrypoint /e2etool,pause -tag registry.k8s.io/pause:3.10 \
	-bin "$W/bin/e2etool" -entrypoint /e2etool,read,/data -tag daxfs-e2e-reader:e2e \
	-bin "$PROV" -entrypoint "/$(basename "$PROV")" -tag "$PROV_IMAGE" >/dev/null

# ------------------------------------------------------------ network, pki
# A dummy interface when the kernel has the module, else the loopback.
if ip link show "$DUMMY" >/dev/null 2>&1 || ip link add "$DUMMY" type dummy 2>/dev/null; then
	DUMMY_CREATED=1
	ip link set "$DUMMY" up
	ADDR_DEV=$DUMMY
fi
for a in "$IP_A" "$IP_B"; do
	ip -o addr show | grep -qF " $a/" && die "$a is already in use here; set E2E_NODE_IP / E2E_NODE_B_IP"
	ip addr add "$a/32" dev "$ADDR_DEV"
	ADDRS_ADDED+=("$a")
done
log "node addresses $IP_A, $IP_B on $ADDR_DEV"
mount --make-rshared /

# A CA and an apiserver certificate valid for the `kubernetes` Service IP:
# pods reach the API server in-cluster, through kube-proxy.
P="$W/pki"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$P/ca.key" -out "$P/ca.crt" -days 2 -subj /CN=daxfs-e2e-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$P/apiserver.key" -out "$P/apiserver.csr" -subj /CN=kube-apiserver 2>/dev/null
echo "subjectAltName=IP:10.96.0.1,IP:$IP_A,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" >"$P/san.ext"
openssl x509 -req -in "$P/apiserver.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
	-out "$P/apiserver.crt" -days 2 -extfile "$P/san.ext" 2>/dev/null
openssl genrsa -out "$P/sa.key" 2048 2>/dev/null
openssl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null
TOKEN="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "$TOKEN,admin,admin,system:masters" >"$P/tokens.csv"
cat >"$KUBECONFIG" <<KC
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "https://$IP_A:16443", certificate-authority: "$P/ca.crt"}
users:
- name: admin
  user: {token: "$TOKEN"}
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
KC

# ------------------------------------------------------------ control plane
start etcd "$ETCD" --name e2e --data-dir "$W/etcd" \
	--listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
	--listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
	--initial-cluster e2e=http://127.0.0.1:23800
start kube-apiserver "$KBIN/kube-apiserver" --etcd-servers=http://127.0.0.1:23790 \
	--bind-address="$IP_A" --advertise-address="$IP_A" --secure-port=16443 \
	--tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
	--token-auth-file="$P/tokens.csv" \
	--authorization-mode=AlwaysAllow --allow-privileged=true \
	--service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$P/sa.pub" \
	--service-account-signing-key-file="$P/sa.key" --service-cluster-ip-range=10.96.0.0/24 \
	--kubelet-preferred-address-types=InternalIP
waitfor "kube-apiserver /readyz" "$TMO" "$K" get --raw /readyz || { alive kube-apiserver; die "apiserver not ready"; }
log "kube-apiserver ready"
start kube-controller-manager "$KBIN/kube-controller-manager" --kubeconfig="$KUBECONFIG" \
	--leader-elect=false --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
	--bind-address=127.0.0.1 --secure-port=0 --cert-dir="$P/kcm" --controllers='*'
start kube-scheduler "$KBIN/kube-scheduler" --kubeconfig="$KUBECONFIG" --leader-elect=false \
	--bind-address=127.0.0.1 --secure-port=0 --cert-dir="$P/sched"
# One kube-proxy: both nodes share this host's network namespace.
cat >"$W/kube-proxy.yaml" <<KP
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$KUBECONFIG"}
hostnameOverride: $NODE_A
mode: iptables
clusterCIDR: 10.244.0.0/16
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0}
iptables: {localhostNodePorts: false}
KP
start kube-proxy "$KBIN/kube-proxy" --config="$W/kube-proxy.yaml" --v=2

# ------------------------------------------------------------ two nodes
node_up() { # a|b pod-subnet-octet kubelet-port healthz-port
	local n=$1 net=$2 port=$3 hport=$4 d="$W/$1" s
	s="$(sock "$n")"
	mkdir -p "$d/kubelet" "$d/containerd" "$d/cni/net.d" "$d/pod-logs"
	cat >"$d/cni/net.d/10-e2e.conflist" <<CNI
{"cniVersion": "0.4.0", "name": "e2e-$n", "plugins": [
  {"type": "bridge", "bridge": "daxe2ebr-$n", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$d/cni/ipam",
            "ranges": [[{"subnet": "10.244.$net.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "loopback"}]}
CNI
	cat >"$d/containerd/config.toml" <<CT
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
[grpc]
  address = "$s"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
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
    conf_dir = "$d/cni/net.d"
CT
	start "containerd-$n" containerd --config "$d/containerd/config.toml"
	waitfor "containerd-$n socket" 30 ctr -a "$s" version || { alive "containerd-$n"; die "containerd-$n"; }
	local tar
	for tar in "$W/images.tar" "$W/image-1/daxfs-csi.tar" "$W/image-2/daxfs-csi.tar"; do
		ctr -a "$s" -n k8s.io images import "$tar" >>"$L/ctr-import-$n.log" 2>&1 ||
			{ cat "$L/ctr-import-$n.log" >&2; die "ctr import $tar into node $n"; }
	done
	log "node $n images: $(ctr -a "$s" -n k8s.io images ls -q | grep -v '^sha256:' | tr '\n' ' ')"
	# Each kubelet manages its own cgroup root: a kubelet removes pod
	# cgroups it does not know, so two must never share one.
	local h cg="/$CGROOT_PREFIX-$n"
	for h in $(cg_hier); do
		mkdir -p "$h$cg"
		if [[ -f $h/cpuset.cpus ]]; then
			cat "$h/cpuset.cpus" >"$h$cg/cpuset.cpus"
			cat "$h/cpuset.mems" >"$h$cg/cpuset.mems"
		fi
	done
	cat >"$d/kubelet.yaml" <<KL
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: "${IP[$n]}"
port: $port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $hport
cgroupDriver: cgroupfs
cgroupRoot: "$cg"
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: "unix://$s"
podLogsDir: "$d/pod-logs"
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: /etc/resolv.conf
serializeImagePulls: false
KL
	start "kubelet-$n" "$KBIN/kubelet" --config="$d/kubelet.yaml" --kubeconfig="$KUBECONFIG" \
		--root-dir="$d/kubelet" --hostname-override="${NAME[$n]}" --node-ip="${IP[$n]}" --cert-dir="$d/kubelet-pki" --v=2
}
node_up a 251 10250 10248
node_up b 252 11250 11248
for n in a b; do
	waitfor "node ${NAME[$n]} Ready" "$TMO" bash -c "'$K' get node ${NAME[$n]} -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True" ||
		{ alive "kubelet-$n"; "$K" describe node "${NAME[$n]}" >&2; die "node ${NAME[$n]} not Ready"; }
done
log "nodes $NODE_A and $NODE_B Ready"
waitfor "default service account" "$TMO" "$K" get serviceaccount default -n default || die "no default service account"
# The documented step: mark the node that has a pool.
"$K" label node "$NODE_A" "$POOL_LABEL=true" >&2

# ------------------------------------------------------------ helm install
# Node A's pool is a 64 MiB memory file in the state dir (no DAX device on
# this machine); everything else is the chart's defaults.
VALUES=(
	--set image.repository=daxfs-csi --set "image.tag=$TAG1"
	--set "node.kubeletDir=$KR_A" --set "node.stateDir=$STATE" --set "node.imagesDir=$IMAGES"
	--set "node.pool.spec=memfile:$STATE/pool" --set node.pool.size=64Mi
	--set "node.allowSources={file://$IMAGES/}" --set "controller.allowSources={file://$IMAGES/}"
	--set "controller.imagesDir=$IMAGES" --set node.logLevel=4
	--set storageClass.create=true --set "storageClass.parameters.image=file://$IMG"
)
log "helm install $REL ($TAG1)"
"$HELM" install "$REL" "$REPO/charts/daxfs-csi" --namespace "$NS" --create-namespace "${VALUES[@]}" \
	>"$L/helm-install.log" 2>&1 || { cat "$L/helm-install.log" >&2; die "helm install"; }
POOL="memfile:$STATE/pool"

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
check() { # name cmd...: PASS when cmd succeeds; its stdout is the detail
	local n=$1 out
	shift
	if out=$("$@"); then result "$n" ok "$out"; else result "$n" fail "$out"; fi
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
	echo "$(wc -l <"$W/expected.txt") file hashes match on $("$K" get pod "$p" -o jsonpath='{.spec.nodeName}')"
}
pool_json() { "$DAX" pool status --json --pool "$POOL" 2>>"$L/pool-status.log" | tee -a "$L/pool-status.json"; }
extents() { pool_json | grep -o '"digest"' | wc -l; }
pool_empty() { [[ $(extents) == 0 ]]; }
# Mounts left by volumes: under the given pods' dirs, the CSI staging dirs,
# and FUSE mounts anywhere under the work dir (the node's image mounts).
vol_mounts() { # pod uids...
	local u
	{
		for u in "$@"; do awk -v p="$KR_A/pods/$u/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo; done
		awk -v c="$KR_A/plugins/kubernetes.io/csi/" -v w="$W/" \
			'index($5, c) == 1 || (index($5, w) == 1 && $0 ~ / - fuse/) {print $5}' /proc/self/mountinfo
	} | sort -u
}
no_vol_mounts() { [[ -z $(vol_mounts "$@") ]]; }
pod_mounts() { awk -v p="$KR_A/pods/$1/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo; }
uid() { "$K" get pod "$1" -o jsonpath='{.metadata.uid}'; }
subst() { sed -e "s#@IMAGE@#file://$IMG#g" -e "s#@NAME@#${1:-}#g"; }
inline_pod() { subst "$1" <"$HERE/manifests/inline-pod.yaml" | "$K" apply -f - >&2; }
node_pods() { "$K" -n "$NS" get pods -l app.kubernetes.io/component=node -o jsonpath='{range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase}{"\n"}{end}'; }

# (1) the controller Deployment Ready in the cluster, holding the lease;
# the node plugin only on the pool node, registered there.
c1_controller() {
	if ! waitfor "controller Deployment available" "$TMO" bash -c \
		"[[ \$('$K' -n $NS get deploy $REL-controller -o jsonpath='{.status.readyReplicas}') == 1 ]]"; then
		"$K" -n "$NS" describe pods -l app.kubernetes.io/component=controller >"$L/describe-controller.txt" 2>&1
		echo "controller not Ready (see $L/describe-controller.txt)"
		return 1
	fi
	local pod holder
	pod=$("$K" -n "$NS" get pods -l app.kubernetes.io/component=controller -o jsonpath='{.items[0].metadata.name}')
	waitfor "leader lease" 60 bash -c "'$K' -n $NS get lease daxfs-csi-controller -o jsonpath='{.spec.holderIdentity}' | grep -q '^$pod'" || true
	holder=$("$K" -n "$NS" get lease daxfs-csi-controller -o jsonpath='{.spec.holderIdentity}' 2>&1)
	[[ $holder == "$pod"* ]] || { echo "lease daxfs-csi-controller held by '$holder', not $pod"; return 1; }
	local uids
	uids=$("$K" -n "$NS" get pod "$pod" -o jsonpath='{.spec.securityContext.runAsUser}')
	[[ $uids == 65532 ]] || { echo "controller pod runs as uid '$uids'"; return 1; }
	echo "$pod Ready on $("$K" -n "$NS" get pod "$pod" -o jsonpath='{.spec.nodeName}') as uid $uids, holds lease daxfs-csi-controller"
}
check 1-controller-ready-holds-lease c1_controller
c1_node() {
	if ! waitfor "driver registered on $NODE_A" "$TMO" bash -c "'$K' get csinode $NODE_A -o jsonpath='{.spec.drivers[*].name}' | grep -qw $DRIVER"; then
		"$K" -n "$NS" describe pods -l app.kubernetes.io/component=node >"$L/describe-node.txt" 2>&1
		echo "driver did not register on $NODE_A (see $L/describe-node.txt)"
		return 1
	fi
	local pods
	pods=$(node_pods)
	[[ $(wc -l <<<"$pods") == 1 && $pods == *" $NODE_A Running" ]] || { echo "node plugin pods: $pods"; return 1; }
	if "$K" get csinode "$NODE_B" -o jsonpath='{.spec.drivers[*].name}' 2>/dev/null | grep -qw "$DRIVER"; then
		echo "driver registered on $NODE_B, which has no pool"
		return 1
	fi
	waitfor "DaxNode $NODE_A" 60 "$K" get daxnode "$NODE_A" || { echo "no DaxNode $NODE_A"; return 1; }
	echo "one node plugin, on $NODE_A; none on $NODE_B; DaxNode $NODE_A reported"
}
check 1b-node-plugin-only-on-pool-node c1_node

# (a) inline ephemeral volume reads the image
inline_pod reader-inline
check a-inline-volume-reads-image pod_reads reader-inline
# (a2) deleting it unpublishes and releases the extent
a_release() {
	local u
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
subst <"$HERE/manifests/static-pv-pod.yaml" | "$K" apply -f - >&2
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
	if ! waitfor "pod mounts gone" 30 bash -c "[[ -z \"\$(awk -v a='$KR_A/pods/$UID_I2/' -v b='$KR_A/pods/$UID_PVC/' 'index(\$5, a) == 1 || index(\$5, b) == 1' /proc/self/mountinfo)\" ]]"; then
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
	return 1
}
check d2-unstage-releases-extent d_release
"$K" delete pv e2e-static-pv --wait=false >&2 || true

# (6) dynamic provisioning through the chart's external-provisioner, every
# run: Immediate binding, CreateVolume in the cluster-mode controller.
subst <"$HERE/manifests/dynamic-pvc-pod.yaml" | "$K" apply -f - >&2
e_dynamic() {
	if ! waitfor "dynamic PVC Bound" "$TMO" bash -c "[[ \$('$K' get pvc e2e-dynamic-pvc -o jsonpath='{.status.phase}') == Bound ]]"; then
		"$K" describe pvc e2e-dynamic-pvc >"$L/describe-e2e-dynamic-pvc.txt" 2>&1
		echo "PVC not Bound (see $L/describe-e2e-dynamic-pvc.txt and the csi-provisioner log)"
		return 1
	fi
	echo "PV $("$K" get pvc e2e-dynamic-pvc -o jsonpath='{.spec.volumeName}') provisioned by external-provisioner;"
	pod_reads reader-dynamic
}
check 6-dynamic-pv-reads-image e_dynamic
"$K" get pv -o yaml >"$L/pv-dynamic.yaml" 2>&1
"$K" delete pod reader-dynamic --wait=true --timeout="${TMO}s" >&2 || true
"$K" delete pvc e2e-dynamic-pvc --wait=true --timeout="${TMO}s" >&2 || true
"$K" delete storageclass daxfs-e2e >&2 || true
waitfor "pool empty after the dynamic volume" "$TMO" pool_empty || log "pool not empty after the dynamic volume: $(extents) extents"

# (2) a DaxImage pre-staged on node A before any pod asks for it.
DIGEST="sha256:$(sha256sum "$IMG" | cut -d' ' -f1)"
subst <"$HERE/manifests/daximage.yaml" | "$K" apply -f - >&2
c2_prestage() {
	if ! waitfor "extent of $DIGEST in node A's pool" "$TMO" bash -c "'$DAX' pool status --json --pool '$POOL' | grep -qF '\"$DIGEST\"'"; then
		echo "no extent of $DIGEST in the pool; DaxImage: $("$K" get daximage e2e-prestaged -o jsonpath='{.status}')"
		return 1
	fi
	if ! waitfor "DaxImage Ready on $NODE_A" "$TMO" bash -c \
		"[[ \$('$K' get daximage e2e-prestaged -o jsonpath='{.status.readyCount}/{.status.placements[0].node}/{.status.placements[0].state}') == 1/$NODE_A/Ready ]]"; then
		echo "DaxImage status: $("$K" get daximage e2e-prestaged -o jsonpath='{.status}')"
		return 1
	fi
	local pods
	pods=$("$K" get pods -n default -o name | wc -l)
	[[ $pods == 0 ]] || { echo "$pods pods exist: not a pre-stage"; return 1; }
	echo "extent of $DIGEST in $NODE_A's pool with no pod; DaxImage readyCount 1, placement $NODE_A Ready"
}
check 2-daximage-prestaged-on-node-a c2_prestage

# (3) a PVC of the chart's WaitForFirstConsumer StorageClass: its pods go
# to node A through capacity and topology; an inline pod reads too.
subst <"$HERE/manifests/wffc-pvc-pods.yaml" | "$K" apply -f - >&2
c3_wffc() {
	local out node pv aff
	out=$(pod_reads reader-wffc) || { echo "$out"; return 1; }
	node=$("$K" get pod reader-wffc -o jsonpath='{.spec.nodeName}')
	[[ $node == "$NODE_A" ]] || { echo "pod scheduled to $node"; return 1; }
	pv=$("$K" get pvc e2e-wffc-pvc -o jsonpath='{.spec.volumeName}')
	aff=$("$K" get pv "$pv" -o jsonpath='{.spec.nodeAffinity.required.nodeSelectorTerms[*].matchExpressions[*].values[*]}')
	[[ " $aff " == *" $NODE_A "* ]] || { echo "PV $pv node affinity '$aff' does not name $NODE_A"; return 1; }
	"$K" get csistoragecapacities -A -o yaml >"$L/csistoragecapacities.yaml" 2>&1
	grep -qF "$NODE_B" "$L/csistoragecapacities.yaml" && { echo "CSIStorageCapacity for $NODE_B"; return 1; }
	echo "$out; PV $pv affinity $aff"
}
check 3-wffc-pvc-pod-on-node-a c3_wffc
inline_pod reader-inline-3
check 3b-inline-volume-reads-image pod_reads reader-inline-3
"$K" delete pod reader-inline-3 --wait=false >&2 || true

# (4) helm upgrade to a new image tag rolls the node DaemonSet while
# reader-loop reads a file in a loop: no read error, same extent, mounts
# intact, and the new plugin serves a new volume.
loop_reads() { "$K" logs reader-loop 2>/dev/null | awk '/^LOOP reads=/ {split($2, a, "="); n = a[2]} END {print n + 0}'; }
c4_upgrade() {
	waitfor "reader-loop reading" "$TMO" bash -c "(( \$('$K' logs reader-loop 2>/dev/null | grep -c '^LOOP reads=[1-9]') > 0 ))" ||
		{ echo "reader-loop never read: $("$K" logs reader-loop 2>&1 | tail -3)"; return 1; }
	local old_pod fuse_pod u mounts_before ext_before reads_before
	old_pod=$("$K" -n "$NS" get pods -l app.kubernetes.io/component=node -o jsonpath='{.items[0].metadata.uid}')
	fuse_pod=$("$K" -n "$NS" get pods -l app.kubernetes.io/component=fuse-host -o jsonpath='{.items[0].metadata.uid}')
	u=$(uid reader-loop)
	mounts_before=$(pod_mounts "$u" | sort)
	ext_before=$(pool_json | tr -d ' \n' | grep -o "\"digest\":\"$DIGEST\",\"offset\":[0-9]*")
	[[ -n $ext_before ]] || { echo "no extent of $DIGEST before the upgrade: $(pool_json | tr -d ' \n')"; return 1; }
	reads_before=$(loop_reads)
	log "helm upgrade $REL to $TAG2"
	"$HELM" upgrade "$REL" "$REPO/charts/daxfs-csi" --namespace "$NS" --reuse-values --set "image.tag=$TAG2" \
		>"$L/helm-upgrade.log" 2>&1 || { echo "helm upgrade failed: $(tail -3 "$L/helm-upgrade.log")"; return 1; }
	"$K" -n "$NS" rollout status ds/$REL-node --timeout="${TMO}s" >&2 || { echo "node DaemonSet did not roll"; return 1; }
	local new_pod img
	new_pod=$("$K" -n "$NS" get pods -l app.kubernetes.io/component=node -o jsonpath='{.items[0].metadata.uid}')
	img=$("$K" -n "$NS" get pods -l app.kubernetes.io/component=node -o jsonpath='{.items[0].spec.containers[0].image}')
	[[ $new_pod != "$old_pod" && $img == *":$TAG2" ]] || { echo "node pod not replaced (uid $new_pod, image $img)"; return 1; }
	waitfor "new plugin registered" "$TMO" bash -c "'$K' get csinode $NODE_A -o jsonpath='{.spec.drivers[*].name}' | grep -qw $DRIVER" || true
	sleep 5 # keep reading on the new plugin for a while
	local reads_after errs
	reads_after=$(loop_reads)
	"$K" logs reader-loop >"$L/pod-reader-loop.out" 2>&1
	errs=$(grep -c '^LOOP-ERR' "$L/pod-reader-loop.out" || true)
	((errs == 0)) || { echo "$errs read errors: $(grep -m3 '^LOOP-ERR' "$L/pod-reader-loop.out")"; return 1; }
	((reads_after > reads_before)) || { echo "reader-loop stopped reading ($reads_before -> $reads_after)"; return 1; }
	[[ $(pool_json | tr -d ' \n' | grep -o "\"digest\":\"$DIGEST\",\"offset\":[0-9]*") == "$ext_before" ]] ||
		{ echo "extent moved: before $ext_before, now $(pool_json | tr -d ' \n')"; return 1; }
	[[ $(pod_mounts "$u" | sort) == "$mounts_before" ]] || { echo "reader-loop's mounts changed"; return 1; }
	[[ $("$K" -n "$NS" get pods -l app.kubernetes.io/component=fuse-host -o jsonpath='{.items[0].metadata.uid}') == "$fuse_pod" ]] ||
		{ echo "fuse-host pod was replaced (OnDelete expected)"; return 1; }
	echo "node pod replaced ($TAG1 -> $TAG2); reader-loop: $reads_before -> $reads_after reads, 0 errors; same extent ($ext_before), same mounts"
}
check 4-upgrade-rolls-daemonset-zero-read-errors c4_upgrade
inline_pod reader-inline-4
check 4b-upgraded-plugin-serves-new-volume pod_reads reader-inline-4

# (5) deleting the pods, PVCs and the DaxImage, then `helm uninstall`:
# no mount, no extent, no daxfs-csi process, /dev as it was.
"$K" -n "$NS" logs -l app.kubernetes.io/component=node -c plugin --tail=-1 >"$L/daxfs-csi-plugin.log" 2>&1 || true
"$K" -n "$NS" logs -l app.kubernetes.io/component=fuse-host --tail=-1 >"$L/daxfs-csi-fuse-host.log" 2>&1 || true
"$K" -n "$NS" logs -l app.kubernetes.io/component=controller --all-containers --tail=-1 >"$L/daxfs-csi-controller.log" 2>&1 || true
daxfs_procs() { # daxfs-csi processes in either node's pods (their cgroups
	# are under the kubelets' cgroup roots; other daxfs-csi runs on this
	# machine are not ours to count)
	local p a
	for p in /proc/[0-9]*; do
		grep -q "/$CGROOT_PREFIX-" "$p/cgroup" 2>/dev/null || continue
		a=$(tr '\0' '\n' <"$p/cmdline" 2>/dev/null | head -1) || continue
		[[ ${a##*/} == daxfs-csi ]] && echo "${p#/proc/} $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null | head -c 120)"
	done
}
no_daxfs_procs() { [[ -z $(daxfs_procs) ]]; }
c5_uninstall() {
	local uids=() p
	for p in reader-wffc reader-loop reader-inline-4; do uids+=("$(uid $p)"); done
	"$K" delete pod reader-wffc reader-loop reader-inline-4 --ignore-not-found --wait=true --timeout="${TMO}s" >&2 || { echo "pods not deleted"; return 1; }
	"$K" delete pvc e2e-wffc-pvc --wait=true --timeout="${TMO}s" >&2 || { echo "PVC not deleted"; return 1; }
	"$K" delete daximage e2e-prestaged --wait=true --timeout="${TMO}s" >&2 || { echo "DaxImage not deleted"; return 1; }
	waitfor "PVs gone" "$TMO" bash -c "[[ -z \$('$K' get pv -o name) ]]" || { echo "PVs left: $("$K" get pv -o name)"; return 1; }
	waitfor "pool empty" "$TMO" pool_empty || { echo "extents left after pods, PVCs and DaxImage went: $(pool_json | tr -d '\n')"; return 1; }
	"$HELM" uninstall "$REL" --namespace "$NS" --wait --timeout "${TMO}s" >"$L/helm-uninstall.log" 2>&1 ||
		{ echo "helm uninstall failed: $(tail -3 "$L/helm-uninstall.log")"; return 1; }
	waitfor "driver pods gone" "$TMO" bash -c "[[ -z \$('$K' -n $NS get pods -o name) ]]" || { echo "pods left in $NS: $("$K" -n "$NS" get pods -o name)"; return 1; }
	waitfor "no daxfs-csi process" 60 no_daxfs_procs || { echo "daxfs-csi processes left: $(daxfs_procs)"; return 1; }
	no_vol_mounts "${uids[@]}" || { echo "mounts left: $(vol_mounts "${uids[@]}" | tr '\n' ' ')"; return 1; }
	local m
	m=$(awk -v s="$STATE/" -v k="$(kr b)/plugins/" 'index($5, s) == 1 || index($5, k) == 1 {print $5}' /proc/self/mountinfo)
	[[ -z $m ]] || { echo "mounts left under the state dir or node B's plugins dir: $m"; return 1; }
	pool_empty || { echo "extents left: $(extents)"; return 1; }
	local left
	left=$("$K" get csidriver,clusterrole,clusterrolebinding,storageclass -o name 2>/dev/null | grep -E "$DRIVER|$REL-|/daxfs\$" || true)
	[[ -z $left ]] || { echo "objects left: $left"; return 1; }
	local now
	now="$(dev_mounts)"
	[[ $now == "$DEV_MOUNTS_BEFORE" ]] || { echo "host /dev mounts changed: $(diff <(echo "$DEV_MOUNTS_BEFORE") <(echo "$now") | grep '^[<>]' | head -5)"; return 1; }
	echo "no mount, no extent, no daxfs-csi process, no chart object, /dev unchanged"
}
check 5-uninstall-leaves-nothing c5_uninstall

echo
echo "=== daxfs-csi kube e2e, two nodes, helm ($(($(date +%s) - T0))s) ==="
for r in "${ORDER[@]}"; do printf '%-4s %s\n' "$([[ ${RESULT[$r]} == ok ]] && echo PASS || echo FAIL)" "$r"; done
((FAILS == 0)) || { echo "$FAILS assertion(s) failed; logs in $L"; exit 1; }
echo "all passed"
