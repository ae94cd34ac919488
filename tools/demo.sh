#!/usr/bin/env bash
# The main job end to end on the embedded default: no cloud, no SEV-SNP hardware.
#   1. virtual SNP platform → report → devcloud (local MAA-compatible service, HTTPS)
#      → token → token verified against devcloud's published keys → claims printed;
#   2. importkey: a fresh key imported into devcloud's key vault with a release policy bound to
#      the platform's claims (host data, not debuggable, VMPL 0, compliance status);
#   3. secure key release: the SKR client attests with a fresh wrapping key, the vault checks the
#      token against the policy and releases the key wrapped to it, the client verifies and
#      unwraps it — and the released key's fingerprint equals the imported key's.
#   4. a release the policy refuses (another platform's host data), with the reason;
#   5. the daemon, configured as a container group configures it (SkrSideCarArgs and
#      EncfsSideCarArgs: base64 of JSON, Port): GET /status, POST /attest/maa returning a token,
#      POST /key/release returning the key as a JWK whose fingerprint equals the imported key's;
#   6. the mission: generatefs packs examples/encfs/data into a LUKS2 image (rootless), uploaded
#      to Azurite (local Azure Blob Storage); importkey imports its key with a policy bound to
#      the platform; the sidecar, configured through SkrSideCarArgs and EncfsSideCarArgs,
#      attests, releases the key, opens the image from blob storage and mounts it; the files
#      are read from the mount point. Natively where the kernel has dm-crypt and we are root;
#      otherwise inside a QEMU guest (tests/vm/run-demo.sh), and it says so.
#      DEMO_MISSION=native|vm|skip forces a choice.
# Installs dependencies (Debian 12, root), builds, runs, and stops everything it started.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

bash tools/install-deps.sh
if [ ! -f build-demo/build.ninja ]; then
	meson setup build-demo >/dev/null
fi
ninja -C build-demo >/dev/null

bin=build-demo
state=$(mktemp -d /tmp/sidecar-demo.XXXXXX)
devcloud_pid=
daemon_pid=
azurite_pid=
cleanup() {
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	[ -n "$azurite_pid" ] && kill "$azurite_pid" 2>/dev/null && wait "$azurite_pid" 2>/dev/null
	# a mission run cut short: the daemon unmounts on SIGTERM; anything left is ours to remove
	if [ -d "$state/mnt" ]; then
		grep -o " $state/[^ ]*" /proc/self/mounts 2>/dev/null | sort -r |
			while read -r m; do umount -l "$m" 2>/dev/null || true; done
	fi
	[ -n "$devcloud_pid" ] && kill "$devcloud_pid" 2>/dev/null && wait "$devcloud_pid" 2>/dev/null
	rm -rf "$state"
}
trap cleanup EXIT

# The platform's HOST_DATA is what ACI sets: SHA-256 of the container group's CCE policy.
printf 'package policy\n# confidential-sidecar demo policy\n' >"$state/ccepolicy.rego"
host_data=$(sha256sum "$state/ccepolicy.rego" | cut -d' ' -f1)

echo "== devcloud init: local CA, TLS certificates, virtual SNP platform, signing keys"
$bin/tools/devcloud/devcloud init --state "$state/devcloud" \
	--security-policy "$state/ccepolicy.rego" >/dev/null

echo "== devcloud serve: attestation, key vault, IMDS (127.0.0.1, ephemeral ports)"
$bin/tools/devcloud/devcloud serve --state "$state/devcloud" \
	--attest-port 0 --kv-port 0 --imds-port 0 2>"$state/devcloud.log" &
devcloud_pid=$!
endpoint() {
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
		"$state/devcloud/endpoints.json" "$1"
}
for _ in $(seq 1 100); do
	[ -s "$state/devcloud/endpoints.json" ] && break
	kill -0 "$devcloud_pid" 2>/dev/null || { cat "$state/devcloud.log" >&2; exit 1; }
	sleep 0.1
done
maa="localhost:$(endpoint attest_port)"
akv="localhost:$(endpoint kv_port)"
imds="http://127.0.0.1:$(endpoint imds_port)"
ca="$state/devcloud/ca.pem"
platform="$state/devcloud/platform"

echo
echo "== 1. confidential-sidecar attest (virtual platform → https://$maa)"
$bin/sidecar/confidential-sidecar attest \
	--attestation-source virtual --virtual-dir "$platform" \
	--maa-endpoint "$maa" --ca-bundle "$ca" \
	--runtime-data '{"demo":"confidential-sidecar"}' --print-token

