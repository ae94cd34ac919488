#!/usr/bin/env bash
# Blob read benchmark on loopback (issue 5), run by hand, never by `meson test`:
#   1. sequential read of a random-data blob (1 GiB) through the FUSE file (libencfs: blob →
#      block cache → FUSE; `dd bs=1M` to /dev/null) vs `curl` of the same blob from the same
#      Azurite in the same run → ratio FUSE/curl (goal ≥ 0.8);
#   2. time to first byte through FUSE (blob_open + block cache + FUSE mount + open + first
#      4 KiB read, median of N fresh mounts) for a 16 MiB and a 1 GiB blob → ratio (goal ≤ 1.2:
#      lazy access must not depend on the image size).
# The FUSE bytes are checked against the blob's SHA-256 after the timed runs.
#
#   bench/run-blob-read.sh [--build-dir DIR] [--size-mib N] [--rounds N] [--runs N]
#                          [--in-memory] [--block-size B] [--capacity N] [--readahead N]
#                          [--threads N] [--baseline BIN]
#
# --baseline BIN: also read through the FUSE file of another build's blob_read (a copy of
# bench/blob_read from before a change; it links libencfs statically) in every round, right
# after ours, so a change is judged against the same Azurite, blob and machine load.
#
# Azurite keeps its blobs on disk (--location in the work directory, page-cached) by default:
# 1 GiB of blob data in Node's in-memory extent store is possible but gains nothing and costs
# the host that much RAM for the whole run; --in-memory switches to --inMemoryPersistence.
# Needs root and /dev/fuse. Everything started here is stopped on exit.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${MESON_BUILD_ROOT:-$top/build}
size_mib=1024
small_mib=16
rounds=2
runs=11
serve_args=(--on-disk)
cache_args=()
baseline=
while [ $# -gt 0 ]; do
	case "$1" in
	--build-dir) build=$2; shift 2 ;;
	--size-mib) size_mib=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--in-memory) serve_args=(); shift ;;
	--block-size|--capacity|--readahead|--threads) cache_args+=("$1" "$2"); shift 2 ;;
	--baseline) baseline=$(realpath "$2"); shift 2 ;;
	-h|--help) sed -n '2,23p' "$0"; exit 0 ;;
	*) echo "run-blob-read.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
build=$(cd "$build" && pwd)
bench=$build/bench/blob_read
[ -x "$bench" ] || { echo "run-blob-read.sh: $bench not built (ninja -C $build)" >&2; exit 2; }
[ -z "$baseline" ] || [ -x "$baseline" ] ||
	{ echo "run-blob-read.sh: --baseline $baseline is not an executable" >&2; exit 2; }
if [ "$(id -u)" != 0 ] || [ ! -w /dev/fuse ]; then
	echo "run-blob-read.sh: needs root and /dev/fuse (FUSE mounts)" >&2
	exit 2
fi
command -v curl >/dev/null || { echo "run-blob-read.sh: curl not found" >&2; exit 2; }

work=$(mktemp -d /tmp/bench-blob-read.XXXXXX)
serve_pid=
mount_pid=

# shellcheck source=bench/lib.sh
. "$top/bench/lib.sh"

