# bench/peers/daxfs-hostpool.sh (opt-in: --peers ...,daxfshostpool): the
# node plugin's real path. The image is staged once per tree into a
# memory-file pool on a tmpfs (the stand-in for DAX/CXL device memory), and
# the running fuse-host (the one daxfshost uses, started the same way) is
# asked over its socket to serve the pool's extent: no exec per mount, no
# disk under the image. Cold rows drop the caches, but the pool stays in
# memory, as device memory does on a node.
PEER_TITLE[daxfshostpool]="daxfs-fuse (fuse-host from pool)"
PEER_NEEDS[daxfshostpool]="daxfs"

# fill_daxfshostpool: stage TREE's image into a fresh pool, once per tree,
# before any mount is timed (staging is not part of a mount).
fill_daxfshostpool() { # TREE
	local dir size
	if [[ ${PEER_FILLED[daxfshostpool]:-} != "$1" ]]; then
		release_daxfshostpool
		dir=$WORK/shm-daxfshostpool
		mkdir -p "$dir"
		size=$(stat -c %s "$IMG/$1.daxfs")
		mount -t tmpfs -o size=$((size + (128 << 20))) tmpfs "$dir"
		HOSTPOOL_DIR=$dir
		"$DAXFS_BIN" pool init --pool "memfile:$dir/pool" --size $((size + (64 << 20))) >>"$OUT/logs/daxfshostpool.log" 2>&1
		HOSTPOOL_DIGEST=$("$DAXFS_BIN" pool stage --pool "memfile:$dir/pool" --owner bench "$IMG/$1.daxfs" 2>>"$OUT/logs/daxfshostpool.log" | grep -o 'sha256:[0-9a-f]*' | head -1) || true
		[[ -n $HOSTPOOL_DIGEST ]] || die "pool stage printed no digest; see $OUT/logs/daxfshostpool.log"
		PEER_FILLED[daxfshostpool]=$1
	fi
}

mount_daxfshostpool() { # TREE MNT
	local sock=$WORK/fuse-host.sock
	fill_daxfshostpool "$1"
	start_fusehost
	HOSTPOOL_HANDLE=$("$HOSTSERVE" -socket "$sock" -pool "memfile:$HOSTPOOL_DIR/pool" -digest "$HOSTPOOL_DIGEST" -mountpoint "$2" 2>>"$OUT/logs/fuse-host.log") ||
		{ tail -20 "$OUT/logs/fuse-host.log" >&2; die "fuse-host did not serve $HOSTPOOL_DIGEST from the pool"; }
}

umount_daxfshostpool() { # MNT
	if [[ -n ${HOSTPOOL_HANDLE:-} ]]; then
		"$HOSTSERVE" -socket "$WORK/fuse-host.sock" -stop "$HOSTPOOL_HANDLE" 2>>"$OUT/logs/fuse-host.log" || true
		HOSTPOOL_HANDLE=
	fi
	umount_all "$1"
}

release_daxfshostpool() {
	release_daxfshost # the fuse-host holds the pool mapped
	[[ -n ${HOSTPOOL_DIR:-} ]] && umount_all "$HOSTPOOL_DIR"
	HOSTPOOL_DIR=
	PEER_FILLED[daxfshostpool]=
	return 0
}
