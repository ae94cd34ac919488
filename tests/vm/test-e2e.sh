#!/usr/bin/env bash
# The whole job end to end, in a QEMU guest (the only place dm-crypt exists on these hosts):
#   host   devcloud (attestation, key vault, IMDS over TLS for the name "devcloud") and Azurite
#          (blob storage, name "azurite"), both on 127.0.0.1; images made by generatefs from
#          test data and uploaded; keys imported by importkey with release policies bound to the
#          virtual SNP platform (or, for the denied key, to another platform). See e2e-host.sh.
#   guest  confidential-sidecar, configured only through the environment a container group
#          sets (SkrSideCarArgs, EncfsSideCarArgs, Port), reaching the host services through
#          restricted user networking (run-guest.sh --forward).
# Scenarios, one boot (scenarios/e2e-*.sh):
#   mount      two filesystems at once (one dm-verity-pinned) mount; the app's reads equal the
#              source; SIGTERM leaves no mapping, loop device, FUSE or mount behind
#   failures   policy mismatch and wrong key: not mounted, the step and reason in /status,
#              nothing left; with the default failure policy the sidecar exits non-zero
#   tamper     changed ciphertext under a verity-pinned image: never returned as data
#   readwrite  a read-write page blob: write, SIGTERM, mount again, the write is there
#   crash      SIGKILL leaves mappings behind; a restart cleans them up and mounts again
#   keysearch  no key bytes (raw, hex, base64, base64url) in any file of the guest
#
#   tests/vm/test-e2e.sh [--build-dir DIR] [--scenario NAME]...   (DIR: $SKR_BUILD_ROOT)
# Downloads the guest kernel into DIR/vm-cache on first use; fails if it cannot.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${SKR_BUILD_ROOT:-}
only=()
while [ $# -gt 0 ]; do
	case "$1" in
	--build-dir) build=$2; shift 2 ;;
	--scenario) only+=("$2"); shift 2 ;;
	*) echo "test-e2e.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
[ -n "$build" ] || { echo "test-e2e.sh: --build-dir or SKR_BUILD_ROOT needed" >&2; exit 2; }
build=$(cd "$build" && pwd)
[ ${#only[@]} -gt 0 ] || only=(mount failures tamper readwrite crash keysearch)
for s in "${only[@]}"; do
	[ -f "$here/scenarios/e2e-$s.sh" ] || { echo "test-e2e.sh: no scenario '$s'" >&2; exit 2; }
done

# shellcheck source=tests/vm/e2e-host.sh
. "$here/e2e-host.sh"
e2e_require_binaries
kernel=$("$here/fetch-kernel.sh" "$build/vm-cache")
work=$(mktemp -d /tmp/vm-e2e.XXXXXX)
trap e2e_cleanup EXIT
# meson stops a test with SIGTERM: exit through the EXIT trap so the services stop too.
trap "exit 143" TERM INT

echo "== devcloud and Azurite on 127.0.0.1"
e2e_start_devcloud
e2e_start_azurite

echo "== source data, keys, images (generatefs), uploads"
mkdir -p "$work/src"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$work/src/data.bin"
hello="hello from the host, $(date -u +%FT%TZ)"
printf '%s' "$hello" >"$work/src/hello.txt"
data_sha=$(sha256sum "$work/src/data.bin" | cut -d' ' -f1)
for k in plain pinned denied wrong readwrite; do
	e2e_new_key "$k"
done
e2e_make_image plain plain "$work/src"
e2e_make_image pinned pinned "$work/src" --read-only-verity
e2e_make_image denied denied "$work/src"
# Encrypted with a key that is never imported; its configuration names plain-key, which is
# released fine and then opens no keyslot.
e2e_make_image wrongkey wrong "$work/src"
e2e_make_image readwrite readwrite "$work/src"
# An image as the Go project's generatefs.sh makes it: stock cryptsetup, LUKS2 aes-xts-plain64
# with a 512-bit key, 4096-byte sectors, pbkdf2 with 1000 iterations, a 16 MiB header, the raw
# 32-byte key as the passphrase — here without root through offline reencrypt --encrypt.
e2e_new_key goimage
python3 -c 'import sys; open(sys.argv[2], "wb").write(bytes.fromhex(open(sys.argv[1]).read()))' \
	"$work/keys/goimage.hex" "$work/keys/goimage.bin"
truncate -s 64M "$work/img/goimage.img"
mkfs.ext4 -q -b 4096 -d "$work/src" "$work/img/goimage.img" 32M
cryptsetup reencrypt --encrypt --type luks2 --reduce-device-size 32M --batch-mode \
	--cipher aes-xts-plain64 --key-size 512 --sector-size 4096 --pbkdf pbkdf2 \
	--pbkdf-force-iterations 1000 --key-file "$work/keys/goimage.bin" "$work/img/goimage.img" ||
	e2e_die "cryptsetup reencrypt --encrypt of the Go-style image failed"
rm -f "$work/keys/goimage.bin"
pinned_hash=$(e2e_root_hash "$work/img/pinned.json")
[ -n "$pinned_hash" ] || { cat "$work/img/pinned.json" >&2; e2e_die "no verity root hash"; }

# The storage operator changes ciphertext: one byte every 64 KiB of the LUKS data area from
# 1 MiB past its start to 5 MiB (where data.bin lies; ext4's first blocks stay intact, so the
# damage shows where data is read). The verity hash tree after the LUKS image covers it.
cp "$work/img/pinned.img" "$work/img/tampered.img"
python3 - "$work/img/tampered.img" <<'PY'
import os, sys
luks_data = 16 << 20  # generatefs: the LUKS2 data area starts at 16 MiB
with open(sys.argv[1], "r+b") as f:
    size = os.fstat(f.fileno()).st_size
    for off in range(luks_data + (1 << 20), min(luks_data + (5 << 20), size), 64 << 10):
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0xFF]))
PY
cmp -s "$work/img/pinned.img" "$work/img/tampered.img" && e2e_die "tampering changed nothing"

