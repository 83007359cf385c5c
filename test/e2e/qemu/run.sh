#!/usr/bin/env bash
# Device e2e for daxfs-csi: boots Debian's kernel under QEMU (TCG, no KVM needed)
# with an emulated NVDIMM and, separately, a CXL type-3 device, turns each into
# /dev/dax0.0 and runs test/e2e/qemu/guest inside the guest, twice on the same
# backing file (boot 1 creates, boot 2 reopens), then checks the backing file on
# the host. Facts about the devices: ../shared/docs/qemu-dax-devices.md.
#
# Usage: test/e2e/qemu/run.sh [--record] [SETUP...]
#   SETUP: nvdimm cxl e820 nvdimm-fsdax twohost-nvdimm twohost-cxl
#   (default: nvdimm cxl twohost-nvdimm twohost-cxl)
#   nvdimm-fsdax: the NVDIMM as fsdax /dev/pmem0 (pool spec pmem:) instead of device-dax
#   twohost-*: two guests at once on one backing file, each running daxfs-csi serve (twohost.sh)
#   --record   also dump the sysfs trees of boot 1 into pkg/daxdev/testdata/sysfs/<setup>/
# Environment:
#   QEMU_E2E_TEST=pool|raw   guest test: pool (default) = pkg/daxdev discovery + pool + staging;
#                            raw = plain MAP_SHARED write/verify of /dev/dax0.0, no pkg/daxdev
#   QEMU_E2E_WORK=DIR        work dir (default ${TMPDIR:-/tmp}/daxfs-csi-qemu-e2e), never committed
#   QEMU_E2E_SELFTEST=wipe-pool  zero the pool header between the boots: the run must FAIL
#   QEMU_E2E_DEBUG=1         kernel messages at debug level while the guest test runs
#   QEMU_E2E_APPEND=ARGS     extra kernel command line (e.g. dyndbg=...)
#   QEMU_E2E_BOOT_TIMEOUT=S  per-boot timeout in seconds (default 150)
#   QEMU_E2E_TWOHOST_TIMEOUT=S  timeout of each two-host guest (default 600)
#   QEMU_E2E_STALE, QEMU_E2E_HEARTBEAT  two-host serve --pool-stale-after / --pool-heartbeat (6s, 1s)
#   QEMU_E2E_IMAGES=DIR      dir with tree1.static.daxfs and tree2.static.daxfs
#                            (default <repo>/../shared/testdata/upstream-v5)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
work=${QEMU_E2E_WORK:-${TMPDIR:-/tmp}/daxfs-csi-qemu-e2e}
boot_timeout=${QEMU_E2E_BOOT_TIMEOUT:-150}
images=${QEMU_E2E_IMAGES:-$repo/../shared/testdata/upstream-v5}
packages=(qemu-system-x86 linux-image-amd64 busybox-static ndctl daxctl cpio kmod xz-utils)
modules=(libnvdimm nfit nd_pmem nd_btt nd_e820 device_dax dax_pmem kmem dax_hmem
         cxl_acpi cxl_pci cxl_mem cxl_pmem fuse overlay)

record=0
setups=()
for a in "$@"; do
  case "$a" in
    --record) record=1 ;;
    nvdimm|cxl|e820|nvdimm-fsdax|twohost-nvdimm|twohost-cxl) setups+=("$a") ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$a' (want --record, nvdimm, cxl, e820, nvdimm-fsdax, twohost-nvdimm, twohost-cxl)" >&2; exit 2 ;;
  esac
