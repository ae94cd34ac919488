# Three filesystems at once from Azurite: one plain, one pinned by its dm-verity root hash, one
# made the Go project's way (stock cryptsetup). The
# sidecar releases each key from devcloud (virtual SNP), opens LUKS from memory and mounts; an
# "app" step reads the files and compares them with the source; SIGTERM takes all of it down.
. /lib/vm/e2e.sh
set -e

step "start the sidecar with three filesystems"
sidecar_start mount
sidecar_wait_settled 150
for mp in /mnt/remote/plain /mnt/remote/pinned /mnt/remote/goimage; do
	state=$(fs_field "$mp" state)
	[ "$state" = mounted ] || { sidecar_dump; fail "$mp is '$state', not mounted"; }
done
sidecar_status | grep -q '"message":"Status OK"' || { sidecar_dump; fail "/status is not OK"; }
[ -f /run/sidecar-ready ] || fail "the ready file was not written"
grep -E 'release: |key obtained|LUKS .* opened|verity .* opened|mounted .* in' "$SIDECAR_LOG" | cut -c1-200 || true

step "the app reads through the mount points"
expect_same /mnt/remote/plain/data.bin "$DATA_SHA256" "plain data.bin"
expect_eq "$(cat /mnt/remote/plain/hello.txt)" "$HELLO_TEXT" "plain hello.txt"
expect_same /mnt/remote/pinned/data.bin "$DATA_SHA256" "pinned data.bin"
expect_same /mnt/remote/goimage/data.bin "$DATA_SHA256" "Go-style image data.bin"
if touch /mnt/remote/plain/new 2>/dev/null; then fail "a read-only mount accepted a write"; fi
grep -E ' /mnt/remote/[.]?' /proc/mounts || grep -E 'mapper' /proc/mounts

step "SIGTERM: clean teardown"
sidecar_stop || { rc=$?; sidecar_dump; fail "the sidecar exited with $rc after SIGTERM"; }
expect_clean "after SIGTERM"
[ ! -e /run/sidecar-ready ] || fail "the ready file is still there"
for mp in /mnt/remote/plain /mnt/remote/pinned /mnt/remote/goimage; do
	[ ! -e "$mp/data.bin" ] || fail "$mp still shows the files"
done
