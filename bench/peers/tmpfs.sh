# bench/peers/tmpfs.sh: a private copy of the tree in a tmpfs (what a pod
# gets from an emptyDir{medium: Memory} filled by an init container). The
# copy is the "build" of this peer. tmpfs has no cold state: its pages are
# the file data, so its "cold" rows only had the other caches dropped.
PEER_TITLE[tmpfs]="tmpfs"
PEER_NEEDS[tmpfs]=""

# tmpfs_mount MNT: an empty tmpfs; tmpfs_copy TREE_DIR MNT fills it.
tmpfs_mount() {
	mount -t tmpfs -o mode=0755,size=90% tmpfs "$1"
}
tmpfs_copy() { cp -a "$1/." "$2/"; }

mount_tmpfs() { # TREE MNT
	# Kept across cold runs (it cannot be made cold); filled once per tree.
	if [[ ${PEER_FILLED[tmpfs]:-} != "$1" ]]; then
		umount_all "$2"
		tmpfs_mount "$2"
		tmpfs_copy "$TREES/$1" "$2"
		PEER_FILLED[tmpfs]=$1
	fi
}
umount_tmpfs() { :; }
release_tmpfs() { umount_all "$1"; PEER_FILLED[tmpfs]=; }
