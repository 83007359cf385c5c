# Sourced by run.sh: the two-host test. Two QEMU guests at the same time on one
# shared backing file (an NVDIMM, or a CXL type-3 device with a label area per
# guest), each with its own /dev/dax0.0 on it, each running `daxfs-csi serve`
# (node mode, its own node id) driven by a CSI client in the guest. Both guests
# boot from one initramfs with the same machine-id and hostname: only the
# kernel's boot id and the node's state dir tell them apart. The host drives
# both over their second serial port (init.sh, twohost-guest.sh) and checks:
#
#   twohost.identity        both guests share machine-id, hostname and pid namespace inode
#   twohost.blank-format    both serve start on the blank device at the same moment: one pool
#                           id in both guests' NodeGetInfo topology
#   twohost.concurrent      both stage one image at once: one copier, exact bytes on both,
#                           both owners
#   twohost.second-host     a second host staging an image the first staged copies nothing
#                           (times: docs/benchmarks.md)
#   twohost.release-order   release by one host keeps the extent, by the last frees it
#   twohost.no-reclaim      no live claim was reclaimed by the other guest
#   twohost.killed-copier   the copier's QEMU is SIGKILLed mid-fill: the other guest takes
#                           over within the stale bound and stages it exactly once
twohost_stale=${QEMU_E2E_STALE:-6s}
twohost_heartbeat=${QEMU_E2E_HEARTBEAT:-1s}

# th_args DEV G: device part of the QEMU command line of guest G.
th_args() {
  case "$1" in
    nvdimm) echo "-machine pc,nvdimm=on -m 2G,slots=2,maxmem=4G
      -object memory-backend-file,id=mem1,share=on,mem-path=$th_file,size=512M
      -device nvdimm,id=nvdimm1,memdev=mem1" ;;
    cxl) echo "-M q35,cxl=on -m 2G,maxmem=4G,slots=8
      -object memory-backend-file,id=cxl-mem1,share=on,mem-path=$th_file,size=256M
      -object memory-backend-file,id=cxl-lsa1,share=on,mem-path=$work/twohost-lsa-$2.img,size=256M
      -device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1
      -device cxl-rp,port=0,bus=cxl.1,id=root_port13,chassis=0,slot=2
      -device cxl-rp,port=1,bus=cxl.1,id=root_port14,chassis=0,slot=3
      -device cxl-type3,bus=root_port13,memdev=cxl-mem1,lsa=cxl-lsa1,id=cxl-pmem0
      -M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G" ;;
  esac
}

th_log() { echo "$work/twohost-$th_dev-$1.log"; }
# th_grep G PATTERN: console lines of guest G (CRs dropped) matching PATTERN.
th_grep() { tr -d '\r' < "$(th_log "$1")" | grep -a -E "$2"; }
th_fail() {
  local g
  for g in a b; do
    echo "---- last 40 console lines of guest $g ($(th_log $g)) ----"
    tr -d '\r' < "$(th_log $g)" | tail -n 40
  done
  th_stop
  die "twohost-$th_dev: $*"
}
declare -A th_jobs=()  # guest -> "timeout-pid cat-pid"
th_stop() {
  local g pid
  for g in a b; do
    pid=$(cat "$work/twohost-$th_dev-$g.pid" 2>/dev/null) && kill -9 "$pid" 2>/dev/null || true
    # A guest killed on purpose (killed-copier) leaves its jobs with status 137:
    # reaping them must not trip errexit.
    for pid in ${th_jobs[$g]:-}; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  done
  th_jobs=()
  return 0
}
# th_wait G PATTERN SECONDS: wait for a console line.
th_wait() {
  local i=0 pid
  until th_grep "$1" "$2" >/dev/null; do
    i=$((i + 1)); [ "$i" -gt $(($3 * 10)) ] && th_fail "guest $1: no '$2' within $3 s"
    pid=$(cat "$work/twohost-$th_dev-$1.pid" 2>/dev/null) || pid=
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && [ "${th_killed:-}" != "$1" ]; then
      th_fail "guest $1 exited while waiting for '$2'"
    fi
    sleep 0.1
  done
}
declare -A th_seq=()
# th_send G LINE: run LINE in guest G; th_cmd also waits for its answer.
th_send() {
  th_seq[$1]=$(( ${th_seq[$1]:-0} + 1 ))
  echo "$2" > "$work/twohost-$th_dev-$1.ctl.in"
}
th_cmd() { # G SECONDS LINE
  th_send "$1" "$3"
  th_ack "$1" "${th_seq[$1]}" "$2"
}
th_ack() { th_wait "$1" "^E2E-ACK $2 rc=" "$3"; }
# th_result G KEY FIELD: the value of FIELD= in guest G's "E2E-RESULT KEY" line.
th_result() { { th_grep "$1" "^E2E-RESULT $2 " | tail -n1 | grep -o "$3=[^ ]*" | cut -d= -f2-; } || true; }
th_pass() { th_grep "$1" "^E2E-PASS $2( |$)" >/dev/null || th_fail "guest $1: no 'E2E-PASS $2'"; }
th_ok() { log "PASS twohost.$1 ($th_dev): $2"; echo "E2E-TWOHOST $th_dev $1 $2" >> "$work/twohost-results.txt"; }

