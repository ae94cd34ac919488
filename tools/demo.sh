#!/usr/bin/env bash
# The main job end to end on the embedded default: no cloud, no SEV-SNP hardware.
#   1. virtual SNP platform → report → devcloud (local MAA-compatible service, HTTPS)
#      → token → token verified against devcloud's published keys → claims printed;
#   2. importkey: a fresh key imported into devcloud's key vault with a release policy bound to
#      the platform's claims (host data, not debuggable, VMPL 0, compliance status);
#   3. secure key release: the SKR client attests with a fresh wrapping key, the vault checks the
#      token against the policy and releases the key wrapped to it, the client verifies and
#      unwraps it — and the released key's fingerprint equals the imported key's.
#   4. a release the policy refuses (another platform's host data), with the reason.
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
cleanup() {
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
