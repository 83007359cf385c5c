#!/bin/busybox sh
# /init of the daxfs-csi QEMU e2e guest (busybox sh). Parameters come from the
# kernel command line:
#   e2e.setup=nvdimm|cxl|e820|nvdimm-fsdax   which device QEMU emulates (fsdax: /dev/pmem0)
#   e2e.boot=1|2                1: create the namespace/region; 2: reopen what boot 1 made
#   e2e.test=raw|pool|twohost|none  which e2e-guest test to run; twohost: this guest is one
#                               of two sharing the device, driven by the host over /dev/ttyS1
#   e2e.node=NAME               twohost: the node id of this guest's daxfs-csi serve
#   e2e.machineid=ID e2e.hostname=NAME  twohost: identity (both guests get the same: one image)
#   e2e.nonce=STRING            ties boot 1 and boot 2 of one run together
#   e2e.record=0|1              dump the sysfs trees discovery reads (base64 tar.gz)
#   e2e.debug=0|1               show all kernel messages while the test runs
# Every result is one console line: E2E-PASS/E2E-FAIL <check>, then E2E-DONE.
# The guest powers off at the end; a hang or panic is caught by the host's timeout.
set -u
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
echo /bin/modprobe > /proc/sys/kernel/modprobe
echo 4 > /proc/sys/kernel/printk

SETUP=; BOOT=1; TEST=raw; NONCE=; RECORD=0; DEBUG=0; NODE=; MACHINEID=; HOSTNAME=
for kv in $(cat /proc/cmdline); do
  case "$kv" in
    e2e.setup=*) SETUP=${kv#*=} ;;
    e2e.boot=*) BOOT=${kv#*=} ;;
    e2e.test=*) TEST=${kv#*=} ;;
    e2e.nonce=*) NONCE=${kv#*=} ;;
    e2e.record=*) RECORD=${kv#*=} ;;
    e2e.debug=*) DEBUG=${kv#*=} ;;
    e2e.node=*) NODE=${kv#*=} ;;
    e2e.machineid=*) MACHINEID=${kv#*=} ;;
    e2e.hostname=*) HOSTNAME=${kv#*=} ;;
  esac
done
[ "$DEBUG" = 1 ] && echo 8 > /proc/sys/kernel/printk
FAILED=0
pass() { echo "E2E-PASS $*"; }
fail() { echo "E2E-FAIL $*"; FAILED=1; }
finish() {
  echo "E2E-DONE setup=$SETUP boot=$BOOT failed=$FAILED uptime=$(cut -d' ' -f1 /proc/uptime)"
  sync
  poweroff -f
  sleep 10
}
# run CHECK CMD...: run a command, show its output, PASS/FAIL on its status.
run() {
  c=$1; shift
  echo "+ $*"
  if "$@" > /tmp/out 2>&1; then cat /tmp/out; pass "$c"; return 0; fi
  cat /tmp/out; fail "$c: '$*' failed"; return 1
}
# wait_for PATH SECONDS
wait_for() {
  i=0
  while [ ! -e "$1" ]; do
    i=$((i + 1)); [ "$i" -gt $(($2 * 10)) ] && return 1
    sleep 0.1
  done
}
echo "E2E-START setup=$SETUP boot=$BOOT test=$TEST kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"

for m in $(cat /etc/e2e-modules); do
  modprobe "$m" 2>/tmp/modprobe.err || { cat /tmp/modprobe.err; fail "modprobe.$m"; }
done

# twohost: the host sends shell commands on the second serial port, one a line;
# each is run and answered with "E2E-ACK <seq> rc=<status>" on the console. The
# first one, "setup", lets this guest create its namespace (the host orders the
# two guests' info-block writes).
if [ "$TEST" = twohost ]; then
  echo "$MACHINEID" > /etc/machine-id
  hostname "$HOSTNAME"
  echo "E2E-IDENTITY node=$NODE machine-id=$(cat /etc/machine-id) hostname=$(hostname) pidns=$(readlink /proc/self/ns/pid)"
  stty -F /dev/ttyS1 -echo 2>/dev/null
  exec 3</dev/ttyS1
  echo "E2E-READY"
  while read -r line <&3 && [ "$line" != setup ]; do :; done
fi

# nvdimm-fsdax: the NVDIMM as an fsdax block device /dev/pmem0 instead of device-dax.
MODE=devdax; DEV=dax0.0
# twohost: struct pages in guest RAM (-M mem), not on the shared media, where
# the other guest's kernel would write its own over them.
NSMAP=; [ "$TEST" = twohost ] && NSMAP="-M mem"
[ "$SETUP" = nvdimm-fsdax ] && { MODE=fsdax; DEV=pmem0; }
case "$SETUP" in
  nvdimm|e820|nvdimm-fsdax)
    if ! wait_for /sys/bus/nd/devices/namespace0.0 20; then
      fail "$SETUP.namespace: /sys/bus/nd/devices/namespace0.0 did not appear"; ls /sys/bus/nd/devices; finish
    fi
    if [ "$BOOT" = 1 ]; then
      run "$SETUP.create-namespace" ndctl create-namespace -f -e namespace0.0 -m "$MODE" -a 2M $NSMAP || finish
    fi
    ;;
  cxl)
    if ! wait_for /sys/bus/cxl/devices/mem0 20 || ! wait_for /sys/bus/cxl/devices/decoder0.0 20; then
      fail "cxl.enumerate: mem0/decoder0.0 did not appear"; ls /sys/bus/cxl/devices; finish
    fi
    # The region (HPA decoder programming) is not persistent: create it on every boot;
    # same decoder, same memdev, so the same HPA and DPA 0 of mem0 (the backing file).
    run cxl.create-region cxl create-region -m -d decoder0.0 -w 1 -g 256 -t pmem mem0 || finish
    if ! wait_for /sys/bus/nd/devices/region0 20; then
      fail "cxl.nd-region: /sys/bus/nd/devices/region0 did not appear"; ls /sys/bus/nd/devices; finish
    fi
    if [ "$BOOT" = 2 ]; then
      # Linux 6.1 cannot rebuild a namespace from the labels boot 1 wrote to the LSA:
      # a CXL region has no interleave-set cookie, so nd_region probe fails with
      # "invalid interleave-set-cookie" (-ENODEV) and the region stays disabled.
      # Re-initialise the labels (LSA only, the media is untouched) and create the
      # namespace again with the same geometry: dax0.0 lands on the same bytes.
      run cxl.disable-region ndctl disable-region region0 || finish
      run cxl.init-labels ndctl init-labels -f nmem0 || finish
      run cxl.enable-region ndctl enable-region region0 || finish
    fi
    run cxl.create-namespace ndctl create-namespace -r region0 -m devdax -a 2M $NSMAP || finish
    ;;
  *) fail "setup: unknown e2e.setup='$SETUP'"; finish ;;
