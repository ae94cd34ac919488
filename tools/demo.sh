#!/usr/bin/env bash
# The main job end to end on the embedded default: no cloud, no SEV-SNP hardware.
#   virtual SNP platform → report → devcloud (local MAA-compatible service, HTTPS)
#   → token → token verified against devcloud's published keys → claims printed.
# Installs dependencies (Debian 12, root), builds, runs, and stops everything it started.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

bash tools/install-deps.sh
if [ ! -f build-demo/build.ninja ]; then
	meson setup build-demo >/dev/null
fi
ninja -C build-demo >/dev/null

state=$(mktemp -d /tmp/sidecar-demo.XXXXXX)
devcloud_pid=
cleanup() {
	[ -n "$devcloud_pid" ] && kill "$devcloud_pid" 2>/dev/null && wait "$devcloud_pid" 2>/dev/null
	rm -rf "$state"
}
trap cleanup EXIT

echo "== devcloud init: local CA, TLS certificate, virtual SNP platform, token signing key"
build-demo/tools/devcloud/devcloud init --state "$state/devcloud" >/dev/null

echo "== devcloud serve (127.0.0.1, ephemeral port)"
build-demo/tools/devcloud/devcloud serve --state "$state/devcloud" --attest-port 0 &
devcloud_pid=$!
for _ in $(seq 1 100); do
	[ -s "$state/devcloud/endpoints.json" ] && break
	kill -0 "$devcloud_pid" 2>/dev/null || { echo "devcloud exited early" >&2; exit 1; }
	sleep 0.1
done
port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["attest_port"])' \
	"$state/devcloud/endpoints.json")

echo "== confidential-sidecar attest (virtual platform → https://localhost:$port)"
build-demo/sidecar/confidential-sidecar attest \
	--attestation-source virtual --virtual-dir "$state/devcloud/platform" \
	--maa-endpoint "localhost:$port" --ca-bundle "$state/devcloud/ca.pem" \
	--runtime-data '{"keys":[],"demo":"confidential-sidecar"}' --print-token
