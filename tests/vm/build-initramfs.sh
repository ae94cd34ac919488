#!/usr/bin/env bash
# Build the initramfs a QEMU test guest boots into: busybox, the given binaries with every shared
# library they load (and the dynamic loader), the kernel modules of fetch-kernel.sh, /etc/hosts
# names for the host's services, data files, and an /init that brings the system up, runs the
# scenario scripts in order and powers off. See run-guest.sh for booting it.
#
#   tests/vm/build-initramfs.sh --kernel-dir DIR --output FILE.cpio.gz [options]
#     --bin SRC[:DEST]        an executable (DEST defaults to /usr/bin/<name>) and its libraries
#     --file SRC:DEST         a file (mode kept), e.g. a CA bundle or test data
#     --tree SRC:DEST         a directory, recursively
#     --host NAME             /etc/hosts: NAME is the host (10.0.2.100, see run-guest.sh --forward)
#     --env NAME=VALUE        exported to every scenario
#     --scenario NAME:SCRIPT  a scenario (busybox sh script); repeatable, run in the given order
#     --timeout SECONDS       bound for each scenario (default 120)
#
# What /init prints on the serial console (run-guest.sh reads it back), with NONCE random per
# image so no earlier boot's log and no scenario output can pass for it:
#   @@VM-NONCE SCENARIOS name1 name2 ...     before the first scenario
#   @@VM-NONCE PASS name | FAIL name rc=N    after each scenario (rc 124: the timeout hit)
#   @@VM-NONCE DONE                          before powering off
# A scenario sees PATH with the given binaries first, /etc/vm-env sourced, the scratch directory
# /tmp (tmpfs), /dev/vda... for run-guest.sh --drive files, and /lib/vm/lib.sh with helpers.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
die() {
	echo "build-initramfs: $*" >&2
	exit 1
}

kernel_dir=
output=
timeout=120
bins=()
files=()
trees=()
hosts=()
envs=()
scenarios=()
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || die "$1 needs a value"
	case "$1" in
	--kernel-dir) kernel_dir=$2 ;;
	--output) output=$2 ;;
	--bin) bins+=("$2") ;;
	--file) files+=("$2") ;;
	--tree) trees+=("$2") ;;
	--host) hosts+=("$2") ;;
	--env) envs+=("$2") ;;
	--scenario) scenarios+=("$2") ;;
	--timeout) timeout=$2 ;;
	*) die "unknown option '$1' (see the comment at the top of $0)" ;;
	esac
	shift 2
