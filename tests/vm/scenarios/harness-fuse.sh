# The sidecar's path in the guest: the image is a FUSE file (read on demand), attached to a
# loop device, opened with dm-crypt and mounted; then everything is taken down in reverse order.
. /lib/vm/lib.sh
set -e

step "serve /dev/vda as the FUSE file /run/fuse/image"
[ -c /dev/fuse ] || fail "/dev/fuse missing (fuse module not loaded?)"
mkdir -p /run/fuse /mnt/fuse-luks
vm_fuse_file /dev/vda /run/fuse &
fuse_pid=$!
wait_for 20 test -s /run/fuse/image || fail "the FUSE file did not appear"
grep -q ' /run/fuse fuse' /proc/mounts || fail "no fuse mount in /proc/mounts"

step "loop device over the FUSE file, dm-crypt, mount"
loop=$(/usr/bin/losetup --find --show --read-only /run/fuse/image)
echo "loop device $loop"
cryptsetup open --key-file=/etc/vm-test/passphrase --readonly "$loop" fuseluks
mount -t ext4 -o ro,noload /dev/mapper/fuseluks /mnt/fuse-luks
expect_eq "$(sha256_of /mnt/fuse-luks/data.bin)" "$DATA_SHA256" "data.bin through FUSE"

step "teardown in reverse order"
umount /mnt/fuse-luks
cryptsetup close fuseluks
/usr/bin/losetup -d "$loop"
umount /run/fuse
wait "$fuse_pid" || fail "vm_fuse_file exited with $?"
no_dm_devices || fail "device-mapper device left"
[ -z "$(/usr/bin/losetup -a)" ] || fail "loop device left: $(/usr/bin/losetup -a)"
if grep -q fuse /proc/mounts; then fail "FUSE mount left"; fi