cleanup() {
	bench_stop "$mount_pid" || true
	# a killed mount helper leaves its FUSE mount behind
	mountpoint -q "$work/fuse" 2>/dev/null && umount -l "$work/fuse"
	bench_stop "$serve_pid" || true
	rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
# CPU time (user + system, clock ticks) process $1 has used so far, its threads included.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# The pids of process $1 and its descendants.
process_tree() {
	local c
	echo "$1"
	for c in $(ps -o pid= --ppid "$1"); do process_tree "$c"; done
}
# CPU ticks of the Azurite server (blob_read serve and the Node process it started).
server_ticks() {
	local p t=0
	for p in $(process_tree "$serve_pid"); do t=$((t + $(cpu_ticks "$p"))); done
	echo "$t"
}
hz=$(getconf CLK_TCK)
# awk arithmetic: calc EXPR
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
# Whether number $1 < number $2.
less() { awk "BEGIN { exit !($1 < $2) }"; }

# Wait until file $1 has a line starting with $2 (process $3 must stay alive); print the line.
wait_line() {
	local i line
	for i in $(seq 1 600); do
		line=$(grep -m1 "^$2" "$1" 2>/dev/null || true)
		[ -n "$line" ] && { echo "$line"; return 0; }
		kill -0 "$3" 2>/dev/null || { echo "run-blob-read.sh: $4 exited" >&2; return 1; }
		sleep 0.1
	done
	echo "run-blob-read.sh: $4 not ready in 60 s" >&2
	return 1
}

echo "== Azurite ${serve_args[*]:-(in memory)}" >&2
"$bench" serve --dir "$work/azurite" "${serve_args[@]}" >"$work/serve.out" 2>"$work/serve.err" &
serve_pid=$!
port=$(wait_line "$work/serve.out" "port " "$serve_pid" "blob_read serve") ||
	{ cat "$work/serve.err" >&2; exit 1; }
port=${port#port }

echo "== uploading ${size_mib} MiB and ${small_mib} MiB of random data" >&2
head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$work/big.bin"
head -c $((small_mib * 1024 * 1024)) /dev/urandom >"$work/small.bin"
big_sha=$(sha256sum "$work/big.bin" | cut -d' ' -f1)
big_url=$("$bench" upload --port "$port" --file "$work/big.bin" --blob big.bin)
small_url=$("$bench" upload --port "$port" --file "$work/small.bin" --blob small.bin)
rm -f "$work/big.bin" "$work/small.bin"
bytes=$((size_mib * 1024 * 1024))

# Sequential read through a fresh FUSE mount (no kernel page cache from an earlier round), by
# blob_read binary $1, its messages appended to file $2.
fuse_read() {
	local file t0 t1
	"$1" mount --url "$big_url" --dir "$work/fuse" "${cache_args[@]}" \
		>"$work/mount.out" 2>>"$2" &
	mount_pid=$!
	file=$(wait_line "$work/mount.out" "ready " "$mount_pid" "blob_read mount") ||
		{ cat "$2" >&2; exit 1; }
	file=${file#ready }
	s0=$(server_ticks)
	m0=$(cpu_ticks "$mount_pid")
	t0=$(now)
	dd if="$file" of=/dev/null bs=1M status=none
	t1=$(now)
	m1=$(cpu_ticks "$mount_pid")
	s1=$(server_ticks)
	bench_stop "$mount_pid" || true
	mount_pid=
	echo "$(calc "$t1 - $t0") $(calc "($s1 - $s0) / $hz") $(calc "($m1 - $m0) / $hz")"
}

curl_read() {
	local out s0 s1
	s0=$(server_ticks)
	out=$(curl -s -f -o /dev/null -w '%{time_total} %{size_download}' "$big_url")
	s1=$(server_ticks)
	[ "${out#* }" = "$bytes" ] || { echo "run-blob-read.sh: curl got ${out#* } bytes" >&2; exit 1; }
	echo "${out% *} $(calc "($s1 - $s0) / $hz")"
}

best_curl=
best_fuse=
best_base=
ratios=
base_ratios=
# Per read also the CPU seconds the server used (Node: its cost per request shows here) and,
# through FUSE, those of the mount process: on a shared host they vary less than the times.
for r in $(seq 1 "$rounds"); do
	out=$(curl_read)
	read -r tc sc <<<"$out"
	out=$(fuse_read "$bench" "$work/mount.err")
	read -r tf sf mf <<<"$out"
	line=$(printf 'round %d: curl %s s (server CPU %s s), FUSE %s s (ratio %s; CPU server %s s, mount %s s)' \
		"$r" "$tc" "$sc" "$tf" "$(calc "$tc / $tf")" "$sf" "$mf")
	ratios="$ratios $(calc "$tc / $tf")"
	if [ -n "$baseline" ]; then
		out=$(fuse_read "$baseline" "$work/mount-base.err")
		read -r tb sb mb_ <<<"$out"
		base_ratios="$base_ratios $(calc "$tc / $tb")"
		line=$(printf '%s, baseline FUSE %s s (ratio %s; CPU server %s s, mount %s s)' \
			"$line" "$tb" "$(calc "$tc / $tb")" "$sb" "$mb_")
		if [ -z "$best_base" ] || less "$tb" "$best_base"; then best_base=$tb; fi
	fi
	echo "$line" >&2
	if [ -z "$best_curl" ] || less "$tc" "$best_curl"; then best_curl=$tc; fi
	if [ -z "$best_fuse" ] || less "$tf" "$best_fuse"; then best_fuse=$tf; fi
done
grep '^cache:' "$work/mount.err" | tail -1 | sed 's/^/last FUSE round /' >&2 || true

echo "== checking the FUSE bytes" >&2
"$bench" mount --url "$big_url" --dir "$work/fuse" "${cache_args[@]}" \
	>"$work/mount.out" 2>>"$work/mount.err" &
mount_pid=$!
file=$(wait_line "$work/mount.out" "ready " "$mount_pid" "blob_read mount") ||
	{ cat "$work/mount.err" >&2; exit 1; }
fuse_sha=$(sha256sum "${file#ready }" | cut -d' ' -f1)
bench_stop "$mount_pid" || true
mount_pid=
[ "$fuse_sha" = "$big_sha" ] ||
	{ echo "run-blob-read.sh: FUSE bytes differ from the blob (sha256 $fuse_sha)" >&2; exit 1; }

echo "== time to first byte" >&2
# Interleaved (small, large, small, …) after one unmeasured run of each, so that drift in a
# shared machine's load hits both alike; medians.
ttfb_once() {
	local line
	line=$("$bench" ttfb --url "$1" --dir "$work/fuse" -n 1 "${cache_args[@]}" 2>>"$work/ttfb.err") ||
		{ cat "$work/ttfb.err" >&2; exit 1; }
	echo "$line" | cut -d' ' -f2
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ttfb_once "$small_url" >/dev/null
ttfb_once "$big_url" >/dev/null
small_list=
big_list=
for _ in $(seq 1 "$runs"); do
	small_list="$small_list $(ttfb_once "$small_url")"
	big_list="$big_list $(ttfb_once "$big_url")"
done
ttfb_small=$(echo "$small_list" | median)
ttfb_big=$(echo "$big_list" | median)
curl_ttfb=$(curl -s -f -o /dev/null -r 0-4095 -w '%{time_starttransfer}' "$big_url")

mb=$(calc "$bytes / 1000000")
echo
echo "Sequential read of a ${size_mib} MiB random blob from Azurite on 127.0.0.1 (best of $rounds):"
printf '  curl                : %8.1f MB/s  (%s s)\n' "$(calc "$mb / $best_curl")" "$best_curl"
printf '  FUSE file, dd bs=1M : %8.1f MB/s  (%s s)\n' "$(calc "$mb / $best_fuse")" "$best_fuse"
printf '  ratio FUSE / curl   : %8.2f       (goal >= 0.8; median of the rounds %.2f, range %s-%s)\n' \
	"$(calc "$best_curl / $best_fuse")" "$(echo "$ratios" | median)" \
	"$(echo "$ratios" | tr ' ' '\n' | grep . | sort -g | head -1)" \
	"$(echo "$ratios" | tr ' ' '\n' | grep . | sort -g | tail -1)"
if [ -n "$baseline" ]; then
	printf '  baseline FUSE       : %8.1f MB/s  (%s s, %s)\n' "$(calc "$mb / $best_base")" \
		"$best_base" "$baseline"
	printf '  ratio baseline/curl : %8.2f       (median of the rounds %.2f, range %s-%s)\n' \
		"$(calc "$best_curl / $best_base")" "$(echo "$base_ratios" | median)" \
		"$(echo "$base_ratios" | tr ' ' '\n' | grep . | sort -g | head -1)" \
		"$(echo "$base_ratios" | tr ' ' '\n' | grep . | sort -g | tail -1)"
fi
echo "Time to first byte through FUSE (blob_open + cache + mount + first 4 KiB, median of $runs interleaved):"
printf '  %5d MiB blob      : %8.1f ms\n' "$small_mib" "$(calc "$ttfb_small * 1000")"
printf '  %5d MiB blob      : %8.1f ms\n' "$size_mib" "$(calc "$ttfb_big * 1000")"
printf '  ratio large / small : %8.2f       (goal <= 1.2)\n' "$(calc "$ttfb_big / $ttfb_small")"
printf '  (curl, first 4 KiB of the large blob: %.1f ms)\n' "$(calc "$curl_ttfb * 1000")"