twohost() { # DEV: nvdimm | cxl
  th_dev=$1 th_killed=
  th_file=$work/twohost-$th_dev.img
  local g size mid=0123456789abcdef0123456789abcdef
  case "$th_dev" in nvdimm) size=512M ;; cxl) size=256M ;; esac
  rm -f "$th_file"; truncate -s "$size" "$th_file"
  phase_start
  for g in a b; do
    rm -f "$work/twohost-$th_dev-$g".{ctl.in,ctl.out,pid,log}
    mkfifo "$work/twohost-$th_dev-$g.ctl.in" "$work/twohost-$th_dev-$g.ctl.out"
    [ "$th_dev" = cxl ] && { rm -f "$work/twohost-lsa-$g.img"; truncate -s 256M "$work/twohost-lsa-$g.img"; }
    # shellcheck disable=SC2046
    timeout --kill-after=10 "$twohost_timeout" qemu-system-x86_64 -smp 1 -display none -monitor none -no-reboot -nic none \
      -serial stdio -serial "pipe:$work/twohost-$th_dev-$g.ctl" -pidfile "$work/twohost-$th_dev-$g.pid" \
      $(th_args "$th_dev" "$g") -kernel "$kernel" -initrd "$initrd" \
      -append "console=ttyS0 panic=-1 oops=panic loglevel=4 e2e.setup=$th_dev e2e.boot=1 e2e.test=twohost e2e.node=node-$g e2e.machineid=$mid e2e.hostname=daxfs-node ${QEMU_E2E_APPEND:-}" \
      </dev/null >"$(th_log $g)" 2>&1 &
    th_jobs[$g]=$!
    cat "$work/twohost-$th_dev-$g.ctl.out" >/dev/null &
    th_jobs[$g]="${th_jobs[$g]} $!"
  done
  th_seq=()
  th_wait a '^E2E-READY' 150; th_wait b '^E2E-READY' 150
  phase_end "twohost-$th_dev-boot"
  phase_start
  # One guest at a time writes its namespace's info block (same geometry, so
  # both /dev/dax0.0 land on the same bytes); the pool area stays blank.
  echo setup > "$work/twohost-$th_dev-a.ctl.in"; th_wait a '^E2E-ACK setup rc=0' 120
  echo setup > "$work/twohost-$th_dev-b.ctl.in"; th_wait b '^E2E-ACK setup rc=0' 120
  phase_end "twohost-$th_dev-devices"

  phase_start
  local ida idb
  ida=$(th_grep a '^E2E-IDENTITY' | sed 's/node=[^ ]* //' || true); idb=$(th_grep b '^E2E-IDENTITY' | sed 's/node=[^ ]* //' || true)
  [ -n "$ida" ] && [ "$ida" = "$idb" ] || th_fail "guests differ in identity: '$ida' vs '$idb'"
  th_ok identity "$ida"

  # Both plugins start on the blank device at the same moment.
  th_send a "serve_start $twohost_stale $twohost_heartbeat"; th_send b "serve_start $twohost_stale $twohost_heartbeat"
  th_ack a 1 120; th_ack b 1 120
  th_pass a serve.start; th_pass b serve.start
  th_cmd a 60 "csi -check info.a info"; th_cmd b 60 "csi -check info.b info"
  local pa pb
  pa=$(th_result a info.a pool); pb=$(th_result b info.b pool)
  [ -n "$pa" ] && [ "$pa" = "$pb" ] || th_fail "NodeGetInfo pool ids differ: node-a '$pa', node-b '$pb'"
  [ "$(th_result a info.a node)" = node-a ] && [ "$(th_result b info.b node)" = node-b ] || th_fail "node ids wrong"
  th_ok blank-format "both started at once on a blank device; one pool $pa in both topologies"

  # Both stage one image at the same moment.
  local img=/images/tree2.static.daxfs
  th_send a "csi -check stage.concurrent.a -volume v-tree2 -image $img stage"
  th_send b "csi -check stage.concurrent.b -volume v-tree2 -image $img stage"
  th_ack a "${th_seq[a]}" 120; th_ack b "${th_seq[b]}" 120
  th_pass a stage.concurrent.a; th_pass b stage.concurrent.b
  th_cmd a 30 "copies tree2.static.daxfs"; th_cmd b 30 "copies tree2.static.daxfs"
  local ca cb
  ca=$(th_result a copies.tree2.static.daxfs n); cb=$(th_result b copies.tree2.static.daxfs n)
  [ $((ca + cb)) = 1 ] || th_fail "concurrent stage: node-a copied $ca times, node-b $cb times; want one copy"
  th_cmd a 60 "poolcheck -check exact.tree2.a -image $img -owners node-a,node-b"
  th_cmd b 60 "poolcheck -check exact.tree2.b -image $img -owners node-a,node-b"
  th_pass a exact.tree2.a; th_pass b exact.tree2.b
  th_ok concurrent "one copier (node-a $ca, node-b $cb), exact bytes on both, owners node-a,node-b"

  # A second host staging what the first staged copies nothing.
  img=/images/tree1.static.daxfs
  th_cmd a 120 "csi -check stage.first -volume v-tree1 -image $img stage"; th_pass a stage.first
  th_cmd b 120 "csi -check stage.second -volume v-tree1 -image $img stage"; th_pass b stage.second
  th_cmd a 30 "copies tree1.static.daxfs"; th_cmd b 30 "copies tree1.static.daxfs"
  [ "$(th_result a copies.tree1.static.daxfs n)" = 1 ] && [ "$(th_result b copies.tree1.static.daxfs n)" = 0 ] \
    || th_fail "tree1: node-a copied $(th_result a copies.tree1.static.daxfs n), node-b $(th_result b copies.tree1.static.daxfs n); want 1 and 0"
  th_ok second-host "first host, from the image file: $(th_result a stage.first seconds)s; second host, image already in the pool: $(th_result b stage.second seconds)s (copies 1 / 0)"

  # Release order.
  th_cmd a 60 "csi -check unstage.a -volume v-tree1 unstage"; th_pass a unstage.a
  th_cmd b 60 "poolcheck -check release.kept -image $img -owners node-b"; th_pass b release.kept
  th_cmd b 60 "csi -check unstage.b -volume v-tree1 unstage"; th_pass b unstage.b
  th_cmd a 60 "poolcheck -check release.freed -image $img -absent"; th_pass a release.freed
  th_ok release-order "release by node-a kept the extent for node-b; release by node-b freed it"

  th_cmd a 30 reclaims; th_cmd b 30 reclaims
  [ "$(th_result a reclaims n)" = 0 ] && [ "$(th_result b reclaims n)" = 0 ] || th_fail "a live claim was reclaimed"
  th_ok no-reclaim "no staging extent reclaimed by either guest (same machine-id, hostname, pid namespace)"

  # The copier dies mid-fill: node-b watches for the staging extent, the host
  # SIGKILLs node-a's QEMU, node-b stages the image itself.
  img=/images/big.daxfs
  th_send b "poolcheck -check watch.big -image $img -watch"
  sleep 1
  th_send a "csi -check stage.killed -volume v-big -image $img -timeout 120s -total 600s stage"
  th_ack b "${th_seq[b]}" 120; th_pass b watch.big
  local qa t0 t1
  qa=$(cat "$work/twohost-$th_dev-a.pid")
  kill -9 "$qa"; th_killed=a; t0=$(date +%s.%N)
  log "killed guest a (qemu pid $qa) while it filled $img"
  th_cmd b 180 "csi -check stage.takeover -volume v-big -image $img -timeout 60s -total 170s stage"
  t1=$(date +%s.%N)
  th_pass b stage.takeover
  th_cmd b 30 "copies big.daxfs"; th_cmd b 30 reclaims
  [ "$(th_result b copies.big.daxfs n)" = 1 ] || th_fail "node-b copied big.daxfs $(th_result b copies.big.daxfs n) times after the kill, want 1"
  [ "$(th_result b reclaims n)" = 1 ] || th_fail "node-b reclaimed $(th_result b reclaims n) staging extents, want node-a's one"
  th_cmd b 60 "poolcheck -check exact.big -image $img -owners node-b"; th_pass b exact.big
  local took bound
  took=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
  bound=$(( ${twohost_stale%s} + 60 ))
  awk -v t="$took" -v b="$bound" 'BEGIN{exit !(t < b)}' || th_fail "takeover took ${took}s, want under ${bound}s (stale-after $twohost_stale + copy)"
  th_ok killed-copier "node-a killed mid-fill; node-b staged it exactly once ${took}s after the kill (stale-after $twohost_stale, heartbeat $twohost_heartbeat; its own stage call $(th_result b stage.takeover seconds)s, $(th_result b stage.takeover retries) Unavailable retries)"
  { th_grep b '^  retried:' | head -n 3 | sed 's/^/  [b] /'; } || true
  th_send b end
  th_wait b '^E2E-DONE' 60
  for g in a b; do
    ! th_grep $g '^E2E-FAIL' || th_fail "guest $g reported failures"
  done
  th_stop
  phase_end "twohost-$th_dev-test"
}
