# bench/lib/corpus.sh: the trees every filesystem is measured on. Built once
# under $CACHE/trees and never rebuilt while present (a tree is created as
# NAME.partial and renamed when complete, so an interrupted build is redone).

# debian_mirror: the Debian mirror apt already uses here.
debian_mirror() {
	local m
	m=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null |
		grep -oE 'https?://[^ ]*/debian/?( |$)' | head -1 | tr -d ' ')
	echo "${m:-http://deb.debian.org/debian}"
}

# need_tool BINARY APT_PACKAGE
need_tool() {
	command -v "$1" >/dev/null 2>&1 && return 0
	log "installing $2 (for $1)"
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$2" >/dev/null ||
		die "cannot install $2; run: apt-get update && apt-get install $2"
	command -v "$1" >/dev/null 2>&1 || die "$2 installed but $1 is not on PATH"
}

# tree_debian DIR: debootstrap --variant=minbase bookworm, minus the .debs
# it leaves in var/cache/apt/archives (a container rootfs has none).
tree_debian() {
	local d=$1
	[[ -d $d ]] && return 0
	need_tool debootstrap debootstrap
	local mirror
	mirror=$(debian_mirror)
	log "building Debian rootfs: debootstrap --variant=minbase bookworm $d ($mirror)"
	rm -rf "$d.partial"
	debootstrap --variant=minbase bookworm "$d.partial" "$mirror" >"$d.log" 2>&1 ||
		die "debootstrap failed; see $d.log"
	rm -f "$d.partial"/var/cache/apt/archives/*.deb
	mv "$d.partial" "$d"
}

# tree_small DIR FILES
tree_small() {
	local d=$1 n=$2
	[[ -d $d ]] && return 0
	log "generating $n small files in $d"
	rm -rf "$d.partial"
	"$GENTREE" small -files "$n" "$d.partial"
	mv "$d.partial" "$d"
}

# tree_big DIR FILES BYTES
tree_big() {
	local d=$1 n=$2 size=$3
	[[ -d $d ]] && return 0
	log "generating $n files of $size bytes in $d"
	rm -rf "$d.partial"
	"$GENTREE" big -files "$n" -size "$size" "$d.partial"
	mv "$d.partial" "$d"
}

# tree_stats DIR: "files dirs bytes" (apparent bytes of regular files).
tree_stats() {
	local f d b
	f=$(find "$1" -type f | wc -l)
	d=$(find "$1" -type d | wc -l)
	b=$(find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }')
	echo "$f $d $b"
}
