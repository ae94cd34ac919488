# A verity-pinned image whose ciphertext the storage operator changed: the changed bytes are
# never returned. Either the pipeline refuses the image (verity, header or mount step) or the
# app's read fails with an I/O error; reading the source's bytes or other bytes is a failure.
. /lib/vm/e2e.sh
set -e

sidecar_start tamper
sidecar_wait_settled 150
state=$(fs_field /mnt/remote/tampered state)
echo "/status: $(sidecar_status)"
case "$state" in
mounted)
	step "mounted: reading the tampered file must fail"
	if cat /mnt/remote/tampered/data.bin >/tmp/read 2>/tmp/err; then
		got=$(sha256_of /tmp/read)
		rm -f /tmp/read
		fail "read tampered data without error (sha256 $got; source $DATA_SHA256)"
	fi
	rm -f /tmp/read
	cat /tmp/err
	grep -qi 'error' /tmp/err || fail "the read failed without an I/O error: $(cat /tmp/err)"
	;;
failed)
	s=$(fs_field /mnt/remote/tampered step)
	step "refused at step '$s': $(fs_field /mnt/remote/tampered reason)"
	case "$s" in
	verity | "not LUKS" | mount) ;;
	*) sidecar_dump; fail "refused at step '$s', which is not where tampering shows" ;;
	esac
	;;
*) sidecar_dump; fail "state '$state'" ;;
esac
dmesg | grep -i 'verity' | tail -3 || true
sidecar_stop || { rc=$?; sidecar_dump; fail "the sidecar exited with $rc after SIGTERM"; }
expect_clean "after SIGTERM"
