# shellcheck shell=sh
# Helpers for scenario scripts inside the test guest (busybox sh): `. /lib/vm/lib.sh`.
# Installed as /lib/vm/lib.sh by build-initramfs.sh.

# Print a step of the scenario, so a failure in the serial log shows where it happened.
step() {
	echo "-- $*"
}

# Stop the scenario with a reason; /init reports it as FAIL.
fail() {
	echo "FAILED: $*" >&2
	exit 1
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
	[ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
}

# sha256_of FILE: the hex digest alone.
sha256_of() {
	sha256sum "$1" | cut -d' ' -f1
}

# wait_for SECONDS COMMAND...: run COMMAND every 0.2 s until it succeeds; 1 if it never does.
wait_for() {
	_wf_n=$(($1 * 5))
	shift
	while [ "$_wf_n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
		_wf_n=$((_wf_n - 1))
	done
	return 1
}

# No device-mapper target, loop device or mount of ours left behind (teardown checks).
no_dm_devices() {
	for _dm in /sys/block/dm-*; do
		[ -e "$_dm" ] && return 1
	done
	return 0
}

# Debian's busybox sh runs its own applet before a PATH binary of the same name (mount, losetup,
# umount, wget...): call a binary given with --bin that shares an applet's name by its full path.
