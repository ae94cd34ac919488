#!/usr/bin/env bash
# Boot a test guest (kernel from fetch-kernel.sh, initramfs from build-initramfs.sh) under QEMU
# with software emulation, and report its scenarios' results.
#
#   tests/vm/run-guest.sh --kernel-dir DIR --initrd FILE --log FILE [options]
#     --drive FILE[:ro]      a raw disk: /dev/vda, /dev/vdb, ... in the order given
#     --forward PORT         the guest's 10.0.2.100:PORT reaches the host's 127.0.0.1:PORT
#     --forward GPORT:PORT   the guest's 10.0.2.100:GPORT reaches the host's 127.0.0.1:PORT
#     --memory MiB           guest RAM (default 512)
#     --timeout SECONDS      the whole boot (default 300); QEMU is killed after it
#     --quiet                do not copy the serial console to stdout (it is always in --log)
#
# Networking is QEMU's user mode with restrict=on: the guest reaches nothing but the forwarded
# ports, and those only as fresh connections to 127.0.0.1 (one `busybox nc` per connection;
# a tcp: chardev would carry a single connection for the whole boot).
# Software emulation (-accel tcg -cpu max): nested KVM fails on these hosts (vm-tests.md).
#
# Exit status: 0 when every scenario the guest announced passed and it reached DONE; 1 when one
# failed or the guest stopped early; 2 on bad usage; 3 on timeout.
set -uo pipefail

die() {
	echo "run-guest: $*" >&2
	exit 2
}

kernel_dir=
initrd=
log=
memory=512
timeout=300
quiet=false
drives=()
forwards=()
while [ $# -gt 0 ]; do
	case "$1" in
	--quiet) quiet=true; shift; continue ;;
	esac
	[ $# -ge 2 ] || die "$1 needs a value"
	case "$1" in
	--kernel-dir) kernel_dir=$2 ;;
	--initrd) initrd=$2 ;;
	--log) log=$2 ;;
	--drive) drives+=("$2") ;;
	--forward) forwards+=("$2") ;;
	--memory) memory=$2 ;;
	--timeout) timeout=$2 ;;
	*) die "unknown option '$1' (see the comment at the top of $0)" ;;
	esac
	shift 2
done
[ -f "$kernel_dir/vmlinuz" ] || die "--kernel-dir: no vmlinuz in '$kernel_dir' (fetch-kernel.sh)"
[ -f "$initrd" ] || die "--initrd: no such file '$initrd'"
[ -n "$log" ] || die "--log is required"
qemu=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 not found (qemu-system-x86)"
busybox=$(command -v busybox) || die "busybox not found (busybox-static, for the port forwards)"

args=(-accel tcg -cpu max -m "$memory" -smp 1
	-kernel "$kernel_dir/vmlinuz" -initrd "$initrd"
	-append "console=ttyS0 quiet panic=-1"
	-display none -monitor none -serial stdio -no-reboot
	-device virtio-rng-pci)
for d in "${drives[@]}"; do
	file=${d%:ro}
	[ -f "$file" ] || die "--drive: no such file '$file'"
	case "$file" in *,*) die "--drive '$file': QEMU cannot take a comma in a file name" ;; esac
	ro=
	[ "$file" = "$d" ] || ro=,readonly=on
	args+=(-drive "file=$file,format=raw,if=virtio,cache=unsafe$ro")
done
netdev=user,id=n0,restrict=on
for f in "${forwards[@]}"; do
	gport=${f%%:*}
	hport=${f#*:}
	for p in "$gport" "$hport"; do
		case "$p" in '' | *[!0-9]*) die "--forward '$f': want PORT or GPORT:PORT" ;; esac
	done
	netdev+=",guestfwd=tcp:10.0.2.100:$gport-cmd:$busybox nc 127.0.0.1 $hport"
done
# shellcheck disable=SC2054 # commas inside one QEMU option
args+=(-netdev "$netdev" -device virtio-net-pci,netdev=n0)

mkdir -p "$(dirname "$log")"
start=$(date +%s.%N)
if $quiet; then
	timeout --kill-after=10 "$timeout" "$qemu" "${args[@]}" </dev/null >"$log" 2>&1
	rc=$?
else
	timeout --kill-after=10 "$timeout" "$qemu" "${args[@]}" </dev/null 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
fi
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')

# The markers of build-initramfs.sh; the nonce is taken from the first line /init prints.
nonce=$(tr -d '\r' <"$log" | sed -n 's/^@@VM-\([0-9a-f]*\) SCENARIOS.*/\1/p' | head -1)
if [ -z "$nonce" ]; then
	echo "run-guest: the guest never started its scenarios (QEMU exit $rc after ${elapsed}s;" \
		"serial log: $log)" >&2
	[ "$rc" -eq 124 ] && exit 3
	exit 1
fi
markers=$(tr -d '\r' <"$log" | grep "^@@VM-$nonce ")
read -r -a names <<<"$(sed -n "s/^@@VM-$nonce SCENARIOS //p" <<<"$markers" | head -1)"
status=0
for n in "${names[@]}"; do
	if grep -qx "@@VM-$nonce PASS $n" <<<"$markers"; then
		echo "run-guest: PASS $n"
	elif line=$(grep "^@@VM-$nonce FAIL $n " <<<"$markers"); then
		echo "run-guest: FAIL $n (${line##* })"
		status=1
	else
		echo "run-guest: FAIL $n (did not finish)"
		status=1
	fi
done
if ! grep -qx "@@VM-$nonce DONE" <<<"$markers"; then
	echo "run-guest: the guest did not reach DONE (QEMU exit $rc after ${elapsed}s)" >&2
	[ "$rc" -eq 124 ] && exit 3
	status=1
fi
echo "run-guest: ${#names[@]} scenario(s) in ${elapsed}s, serial log $log"
exit $status
