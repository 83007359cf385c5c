# bench/peers/squashfuse-ll.sh: squashfuse_ll, the low-level libfuse binary
# of the same package (usually the faster one), on the same squashfs image.
PEER_TITLE[squashfusell]="squashfuse_ll"
PEER_NEEDS[squashfusell]="sqfs"

mount_squashfusell() { # TREE MNT
	start_fuse_peer squashfusell "$OUT/logs/squashfuse_ll.log" "$2" squashfuse_ll -f "$IMG/$1.sqfs" "$2"
}

umount_squashfusell() { stop_fuse_peer squashfusell "$1"; } # MNT
