#!/usr/bin/env bash
# The mission end to end on a host without device-mapper: the sidecar runs inside a QEMU guest
# (software emulation) because dm-crypt exists only there. For tools/demo.sh; also usable alone.
#   1. devcloud (attestation, key vault, IMDS) and Azurite (blob storage) on 127.0.0.1;
#   2. generatefs packs DIR into a LUKS2 image, uploaded to Azurite;
#   3. importkey imports its key with a release policy bound to the virtual SNP platform;
#   4. the guest boots; confidential-sidecar, configured only through SkrSideCarArgs and
#      EncfsSideCarArgs, attests, releases the key, opens the image from blob storage and mounts
#      it at /mnt/remote/share; an "app" step prints the files it reads there; SIGTERM unmounts.
# Everything started here is stopped on exit.
#
#   tests/vm/run-demo.sh [--build-dir DIR] [--data DIR]
# Defaults: $MESON_BUILD_ROOT or ./build; examples/encfs/data.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${MESON_BUILD_ROOT:-$top/build}
data=$top/examples/encfs/data
while [ $# -gt 0 ]; do
	case "$1" in
	--build-dir) build=$2; shift 2 ;;
	--data) data=$2; shift 2 ;;
	-h|--help) sed -n '2,13p' "$0"; exit 0 ;;
	*) echo "run-demo.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
build=$(cd "$build" && pwd)
[ -d "$data" ] || { echo "run-demo.sh: --data $data is not a directory" >&2; exit 2; }
data=$(cd "$data" && pwd)

# shellcheck source=tests/vm/e2e-host.sh
. "$here/e2e-host.sh"
e2e_require_binaries
echo "== the guest kernel (Debian cloud kernel, cached in $build/vm-cache)"
kernel=$("$here/fetch-kernel.sh" "$build/vm-cache")
work=$(mktemp -d /tmp/sidecar-demo-vm.XXXXXX)
trap e2e_cleanup EXIT
# meson stops a test with SIGTERM: exit through the EXIT trap so the services stop too.
trap "exit 143" TERM INT

echo "== devcloud (attestation, key vault, IMDS) and Azurite (blob storage) on 127.0.0.1"
e2e_start_devcloud
e2e_start_azurite
echo "   devcloud: attestation :$attest_port, key vault :$kv_port, IMDS :$imds_port;" \
	"Azurite :$az_port"

echo "== generatefs: $data → LUKS2 image (rootless), uploaded to Azurite as encfs.img"
e2e_new_key demo
e2e_make_image encfs demo "$data"
python3 -c 'import json,sys; d = json.load(open(sys.argv[1])); print("   " + json.dumps(d))' \
	"$work/img/encfs.json"
e2e_upload encfs

echo "== importkey: the image's key, releasable only to this virtual platform"
e2e_import_key encfs-key demo "$host_data"

# EncfsSideCarArgs alone, as the Go sidecar's encfs.sh gets it: our fields (the virtual platform,
# devcloud's CA bundle and IMDS) sit in its azure_info.
encfs_json=$(python3 -c 'import json,sys; print(json.dumps({
    "azure_info": dict(json.loads(sys.argv[4])),
    "azure_filesystems": [{"azure_url": sys.argv[1], "mount_point": "/mnt/remote/share",
        "key": {"kid": "encfs-key", "kty": "oct-HSM",
                "authority": {"endpoint": "devcloud:" + sys.argv[2]},
                "akv": {"endpoint": "devcloud:" + sys.argv[3]}}}]}))' \
	"$(e2e_blob_url encfs)" "$attest_port" "$kv_port" "$(e2e_skr_args_json)")
echo "== EncfsSideCarArgs = base64 of $encfs_json"

e2e_initramfs_args
"$here/build-initramfs.sh" --kernel-dir "$kernel" --output "$work/initrd.gz" \
	"${e2e_initramfs[@]}" \
	--env "SKR_ARGS=" \
	--env "ENCFS_ARGS_demo=$(printf '%s' "$encfs_json" | base64 -w0)" \
	--scenario "demo:$here/scenarios/demo-app.sh" --timeout 300 2>/dev/null

echo "== this host has no device-mapper: the sidecar runs inside a QEMU guest" \
	"(software emulation, about a minute)"
e2e_forwards
"$here/run-guest.sh" --kernel-dir "$kernel" --initrd "$work/initrd.gz" --memory 1024 \
	--log "$work/serial.log" --quiet "${e2e_forward_args[@]}" --timeout 600 >/dev/null ||
	{ echo "the demo guest failed; its serial log:" >&2; cat "$work/serial.log" >&2; exit 1; }
# The guest's own account, without the kernel's messages and the harness markers.
tr -d '\r' <"$work/serial.log" | sed -n '/^==== scenario demo/,/^@@VM-/p' | sed '1d;$d'
