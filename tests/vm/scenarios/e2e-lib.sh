# shellcheck shell=sh
# Helpers for the end-to-end scenarios in the guest (busybox sh): the sidecar started as a
# container group starts it (environment only), its /status, and teardown checks.
# Installed as /lib/vm/e2e.sh; test-e2e.sh writes the configurations into /etc/vm-env:
#   SKR_ARGS              base64 SkrSideCarArgs (virtual platform, CA bundle, IMDS, allowlist);
#                         empty: the sidecar gets EncfsSideCarArgs alone (our fields in its
#                         azure_info), as the Go sidecar's encfs.sh passes it
#   ENCFS_ARGS_<NAME>     base64 EncfsSideCarArgs of each scenario
. /lib/vm/lib.sh

SIDECAR_PORT=8080
SIDECAR_LOG=/tmp/sidecar.log
sidecar_pid=

# sidecar_start NAME: run confidential-sidecar with EncfsSideCarArgs=$ENCFS_ARGS_<NAME>.
sidecar_start() {
	eval "_encfs=\$ENCFS_ARGS_$1"
	[ -n "$_encfs" ] || fail "no ENCFS_ARGS_$1 in /etc/vm-env"
	: >"$SIDECAR_LOG"
	if [ -n "$SKR_ARGS" ]; then
		SkrSideCarArgs=$SKR_ARGS EncfsSideCarArgs=$_encfs Port=$SIDECAR_PORT LogLevel=debug \
			confidential-sidecar >>"$SIDECAR_LOG" 2>&1 &
	else
		EncfsSideCarArgs=$_encfs Port=$SIDECAR_PORT LogLevel=debug \
			confidential-sidecar >>"$SIDECAR_LOG" 2>&1 &
	fi
	sidecar_pid=$!
	echo "sidecar started (pid $sidecar_pid, configuration $1)"
}

# The /status body, or nothing when the API does not answer. json-c may escape '/' as '\/'.
# (Debian's static busybox wget crashes with -T: the bound comes from timeout instead.)
sidecar_status() {
	timeout 5 wget -q -O - "http://127.0.0.1:$SIDECAR_PORT/status" 2>/dev/null | sed 's|\\/|/|g'
}

# fs_field MOUNT_POINT FIELD: a string field of that filesystem's /status entry.
fs_field() {
	sidecar_status | sed 's/},{/}\n{/g' | grep "\"mount_point\":\"$1\"" |
		sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p" | head -1
}

# Wait until no filesystem is pending (the pipelines are over) or the sidecar exited.
sidecar_wait_settled() {
	_n=$(($1 * 5))
	while [ "$_n" -gt 0 ]; do
		kill -0 "$sidecar_pid" 2>/dev/null || return 0
		_s=$(sidecar_status)
		if [ -n "$_s" ] && ! echo "$_s" | grep -q '"state":"pending"'; then
			return 0
		fi
		sleep 0.2
		_n=$((_n - 1))
	done
	sidecar_dump
	fail "filesystems still pending after $1 s"
}

sidecar_dump() {
	echo "---- sidecar log"
	cat "$SIDECAR_LOG"
	echo "---- /status: $(sidecar_status)"
}

# SIGTERM, wait (bounded), and return its exit status.
sidecar_stop() {
	kill -TERM "$sidecar_pid" 2>/dev/null || true
	_n=150
	while [ "$_n" -gt 0 ] && kill -0 "$sidecar_pid" 2>/dev/null; do
		sleep 0.2
		_n=$((_n - 1))
	done
	if kill -0 "$sidecar_pid" 2>/dev/null; then
		kill -KILL "$sidecar_pid"
		sidecar_dump
		fail "the sidecar did not stop within 30 s of SIGTERM"
	fi
	wait "$sidecar_pid"
	_rc=$?
	sidecar_pid=
	sidecar_check_sanitizers
	return $_rc
}

# In sanitizer builds: any report in the sidecar's output fails the scenario.
sidecar_check_sanitizers() {
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$SIDECAR_LOG"; then
		sidecar_dump
		fail "sanitizer report in the sidecar's output"
	fi
}

# Nothing of the sidecar's left: no device-mapper device, no loop device in use, no FUSE mount,
# nothing mounted below /mnt/remote.
expect_clean() {
	no_dm_devices || fail "$1: device-mapper devices left: $(cat /sys/block/dm-*/dm/name)"
	for l in /sys/block/loop*/loop/backing_file; do
		[ -e "$l" ] && fail "$1: loop device left: $l → $(cat "$l")"
	done
	if grep -q ' fuse' /proc/mounts; then
		fail "$1: FUSE mount left: $(grep ' fuse' /proc/mounts)"
	fi
	if grep -q ' /mnt/remote' /proc/mounts; then
		fail "$1: mount left: $(grep ' /mnt/remote' /proc/mounts)"
	fi
}

# expect_same FILE EXPECTED_SHA256 WHAT
expect_same() {
	[ -f "$1" ] || fail "$3: $1 does not exist"
	expect_eq "$(sha256_of "$1")" "$2" "$3"
}