for name in plain pinned denied wrongkey tampered goimage; do
	e2e_upload "$name"
done
e2e_upload readwrite --page
rw_sas=$("$vm_azurite" sas "$E2E_CONTAINER" readwrite.img rw 3600)

echo "== keys imported with release policies"
e2e_import_key plain-key plain "$host_data"
e2e_import_key pinned-key pinned "$host_data"
e2e_import_key goimage-key goimage "$host_data"
e2e_import_key readwrite-key readwrite "$host_data"
# Bound to another container group's host data: the vault must refuse the release.
e2e_import_key denied-key denied "$(openssl rand -hex 32)"

echo "== sidecar configurations (EncfsSideCarArgs per scenario)"
python3 - "$work/vm-env" "$(e2e_skr_args_json)" "$attest_port" "$kv_port" "$pinned_hash" \
	"$(e2e_blob_url plain)" "$(e2e_blob_url pinned)" "$(e2e_blob_url denied)" \
	"$(e2e_blob_url wrongkey)" "$(e2e_blob_url tampered)" "$(e2e_blob_url readwrite "$rw_sas")" \
	"$(e2e_blob_url goimage)" <<'PY'
import base64, json, sys
out, skr, attest, kv, pinned_hash = sys.argv[1:6]
url = dict(zip(["plain", "pinned", "denied", "wrongkey", "tampered", "readwrite", "goimage"],
               sys.argv[6:]))
def b64(doc):
    return base64.b64encode(json.dumps(doc).encode()).decode()
def fs(image, kid, mount, **extra):
    d = {"azure_url": url[image], "mount_point": "/mnt/remote/" + mount,
         "key": {"kid": kid, "kty": "oct-HSM",
                 "authority": {"endpoint": "devcloud:" + attest},
                 "akv": {"endpoint": "devcloud:" + kv}}}
    d.update(extra)
    return d
# EncfsSideCarArgs alone, as a container group passes it to the Go sidecar's encfs.sh: our
# fields (virtual platform, CA bundle, IMDS) in its azure_info.
common = {"azure_info": json.loads(skr), "work_dir": "/run/sidecar",
          "ready_file": "/run/sidecar-ready"}