done
[ ${#setups[@]} -gt 0 ] || setups=(nvdimm cxl twohost-nvdimm twohost-cxl)
twohost_wanted=0
for s in "${setups[@]}"; do case "$s" in twohost-*) twohost_wanted=1 ;; esac; done
twohost_timeout=${QEMU_E2E_TWOHOST_TIMEOUT:-600}
# shellcheck source=twohost.sh
. "$here/twohost.sh"

is_static() { ! ldd "$1" >/dev/null 2>&1; } # ldd fails on static executables
log() { echo "[qemu-e2e $(date -u +%H:%M:%S)] $*"; }
die() { echo "[qemu-e2e] FAIL: $*" >&2; exit 1; }
declare -A timing=()
timing_order=()
phase_start() { phase_t0=$(date +%s.%N); }
phase_end() { # NAME
  local t; t=$(awk -v a="$phase_t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  timing[$1]=$t; timing_order+=("$1"); log "phase $1: ${t}s"
}
report_timing() {
  local n; echo "== qemu e2e wall time per phase =="
  for n in "${timing_order[@]}"; do printf '  %-28s %6ss\n' "$n" "${timing[$n]}"; done
}
trap 'report_timing' EXIT

# ---------------------------------------------------------------- install
phase_start
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq || die "apt-get update failed"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
else
  log "packages present: ${packages[*]}"
fi
phase_end install

kver=
for k in $(ls /lib/modules | sort -V); do
  [ -e "/boot/vmlinuz-$k" ] && [ -d "/lib/modules/$k/kernel/drivers/cxl" ] && kver=$k
done
[ -n "$kver" ] || die "no kernel with /boot/vmlinuz-<ver> and CXL modules in /lib/modules (is linux-image-amd64 installed?)"
kernel=/boot/vmlinuz-$kver
[ -r "$kernel" ] || die "$kernel is not readable (run as root or make it readable)"
log "kernel $kver, work dir $work"
mkdir -p "$work"

# Under TCG, decompressing bzImage takes ~7 s per boot. The Debian kernel has
# CONFIG_PVH, so QEMU boots the uncompressed ELF vmlinux directly: extract it
# once per kernel version (cached in the work dir), fall back to vmlinuz.
phase_start
vmlinux=$work/vmlinux-$kver
if [ ! -s "$vmlinux" ] && command -v xz >/dev/null; then
  for off in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$kernel" | cut -d: -f1); do
    tail -c +$((off + 1)) "$kernel" > "$vmlinux.xz"
    if xz -dc --single-stream < "$vmlinux.xz" > "$vmlinux.tmp" 2>/dev/null \
       && [ "$(head -c 4 "$vmlinux.tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
      mv "$vmlinux.tmp" "$vmlinux"; break
    fi
  done
  rm -f "$vmlinux.tmp" "$vmlinux.xz"
fi
if [ -s "$vmlinux" ] && grep -q '^CONFIG_PVH=y' "/boot/config-$kver" 2>/dev/null; then
  kernel=$vmlinux
fi
log "booting $kernel"
phase_end kernel-extract

test_kind=${QEMU_E2E_TEST:-pool}
case "$test_kind" in raw|pool) ;; *) die "QEMU_E2E_TEST must be raw or pool, not '$test_kind'";; esac
log "guest test: $test_kind"

# ---------------------------------------------------------------- build
phase_start
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$work/e2e-guest" ./test/e2e/qemu/guest) \
  || die "building the static guest binary failed"
(cd "$repo" && go build -trimpath -o "$work/e2e-hostcheck" ./test/e2e/qemu/hostcheck) \
  || die "building the host check failed"
is_static "$work/e2e-guest" || die "$work/e2e-guest is not static"
if [ "$twohost_wanted" = 1 ]; then
  (cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$work/daxfs-csi" ./cmd/daxfs-csi) \
    || die "building the static daxfs-csi failed"
  is_static "$work/daxfs-csi" || die "$work/daxfs-csi is not static"
  # An image big enough that its fill is still running when the test kills the copier.
  if [ ! -s "$work/big.daxfs" ]; then
    rm -rf "$work/big-src"; mkdir -p "$work/big-src"
    for i in 1 2 3 4 5 6 7 8; do head -c 16M /dev/urandom > "$work/big-src/blob$i"; done
    "$work/daxfs-csi" image build "$work/big-src" -o "$work/big.daxfs" || die "building big.daxfs failed"
    rm -rf "$work/big-src"
  fi
fi
phase_end build-go

# ---------------------------------------------------------------- initramfs
phase_start
root=$work/initramfs-$kver
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,etc,proc,sys,dev,tmp,run,images,lib/modules/$kver}
cp /bin/busybox "$root/bin/busybox"
"$root/bin/busybox" --help >/dev/null 2>&1 || true
is_static /bin/busybox || die "/bin/busybox is not static (install busybox-static)"
cp "$here/init.sh" "$root/init"; chmod 755 "$root/init"
cp "$work/e2e-guest" "$root/bin/e2e-guest"
# modules and their dependencies, then the index for busybox modprobe
for m in "${modules[@]}"; do
  modprobe -C /dev/null --ignore-install -S "$kver" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | sort -u | while read -r ko; do
  mkdir -p "$root$(dirname "$ko")"; cp "$ko" "$root$ko"
done
cp /lib/modules/"$kver"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$kver/"
depmod -b "$root" "$kver"
printf '%s\n' "${modules[@]}" > "$root/etc/e2e-modules"
# ndctl, daxctl, cxl with their shared libraries
for b in ndctl daxctl cxl; do
  p=$(command -v "$b") || die "$b not found"
  cp "$p" "$root/usr/bin/$b"
  ldd "$p" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"
  done
done
for img in tree1.static.daxfs tree2.static.daxfs; do
  [ -r "$images/$img" ] || die "image $images/$img not found (set QEMU_E2E_IMAGES)"
  cp "$images/$img" "$root/images/"
done
initrd=$work/initrd-$kver.cpio
(cd "$root" && find . | cpio -o -H newc --quiet) > "$initrd"
log "initramfs $initrd: $(du -h "$initrd" | cut -f1)"
if [ "$twohost_wanted" = 1 ]; then
  # The two-host guests also need the plugin and a big image: a second
  # archive appended (the kernel unpacks concatenated cpio archives).
  extra=$work/initramfs-twohost
  rm -rf "$extra"; mkdir -p "$extra/bin" "$extra/images"
  cp "$work/daxfs-csi" "$extra/bin/daxfs-csi"
  cp "$here/twohost-guest.sh" "$extra/bin/twohost-guest.sh"
  cp "$work/big.daxfs" "$extra/images/big.daxfs"
  twohost_initrd=$work/initrd-twohost-$kver.cpio
  { cat "$initrd"; (cd "$extra" && find . | cpio -o -H newc --quiet); } > "$twohost_initrd"
  log "two-host initramfs $twohost_initrd: $(du -h "$twohost_initrd" | cut -f1)"
fi
phase_end initramfs

# ---------------------------------------------------------------- boots
# qemu_args SETUP: the device part of the QEMU command line.
qemu_args() {
  case "$1" in
    nvdimm|nvdimm-fsdax) echo "-machine pc,nvdimm=on -m 2G,slots=2,maxmem=4G
      -object memory-backend-file,id=mem1,share=on,mem-path=$work/$1.img,size=512M
      -device nvdimm,id=nvdimm1,memdev=mem1" ;;
    cxl) echo "-M q35,cxl=on -m 2G,maxmem=4G,slots=8
      -object memory-backend-file,id=cxl-mem1,share=on,mem-path=$work/cxl.img,size=256M
      -object memory-backend-file,id=cxl-lsa1,share=on,mem-path=$work/lsa.img,size=256M
      -device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1
      -device cxl-rp,port=0,bus=cxl.1,id=root_port13,chassis=0,slot=2
      -device cxl-rp,port=1,bus=cxl.1,id=root_port14,chassis=0,slot=3
      -device cxl-type3,bus=root_port13,memdev=cxl-mem1,lsa=cxl-lsa1,id=cxl-pmem0
      -M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G" ;;
    e820) echo "-machine pc -m 2G" ;;
  esac
}
backing_file() { case "$1" in nvdimm|nvdimm-fsdax|cxl) echo "$work/$1.img";; *) echo;; esac; }

