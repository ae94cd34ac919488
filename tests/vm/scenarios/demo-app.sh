# The demo's guest side (run-demo.sh): the sidecar as a container group starts it, then an
# "application" reading the mounted files, then SIGTERM.
. /lib/vm/e2e.sh
set -e

echo "guest: $(uname -sr), dm-crypt loaded: $([ -d /sys/module/dm_crypt ] && echo yes || echo no)"
echo "\$ EncfsSideCarArgs=... Port=$SIDECAR_PORT confidential-sidecar &"
sidecar_start demo
sidecar_wait_settled 240
grep -E 'attestation source|token received|released|key obtained|LUKS .* opened|mounted .* in' \
	"$SIDECAR_LOG" | cut -c1-160
echo
echo "\$ wget -qO- localhost:$SIDECAR_PORT/status"
sidecar_status
echo
[ "$(fs_field /mnt/remote/share state)" = mounted ] || { sidecar_dump; fail "not mounted"; }

echo
echo "== the application container reads /mnt/remote/share"
echo "\$ ls -lR /mnt/remote/share/"
ls -lR /mnt/remote/share/ | grep -v '^total'
for f in $(cd /mnt/remote/share && find . -type f | sort); do
	echo
	echo "\$ cat /mnt/remote/share/${f#./}"
	cat "/mnt/remote/share/${f#./}"
done
echo
echo "== SIGTERM: the sidecar unmounts, closes LUKS, stops FUSE"
sidecar_stop || { rc=$?; sidecar_dump; fail "the sidecar exited with $rc"; }
expect_clean "after SIGTERM"
echo "nothing left: no mount, no device-mapper mapping, no FUSE mount"
