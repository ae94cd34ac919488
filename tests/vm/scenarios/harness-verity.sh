# dm-verity: a filesystem pinned by its root hash mounts and reads back; a copy with one byte of
# a file changed opens (verity checks lazily) but reading that file fails instead of returning
# the changed bytes.
. /lib/vm/lib.sh
set -e

step "veritysetup open /dev/vdb with the hash tree /dev/vdc and the root hash"
veritysetup open /dev/vdb harness-v /dev/vdc "$VERITY_ROOT_HASH"
mkdir -p /mnt/verity
mount -t ext4 -o ro /dev/mapper/harness-v /mnt/verity
expect_eq "$(sha256_of /mnt/verity/data.bin)" "$DATA_SHA256" "data.bin under verity"
umount /mnt/verity
veritysetup close harness-v

step "the tampered copy /dev/vdd: reading the changed file fails"
veritysetup open /dev/vdd harness-t /dev/vdc "$VERITY_ROOT_HASH"
mount -t ext4 -o ro /dev/mapper/harness-t /mnt/verity
if cat /mnt/verity/data.bin >/tmp/read 2>/tmp/err; then
	fail "reading tampered data succeeded (sha256 $(sha256_of /tmp/read))"
fi
cat /tmp/err
rm -f /tmp/read
umount /mnt/verity
veritysetup close harness-t
no_dm_devices || fail "device-mapper device left"
