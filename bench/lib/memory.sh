# bench/lib/memory.sh: memory of N read-only publishes of one image.
#
# daxfs: the node plugin's shape. The image is staged once into a pool on a
# memory file in a tmpfs (the stand-in for DAX/CXL device memory here), one
# `fuse-serve` process serves it, and each of the N publishes is a read-only
# bind mount of that one mount. tmpfs: N private copies, one tmpfs each.
# Every publish then reads every file once (a pod using its tree).
#
# Counted for daxfs:
#   device bytes  = allocated bytes of the pool memory file (table + extent)
#   resident      = server RssAnon + RssFile (its RssShmem is the pool
#                   mapping itself, already counted as device bytes)
#                 + page cache of the image's files behind the FUSE mount
#                   (fincore; the kernel keeps pages read through FUSE, and
#                   bind mounts share one superblock, so once)
# Counted for tmpfs:
#   resident      = allocated bytes of the N tmpfs (du -B1), which is their
#                   Shmem; /proc/meminfo Shmem before/after goes to the log.

# pagecache_bytes DIR: resident page-cache bytes of the regular files under DIR.
# Hard links are counted once (by inode number).
pagecache_bytes() {
	find "$1" -type f -printf '%i %p\n' | sort -u -k1,1 | cut -d' ' -f2- | tr '\n' '\0' |
		xargs -0 -r fincore -b -n -r -o RES 2>/dev/null |
		awk '{ s += $1 } END { printf "%d", s }'
}
meminfo_kib() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
proc_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# mem_serve_daxfs IMG MNT: stage IMG into a fresh memfile pool and serve it
# at MNT; sets MEM_PID and MEM_POOLFILE.
mem_serve_daxfs() {
	local img=$1 mnt=$2 spec size digest
	# A tmpfs of our own, not /dev/shm: that may be small (64 MiB here).
	size=$(($(stat -c %s "$img") + (64 << 20)))
	if ! is_mounted "$MNT/mem-shm"; then
		mkdir -p "$MNT/mem-shm"
		mount -t tmpfs -o size=$((size + (64 << 20))) tmpfs "$MNT/mem-shm"
	fi
	MEM_POOLFILE=$MNT/mem-shm/pool
	spec=memfile:$MEM_POOLFILE
	rm -f "$MEM_POOLFILE"
	if "$DAXFS_BIN" fuse-serve --help 2>&1 | grep -q -- '-pool'; then
		"$DAXFS_BIN" pool init --pool "$spec" --size "$size" >>"$OUT/logs/memory.log" 2>&1
		digest=$("$DAXFS_BIN" pool stage --pool "$spec" --owner bench "$img" 2>>"$OUT/logs/memory.log" | grep -o 'sha256:[0-9a-f]*' | head -1) || true
		[[ -n $digest ]] || die "pool stage printed no digest; see $OUT/logs/memory.log"
		MEM_MODE="pool $spec, digest ${digest:0:19}…"
		# shellcheck disable=SC2086
		"$DAXFS_BIN" fuse-serve --pool "$spec" --digest "$digest" --mountpoint "$mnt" $DAXFS_SERVE_ARGS \
			>>"$OUT/logs/memory.log" 2>&1 &
	else
		# No pool mode in fuse-serve: the image file itself in the tmpfs is
		# the device memory.
		cp "$img" "$MEM_POOLFILE"
		MEM_MODE="image file in a tmpfs (fuse-serve has no --pool)"
		# shellcheck disable=SC2086
		"$DAXFS_BIN" fuse-serve --image "$MEM_POOLFILE" --mountpoint "$mnt" $DAXFS_SERVE_ARGS \
			>>"$OUT/logs/memory.log" 2>&1 &
	fi
	MEM_PID=$!
	LIVE_PIDS[$MEM_PID]=1
	wait_mount "$mnt" '^fuse' "$MEM_PID" || { tail -20 "$OUT/logs/memory.log" >&2; die "fuse-serve (memory) did not mount"; }
}

# mem_device_bytes: pool size - free (+0 for the image-file fallback:
# then the whole file in the tmpfs is the device).
mem_device_bytes() {
	local js size free
	if [[ $MEM_MODE == pool* ]]; then
		js=$("$DAXFS_BIN" pool status --pool "memfile:$MEM_POOLFILE" --json)
		echo "$js" >>"$OUT/logs/memory.log"
		size=$(grep -o '"size": *[0-9]*' <<<"$js" | head -1 | grep -o '[0-9]*$')
		free=$(grep -o '"free": *[0-9]*' <<<"$js" | head -1 | grep -o '[0-9]*$')
		echo $((size - free))
	else
		stat -c %s "$MEM_POOLFILE"
	fi
}