echo
echo "== 2. importkey: a fresh oct key with a release policy bound to the platform's claims"
cat >"$state/importkeyconfig.json" <<JSON
{"key": {"kid": "demo-key", "kty": "oct-HSM",
         "authority": {"endpoint": "$maa"},
         "akv": {"endpoint": "$akv", "api_version": "api-version=7.4"}},
 "claims": [[{"claim": "x-ms-sevsnpvm-hostdata", "equals": "$host_data"},
             {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": "false"},
             {"claim": "x-ms-sevsnpvm-vmpl", "equals": "0"},
             {"claim": "x-ms-compliance-status", "equals": "azure-compliant-uvm"}]]}
JSON
(cd "$state" && "$top/$bin/tools/importkey/importkey" -c importkeyconfig.json -a \
	--imds-endpoint "$imds" --ca-bundle "$ca") | tee "$state/importkey.out"
imported=$(grep -o 'sha256:[0-9a-f]*' "$state/importkey.out" | head -1)

echo
echo "== 3. confidential-sidecar release: attest with a fresh wrapping key, release, unwrap"
$bin/sidecar/confidential-sidecar release \
	--attestation-source virtual --virtual-dir "$platform" \
	--maa-endpoint "$maa" --akv-endpoint "$akv" --kid demo-key \
	--imds-endpoint "$imds" --ca-bundle "$ca" | tee "$state/release.out"
released=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["fingerprint"])' \
	"$state/release.out")
if [ -n "$imported" ] && [ "$imported" = "$released" ]; then
	echo "released key equals the imported key (fingerprint $released; the key is never printed)"
else
	echo "MISMATCH: imported $imported, released $released" >&2
	exit 1
fi

echo
echo "== 4. a key whose policy wants another container group's host data: the release is refused"
sed "s/\"demo-key\"/\"other-key\"/; s/$host_data/$(printf '0%.0s' $(seq 64))/" \
	"$state/importkeyconfig.json" >"$state/other.json"
(cd "$state" && "$top/$bin/tools/importkey/importkey" -c other.json -a \
	--imds-endpoint "$imds" --ca-bundle "$ca" >/dev/null)
if $bin/sidecar/confidential-sidecar release \
	--attestation-source virtual --virtual-dir "$platform" \
	--maa-endpoint "$maa" --akv-endpoint "$akv" --kid other-key \
	--imds-endpoint "$imds" --ca-bundle "$ca" >/dev/null; then
	echo "the release should have been refused" >&2
	exit 1
fi
echo "(refused as expected; the reason above names the claim that did not match)"

echo
echo "== 5. the daemon: confidential-sidecar serving the SKR API on localhost"
# A port free on 127.0.0.1 and ::1 (the daemon listens on both, never on another address).
port=$(python3 - <<'PY'
import socket
for _ in range(50):
    s4 = socket.socket(socket.AF_INET); s4.bind(("127.0.0.1", 0)); p = s4.getsockname()[1]
    try:
        s6 = socket.socket(socket.AF_INET6); s6.bind(("::1", p)); s6.close()
    except OSError as e:
        if e.errno == 98:  # EADDRINUSE on ::1: try another
            s4.close(); continue
    s4.close(); print(p); break
PY
)
# As a container group passes them: standard base64 of the JSON documents. Our additions
# (attestation source, platform directory, CA bundle, IMDS endpoint, endpoint allowlist) are
# optional fields of SkrSideCarArgs; no filesystems here, so the allowlist names devcloud.
skr_json=$(python3 -c 'import json,sys; print(json.dumps({
    "certcache": {"endpoint_type": "AMD"},
    "attestation_source": "virtual", "virtual_platform_dir": sys.argv[1],
    "ca_bundle": sys.argv[2], "imds_endpoint": sys.argv[3],
    "allowed_endpoints": {"attestation": [sys.argv[4]], "key_vault": [sys.argv[5]]}}))' \
	"$platform" "$ca" "$imds" "$maa" "$akv")
encfs_json='{"azure_info": {"certcache": {"endpoint_type": "AMD"}}, "azure_filesystems": []}'
echo "SkrSideCarArgs   = base64 of $skr_json"
echo "EncfsSideCarArgs = base64 of $encfs_json"
echo "Port             = $port"
SkrSideCarArgs=$(printf '%s' "$skr_json" | base64 -w0) \
EncfsSideCarArgs=$(printf '%s' "$encfs_json" | base64 -w0) \
Port=$port LogFile="$state/sidecar.log" \
	$bin/sidecar/confidential-sidecar 2>"$state/sidecar.err" &
