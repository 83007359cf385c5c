# bench/peers/daxfs-host.sh (opt-in: --peers ...,daxfshost): the node
# plugin's path with the fuse-host sidecar. One `daxfs-csi fuse-host`
# process runs for the whole run; each mount is a request on its socket
# (bench/lib/hostserve, the request the plugin sends) and fuse-host serves
# the same image file as daxfs-fuse in its own process, a goroutine set per
# mount: no exec per mount. drop_caches also drops fuse-host's own pages, so
# a cold mount pays for paging back in the code it runs, like a node under
# memory pressure would.
PEER_TITLE[daxfshost]="daxfs-fuse (fuse-host)"
PEER_NEEDS[daxfshost]="daxfs"

# start_fusehost: once per run, before the first cold mount's clock starts
# (peer_down runs before drop_caches and the mount).
start_fusehost() {
	local sock=$WORK/fuse-host.sock pid t
	[[ -n ${PEER_PID[daxfshost]:-} ]] && return 0
	"$DAXFS_BIN" fuse-host --socket "$sock" >>"$OUT/logs/fuse-host.log" 2>&1 &
	pid=$!
	PEER_PID[daxfshost]=$pid
	LIVE_PIDS[$pid]=1
	for ((t = 0; t < 1000; t++)); do
		[[ -S $sock ]] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.01
	done
	tail -20 "$OUT/logs/fuse-host.log" >&2
	die "fuse-host did not start"
}

mount_daxfshost() { # TREE MNT
	local sock=$WORK/fuse-host.sock
	start_fusehost
	HOST_HANDLE=$("$HOSTSERVE" -socket "$sock" -image "$IMG/$1.daxfs" -mountpoint "$2" 2>>"$OUT/logs/fuse-host.log") ||
		{ tail -20 "$OUT/logs/fuse-host.log" >&2; die "fuse-host did not serve $IMG/$1.daxfs"; }
}

umount_daxfshost() { # MNT
	start_fusehost
	if [[ -n ${HOST_HANDLE:-} ]]; then
		"$HOSTSERVE" -socket "$WORK/fuse-host.sock" -stop "$HOST_HANDLE" 2>>"$OUT/logs/fuse-host.log" || true
		HOST_HANDLE=
	fi
	umount_all "$1"
}

release_daxfshost() {
	[[ -n ${PEER_PID[daxfshost]:-} ]] && stop_pid "${PEER_PID[daxfshost]}"
	PEER_PID[daxfshost]=
	return 0
}
