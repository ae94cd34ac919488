# A read-write mount of a page blob (SAS with write permission): the app writes a file, SIGTERM
# flushes and tears down; a second start mounts the blob again and the file is there.
. /lib/vm/e2e.sh
set -e

step "mount read-write and write"
sidecar_start readwrite
sidecar_wait_settled 150
expect_eq "$(fs_field /mnt/remote/rw state)" mounted "rw state"
expect_same /mnt/remote/rw/data.bin "$DATA_SHA256" "rw data.bin"
head -c 300000 /dev/urandom >/tmp/written
written=$(sha256_of /tmp/written)
cp /tmp/written /mnt/remote/rw/written.bin
rm -f /tmp/written
sync
step "SIGTERM: flush and teardown"
sidecar_stop || { rc=$?; sidecar_dump; fail "the sidecar exited with $rc after SIGTERM"; }
expect_clean "after SIGTERM"

step "mount again: the write persisted in the blob"
sidecar_start readwrite
sidecar_wait_settled 150
expect_eq "$(fs_field /mnt/remote/rw state)" mounted "rw state (second start)"
expect_same /mnt/remote/rw/written.bin "$written" "written.bin after a remount"
sidecar_stop || { rc=$?; sidecar_dump; fail "the sidecar exited with $rc after SIGTERM"; }
expect_clean "after the second SIGTERM"
