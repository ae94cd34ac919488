# shellcheck shell=bash disable=SC2034,SC2154
# Host side of the end-to-end runs in the QEMU guest (sourced by tests/vm/test-e2e.sh and
# bench/run-mount-time.sh, not run): devcloud and Azurite on 127.0.0.1, keys, images made by
# generatefs, uploads, key import, and stopping what was started, by process id.
# The caller sets `build` (the meson build dir) and `work` (a fresh directory) first, and calls
# e2e_cleanup on exit.
#
# The guest reaches the services as devcloud:PORT and azurite:PORT (build-initramfs.sh --host,
# run-guest.sh --forward with the same port numbers), so devcloud's TLS certificate names
# "devcloud", and the release policies name devcloud:ATTEST_PORT as their authority: devcloud
# issues tokens for the name the client dialled.

e2e_vm_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
e2e_devcloud_pid=
e2e_azurite_pid=
E2E_CONTAINER=e2e

e2e_die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

# Sets sidecar, devcloud, importkey, generatefs, vm_azurite, vm_find_bytes, azurite_bin.
e2e_require_binaries() {
	sidecar=$build/sidecar/confidential-sidecar
	devcloud=$build/tools/devcloud/devcloud
	importkey=$build/tools/importkey/importkey
	generatefs=$build/tools/generatefs/generatefs
	vm_azurite=$build/tests/vm/vm_azurite
	vm_find_bytes=$build/tests/vm/vm_find_bytes
	local b
	for b in "$sidecar" "$devcloud" "$importkey" "$generatefs" "$vm_azurite" "$vm_find_bytes"; do
		[ -x "$b" ] || e2e_die "$b not built (ninja -C $build)"
	done
	azurite_bin=${AZURITE_BLOB_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/csc-azurite/node_modules/.bin/azurite-blob}
	[ -x "$azurite_bin" ] || azurite_bin=$(command -v azurite-blob || true)
	[ -n "$azurite_bin" ] || e2e_die "azurite-blob not found (tools/install-deps.sh installs it)"
	for b in python3 openssl; do
		command -v "$b" >/dev/null || e2e_die "'$b' not found"
	done
}