# boot SETUP N EXTRA-APPEND: one guest run; its console goes to $work/SETUP-bootN.log.
boot() {
  local setup=$1 n=$2 extra=$3 logf=$work/$1-boot$2.log rc=0 append
  append="console=ttyS0 panic=-1 oops=panic loglevel=4 e2e.setup=$setup e2e.boot=$n e2e.test=$test_kind e2e.nonce=$nonce e2e.debug=${QEMU_E2E_DEBUG:-0} ${QEMU_E2E_APPEND:-} $extra"
  [ "$setup" = e820 ] && append="$append memmap=256M!1G"
  phase_start
  log "boot $setup #$n (timeout ${boot_timeout}s)"
  # shellcheck disable=SC2046
  timeout --kill-after=10 "$boot_timeout" qemu-system-x86_64 -smp 2 -nographic -no-reboot -nic none \
    $(qemu_args "$setup") -kernel "$kernel" -initrd "$initrd" -append "$append" \
    </dev/null >"$logf" 2>&1 || rc=$?
  sed -i 's/\r$//' "$logf"
  phase_end "$setup-boot$n"
  grep -E '^E2E-(START|PASS|FAIL|DONE)' "$logf" | sed "s/^/  [$setup#$n] /" || true
  local why=
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then why="guest timed out after ${boot_timeout}s"
  elif [ "$rc" != 0 ]; then why="qemu exited with status $rc"
  elif grep -q '^E2E-FAIL' "$logf"; then why="guest reported failures"
  elif ! grep -q '^E2E-DONE .*failed=0' "$logf"; then why="guest did not finish (no E2E-DONE failed=0; kernel panic?)"
  fi
  if [ -n "$why" ]; then
    echo "---- last 60 console lines of $logf ----"; tail -n 60 "$logf"
    die "$setup boot $n: $why"
  fi
}

# require_pass SETUP N CHECK-PREFIX: the guest must have reported this check as passed.
require_pass() {
  grep -q "^E2E-PASS $3" "$work/$1-boot$2.log" || die "$1 boot $2: no 'E2E-PASS $3' line (the test did not run?)"
}

