# bench/peers/squashfs.sh: kernel squashfs on a read-only loop device.
# The image is built uncompressed (-noI -noD -noF -noX) so every filesystem
# serves the same bytes and no peer pays for decompression; mksquashfs's
# default (gzip) is built and timed too, for the build comparison.
PEER_TITLE[squashfs]="squashfs"
PEER_NEEDS[squashfs]="sqfs"

build_sqfs() { # TREE_DIR OUT
	mksquashfs "$1" "$2" -noappend -no-progress -noI -noD -noF -noX >/dev/null
}
build_sqfsgz() { # TREE_DIR OUT
	mksquashfs "$1" "$2" -noappend -no-progress >/dev/null
}

mount_squashfs() { # TREE MNT
	loop_attach "$IMG/$1.sqfs"
	PEER_LOOP[squashfs]=$LOOP_DEV
	mount -t squashfs -o ro "$LOOP_DEV" "$2"
}

umount_squashfs() { # MNT
	umount_all "$1"
	loop_detach "${PEER_LOOP[squashfs]:-}"
	PEER_LOOP[squashfs]=
}
