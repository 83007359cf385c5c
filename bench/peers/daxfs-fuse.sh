# bench/peers/daxfs-fuse.sh: our FUSE fallback, `daxfs-csi fuse-serve`, the
# same server process the node plugin runs per staged image. It stays in the
# foreground until SIGTERM; the mount appears when it is ready.
PEER_TITLE[daxfs]="daxfs-fuse"
PEER_NEEDS[daxfs]="daxfs"

build_daxfs() { # TREE_DIR OUT
	"$DAXFS_BIN" image build "$1" -o "$2" >/dev/null
}

mount_daxfs() { # TREE MNT
	local img=$IMG/$1.daxfs mnt=$2 pid
	# shellcheck disable=SC2086
	"$DAXFS_BIN" fuse-serve --image "$img" --mountpoint "$mnt" $DAXFS_SERVE_ARGS \
		>>"$OUT/logs/fuse-serve.$1.log" 2>&1 &
	pid=$!
	PEER_PID[daxfs]=$pid
	LIVE_PIDS[$pid]=1
	wait_mount "$mnt" '^fuse' "$pid" || {
		tail -20 "$OUT/logs/fuse-serve.$1.log" >&2
		die "daxfs-csi fuse-serve did not mount $img at $mnt"
	}
}

umount_daxfs() { # MNT
	local pid=${PEER_PID[daxfs]:-}
	[[ -n $pid ]] && stop_pid "$pid"
	PEER_PID[daxfs]=
	umount_all "$1"
}
