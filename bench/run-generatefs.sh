#!/usr/bin/env bash
# generatefs throughput: a 1 GiB ext4 image encrypted by generatefs (userspace, parallel
# threads) against `cryptsetup reencrypt --encrypt` (userspace offline encryption, the only
# rootless way cryptsetup has) on the same plaintext, with `openssl speed -evp aes-256-xts` as
# the ceiling. Goal: generatefs ≥ 0.9× cryptsetup.
#
#   bench/run-generatefs.sh [--build-dir DIR] [--size-mib N] [--data-mib N] [--work DIR]
#
# Both sides write the same bytes and make them durable (generatefs fsyncs; cryptsetup is
# followed by sync -f, inside its timing). Timings:
#   generatefs   whole run: mke2fs -d into the image + LUKS2 header + encryption + fsync
#   cryptsetup   mke2fs -d of the same tree (as the Go tool must) + reencrypt + sync
#   encryption   generatefs minus its mke2fs share, against reencrypt alone
# The work directory (default: a fresh one under /tmp) needs ~3.2× the size free; removed on
# exit.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${MESON_BUILD_ROOT:-$top/build}
size_mib=1024
data_mib=640
workroot=/tmp
while [ $# -gt 0 ]; do
	case "$1" in
	--build-dir) build=$2; shift 2 ;;
	--size-mib) size_mib=$2; shift 2 ;;
	--data-mib) data_mib=$2; shift 2 ;;
	--work) workroot=$2; shift 2 ;;
	-h|--help) sed -n '2,17p' "$0"; exit 0 ;;
	*) echo "run-generatefs.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
build=$(cd "$build" && pwd)
generatefs=$build/tools/generatefs/generatefs
[ -x "$generatefs" ] || { echo "run-generatefs.sh: $generatefs not built (ninja -C $build)" >&2; exit 2; }
for t in cryptsetup mke2fs openssl python3; do
	command -v "$t" >/dev/null || { echo "run-generatefs.sh: $t not installed" >&2; exit 2; }
done
[ "$data_mib" -lt "$size_mib" ] || { echo "run-generatefs.sh: --data-mib must be below --size-mib" >&2; exit 2; }

work=$(mktemp -d "$workroot/bench-generatefs.XXXXXX")
trap 'rm -rf "$work"' EXIT
fs_bytes=$((size_mib * 1024 * 1024))

now() { date +%s.%N; }
# MB/s (10^6 bytes) for $1 bytes in $2 seconds
mbps() { python3 -c "import sys; print('%.0f' % (float(sys.argv[1]) / float(sys.argv[2]) / 1e6))" "$1" "$2"; }
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
sub() { python3 -c "import sys; print('%.3f' % (float(sys.argv[1]) - float(sys.argv[2])))" "$1" "$2"; }

echo "== preparing ${data_mib} MiB of random files for a ${size_mib} MiB filesystem in $work" >&2
mkdir -p "$work/src/a" "$work/src/b"
head -c 32 /dev/urandom >"$work/key"
chmod 600 "$work/key"
for i in $(seq 1 $((data_mib / 64))); do
	openssl rand -out "$work/src/$([ $((i % 2)) = 0 ] && echo a || echo b)/f$i.bin" $((64 * 1024 * 1024))
done
sync -f "$work/key"

# --- generatefs ---------------------------------------------------------------------------
echo "== generatefs" >&2
t0=$(now)
"$generatefs" --dir "$work/src" --out "$work/gfs.img" --key-file "$work/key" \
	--size "$((size_mib + 16))M" >"$work/gfs.json" 2>"$work/gfs.err"
t1=$(now)
t_gfs=$(sub "$t1" "$t0")
rm -f "$work/gfs.img"

# --- the cryptsetup route: mke2fs into a plain file, then reencrypt --------------------------
echo "== mke2fs + cryptsetup reencrypt --encrypt" >&2
truncate -s $((fs_bytes + 32 * 1024 * 1024)) "$work/cs.img"
t0=$(now)
mke2fs -q -t ext4 -b 4096 -d "$work/src" -E lazy_itable_init=0,lazy_journal_init=0 \
	"$work/cs.img" $((fs_bytes / 4096))
sync -f "$work/cs.img"
t1=$(now)
cryptsetup reencrypt --encrypt --type luks2 --reduce-device-size 32M --sector-size 4096 \
	--pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$work/key" -q "$work/cs.img"
sync -f "$work/cs.img"
t2=$(now)
t_mkfs=$(sub "$t1" "$t0")
t_reenc=$(sub "$t2" "$t1")
t_cs=$(sub "$t2" "$t0")
rm -f "$work/cs.img"

# --- the ceiling ---------------------------------------------------------------------------
echo "== openssl speed" >&2
cores=$(nproc)
ossl1=$(openssl speed -evp aes-256-xts -bytes 4096 -seconds 2 2>/dev/null | awk '/^AES-256-XTS/ {sub(/k$/, "", $2); print $2 * 1000}')

t_gfs_enc=$(sub "$t_gfs" "$t_mkfs")
printf '\n%-44s %8s %10s\n' "generatefs benchmark (${size_mib} MiB ext4, ${data_mib} MiB data)" "seconds" "MB/s"
printf '%-44s %8.2f %10s\n' "generatefs (mke2fs + LUKS + encrypt + fsync)" "$t_gfs" "$(mbps "$fs_bytes" "$t_gfs")"
printf '%-44s %8.2f %10s\n' "mke2fs + cryptsetup reencrypt --encrypt" "$t_cs" "$(mbps "$fs_bytes" "$t_cs")"
printf '%-44s %8.2f %10s\n' "  of which mke2fs -d (plaintext, synced)" "$t_mkfs" "$(mbps "$fs_bytes" "$t_mkfs")"
printf '%-44s %8.2f %10s\n' "  of which cryptsetup reencrypt" "$t_reenc" "$(mbps "$fs_bytes" "$t_reenc")"
printf '%-44s %8.2f %10s\n' "generatefs encryption share (minus mke2fs)" "$t_gfs_enc" "$(mbps "$fs_bytes" "$t_gfs_enc")"
printf '%-44s %8s %10.0f\n' "openssl speed aes-256-xts, 1 core (ceiling)" "-" "$(python3 -c "print($ossl1 / 1e6)")"
printf '%-44s %8s %10.0f\n' "  the same x $cores cores (not measured: shared)" "-" "$(python3 -c "print($ossl1 * $cores / 1e6)")"
echo
echo "ratio generatefs / (mke2fs + cryptsetup), end to end: $(ratio "$t_cs" "$t_gfs")x (goal >= 0.9)"
echo "ratio generatefs / cryptsetup, encryption only:       $(ratio "$t_reenc" "$t_gfs_enc")x"