daemon_pid=$!
for i in $(seq 1 100); do
	curl -sf -o /dev/null "localhost:$port/status" && break
	if ! kill -0 "$daemon_pid" 2>/dev/null || [ "$i" -eq 100 ]; then
		echo "the daemon did not start:" >&2
		cat "$state/sidecar.err" "$state/sidecar.log" >&2 2>/dev/null || true
		exit 1
	fi
	sleep 0.1
done

echo
echo "\$ curl -s localhost:$port/status"
curl -s "localhost:$port/status"
echo

runtime_data=$(printf '%s' '{"demo":"confidential-sidecar API"}' | base64 -w0)
echo
echo "\$ curl -s -X POST localhost:$port/attest/maa -d '{\"maa_endpoint\":\"$maa\",\"runtime_data\":\"$runtime_data\"}'"
attest=$(curl -s -X POST "localhost:$port/attest/maa" \
	-d "{\"maa_endpoint\":\"$maa\",\"runtime_data\":\"$runtime_data\"}")
printf '%s' "$attest" | python3 -c '
import base64, json, sys
body = json.load(sys.stdin)
if "token" not in body:
    sys.exit("no token: %s" % body)
token = body["token"]
payload = token.split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
print("{\"token\": \"%s...\"}  (a %d-character JWT; some of its claims:)" % (token[:24], len(token)))
for name in ("iss", "x-ms-attestation-type", "x-ms-compliance-status", "x-ms-sevsnpvm-hostdata",
             "x-ms-sevsnpvm-is-debuggable", "x-ms-sevsnpvm-vmpl", "x-ms-runtime"):
    if name in claims:
        print("  %-28s %s" % (name, json.dumps(claims[name])))
'

echo
echo "\$ curl -s -X POST localhost:$port/key/release -d '{\"maa_endpoint\":\"$maa\",\"akv_endpoint\":\"$akv\",\"kid\":\"demo-key\"}'"
# The response carries the key itself: kept in this variable only, never written to a file.
release=$(curl -s -X POST "localhost:$port/key/release" \
	-d "{\"maa_endpoint\":\"$maa\",\"akv_endpoint\":\"$akv\",\"kid\":\"demo-key\"}")
printf '%s' "$release" | python3 -c '
import base64, hashlib, json, sys
body = json.load(sys.stdin)
if "key" not in body:
    sys.exit("no key: %s" % body)
jwk = json.loads(body["key"])
k = base64.urlsafe_b64decode(jwk["k"] + "=" * (-len(jwk["k"]) % 4))
print(json.dumps({"key": json.dumps(dict(jwk, k="<%d bytes, masked here>" % len(k)))}))
print("(the key is a JWK serialized as a JSON string, as the Go sidecar returns it;"
      " an application gets \"k\" in full)")
# The fingerprint (skr.h skr_key_fingerprint) identifies the key without revealing it.
digest = hashlib.sha256(b"confidential-sidecar key fingerprint v1" + b"\x00" + k).hexdigest()
open(sys.argv[1], "w").write("sha256:" + digest[:32] + "\n")
' "$state/api.fingerprint"
unset release
api_fingerprint=$(cat "$state/api.fingerprint")
if [ -n "$imported" ] && [ "$imported" = "$api_fingerprint" ]; then
	echo "the JWK's key equals the imported key (fingerprint $api_fingerprint)"
else
	echo "MISMATCH: imported $imported, released through the API $api_fingerprint" >&2
	exit 1
fi

kill "$daemon_pid"
wait "$daemon_pid" || { echo "the daemon did not stop cleanly" >&2; exit 1; }
daemon_pid=
echo "(daemon stopped with SIGTERM: exit 0)"

echo
echo "== 6. the mission: an encrypted filesystem from blob storage, mounted for the application"
mission=${DEMO_MISSION:-auto}
if [ "$mission" = auto ]; then
	mission=vm
	# dm-crypt needs root and a kernel with device-mapper and the crypt target.
	if [ "$(id -u)" -eq 0 ] && grep -qw device-mapper /proc/misc 2>/dev/null &&
		{ [ -d /sys/module/dm_crypt ] || modprobe dm_crypt 2>/dev/null; }; then
		mission=native
	fi
fi
case "$mission" in
skip)
	echo "(skipped: DEMO_MISSION=skip)"
	;;
