# bench/peers/squashfuse.sh: squashfuse (Debian's 0.1.105, the high-level
# libfuse binary; $SQUASHFUSE=squashfuse_ll picks the low-level one) on the
# same squashfs image the kernel squashfs peer mounts.
PEER_TITLE[squashfuse]="squashfuse"
PEER_NEEDS[squashfuse]="sqfs"

mount_squashfuse() { # TREE MNT
	local img=$IMG/$1.sqfs mnt=$2 pid
	"$SQUASHFUSE" -f "$img" "$mnt" >>"$OUT/logs/squashfuse.log" 2>&1 &
	pid=$!
	PEER_PID[squashfuse]=$pid
	LIVE_PIDS[$pid]=1
	wait_mount "$mnt" '^fuse' "$pid" || die "$SQUASHFUSE did not mount $img at $mnt"
}

umount_squashfuse() { # MNT
	local pid=${PEER_PID[squashfuse]:-}
	umount_all "$1"
	[[ -n $pid ]] && stop_pid "$pid"
	PEER_PID[squashfuse]=
}
