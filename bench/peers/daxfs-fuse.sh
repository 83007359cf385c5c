# bench/peers/daxfs-fuse.sh: our FUSE fallback, `daxfs-csi fuse-serve`, the
# same server process the node plugin runs per staged image. It stays in the
# foreground until SIGTERM; the mount appears when it is ready.
PEER_TITLE[daxfs]="daxfs-fuse"
PEER_NEEDS[daxfs]="daxfs"

build_daxfs() { # TREE_DIR OUT
	"$DAXFS_BIN" image build "$1" -o "$2" >/dev/null
}

mount_daxfs() { # TREE MNT
	# shellcheck disable=SC2086
	start_fuse_peer daxfs "$OUT/logs/fuse-serve.$1.log" "$2" \
		"$DAXFS_BIN" fuse-serve --image "$IMG/$1.daxfs" --mountpoint "$2" $DAXFS_SERVE_ARGS
}

umount_daxfs() { stop_fuse_peer daxfs "$1"; } # MNT
