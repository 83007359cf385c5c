# bench/peers/daxfs-pool.sh (opt-in: --peers ...,daxfspool): the node
# plugin's production path. The same daxfs image staged once per tree into a
# memory-file pool on a tmpfs (the stand-in for DAX/CXL device memory here),
# served by `fuse-serve --pool --digest`. Its cold rows restart the server
# and drop the caches, but the image stays in memory, as it does on a node:
# they show what daxfs-fuse's cold start costs when no disk is involved.
PEER_TITLE[daxfspool]="daxfs-fuse (pool)"
PEER_NEEDS[daxfspool]="daxfs"

# fill_daxfspool: stage once per tree, before any mount is timed.
fill_daxfspool() { # TREE
	local spec
	if [[ ${PEER_FILLED[daxfspool]:-} != "$1" ]]; then
		release_daxfspool
		# A tmpfs of our own: /dev/shm may be small (64 MiB in containers).
		POOL_DIR=$WORK/shm-daxfspool
		mkdir -p "$POOL_DIR"
		mount -t tmpfs -o size=$(($(stat -c %s "$IMG/$1.daxfs") + (128 << 20))) tmpfs "$POOL_DIR"
		POOL_FILE=$POOL_DIR/pool
		spec=memfile:$POOL_FILE
		"$DAXFS_BIN" pool init --pool "$spec" --size $(($(stat -c %s "$IMG/$1.daxfs") + (64 << 20))) >>"$OUT/logs/daxfspool.log" 2>&1
		POOL_DIGEST=$("$DAXFS_BIN" pool stage --pool "$spec" --owner bench "$IMG/$1.daxfs" 2>>"$OUT/logs/daxfspool.log" | grep -o 'sha256:[0-9a-f]*' | head -1) || true
		[[ -n $POOL_DIGEST ]] || die "pool stage printed no digest; see $OUT/logs/daxfspool.log"
		PEER_FILLED[daxfspool]=$1
	fi
}

mount_daxfspool() { # TREE MNT
	local mnt=$2
	fill_daxfspool "$1"
	# shellcheck disable=SC2086
	start_fuse_peer daxfspool "$OUT/logs/daxfspool.log" "$mnt" \
		"$DAXFS_BIN" fuse-serve --pool "memfile:$POOL_FILE" --digest "$POOL_DIGEST" --mountpoint "$mnt" $DAXFS_SERVE_ARGS
}

umount_daxfspool() { stop_fuse_peer daxfspool "$1"; } # MNT

release_daxfspool() {
	[[ -n ${POOL_DIR:-} ]] && umount_all "$POOL_DIR"
	PEER_FILLED[daxfspool]=
	return 0
}
