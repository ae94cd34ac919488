#!/usr/bin/env bash
# Fetch the Debian cloud kernel a QEMU test guest boots, and keep only what the guest needs.
# The host kernel has no device-mapper, so dm-crypt and dm-verity only exist in such a guest
# (../shared/docs/vm-tests.md).
#
#   tests/vm/fetch-kernel.sh CACHE_DIR
#
# Prints the directory of the prepared kernel on stdout:
#   DIR/vmlinuz            the kernel image
#   DIR/version            its release string (uname -r)
#   DIR/modules/...        the selected .ko files, paths relative to /lib/modules/<version>/
#   DIR/modules.load       those paths in load order (dependencies first)
# The .deb stays in CACHE_DIR/debs and the prepared kernel in CACHE_DIR/<version>, so later runs
# neither download nor unpack again. Concurrent callers serialise on CACHE_DIR/lock.
#
# Fails (non-zero, with the reason on stderr) when the kernel cannot be found or fetched: a test
# that needs the guest must not silently skip.
set -euo pipefail

# Modules the guest loads, by name; their dependencies are added from modules.dep. The order is
# the one that worked (vm-tests.md): virtio transport, block and network devices, then the
# crypto templates dm-crypt needs for aes-xts-plain64 (without xts/ecb activation fails with
# "Error allocating crypto tfm"), device-mapper, verity, loop and FUSE. ext4, aes and sha256 are
# built into the cloud kernel.
wanted_modules=(
	virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
	virtio_blk failover net_failover virtio_net virtio-rng
	ecb xts dm-mod dm-crypt reed_solomon dm-bufio dm-verity
	loop fuse
)
meta_package=linux-image-cloud-amd64

die() {
	echo "fetch-kernel: $*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: fetch-kernel.sh CACHE_DIR"
for tool in apt-cache apt-get dpkg-deb depmod flock; do
	command -v "$tool" >/dev/null ||
		die "'$tool' not found (Debian packages apt, dpkg, kmod, util-linux are required)"
done
mkdir -p "$1"
cache=$(cd "$1" && pwd)

exec 9>"$cache/lock"
flock 9

# The kernel package the meta package currently points at, e.g. linux-image-6.1.0-56-cloud-amd64.
current_package() {
	apt-cache depends "$meta_package" 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -1
}

package=$(current_package)
if [ -z "$package" ]; then
	echo "fetch-kernel: $meta_package unknown to apt, running apt-get update" >&2
	apt-get update -qq >&2 || true
	package=$(current_package)
fi
if [ -z "$package" ]; then
	# Offline rerun: a kernel prepared earlier is still good for the tests.
	cached=$(find "$cache" -mindepth 2 -maxdepth 2 -name ready -printf '%h\n' 2>/dev/null |
		sort -V | tail -1)
	[ -n "$cached" ] ||
		die "cannot resolve $meta_package (apt-cache depends) and no kernel is cached in $cache"
	echo "fetch-kernel: apt cannot resolve $meta_package; using cached $cached" >&2
	echo "$cached"
	exit 0
fi
version=${package#linux-image-}
kdir=$cache/$version
if [ -f "$kdir/ready" ]; then
	echo "$kdir"
	exit 0
fi

mkdir -p "$cache/debs"
deb=$(find "$cache/debs" -maxdepth 1 -name "${package}_*_amd64.deb" | sort -V | tail -1)
if [ -z "$deb" ]; then
	echo "fetch-kernel: downloading $package" >&2
	# The sandbox user _apt cannot write into a build directory owned by root: download as root.
	download() {
		(cd "$cache/debs" && apt-get download -q -o APT::Sandbox::User=root "$package") >&2
	}
	if ! download; then
		# Package lists older than the mirror name a .deb that is gone: refresh and retry once.
		apt-get update -qq >&2 || true
		download || die "apt-get download $package failed (network to the Debian mirror?)"
	fi
	deb=$(find "$cache/debs" -maxdepth 1 -name "${package}_*_amd64.deb" | sort -V | tail -1)
	[ -n "$deb" ] || die "apt-get download $package left no .deb in $cache/debs"
fi

work=$(mktemp -d "$cache/unpack.XXXXXX")
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/root" || die "dpkg-deb -x $deb failed"
[ -f "$work/root/boot/vmlinuz-$version" ] || die "$deb has no boot/vmlinuz-$version"
mdir=$work/root/lib/modules/$version
[ -d "$mdir" ] || die "$deb has no lib/modules/$version"
# Debian generates modules.dep at installation; make it here to learn the dependencies.
depmod -b "$work/root" "$version" || die "depmod -b failed for $version"

# Resolve each wanted module and its dependencies into a load order without duplicates.
# modules.dep lines are "path: dep1 dep2 ..." with the deepest dependency last.
declare -A seen=()
order=()
module_path() { # name → relative path of its .ko (names may use - or _ interchangeably)
	local pattern
	pattern=$(printf '%s' "$1" | sed 's/[-_]/[-_]/g')
	grep -E "(^|/)${pattern}\.ko(\.xz|\.zst|\.gz)?:" "$mdir/modules.dep" | head -1 | cut -d: -f1
}
add_module() { # relative path
	local path=$1 deps d i
	[ -z "${seen[$path]:-}" ] || return 0
	deps=$(grep -E "^${path//./\\.}:" "$mdir/modules.dep" | cut -d: -f2)
	# Dependencies are listed nearest first; load them deepest first.
	read -r -a deps_array <<<"$deps"
	for ((i = ${#deps_array[@]} - 1; i >= 0; i--)); do
		d=${deps_array[$i]}
		add_module "$d"
	done
	seen[$path]=1
	order+=("$path")
}
for name in "${wanted_modules[@]}"; do
	path=$(module_path "$name")
	if [ -z "$path" ]; then
		# Built in (ext4, aes and sha256 are; others may become so): nothing to load.
		grep -qE "/$(printf '%s' "$name" | sed 's/[-_]/[-_]/g')\.ko" "$mdir/modules.builtin" ||
			die "module $name is neither in modules.dep nor built into $version"
		continue
	fi
	add_module "$path"
done

out=$work/out
mkdir -p "$out/modules"
cp "$work/root/boot/vmlinuz-$version" "$out/vmlinuz"
echo "$version" >"$out/version"
: >"$out/modules.load"
for path in "${order[@]}"; do
	mkdir -p "$out/modules/$(dirname "$path")"
	case "$path" in
	# busybox insmod reads plain ELF only: store compressed modules decompressed.
	*.ko.xz) xz -dc "$mdir/$path" >"$out/modules/${path%.xz}"; path=${path%.xz} ;;
	*.ko.zst) zstd -qdc "$mdir/$path" >"$out/modules/${path%.zst}"; path=${path%.zst} ;;
	*.ko.gz) gzip -dc "$mdir/$path" >"$out/modules/${path%.gz}"; path=${path%.gz} ;;
	*) cp "$mdir/$path" "$out/modules/$path" ;;
	esac
	echo "$path" >>"$out/modules.load"
done
touch "$out/ready"
rm -rf "$kdir"
mv "$out" "$kdir"
echo "fetch-kernel: prepared $version (${#order[@]} modules) in $kdir" >&2
echo "$kdir"
