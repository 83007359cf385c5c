# bench/peers/erofs.sh: kernel EROFS on a read-only loop device, image from
# mkfs.erofs without -z (uncompressed).
PEER_TITLE[erofs]="erofs"
PEER_NEEDS[erofs]="erofs"

build_erofs() { # TREE_DIR OUT
	mkfs.erofs --quiet "$2" "$1" >/dev/null
}

mount_erofs() { # TREE MNT
	loop_attach "$IMG/$1.erofs"
	PEER_LOOP[erofs]=$LOOP_DEV
	mount -t erofs -o ro "$LOOP_DEV" "$2"
}

umount_erofs() { # MNT
	umount_all "$1"
	loop_detach "${PEER_LOOP[erofs]:-}"
	PEER_LOOP[erofs]=
}
