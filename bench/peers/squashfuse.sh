# bench/peers/squashfuse.sh: squashfuse (Debian's 0.1.105, the high-level
# libfuse binary; $SQUASHFUSE=squashfuse_ll picks the low-level one) on the
# same squashfs image the kernel squashfs peer mounts.
PEER_TITLE[squashfuse]="squashfuse"
PEER_NEEDS[squashfuse]="sqfs"

mount_squashfuse() { # TREE MNT
	start_fuse_peer squashfuse "$OUT/logs/squashfuse.log" "$2" "$SQUASHFUSE" -f "$IMG/$1.sqfs" "$2"
}

umount_squashfuse() { stop_fuse_peer squashfuse "$1"; } # MNT