esac

if [ "$MODE" = fsdax ] && wait_for /dev/pmem0 20; then
  pass "$SETUP.boot$BOOT.pmem0 sectors=$(cat /sys/block/pmem0/size) resource=$(cat /sys/block/pmem0/device/resource)"
elif [ "$MODE" = devdax ] && wait_for /dev/dax0.0 20; then
  pass "$SETUP.boot$BOOT.dax0.0 size=$(cat /sys/bus/dax/devices/dax0.0/size) resource=$(cat /sys/bus/dax/devices/dax0.0/resource) align=$(cat /sys/bus/dax/devices/dax0.0/align)"
else
  fail "$SETUP.boot$BOOT.$DEV: /dev/$DEV did not appear"
  ndctl list -NRDi 2>&1; cxl list -RDM 2>&1; ls /sys/bus/nd/devices /sys/bus/dax/devices
  finish
fi
echo "+ ndctl list -RNDi"; ndctl list -RNDi 2>&1
[ "$SETUP" = cxl ] && { echo "+ cxl list -RDMi"; cxl list -RDMi 2>&1; }
grep -iE 'persistent|dax|cxl|nvdimm|pmem' /proc/iomem | sed 's/^/iomem: /'

case "$TEST" in
  raw)
    phase=write; [ "$BOOT" = 2 ] && phase=verify
    if [ "$MODE" = devdax ]; then
      /bin/e2e-guest raw -phase "$phase" -nonce "$NONCE" -dev /dev/dax0.0 || FAILED=1
    else
      fail "raw: the raw test is for device-dax only (setup $SETUP is $MODE)"
    fi ;;
  pool)
    /bin/e2e-guest pool -setup "$SETUP" -boot "$BOOT" -images /images -dev "/dev/$DEV" || FAILED=1 ;;
  twohost)
    . /bin/twohost-guest.sh
    echo "E2E-ACK setup rc=0"
    seq=0
    while read -r line <&3; do
      seq=$((seq + 1))
      [ "$line" = end ] && break
      echo "+ [$seq] $line"
      eval "$line"
      echo "E2E-ACK $seq rc=$?"
    done ;;
  none) ;;
  *) fail "test: unknown e2e.test='$TEST'" ;;
esac

if [ "$RECORD" = 1 ]; then
  echo 1 > /proc/sys/kernel/printk   # keep kernel messages out of the dump
  cp /proc/iomem /tmp/iomem 2>/dev/null
  /bin/e2e-guest record-sysfs -setup "$SETUP" || FAILED=1
  echo "E2E-IOMEM-BEGIN"; cat /proc/iomem; echo "E2E-IOMEM-END"
fi
finish
