# dm-crypt: a LUKS2 image encrypted on the host without root or device-mapper opens with its
# passphrase, mounts read-only and reads back the source files; a wrong passphrase does not open.
. /lib/vm/lib.sh
set -e

step "a wrong passphrase is refused"
if printf 'not-the-passphrase' | cryptsetup open --key-file=- --readonly /dev/vda bad 2>/tmp/err; then
	fail "cryptsetup opened /dev/vda with a wrong passphrase"
fi
cat /tmp/err
no_dm_devices || fail "a failed open left a device-mapper device"

step "cryptsetup open /dev/vda with the passphrase"
cryptsetup open --key-file=/etc/vm-test/passphrase --readonly /dev/vda harness
cryptsetup status harness | grep -E 'type|cipher|keysize|sector size'
mkdir -p /mnt/harness
mount -t ext4 -o ro,noload /dev/mapper/harness /mnt/harness
expect_eq "$(sha256_of /mnt/harness/data.bin)" "$DATA_SHA256" "data.bin in the LUKS image"
expect_eq "$(cat /mnt/harness/hello.txt)" "$HELLO_TEXT" "hello.txt in the LUKS image"

step "teardown"
umount /mnt/harness
cryptsetup close harness
no_dm_devices || fail "device-mapper device left after close"
