# bench/peers/squashfuse-ll.sh: squashfuse_ll, the low-level libfuse binary
# of the same package (usually the faster one), on the same squashfs image.
PEER_TITLE[squashfusell]="squashfuse_ll"
PEER_NEEDS[squashfusell]="sqfs"

mount_squashfusell() { # TREE MNT
	local img=$IMG/$1.sqfs mnt=$2 pid
	squashfuse_ll -f "$img" "$mnt" >>"$OUT/logs/squashfuse_ll.log" 2>&1 &
	pid=$!
	PEER_PID[squashfusell]=$pid
	LIVE_PIDS[$pid]=1
	wait_mount "$mnt" '^fuse' "$pid" || die "squashfuse_ll did not mount $img at $mnt"
}

umount_squashfusell() { # MNT
	local pid=${PEER_PID[squashfusell]:-}
	umount_all "$1"
	[[ -n $pid ]] && stop_pid "$pid"
	PEER_PID[squashfusell]=
}