vm)
	echo "this host's kernel has no dm-crypt (or we are not root): the sidecar runs inside a" \
		"QEMU guest, the image and the services stay on this host"
	bash tests/vm/run-demo.sh --build-dir "$bin" --data examples/encfs/data
	;;
native)
	echo "this host has dm-crypt and we are root: the sidecar mounts natively"
	azurite_bin=${AZURITE_BLOB_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/csc-azurite/node_modules/.bin/azurite-blob}
	az_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	(cd "$state" && exec "$azurite_bin" --blobHost 127.0.0.1 --blobPort "$az_port" \
		--inMemoryPersistence --skipApiVersionCheck --disableTelemetry --silent) \
		>"$state/azurite.log" 2>&1 &
	azurite_pid=$!
	for i in $(seq 1 150); do
		$bin/tests/vm/vm_azurite container "$az_port" demo --public 2>/dev/null && break
		[ "$i" -eq 150 ] && { cat "$state/azurite.log" >&2; exit 1; }
		sleep 0.2
	done
	echo "\$ generatefs --dir examples/encfs/data --out encfs.img --generate-key encfs.key"
	$bin/tools/generatefs/generatefs --dir examples/encfs/data --out "$state/encfs.img" \
		--generate-key "$state/encfs.key"
	$bin/tests/vm/vm_azurite put "$az_port" demo encfs.img "$state/encfs.img"
	blob_url="http://127.0.0.1:$az_port/devstoreaccount1/demo/encfs.img"
	echo "uploaded to $blob_url"
	sed "s/\"demo-key\"/\"encfs-key\"/" "$state/importkeyconfig.json" >"$state/encfs-import.json"
	(cd "$state" && "$top/$bin/tools/importkey/importkey" -c encfs-import.json -kh encfs.key \
		-a --imds-endpoint "$imds" --ca-bundle "$ca")
	# The operator's copy of the key is not needed any more: only the vault holds it now.
	rm -f "$state/encfs.key"
	mkdir -p "$state/mnt/remote"
	encfs_json=$(python3 -c 'import json,sys; print(json.dumps({
    "azure_filesystems": [{"azure_url": sys.argv[1], "mount_point": sys.argv[2],
        "key": {"kid": "encfs-key", "kty": "oct-HSM",
                "authority": {"endpoint": sys.argv[3]}, "akv": {"endpoint": sys.argv[4]}}}],
    "work_dir": sys.argv[5], "ready_file": sys.argv[6]}))' \
		"$blob_url" "$state/mnt/remote/share" "$maa" "$akv" "$state/work" "$state/ready")
	echo "EncfsSideCarArgs = base64 of $encfs_json"
	SkrSideCarArgs=$(printf '%s' "$skr_json" | base64 -w0) \
	EncfsSideCarArgs=$(printf '%s' "$encfs_json" | base64 -w0) \
	Port=$port LogFile="$state/sidecar-mission.log" \
		$bin/sidecar/confidential-sidecar 2>"$state/sidecar-mission.err" &
	daemon_pid=$!
	for i in $(seq 1 600); do
		[ -e "$state/ready" ] && break
		if ! kill -0 "$daemon_pid" 2>/dev/null || [ "$i" -eq 600 ]; then
			echo "the filesystem did not mount:" >&2
			curl -s "localhost:$port/status" >&2 || true
			cat "$state/sidecar-mission.err" "$state/sidecar-mission.log" >&2 2>/dev/null || true
			exit 1
		fi
		sleep 0.1
	done
	echo "\$ curl -s localhost:$port/status"
	curl -s "localhost:$port/status"
	echo
	echo "the application reads $state/mnt/remote/share:"
	(cd "$state/mnt/remote/share" && find . -type f | sort | while read -r f; do
		echo "--- $f"
		head -c 2000 "$f"
		echo
	done)
	diff -r examples/encfs/data "$state/mnt/remote/share" >/dev/null ||
		{ echo "MISMATCH between the mount and examples/encfs/data" >&2; exit 1; }
	echo "(the files equal examples/encfs/data)"
	kill "$daemon_pid"
	wait "$daemon_pid" || { echo "the daemon did not stop cleanly" >&2; exit 1; }
	daemon_pid=
	if grep -q " $state/" /proc/self/mounts; then
		echo "something is still mounted after SIGTERM" >&2
		exit 1
	fi
	echo "(daemon stopped with SIGTERM: unmounted, LUKS mapping closed, nothing left)"
	;;
*)
	echo "DEMO_MISSION must be native, vm or skip, not '$mission'" >&2
	exit 2
	;;
esac
