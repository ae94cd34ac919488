# Filesystems that must not mount, each with its reason in /status and nothing left behind:
# a key whose release policy wants another platform (policy denied), and an image whose key is
# not the released one (wrong key, with the derived key's fingerprint logged). Then the default
# failure policy: the sidecar exits non-zero by itself, cleaned up.
. /lib/vm/e2e.sh
set -e

step "policy mismatch and wrong key, on_mount_failure=continue"
sidecar_start failures
sidecar_wait_settled 150
echo "/status: $(sidecar_status)"
expect_eq "$(fs_field /mnt/remote/denied state)" failed "denied state"
expect_eq "$(fs_field /mnt/remote/denied step)" "policy denied" "denied step"
[ -n "$(fs_field /mnt/remote/denied reason)" ] || fail "no reason for the denied filesystem"
expect_eq "$(fs_field /mnt/remote/wrongkey state)" failed "wrongkey state"
expect_eq "$(fs_field /mnt/remote/wrongkey step)" "wrong key" "wrongkey step"
grep -i 'fingerprint' "$SIDECAR_LOG" | grep -i wrongkey ||
	{ sidecar_dump; fail "no key fingerprint logged for the wrong key"; }
sidecar_status | grep -q '"message":"Status NOT OK"' || fail "/status claims OK"
kill -0 "$sidecar_pid" || fail "the sidecar exited although on_mount_failure is continue"
expect_clean "failed filesystems"
[ ! -e /run/sidecar-ready ] || fail "a ready file although nothing mounted"
sidecar_stop || { rc=$?; sidecar_dump; fail "the sidecar exited with $rc after SIGTERM"; }
expect_clean "after SIGTERM"

step "default failure policy: exit non-zero"
sidecar_start failexit
n=0
while kill -0 "$sidecar_pid" 2>/dev/null && [ $n -lt 600 ]; do
	sleep 0.2
	n=$((n + 1))
done
kill -0 "$sidecar_pid" 2>/dev/null && { sidecar_dump; fail "the sidecar kept running"; }
if wait "$sidecar_pid"; then sidecar_dump; fail "the sidecar exited 0 after a failed mount"; fi
sidecar_pid=
sidecar_check_sanitizers
grep -i 'policy' "$SIDECAR_LOG" | tail -3
expect_clean "after the failure exit"