memory_phase() { # TREE
	local tree=$1 src=$TREES/$1 n i base dev res cache anon file shm0 shm1 tot
	base=$MNT/mem
	mkdir -p "$base"
	log "[memory] tree $tree: ${TREE_DESC[$tree]}"
	if [[ " ${PEER_LIST[*]} " == *" daxfs "* ]]; then
		build_daxfs "$src" "$IMG/mem.daxfs"
		for n in $MEM_NS; do
			drop_caches
			mkdir -p "$base/server"
			mem_serve_daxfs "$IMG/mem.daxfs" "$base/server"
			for ((i = 1; i <= n; i++)); do
				mkdir -p "$base/pub$i"
				mount --bind -o ro "$base/server" "$base/pub$i"
			done
			for ((i = 1; i <= n; i++)); do
				(cd "$base/pub$i" && tar -cf - . | wc -c) >/dev/null
			done
			# Device bytes: what the pool reserved (size - free: the
			# extent, aligned) plus its header/table; the pool file's
			# allocated bytes go to the log as a cross-check.
			dev=$(mem_device_bytes)
			anon=$(($(proc_kib "$MEM_PID" RssAnon) * 1024))
			file=$(($(proc_kib "$MEM_PID" RssFile) * 1024))
			cache=$(pagecache_bytes "$base/server")
			res=$((anon + file + cache))
			echo "daxfs N=$n mode=$MEM_MODE device=$dev pool_file_allocated=$(du -B1 "$MEM_POOLFILE" | cut -f1) rssanon=$anon rssfile=$file rssshmem=$(($(proc_kib "$MEM_PID" RssShmem) * 1024)) fusecache=$cache" >>"$OUT/logs/memory.log"
			record "$tree" "memory: device bytes" "N=$n" daxfs 1 "$(bytes_mib "$dev")" MiB
			record "$tree" "memory: server RssAnon" "N=$n" daxfs 1 "$(bytes_mib "$anon")" MiB
			record "$tree" "memory: server RssFile (binary text)" "N=$n" daxfs 1 "$(bytes_mib "$file")" MiB
			record "$tree" "memory: page cache of the files" "N=$n" daxfs 1 "$(bytes_mib "$cache")" MiB
			record "$tree" "memory: total (device + resident)" "N=$n" daxfs 1 "$(bytes_mib $((dev + res)))" MiB
			for ((i = n; i >= 1; i--)); do umount_all "$base/pub$i"; done
			stop_pid "$MEM_PID"
			umount_all "$base/server"
			rm -f "$MEM_POOLFILE"
		done
		rm -f "$IMG/mem.daxfs"
		umount_all "$MNT/mem-shm"
	fi
	if [[ " ${PEER_LIST[*]} " == *" tmpfs "* ]]; then
		for n in $MEM_NS; do
			sync
			shm0=$(meminfo_kib Shmem)
			for ((i = 1; i <= n; i++)); do
				mkdir -p "$base/tmpfs$i"
				tmpfs_mount "$base/tmpfs$i"
				tmpfs_copy "$src" "$base/tmpfs$i"
			done
			for ((i = 1; i <= n; i++)); do
				(cd "$base/tmpfs$i" && tar -cf - . | wc -c) >/dev/null
			done
			shm1=$(meminfo_kib Shmem)
			tot=0
			for ((i = 1; i <= n; i++)); do
				tot=$((tot + $(du -s -B1 "$base/tmpfs$i" | cut -f1)))
			done
			echo "tmpfs N=$n du_total=$tot meminfo_shmem_delta=$(((shm1 - shm0) * 1024))" >>"$OUT/logs/memory.log"
			record "$tree" "memory: page cache of the files" "N=$n" tmpfs 1 "$(bytes_mib "$tot")" MiB
			record "$tree" "memory: total (device + resident)" "N=$n" tmpfs 1 "$(bytes_mib "$tot")" MiB
			for ((i = n; i >= 1; i--)); do umount_all "$base/tmpfs$i"; done
		done
	fi
}
