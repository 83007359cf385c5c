# Sourced by init.sh in each guest of the two-host test: the commands the host
# sends over /dev/ttyS1 (see twohost.sh). Results are E2E-PASS/FAIL and
# E2E-RESULT lines on the console.
DEV=/dev/dax0.0
SOCK=/run/csi.sock

# serve_start STALE HEARTBEAT: the node plugin, as a DaemonSet would run it.
serve_start() {
  mkdir -p /var/lib/daxfs-csi /run/staging
  /bin/daxfs-csi serve --mode node --endpoint "unix://$SOCK" --node-id "$NODE" \
    --pool "devdax:$DEV" --state-dir /var/lib/daxfs-csi --allow-source file:///images/ \
    --mount-mode fuse --pool-stale-after "$1" --pool-heartbeat "$2" -v=2 >/tmp/serve.log 2>&1 &
  i=0
  while [ ! -S "$SOCK" ]; do
    i=$((i + 1))
    if [ "$i" -gt 600 ] || ! kill -0 $! 2>/dev/null; then
      fail "serve.start: no socket"; tail -n 30 /tmp/serve.log; return 1
    fi
    sleep 0.1
  done
  pass "serve.start node=$NODE"
  grep -m1 '"Pool open"' /tmp/serve.log
}

csi() { /bin/e2e-guest csi -socket "$SOCK" "$@"; }
poolcheck() { /bin/e2e-guest pool-check -pool "devdax:$DEV" "$@"; }

digest_of() { sha256sum "$1" | cut -d' ' -f1; }

# copies IMAGE: how many extents of IMAGE this guest's plugin filled.
copies() {
  d=$(digest_of "/images/$1")
  echo "E2E-RESULT copies.$1 n=$(grep '"staged extent"' /tmp/serve.log | grep -c "$d")"
}

# reclaims: takeovers of staging extents this guest's plugin made.
reclaims() {
  echo "E2E-RESULT reclaims n=$(grep -c 'reclaiming staging extent' /tmp/serve.log)"
  grep 'reclaiming staging extent' /tmp/serve.log
}

serve_log() { tail -n "${1:-40}" /tmp/serve.log; }
