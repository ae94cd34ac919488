#!/usr/bin/env bash
# Mount-time benchmark in a QEMU guest (software emulation, so absolute times are slow; compare
# the two paths, which run in the same boot on the same emulated CPU):
#   sidecar   confidential-sidecar from start to "all mounted" (its ready file), split from its
#             log into image (FUSE exposure), attest (wrapping key, report, MAA token), release
#             (the rest of the key release), open (LUKS) and mount;
#   baseline  a script doing what an operator would do with the key in hand: download the whole
#             image (busybox wget), cryptsetup open --key-file, mount.
# Both read the same blob from Azurite; the sidecar attests to and releases from devcloud.
# Prints each round, the medians and the ratio sidecar/baseline.
#
#   bench/run-mount-time.sh [--build-dir DIR] [-n ROUNDS] [--size MiB]
# The build dir defaults to $MESON_BUILD_ROOT or ./build; ROUNDS 3; the data file 16 MiB.
# The guest kernel is cached in DIR/vm-cache (downloaded on first use). Everything started here
# is stopped on exit.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${MESON_BUILD_ROOT:-$top/build}
rounds=3
size_mib=16
while [ $# -gt 0 ]; do
	case "$1" in
	--build-dir) build=$2; shift 2 ;;
	-n|--rounds) rounds=$2; shift 2 ;;
	--size) size_mib=$2; shift 2 ;;
	-h|--help) sed -n '2,16p' "$0"; exit 0 ;;
	*) echo "run-mount-time.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
case "$rounds$size_mib" in *[!0-9]*) echo "run-mount-time.sh: -n and --size want numbers" >&2; exit 2 ;; esac
build=$(cd "$build" && pwd)
vm=$top/tests/vm

# shellcheck source=tests/vm/e2e-host.sh
. "$vm/e2e-host.sh"
e2e_require_binaries
kernel=$("$vm/fetch-kernel.sh" "$build/vm-cache")
work=$(mktemp -d /tmp/bench-mount-time.XXXXXX)
trap e2e_cleanup EXIT
# meson stops a test with SIGTERM: exit through the EXIT trap so the services stop too.
trap "exit 143" TERM INT

echo "== devcloud, Azurite, a ${size_mib} MiB image, its key imported" >&2
e2e_start_devcloud
e2e_start_azurite
mkdir -p "$work/src" "$work/guest"
head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$work/src/data.bin"
data_sha=$(sha256sum "$work/src/data.bin" | cut -d' ' -f1)
e2e_new_key bench
e2e_make_image bench bench "$work/src"
e2e_upload bench
e2e_import_key bench-key bench "$host_data" >&2
# The baseline's key in hand: the raw 32 bytes generatefs used as the keyslot passphrase.
python3 -c 'import sys; open(sys.argv[2], "wb").write(bytes.fromhex(open(sys.argv[1]).read().strip()))' \
	"$work/keys/bench.hex" "$work/guest/key.bin"

encfs_json=$(python3 -c 'import json,sys; print(json.dumps({
    "work_dir": "/run/sidecar", "ready_file": "/run/sidecar-ready",
    "azure_filesystems": [{"azure_url": sys.argv[1], "mount_point": "/mnt/remote/bench",
        "key": {"kid": "bench-key", "kty": "oct-HSM",
                "authority": {"endpoint": "devcloud:" + sys.argv[2]},
                "akv": {"endpoint": "devcloud:" + sys.argv[3]}}}]}))' \
	"$(e2e_blob_url bench)" "$attest_port" "$kv_port")

e2e_initramfs_args
"$vm/build-initramfs.sh" --kernel-dir "$kernel" --output "$work/initrd.gz" \
	"${e2e_initramfs[@]}" --bin "$(command -v cryptsetup)" \
	--file "$work/guest/key.bin:/etc/bench/key.bin" \
	--env "SKR_ARGS=$(e2e_skr_args_json | base64 -w0)" \
	--env "ENCFS_ARGS_bench=$(printf '%s' "$encfs_json" | base64 -w0)" \
	--env "BENCH_URL=$(e2e_blob_url bench)" --env "BENCH_ROUNDS=$rounds" \
	--env "DATA_SHA256=$data_sha" \
	--scenario "bench:$vm/scenarios/bench-mount.sh" --timeout $((120 + rounds * 120))

echo "== boot (software emulation)" >&2
e2e_forwards
log=$work/serial.log
"$vm/run-guest.sh" --kernel-dir "$kernel" --initrd "$work/initrd.gz" --memory 1024 \
	--log "$log" --quiet "${e2e_forward_args[@]}" --timeout $((300 + rounds * 150)) >&2 ||
	{ echo "the benchmark guest failed; its serial log:" >&2; cat "$log" >&2; exit 1; }

# Rounds, medians and the ratio.
tr -d '\r' <"$log" | grep '^@@BENCH ' | python3 -c '
import statistics, sys
rows = {"sidecar": [], "baseline": []}
for line in sys.stdin:
    f = line.split()
    rows[f[1]].append(dict(kv.split("=") for kv in f[3:]))
def num(v):
    try:
        return float(v)
    except ValueError:
        return None
def med(kind, key):
    vals = [num(r.get(key, "?")) for r in rows[kind]]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None
def show(v):
    return "%8.0f" % v if v is not None else "       ?"
for r in rows["sidecar"]:
    print("sidecar  round: total %s ms (image %s, attest %s, key %s, open %s, mount %s)" %
          (r["total"], r["image"], r["attest"], r["key"], r["open"], r["mount"]))
for r in rows["baseline"]:
    print("baseline round: total %s ms (download %s, open %s, mount %s)" %
          (r["total"], r["download"], r["open"], r["mount"]))
s, b = med("sidecar", "total"), med("baseline", "total")
attest, key = med("sidecar", "attest"), med("sidecar", "key")
release = key - attest if key is not None and attest is not None else None
print()
parts = [med("sidecar", k) for k in ("image", "key", "open", "mount")]
startup = s - sum(parts) if s is not None and None not in parts else None
print("median ms     total   attest  release  image/download     open    mount  startup")
print("sidecar    %s %s %s %s        %s %s %s" % (show(s), show(attest), show(release),
      show(med("sidecar", "image")), show(med("sidecar", "open")), show(med("sidecar", "mount")),
      show(startup)))
print("baseline   %s        -        - %s        %s %s        -" % (show(b),
      show(med("baseline", "download")), show(med("baseline", "open")),
      show(med("baseline", "mount"))))
print("(attest includes generating the RSA wrapping key; startup: process start, API and")
print(" the parts of the pipeline between the timed steps, such as the LUKS header check)")
if s and b:
    print("ratio sidecar/baseline: %.2f (%d round(s))" % (s / b, len(rows["sidecar"])))
else:
    sys.exit("no complete rounds")
'