configs = {
    "mount": dict(common, azure_filesystems=[
        fs("plain", "plain-key", "plain"),
        fs("pinned", "pinned-key", "pinned", verity_root_hash=pinned_hash),
        fs("goimage", "goimage-key", "goimage")]),
    "failures": dict(common, on_mount_failure="continue", azure_filesystems=[
        fs("denied", "denied-key", "denied"),
        fs("wrongkey", "plain-key", "wrongkey")]),
    "failexit": dict(common, azure_filesystems=[fs("denied", "denied-key", "denied")]),
    "tamper": dict(common, on_mount_failure="continue", azure_filesystems=[
        fs("tampered", "pinned-key", "tampered", verity_root_hash=pinned_hash)]),
    "crash": dict(common, azure_filesystems=[fs("plain", "plain-key", "plain")]),
    "readwrite": dict(common, azure_filesystems=[
        fs("readwrite", "readwrite-key", "rw", read_write=True)]),
}
with open(out, "w") as f:
    f.write("SKR_ARGS=\n")
    for name, doc in configs.items():
        f.write("ENCFS_ARGS_%s=%s\n" % (name, b64(doc)))
PY

# Every encoding a key could be written in, as hex lines, on a raw disk the guest never mounts.
# The first needle is a canary the keysearch scenario plants to prove the search finds things.
canary=$(openssl rand -hex 24)
python3 - "$work/needles.img" "$canary" "$work"/keys/*.hex <<'PY'
import base64, sys
lines = [sys.argv[2]]
for path in sys.argv[3:]:
    key = bytes.fromhex(open(path).read().strip())
    forms = [key, key.hex().encode(), key.hex().upper().encode(),
             base64.b64encode(key), base64.urlsafe_b64encode(key).rstrip(b"=")]
    lines += [f.hex() for f in forms]
data = ("\n".join(lines) + "\n\n").encode()
open(sys.argv[1], "wb").write(data + b"\0" * (-len(data) % 512))
PY

echo "== initramfs"
env_args=()
while IFS= read -r line; do
	env_args+=(--env "$line")
done <"$work/vm-env"
scenario_args=()
for s in "${only[@]}"; do
	scenario_args+=(--scenario "$s:$here/scenarios/e2e-$s.sh")
done
# Sanitizer builds: the options meson gives the tests apply in the guest too. (Full unwinding of
# allocation stacks, fast_unwind_on_malloc=0, would trace a leak through libcrypto, which has no
# frame pointers, but makes the guest run five times slower under TCG; set it in ASAN_OPTIONS by
# hand to chase one.)
for v in ASAN_OPTIONS UBSAN_OPTIONS; do
	[ -z "${!v:-}" ] || env_args+=(--env "$v=${!v}")
done
e2e_initramfs_args
"$here/build-initramfs.sh" --kernel-dir "$kernel" --output "$work/initrd.gz" \
	"${e2e_initramfs[@]}" \
	--env "DATA_SHA256=$data_sha" --env "HELLO_TEXT=$hello" --env "CANARY_HEX=$canary" \
	"${env_args[@]}" \
	"${scenario_args[@]}" --timeout 240

echo "== boot"
e2e_forwards
rc=0
"$here/run-guest.sh" --kernel-dir "$kernel" --initrd "$work/initrd.gz" --memory 1024 \
	--log "$build/meson-logs/vm-e2e.serial.log" --drive "$work/needles.img:ro" \
	"${e2e_forward_args[@]}" --timeout 840 || rc=$?
# The guest has no symbolizer: a sanitizer report's frames are "(binary+0xoffset)". Resolve them
# here against the same files (the sidecar from this build, libraries from this host).
if [ $rc -ne 0 ] && grep -q 'Sanitizer' "$build/meson-logs/vm-e2e.serial.log" &&
	command -v llvm-symbolizer >/dev/null; then
	echo "== sanitizer frames, symbolized on the host"
	grep -oE '\((/[^ +()]+)\+0x[0-9a-f]+\)' "$build/meson-logs/vm-e2e.serial.log" |
		tr -d '()' | sort -u | while IFS=+ read -r obj off; do
			[ "$obj" = /usr/bin/confidential-sidecar ] && obj=$sidecar
			[ -f "$obj" ] || continue
			printf '%s+%s: %s\n' "${obj##*/}" "$off" \
				"$(llvm-symbolizer --obj="$obj" "$off" | head -2 | paste -sd' ')"
		done
fi
exit $rc
