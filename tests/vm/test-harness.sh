#!/usr/bin/env bash
# The QEMU guest harness on its own, before any project code runs in it: one boot proving that
# the guest kernel does what the end-to-end test relies on, with the stock tools.
#   network  a host HTTP service on 127.0.0.1 is reachable through the forward (by name), and
#            nothing else is (restrict=on);
#   luks     a LUKS2 image encrypted on the host without root or device-mapper (cryptsetup
#            reencrypt --encrypt on a plain file) opens in the guest and reads back the source;
#   fuse     the same image through a FUSE file → loop device → dm-crypt → mount, then a clean
#            teardown (no mapping, loop device or FUSE mount left);
#   verity   a dm-verity-pinned filesystem mounts; a tampered copy gives a read error.
#
#   tests/vm/test-harness.sh [--build-dir DIR]      (DIR defaults to $SKR_BUILD_ROOT)
# Downloads the guest kernel into DIR/vm-cache on first use; fails if it cannot.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${SKR_BUILD_ROOT:-}
while [ $# -gt 0 ]; do
	case "$1" in
	--build-dir) build=$2; shift 2 ;;
	*) echo "test-harness.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
[ -n "$build" ] || { echo "test-harness.sh: --build-dir or SKR_BUILD_ROOT needed" >&2; exit 2; }
build=$(cd "$build" && pwd)
fuse_file=$build/tests/vm/vm_fuse_file
[ -x "$fuse_file" ] || { echo "test-harness.sh: $fuse_file not built" >&2; exit 2; }
for tool in cryptsetup veritysetup mkfs.ext4 debugfs losetup python3; do
	command -v "$tool" >/dev/null ||
		{ echo "test-harness.sh: '$tool' not found (cryptsetup-bin, e2fsprogs...)" >&2; exit 1; }
done

kernel=$("$here/fetch-kernel.sh" "$build/vm-cache")

work=$(mktemp -d /tmp/vm-harness.XXXXXX)
http_pid=
cleanup() {
	[ -z "$http_pid" ] || { kill "$http_pid" 2>/dev/null; wait "$http_pid" 2>/dev/null || true; }
	rm -rf "$work"
}
trap cleanup EXIT
trap "exit 143" TERM INT

echo "== source files"
mkdir -p "$work/src" "$work/www" "$work/etc"
head -c 1048576 /dev/urandom >"$work/src/data.bin"
hello="hello from the host $(date +%s)"
printf '%s' "$hello" >"$work/src/hello.txt"
data_sha=$(sha256sum "$work/src/data.bin" | cut -d' ' -f1)
head -c 262144 /dev/urandom >"$work/www/blob"
blob_sha=$(sha256sum "$work/www/blob" | cut -d' ' -f1)
# A test-only passphrase: the harness checks the kernel, not key handling.
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/etc/passphrase"

echo "== LUKS2 image, encrypted in place on a plain file (no root, no device-mapper)"
truncate -s 64M "$work/luks.img"
mkfs.ext4 -q -b 4096 -d "$work/src" "$work/luks.img" 32M
cryptsetup reencrypt --encrypt --type luks2 --reduce-device-size 32M --batch-mode \
	--sector-size 4096 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
	--key-file "$work/etc/passphrase" "$work/luks.img"

echo "== dm-verity data, hash tree, and a tampered copy of the data"
truncate -s 16M "$work/verity.img"
mkfs.ext4 -q -b 4096 -d "$work/src" "$work/verity.img"
veritysetup format "$work/verity.img" "$work/verity.hash" >"$work/verity.out"
root_hash=$(sed -n 's/^Root hash:[[:space:]]*//p' "$work/verity.out")
[ -n "$root_hash" ] || { cat "$work/verity.out"; exit 1; }
cp "$work/verity.img" "$work/tampered.img"
block=$(debugfs -R "bmap /data.bin 0" "$work/verity.img" 2>/dev/null)
printf '\xff' | dd of="$work/tampered.img" bs=1 seek=$((block * 4096 + 100)) conv=notrunc \
	status=none
cmp -s "$work/verity.img" "$work/tampered.img" && { echo "tampering changed nothing"; exit 1; }

echo "== HTTP service on 127.0.0.1"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$work/www" >"$work/http.out" 2>&1 &
http_pid=$!
for _ in $(seq 1 100); do
	port=$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$work/http.out" | head -1)
	[ -n "$port" ] && break
	sleep 0.1
done
[ -n "$port" ] || { echo "http.server did not start:"; cat "$work/http.out"; exit 1; }
# A port with nothing forwarded to it (the guest must not get through).
unforwarded=$((port == 65535 ? port - 1 : port + 1))

echo "== initramfs"
"$here/build-initramfs.sh" --kernel-dir "$kernel" --output "$work/initrd.gz" \
	--bin "$(command -v cryptsetup)" --bin "$(command -v veritysetup)" \
	--bin "$(command -v losetup)" --bin "$fuse_file" \
	--file "$work/etc/passphrase:/etc/vm-test/passphrase" \
	--host devcloud \
	--env "HTTP_PORT=$port" --env "UNFORWARDED_PORT=$unforwarded" \
	--env "BLOB_SHA256=$blob_sha" --env "DATA_SHA256=$data_sha" \
	--env "HELLO_TEXT=$hello" --env "VERITY_ROOT_HASH=$root_hash" \
	--scenario "network:$here/scenarios/harness-network.sh" \
	--scenario "luks:$here/scenarios/harness-luks.sh" \
	--scenario "fuse:$here/scenarios/harness-fuse.sh" \
	--scenario "verity:$here/scenarios/harness-verity.sh" \
	--timeout 60

echo "== boot"
"$here/run-guest.sh" --kernel-dir "$kernel" --initrd "$work/initrd.gz" \
	--log "$build/meson-logs/vm-harness.serial.log" \
	--drive "$work/luks.img:ro" --drive "$work/verity.img:ro" \
	--drive "$work/verity.hash:ro" --drive "$work/tampered.img:ro" \
	--forward "$port" --timeout 240
