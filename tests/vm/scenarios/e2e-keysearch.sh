# After all runs: no key, in any encoding (raw, hex, base64, base64url as in a JWK), in any file
# of the guest's filesystems. The needles come from the raw disk /dev/vda, which is not mounted.
. /lib/vm/e2e.sh
set -e

needles=/dev/vda
step "the search finds a planted canary (needle 1, raw bytes)"
# CANARY_HEX is hex text; the needle is the raw bytes, which exist only once planted here.
# shellcheck disable=SC2059 # the format is the \xNN escapes themselves
printf "$(echo "$CANARY_HEX" | sed 's/../\\x&/g')" >/tmp/canary.bin
if vm_find_bytes "$needles" /tmp >/tmp/found; then
	fail "the planted canary was not found: the search cannot be trusted"
fi
grep -q 'FOUND needle 1 .* in /tmp/canary.bin' /tmp/found || fail "unexpected result: $(cat /tmp/found)"
rm -f /tmp/canary.bin /tmp/found

step "search every filesystem for the keys"
fs_list=$(awk '$3 !~ /^(proc|sysfs|devpts|devtmpfs|cgroup2?|securityfs|debugfs|tracefs|fusectl|configfs|bpf|pstore)$/ {print $2}' /proc/mounts | sort -u)
echo "searching:" $fs_list
# shellcheck disable=SC2086
vm_find_bytes "$needles" $fs_list || fail "key material found in the guest's files (see above)"
