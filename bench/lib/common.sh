# bench/lib/common.sh: logging, cleanup, timing and results for bench/run.
# Sourced, not run. Everything that mounts, attaches a loop device or starts
# a process registers it here, and the EXIT trap undoes it in reverse order.

log() { printf '%s bench: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# ---- cleanup -------------------------------------------------------------
# The EXIT trap undoes what is live *now*: processes we started and have not
# reaped, every mount under $WORK (deepest first), loop devices we attached
# and have not detached. Nothing historic is replayed, so a pid or loop
# device number reused by someone else is never touched.
declare -A LIVE_PIDS=() LIVE_LOOPS=()
declare -a CLEANUP_STACK=()
on_exit() { CLEANUP_STACK+=("$*"); }
cleanup() {
	local rc=$? i pid dev m
	trap - EXIT INT TERM
	if [[ -n ${WORK:-} && -d ${WORK:-} ]]; then
		for m in $(awk -v w="$WORK" 'index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		done
	fi
	for pid in "${!LIVE_PIDS[@]}"; do stop_pid "$pid"; done
	for dev in "${!LIVE_LOOPS[@]}"; do losetup -d "$dev" 2>/dev/null || true; done
	for ((i = ${#CLEANUP_STACK[@]} - 1; i >= 0; i--)); do
		eval "${CLEANUP_STACK[i]}" >/dev/null 2>&1 || true
	done
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# loop_attach IMG: attach IMG read-only to a free loop device; sets LOOP_DEV.
loop_attach() {
	LOOP_DEV=$(losetup --find --show --read-only "$1") || die "losetup $1 failed"
	LIVE_LOOPS[$LOOP_DEV]=1
}
loop_detach() {
	[[ -n ${1:-} ]] || return 0
	losetup -d "$1" || true
	unset "LIVE_LOOPS[$1]"
}

# is_mounted DIR: DIR is a mount point right now (any fs type).
is_mounted() { findmnt -rn -M "$1" >/dev/null 2>&1; }

# umount_all DIR: unmount every layer stacked on DIR (lazy as a last resort).
umount_all() {
	local d=$1 n=0
	while is_mounted "$d"; do
		umount "$d" 2>/dev/null || { sleep 0.2; umount "$d" 2>/dev/null; } || umount -l "$d" || true
		n=$((n + 1))
		((n < 20)) || { log "cannot unmount $d"; return 1; }
	done
}

# wait_mount DIR FSTYPE_REGEX PID: wait until DIR shows a mount of that type;
# fail early when PID (if non-empty) exits first.
wait_mount() {
	local d=$1 re=$2 pid=${3:-} t
	for ((t = 0; t < 3000; t++)); do
		if findmnt -rn -M "$d" -o FSTYPE 2>/dev/null | grep -Eq "$re"; then
			return 0
		fi
		if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		sleep 0.01
	done
	return 1
}

# stop_pid PID: SIGTERM, wait up to 10 s, then SIGKILL. Only our own children.
stop_pid() {
	local pid=$1 t
	[[ -n ${LIVE_PIDS[$pid]:-} ]] || return 0
	unset "LIVE_PIDS[$pid]"
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	for ((t = 0; t < 200; t++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
}

# start_fuse_peer PEER LOG MNT CMD...: runs a FUSE server (in the
# foreground mode of its own) in the background, logging to LOG, and waits
# for its mount at MNT; dies with the log's tail when it exits first.
start_fuse_peer() {
	local peer=$1 log=$2 mnt=$3 pid
	shift 3
	"$@" >>"$log" 2>&1 &
	pid=$!
	PEER_PID[$peer]=$pid
	LIVE_PIDS[$pid]=1
	wait_mount "$mnt" '^fuse' "$pid" || {
		tail -20 "$log" >&2
		die "$1 did not mount at $mnt"
	}
}

# stop_fuse_peer PEER MNT: stops PEER's server and unmounts whatever is left.
stop_fuse_peer() {
	local pid=${PEER_PID[$1]:-}
	[[ -n $pid ]] && stop_pid "$pid"
	PEER_PID[$1]=
	umount_all "$2"
}

# ---- page cache --------------------------------------------------------
DROP_OK=no
check_drop_caches() {
	sync
	if { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
		DROP_OK=yes
	else
		DROP_OK=no
		log "WARNING: echo 3 > /proc/sys/vm/drop_caches refused: 'cold' runs only remount (FUSE servers restart, kernel mounts remount) and the backing files may still be in the page cache"
	fi
}
drop_caches() {
	sync
	[[ $DROP_OK == yes ]] && { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null || true
}

# ---- timing ------------------------------------------------------------
# timed DIR CMD: run CMD (a bash snippet, pipefail on) in DIR with stdout
# discarded; print the elapsed wall seconds. A failing CMD is fatal: a
# number measured from a failed run is not a measurement.
timed() {
	local dir=$1 cmd=$2 t0 t1 err
	err=$(mktemp)
	t0=$EPOCHREALTIME
	if ! (cd "$dir" && bash -c "set -o pipefail; $cmd") >/dev/null 2>"$err"; then
		log "command failed in $dir: $cmd"
		sed 's/^/    /' "$err" | tail -20 >&2
		rm -f "$err"
		return 1
	fi
	t1=$EPOCHREALTIME
	rm -f "$err"
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
}

# ---- results -------------------------------------------------------------
# One line per measurement: tree workload state peer rep value unit.
record() { # tree workload state peer rep value unit
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"
	log "  $1 / $2 / $3 / $4 #$5: $6 $7"
}

bytes_mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
