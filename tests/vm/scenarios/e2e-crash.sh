# A sidecar killed outright (SIGKILL) leaves its mapping, mount and dead FUSE mount behind; the
# next start cleans up what is its own and mounts again; SIGTERM then leaves nothing.
. /lib/vm/e2e.sh
set -e

step "mount, then SIGKILL"
sidecar_start crash
sidecar_wait_settled 150
expect_eq "$(fs_field /mnt/remote/plain state)" mounted "state before the crash"
kill -KILL "$sidecar_pid"
wait "$sidecar_pid" || true
sidecar_pid=
if no_dm_devices; then fail "SIGKILL left no mapping: the restart below proves nothing"; fi
echo "left behind: $(cat /sys/block/dm-*/dm/name | tr '\n' ' ')"
grep -E 'mapper|fuse' /proc/mounts || true

step "restart: stale state cleaned, mounted again"
sidecar_start crash
sidecar_wait_settled 150
expect_eq "$(fs_field /mnt/remote/plain state)" mounted "state after the restart"
grep -iE 'stale|earlier run' "$SIDECAR_LOG" | cut -c1-200 || true
expect_same /mnt/remote/plain/data.bin "$DATA_SHA256" "data.bin after the restart"
sidecar_stop || { rc=$?; sidecar_dump; fail "the sidecar exited with $rc after SIGTERM"; }
expect_clean "after SIGTERM"