# $1: pid (may be empty). SIGTERM, SIGKILL after 10 s.
e2e_stop_pid() {
	[ -n "$1" ] || return 0
	kill "$1" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

e2e_cleanup() {
	e2e_stop_pid "$e2e_azurite_pid"
	e2e_stop_pid "$e2e_devcloud_pid"
	rm -rf "$work"
}

e2e_json_get() { # file, key
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' \
		"$1" "$2" 2>/dev/null || true
}

# devcloud with TLS for "devcloud" and a fresh platform. Sets state, host_data, ca, platform,
# attest_port, kv_port, imds_port.
e2e_start_devcloud() {
	host_data=$(openssl rand -hex 32)
	state=$work/devcloud
	"$devcloud" init --state "$state" --hostname devcloud --host-data "$host_data" >/dev/null ||
		e2e_die "devcloud init failed"
	# The guest dials devcloud:PORT, so tokens carry the issuer https://devcloud:PORT and the
	# key vault fetches that issuer's OpenID metadata: devcloud itself must resolve its name.
	# A private mount namespace gives this one process an /etc/hosts saying so (needs root;
	# the host's own /etc/hosts is untouched).
	printf '127.0.0.1 localhost devcloud\n::1 localhost\n' >"$work/devcloud.hosts"
	[ "$(id -u)" -eq 0 ] || e2e_die "needs root (devcloud runs with its own /etc/hosts)"
	unshare --mount --propagation private sh -c \
		'mount --bind "$1" /etc/hosts && shift && exec "$@"' sh "$work/devcloud.hosts" \
		"$devcloud" serve --state "$state" --attest-port 0 --kv-port 0 --imds-port 0 \
		>"$work/devcloud.out" 2>"$work/devcloud.log" &
	e2e_devcloud_pid=$!
	for _ in $(seq 1 300); do
		[ -s "$state/endpoints.json" ] && [ -n "$(e2e_json_get "$state/endpoints.json" kv_port)" ] &&
			break
		kill -0 "$e2e_devcloud_pid" 2>/dev/null ||
			{ cat "$work/devcloud.log" >&2; e2e_die "devcloud exited early"; }
		sleep 0.1
	done
	attest_port=$(e2e_json_get "$state/endpoints.json" attest_port)
	kv_port=$(e2e_json_get "$state/endpoints.json" kv_port)
	imds_port=$(e2e_json_get "$state/endpoints.json" imds_port)
	[ -n "$attest_port" ] && [ -n "$kv_port" ] && [ -n "$imds_port" ] ||
		{ cat "$state/endpoints.json" >&2; e2e_die "devcloud's endpoints.json is incomplete"; }
	ca=$state/ca.pem
	platform=$state/platform
}

# Azurite on a free port with container $E2E_CONTAINER (anonymous blob reads). Sets az_port.
# --disableProductStyleUrl: the guest's host name "azurite" must not be taken for an account.
e2e_start_azurite() {
	az_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	# In memory: nothing to clean up, and no --location (Azurite refuses both together).
	(cd "$work" && exec "$azurite_bin" --blobHost 127.0.0.1 --blobPort "$az_port" \
		--inMemoryPersistence --skipApiVersionCheck --disableTelemetry \
		--disableProductStyleUrl --silent) >"$work/azurite.log" 2>&1 &
	e2e_azurite_pid=$!
	for _ in $(seq 1 300); do
		"$vm_azurite" container "$az_port" "$E2E_CONTAINER" --public 2>/dev/null && return 0
		kill -0 "$e2e_azurite_pid" 2>/dev/null || break
		sleep 0.2
	done
	cat "$work/azurite.log" >&2
	e2e_die "Azurite did not start on port $az_port"
}

# A random 32-byte key, as hex in $work/keys/NAME.hex (test keys only ever live in $work).
e2e_new_key() {
	mkdir -p "$work/keys"
	openssl rand -hex 32 >"$work/keys/$1.hex"
}

# e2e_make_image NAME KEYNAME SRC_DIR [generatefs options]: $work/img/NAME.img and its JSON
# summary $work/img/NAME.json.
e2e_make_image() {
	local name=$1 key=$2 src=$3
	shift 3
	mkdir -p "$work/img"
	"$generatefs" --dir "$src" --out "$work/img/$name.img" \
		--key-file "$work/keys/$key.hex" "$@" >"$work/img/$name.json" ||
		e2e_die "generatefs $name failed"
}

# The verity root hash in a generatefs summary, wherever the JSON keeps it.
e2e_root_hash() {
	python3 - "$1" <<'PY'
import json, re, sys
def walk(o, path=""):
    if isinstance(o, dict):
        for k, v in o.items():
            yield from walk(v, path + "." + k)
    elif isinstance(o, str):
        yield path, o
for path, v in walk(json.load(open(sys.argv[1]))):
    if "root" in path.lower() and re.fullmatch(r"[0-9a-f]{64}", v):
        print(v)
        break
PY
}

# e2e_upload NAME [--page]: $work/img/NAME.img as blob NAME.img.
e2e_upload() {
	"$vm_azurite" put "$az_port" "$E2E_CONTAINER" "$1.img" "$work/img/$1.img" ${2:+"$2"} ||
		e2e_die "upload of $1.img failed"
}

# The URL the guest uses for blob NAME.img (anonymous, or with a SAS query $2).
e2e_blob_url() {
	echo "http://azurite:$az_port/devstoreaccount1/$E2E_CONTAINER/$1.img${2:+?$2}"
}

# e2e_import_key KID KEYNAME HOST_DATA: import the oct key with a release policy for a platform
# with HOST_DATA (not debuggable, VMPL 0, compliant UVM), as importkey does for ACI.
e2e_import_key() {
	cat >"$work/import-$1.json" <<JSON
{"key": {"kid": "$1", "kty": "oct-HSM",
         "authority": {"endpoint": "devcloud:$attest_port"},
         "akv": {"endpoint": "localhost:$kv_port", "api_version": "api-version=7.4"}},
 "claims": [[{"claim": "x-ms-sevsnpvm-hostdata", "equals": "$3"},
             {"claim": "x-ms-compliance-status", "equals": "azure-compliant-uvm"},
             {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": "false"},
             {"claim": "x-ms-sevsnpvm-vmpl", "equals": "0"}]]}
JSON
	(cd "$work" && "$importkey" -c "import-$1.json" -kh "$(cat "$work/keys/$2.hex")" -a \
		--imds-endpoint "http://127.0.0.1:$imds_port" --ca-bundle "$ca") >"$work/import-$1.out" ||
		{ cat "$work/import-$1.out" >&2; e2e_die "importkey $1 failed"; }
	grep -E '^key (id|fingerprint):' "$work/import-$1.out" | sed "s/^/  $1: /" || true
}

# SkrSideCarArgs for the guest (JSON): the virtual platform, devcloud's CA and IMDS.
e2e_skr_args_json() {
	python3 -c 'import json,sys; print(json.dumps({
    "certcache": {"endpoint_type": "AMD"},
    "attestation_source": "virtual", "virtual_platform_dir": "/etc/e2e/platform",
    "ca_bundle": "/etc/e2e/ca.pem", "imds_endpoint": "http://devcloud:" + sys.argv[1]}))' \
		"$imds_port"
}

# The initramfs options every end-to-end guest needs: the sidecar, devcloud's CA and the
# virtual platform, the host names, the guest helpers.
e2e_initramfs_args() {
	e2e_initramfs=(--bin "$sidecar" --bin "$vm_find_bytes"
		--file "$e2e_vm_dir/scenarios/e2e-lib.sh:/lib/vm/e2e.sh"
		--file "$ca:/etc/e2e/ca.pem" --tree "$platform:/etc/e2e/platform"
		--host devcloud --host azurite)
}

# run-guest.sh --forward options for every service.
e2e_forwards() {
	e2e_forward_args=(--forward "$attest_port" --forward "$kv_port" --forward "$imds_port"
		--forward "$az_port")
}
