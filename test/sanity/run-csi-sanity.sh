#!/usr/bin/env bash
# Runs the standalone csi-sanity (csi-test at the version in hack/versions.sh) against
# `daxfs-csi serve --mode=all` on a unix socket, with a memory-file pool and
# real mounts. Needs root (mounts, FUSE). Exit status is csi-sanity's.
#
# Env: DAXFS_CSI_BIN (default: build bin/daxfs-csi), DAXFS_SANITY_IMAGE
# (default: ../shared/testdata/upstream-v5/tree1.static.daxfs next to the repo).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export PATH="/usr/local/go/bin:$PATH"
. hack/versions.sh

# The Go suite (test/sanity) and this binary are one csi-test version.
gomod=$(go list -m -f '{{.Version}}' github.com/kubernetes-csi/csi-test/v5)
if [ "$gomod" != "$CSI_TEST_VERSION" ]; then
  echo "go.mod has csi-test $gomod, hack/versions.sh $CSI_TEST_VERSION: make them one" >&2
  exit 1
fi
csi_sanity=$(hack/tools.sh csi-sanity)

bin=${DAXFS_CSI_BIN:-$root/bin/daxfs-csi}
if [ -z "${DAXFS_CSI_BIN:-}" ]; then
  go build -o "$bin" ./cmd/daxfs-csi
fi

work=$(mktemp -d /tmp/daxfs-csi-sanity.XXXXXX)
mkdir -p "$work/images"
image=${DAXFS_SANITY_IMAGE:-$root/../shared/testdata/upstream-v5/tree1.static.daxfs}
if [ -f "$image" ]; then
  cp "$image" "$work/images/test.daxfs"
else
  # No reference image here: build one from the docs with our own builder.
  "$bin" image build "$root/docs" -o "$work/images/test.daxfs"
fi
cat >"$work/params.yaml" <<EOF
image: file://$work/images/test.daxfs
# csi-sanity asks for SINGLE_NODE_WRITER: a writable layer over the image.
writable: "true"
EOF

sock=$work/csi.sock
pid=
cleanup() {
  status=$?
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { echo "serve ignored SIGTERM; killing" >&2; kill -KILL "$pid"; }
    wait "$pid" 2>/dev/null || true
  fi
  # Image mounts and their fuse-serve processes outlive the plugin by
  # design: end ours (found by our work dir) and unmount what is left.
  for p in /proc/[0-9]*; do
    if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q "fuse-serve.*$work"; then
      kill -TERM "${p#/proc/}" 2>/dev/null || true
    fi
  done
  awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  if [ $status -ne 0 ]; then
    echo "--- daxfs-csi serve log (tail) ---" >&2
    tail -n 100 "$work/serve.log" >&2 || true
  fi
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT

"$bin" serve --mode=all \
  --endpoint "unix://$sock" \
  --driver-name daxfs.csi.io \
  --node-id sanity-node \
  --pool "memfile:$work/pool" --pool-size 64Mi \
  --state-dir "$work/state" \
  --allow-source "file://$work/images/" \
  >"$work/serve.log" 2>&1 &
pid=$!

for _ in $(seq 1 600); do
  [ -S "$sock" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "daxfs-csi serve exited" >&2; exit 1; }
  sleep 0.1
done
[ -S "$sock" ] || { echo "no socket at $sock after 60s" >&2; exit 1; }

"$csi_sanity" \
  --csi.endpoint "unix://$sock" \
  --csi.mountdir "$work/target" \
  --csi.stagingdir "$work/staging" \
  --csi.testvolumeparameters "$work/params.yaml" \
  "$@"