done
[ -n "$kernel_dir" ] || die "--kernel-dir is required (the directory fetch-kernel.sh prints)"
[ -n "$output" ] || die "--output is required"
[ -f "$kernel_dir/ready" ] || die "$kernel_dir is not a kernel prepared by fetch-kernel.sh"
[ ${#scenarios[@]} -gt 0 ] || die "no --scenario given: the guest would have nothing to run"
case "$timeout" in '' | *[!0-9]*) die "--timeout wants whole seconds, not '$timeout'" ;; esac
busybox=$(command -v busybox) || die "busybox not found (Debian package busybox-static)"
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
	ldd "$busybox" 2>&1 | grep -q 'not a dynamic executable' ||
	die "$busybox is not static (install busybox-static)"
for tool in cpio gzip ldd; do
	command -v "$tool" >/dev/null || die "'$tool' not found"
done

stage=$(mktemp -d /tmp/vm-initramfs.XXXXXX)
trap 'rm -rf "$stage"' EXIT
# The layout of a merged-/usr Debian, so the paths ldd prints resolve as on the host.
mkdir -p "$stage"/{usr/lib,usr/lib64,usr/bin,usr/sbin,bin,sbin,etc,proc,sys,dev,tmp,run,mnt,root}
mkdir -p "$stage/lib/vm"
ln -s usr/lib64 "$stage/lib64"
mv "$stage/lib/vm" "$stage/usr/lib/vm"
rmdir "$stage/lib"
ln -s usr/lib "$stage/lib"

cp "$busybox" "$stage/bin/busybox"
for applet in $("$busybox" --list); do
	[ "$applet" = busybox ] || ln -s busybox "$stage/bin/$applet"
done

# A file at the same path inside the image (through the /lib → usr/lib links).
copy_keep_path() { # host path
	local dest=$stage$1
	[ -e "$dest" ] && return 0
	mkdir -p "$(dirname "$dest")"
	cp -L "$1" "$dest"
}
copy_libraries() { # executable
	local lib
	# "name => /path (addr)", "/lib64/ld-linux-x86-64.so.2 (addr)", or "linux-vdso.so.1 (addr)".
	ldd "$1" 2>/dev/null | awk '/=> \// {print $3} /^[[:space:]]*\// {print $1}' |
		while read -r lib; do
			copy_keep_path "$lib"
		done
	if ldd "$1" 2>&1 | grep -q 'not found'; then
		ldd "$1" >&2
		die "$1 needs a library that is not installed"
	fi
}

for spec in "${bins[@]}"; do
	src=${spec%%:*}
	dest=/usr/bin/$(basename "$src")
	[ "$spec" = "$src" ] || dest=${spec#*:}
	[ -x "$src" ] || die "--bin $src: not an executable file"
	mkdir -p "$stage$(dirname "$dest")"
	cp -L "$src" "$stage$dest"
	copy_libraries "$src"
done
# glibc loads libgcc_s at run time for pthread_cancel and unwinding; ldd does not list it.
libgcc=/lib/x86_64-linux-gnu/libgcc_s.so.1
if [ -e "$libgcc" ]; then
	copy_keep_path "$libgcc"
fi

for spec in "${files[@]}"; do
	src=${spec%%:*}
	dest=${spec#*:}
	[ "$spec" != "$src" ] || die "--file $spec: want SRC:DEST"
	[ -f "$src" ] || die "--file $src: no such file"
	mkdir -p "$stage$(dirname "$dest")"
	cp -L --preserve=mode "$src" "$stage$dest"
done
for spec in "${trees[@]}"; do
	src=${spec%%:*}
	dest=${spec#*:}
	[ "$spec" != "$src" ] || die "--tree $spec: want SRC:DEST"
	[ -d "$src" ] || die "--tree $src: no such directory"
	mkdir -p "$stage$dest"
	cp -a "$src/." "$stage$dest/"
done

version=$(cat "$kernel_dir/version")
mkdir -p "$stage/lib/modules/$version"
cp -a "$kernel_dir/modules/." "$stage/lib/modules/$version/"
cp "$kernel_dir/modules.load" "$stage/etc/modules.load"

{
	echo "127.0.0.1 localhost"
	echo "::1 localhost ip6-localhost"
	for h in "${hosts[@]}"; do
		echo "10.0.2.100 $h"
	done
} >"$stage/etc/hosts"
echo "hosts: files" >"$stage/etc/nsswitch.conf"
echo "root:x:0:0:root:/root:/bin/sh" >"$stage/etc/passwd"
echo "root:x:0:" >"$stage/etc/group"

{
	echo "# written by build-initramfs.sh"
	for e in "${envs[@]}"; do
		name=${e%%=*}
		[[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "--env $e: want NAME=VALUE"
		printf 'export %s=%q\n' "$name" "${e#*=}"
	done
} >"$stage/etc/vm-env"

mkdir -p "$stage/scenarios"
names=()
i=0
for spec in "${scenarios[@]}"; do
	name=${spec%%:*}
	script=${spec#*:}
	[ "$spec" != "$name" ] || die "--scenario $spec: want NAME:SCRIPT"
	[[ "$name" =~ ^[A-Za-z0-9_.-]+$ ]] || die "--scenario name '$name': letters, digits, _.- only"
	[ -f "$script" ] || die "--scenario $name: no such script $script"
	i=$((i + 1))
	cp "$script" "$stage/scenarios/$(printf '%02d' $i)-$name.sh"
	names+=("$name")
done
cp "$here/guest-lib.sh" "$stage/usr/lib/vm/lib.sh"

nonce=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
cat >"$stage/init" <<INIT
#!/bin/sh
# Generated by tests/vm/build-initramfs.sh.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
mount -t devtmpfs devtmpfs /dev
# The kernel found no /dev/console in the archive: take the serial console now.
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/mounts /etc/mtab
mkdir -p /run/cryptsetup /run/lock
M=/lib/modules/$version
while read -r ko; do
	insmod "\$M/\$ko" || echo "vm-init: insmod \$ko failed"
done </etc/modules.load
ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
	ip link set eth0 up
	ip addr add 10.0.2.15/24 dev eth0
	ip route add default via 10.0.2.2
fi
. /etc/vm-env
echo "@@VM-$nonce SCENARIOS ${names[*]}"
for s in /scenarios/*.sh; do
	name=\${s#/scenarios/??-}
	name=\${name%.sh}
	echo "==== scenario \$name"
	timeout $timeout sh "\$s"
	rc=\$?
	if [ \$rc -eq 0 ]; then
		echo "@@VM-$nonce PASS \$name"
	else
		echo "@@VM-$nonce FAIL \$name rc=\$rc"
	fi
done
echo "@@VM-$nonce DONE"
sync
poweroff -f
INIT
chmod 755 "$stage/init"

mkdir -p "$(dirname "$output")"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
	gzip -1 >"$output.tmp"
mv "$output.tmp" "$output"
echo "build-initramfs: $output ($(du -h "$output" | cut -f1), scenarios: ${names[*]})" >&2
