# bench/lib/report.sh: the one table (medians + ratios) and the page around it.

# table RESULTS PEER...: markdown table. Cells are medians over the reps
# (the count is in the "n" column); ratio columns are peer ÷ daxfs-fuse, so
# > 1 means daxfs-fuse is faster (or smaller), < 1 means the peer is.
table() {
	local results=$1
	shift
	local titles=() p
	for p in "$@"; do titles+=("${PEER_TITLE[$p]}"); done
	awk -F'\t' -v peers="$*" -v titles="$(IFS=,; echo "${titles[*]}")" '
	function median(s,    a, n, i, j, t) {
		n = split(s, a, " ")
		for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	function fmt(v, u) {
		if (u == "s") return (v < 10) ? sprintf("%.3f s", v) : sprintf("%.1f s", v)
		return sprintf("%.1f %s", v, u)
	}
	{
		k = $1 SUBSEP $2 SUBSEP $3
		if (!(k in seen)) { seen[k] = 1; order[++nk] = k; unit[k] = $7 }
		vals[k, $4] = vals[k, $4] " " $6
		c = ++cnt2[k, $4]; if (c > cnt[k]) cnt[k] = c
	}
	END {
		np = split(peers, P, " "); split(titles, T, ",")
		hasdax = 0; for (i = 1; i <= np; i++) if (P[i] == "daxfs") hasdax = 1
		h = "| tree | workload | state | n |"; sep = "|---|---|---|---|"
		for (i = 1; i <= np; i++) { h = h " " T[i] " |"; sep = sep "---:|" }
		if (hasdax) for (i = 1; i <= np; i++) if (P[i] != "daxfs") { h = h " " T[i] " ÷ daxfs |"; sep = sep "---:|" }
		print h; print sep
		for (o = 1; o <= nk; o++) {
			k = order[o]; split(k, f, SUBSEP)
			line = "| " f[1] " | " f[2] " | " f[3] " | " cnt[k] " |"
			dm = ""
			if (hasdax && ((k, "daxfs") in vals)) dm = median(vals[k, "daxfs"])
			for (i = 1; i <= np; i++) {
				if ((k, P[i]) in vals) { m[i] = median(vals[k, P[i]]); line = line " " fmt(m[i], unit[k]) " |" }
				else { m[i] = ""; line = line " – |" }
			}
			if (hasdax) for (i = 1; i <= np; i++) if (P[i] != "daxfs") {
				if (m[i] != "" && dm != "" && dm + 0 > 0) line = line sprintf(" %.2f |", m[i] / dm)
				else line = line " – |"
			}
			print line
		}
	}' "$results"
}

# targets RESULTS: the project's targets, checked against the medians.
targets() {
	awk -F'\t' '
	function median(s,    a, n, i, j, t) {
		n = split(s, a, " ")
		for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{ k = $1 SUBSEP $2 SUBSEP $3; if (!(k in seen)) { seen[k] = 1; order[++nk] = k }; vals[k, $4] = vals[k, $4] " " $6 }
	END {
		if (!nk) exit
		sq = 0; sqmiss = ""; er = 0; ermiss = ""; ermet = ""; bd = 0; bdmiss = ""; bdmet = ""
		for (o = 1; o <= nk; o++) {
			k = order[o]; split(k, f, SUBSEP)
			if (!((k, "daxfs") in vals)) continue
			d = median(vals[k, "daxfs"])
			if ((f[3] == "cold" || f[3] == "warm") && f[2] !~ /^mount/ && ((k, "squashfuse") in vals)) {
				s = median(vals[k, "squashfuse"]); sq++
				if (!(d < s)) sqmiss = sqmiss sprintf("\n  - missed: %s, %s, %s: daxfs-fuse %.3f s vs squashfuse %.3f s (%.2f×)", f[1], f[2], f[3], d, s, s / d)
			}
			if (f[3] == "warm" && f[2] ~ /^tar/ && ((k, "erofs") in vals)) {
				e = median(vals[k, "erofs"]); er++
				r = sprintf("%s: daxfs-fuse %.3f s = %.2f× erofs %.3f s", f[1], d, d / e, e)
				if (d <= 2 * e) ermet = ermet "\n  - met: " r; else ermiss = ermiss "\n  - missed: " r
			}
			if (f[3] == "build" && f[2] ~ /uncompressed/ && ((k, "erofs") in vals)) { bdk[f[1]] = d; bek[f[1]] = median(vals[k, "erofs"]) }
			if (f[2] ~ /device bytes/) { n = substr(f[3], 3) + 0; dev[n] = d; if (n0 == "" || n < n0) n0 = n; if (n > n1) n1 = n }
		}
		if (sq) printf "- daxfs-fuse faster than squashfuse on every read workload: %s%s\n", (sqmiss == "" ? "**met** (" sq " rows)" : "**missed**"), sqmiss
		if (er) printf "- daxfs-fuse within 2× of kernel erofs on warm tar: %s%s%s\n", (ermiss == "" ? "**met**" : "**missed**"), ermet, ermiss
		for (t in bdk) if (t in bek) {
			r = sprintf("%s: daxfs %.3f s vs mkfs.erofs %.3f s (%.2f×)", t, bdk[t], bek[t], bdk[t] / bek[t])
			if (bdk[t] <= bek[t]) bdmet = bdmet "\n  - met: " r; else bdmiss = bdmiss "\n  - missed: " r
			bd++
		}
		if (bd) printf "- image build at least as fast as mkfs.erofs: %s%s%s\n", (bdmiss == "" ? "**met**" : "**missed**"), bdmet, bdmiss
		if (n1 > 0) printf "- device bytes flat in N: %s (N=%d: %.1f MiB, N=%d: %.1f MiB)\n", (dev[n1] <= dev[n0] * 1.01 ? "**met**" : "**missed**"), n0, dev[n0], n1, dev[n1]
	}' "$1"
}

tool_versions() {
	echo "- mkfs.erofs: erofs-utils $(dpkg-query -W -f '${Version}' erofs-utils 2>/dev/null)"
	echo "- mksquashfs: $(mksquashfs -version 2>/dev/null | head -1) (squashfs-tools $(dpkg-query -W -f '${Version}' squashfs-tools 2>/dev/null))"
	echo "- squashfuse: \`$SQUASHFUSE\` from squashfuse $(dpkg-query -W -f '${Version}' squashfuse 2>/dev/null); fuse3 $(dpkg-query -W -f '${Version}' fuse3 2>/dev/null)"
	echo "- GNU tar $(tar --version | head -1 | awk '{ print $NF }'), findutils $(find --version | head -1 | awk '{ print $NF }'), coreutils $(cat --version | head -1 | awk '{ print $NF }')"
	local dax="not measured"
	if [[ " ${PEER_LIST[*]} " == *" daxfs "* ]]; then
		if [[ -n $DAXFS_COMMIT ]]; then dax="commit $DAXFS_COMMIT (\`git archive HEAD\`, built by bench/run)"; else dax="$DAXFS_BIN"; fi
	fi
	echo "- Go: $("$GO" version | awk '{ print $3 }'); daxfs-csi: $dax"
}

report() {
	local t
	cat <<EOF
## Against what a user would pick instead (bench/run)

Generated by \`bench/run\` on $(date -u '+%Y-%m-%d %H:%M UTC') ($ELAPSED s); do not edit by hand,
rerun it. How it measures: [bench/README.md](../bench/README.md).

Command: \`$CMDLINE\` (as root, from the repository root; corpus cache \`$CACHE\`)

Machine: $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM,
kernel $(uname -r), root filesystem $(findmnt -n -o FSTYPE /) on $(findmnt -n -o SOURCE /). Shared with other
engineers' builds and tests during the run: medians of $REPS, peers interleaved
within each repetition so a noisy moment hits all of them.

Cold runs: $(if [[ $DROP_OK == yes ]]; then echo "\`echo 3 > /proc/sys/vm/drop_caches\` worked and ran before each"; else echo "**drop_caches was refused**; cold runs only remounted"; fi);
every mount is also unmounted and remounted (FUSE servers restarted, so
their state is gone too), and **a cold row is mount + workload**: fuse-serve
validates the image's metadata before it mounts (the inode table and every
directory: the first blocks of an image from \`image build\`), which pages
that part in, so the mount is charged to every peer's cold time; the mount
row alone shows that part. All images live as files on the same disk, so cold
reads of every peer, daxfs-fuse included, come from that disk; tmpfs has no
cold state (its cold rows only had the other caches dropped).
Warm runs: one untimed pass, then the timed passes on the same mount.

Trees:
EOF
	for t in "${TREE_LIST[@]}"; do echo "- \`$t\`: ${TREE_DESC[$t]}"; done
	[[ $MEMORY == yes ]] && echo "- \`$TREE_MEM\` (memory rows): ${TREE_DESC[$TREE_MEM]}, Debian's /etc and /usr/bin"
	cat <<EOF

Peers: **daxfs-fuse** = \`daxfs-csi fuse-serve --image IMG --mountpoint DIR\`;
**squashfuse**; **squashfs** and **erofs** = the kernel filesystems on a
read-only loop device; **tmpfs** = a copy of the tree. squashfs images are
uncompressed (\`-noI -noD -noF -noX\`), like the daxfs and erofs images, so
nobody pays for decompression on reads; mksquashfs's default (gzip, all
CPUs) is timed in its own build row (not on the big tree: random bytes).
Builds are timed until the image is on disk (command + \`sync IMAGE\`;
daxfs-csi fsyncs by itself). Image size of tmpfs = \`du\` of the tree.
Memory rows: RssFile is the daxfs-csi binary's text (shared by every
fuse-serve on a node); the page cache is what the kernel keeps of the files
read through each mount (\`fincore\`), for tmpfs its N copies.

Cells: median wall seconds (or MiB). **Ratio columns = peer ÷ daxfs-fuse: > 1
means daxfs-fuse is faster or smaller, < 1 means the peer is.**

EOF
	table "$RESULTS" "${PEER_LIST[@]}"
	if [[ " ${PEER_LIST[*]} " == *" daxfs "* ]]; then
		echo
		echo "Targets (checked by bench/run against the medians above):"
		echo
		targets "$RESULTS"
	fi
	cat <<EOF

Tools:
$(tool_versions)

Raw numbers (every repetition): \`bench/out/$STAMP/results.tsv\` on the machine that ran it.
EOF
	if [[ -n ${NOTES_FILE:-} && -s ${NOTES_FILE:-} ]]; then
		echo
		cat "$NOTES_FILE"
	fi
}

# splice_doc REPORT DOC: replaces what lies between the bench/run markers
# of DOC with REPORT, leaving the rest of DOC (the go test -bench sections)
# as it is.
splice_doc() {
	local report=$1 doc=$2 begin='<!-- bench/run: begin -->' end='<!-- bench/run: end -->'
	grep -qxF "$begin" "$doc" && grep -qxF "$end" "$doc" ||
		die "$doc has no '$begin' ... '$end' lines to replace"
	awk -v begin="$begin" -v end="$end" -v report="$report" '
		$0 == begin { print; while ((getline line < report) > 0) print line; skip = 1; next }
		$0 == end { skip = 0 }
		!skip' "$doc" >"$doc.tmp" && mv "$doc.tmp" "$doc"
}