# extract_record SETUP: decode the sysfs dump of boot 1 into the testdata tree.
extract_record() {
  local setup=$1 logf=$work/$1-boot1.log dst=$repo/pkg/daxdev/testdata/sysfs/$1
  sed -n "/^E2E-SYSFS-BEGIN $setup\$/,/^E2E-SYSFS-END $setup\$/p" "$logf" | sed '1d;$d' | base64 -d > "$work/sysfs-$setup.tar.gz" \
    || die "$setup: could not decode the sysfs dump"
  rm -rf "$dst/sys" "$dst/dev"
  mkdir -p "$dst"
  tar -xzf "$work/sysfs-$setup.tar.gz" -C "$dst"
  sed -n '/^E2E-IOMEM-BEGIN$/,/^E2E-IOMEM-END$/p' "$logf" | sed '1d;$d' > "$dst/proc-iomem.txt"
  log "recorded $(find "$dst/sys" -type f | wc -l) files, $(find "$dst/sys" -type l | wc -l) links into ${dst#"$repo"/}"
}

nonce=$(date +%s)-$$
rm -f "$work/twohost-results.txt"
for setup in "${setups[@]}"; do
  case "$setup" in
    twohost-*) initrd_saved=$initrd; initrd=$twohost_initrd
      twohost "${setup#twohost-}"; initrd=$initrd_saved
      log "$setup: PASS"; continue ;;
  esac
  bf=$(backing_file "$setup")
  case "$setup" in
    nvdimm|nvdimm-fsdax) rm -f "$bf"; truncate -s 512M "$bf" ;;
    cxl) rm -f "$bf" "$work/lsa.img"; truncate -s 256M "$bf" "$work/lsa.img" ;;
  esac
  if [ "$setup" = e820 ]; then
    # RAM-backed legacy pmem: nothing survives a reboot, so one boot (discovery/record only).
    boot e820 1 "e2e.record=$record"
    [ "$test_kind" = pool ] && for c in pool.discover pool.init pool.stage.tree2 pool.report; do require_pass e820 1 "$c"; done
    [ "$test_kind" = raw ] && require_pass e820 1 'raw.write@0x0 '
    [ "$record" = 1 ] && extract_record e820
    log "e820: PASS"
    continue
  fi
  boot "$setup" 1 "e2e.record=$record"
  [ "$record" = 1 ] && extract_record "$setup"
  if [ "${QEMU_E2E_SELFTEST:-}" = wipe-pool ] && [ "$test_kind" = pool ]; then
    # Self-test of the e2e: zero the pool header between the boots; boot 2 must fail.
    off=$(grep -m1 -o '^E2E-POOL .*"regionOffset":[0-9]*' "$work/$setup-boot1.log" | grep -o '[0-9]*$')
    log "SELFTEST: zeroing 4 KiB at offset $off of $bf; boot 2 must fail"
    dd if=/dev/zero of="$bf" bs=4096 seek=$((off / 4096)) count=1 conv=notrunc status=none
  fi
  boot "$setup" 2 "e2e.record=0"
  case "$test_kind" in
    raw)
      require_pass "$setup" 1 'raw.write@0x0 '
      require_pass "$setup" 2 'raw.verify@0x0 '
      # Where do the dax device's bytes live in the backing file? Find the magic.
      off=$(grep -m1 -obaF "DAXFS-E2E-RAW:$nonce" "$bf" | cut -d: -f1) \
        || die "$setup: the guest's bytes are not in the backing file $bf"
      [ -n "$off" ] || die "$setup: the guest's bytes are not in the backing file $bf"
      size=$(grep -o 'dax0.0 size=[0-9]*' "$work/$setup-boot2.log" | head -n1 | cut -d= -f2)
      log "$setup: /dev/dax0.0 byte 0 is at offset $off ($((off / 1048576)) MiB) of $(basename "$bf"), size $size"
      "$work/e2e-guest" raw -phase verify -nonce "$nonce" -dev "$bf" -offset "$off" -size "$size" -align 2097152 \
        | sed "s/^/  [$setup host] /"
      [ "${PIPESTATUS[0]}" = 0 ] || die "$setup: host check of $bf failed"
      ;;
    pool)
      for c in pool.discover pool.init pool.stage.tree1 pool.stage.tree2 pool.restage-reuses pool.report; do
        require_pass "$setup" 1 "$c"
      done
      for c in pool.discover pool.reopen pool.reopen.tree1 pool.reopen.tree2 pool.release pool.report; do
        require_pass "$setup" 2 "$c"
      done
      "$work/e2e-hostcheck" -setup "$setup" -file "$bf" -images "$images" \
        -boot1-log "$work/$setup-boot1.log" -boot2-log "$work/$setup-boot2.log" 2>&1 | sed "s/^/  [$setup host] /"
      [ "${PIPESTATUS[0]}" = 0 ] || die "$setup: host check of $bf failed"
      ;;
  esac
  log "$setup: PASS"
done
log "PASS: ${setups[*]} ($test_kind)"
