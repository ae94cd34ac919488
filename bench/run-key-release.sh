#!/usr/bin/env bash
# Key-release benchmark on loopback: devcloud (attestation service, key vault, IMDS) with a
# request log, an oct key imported by importkey with a policy bound to the virtual platform,
# then bench/key_release (N releases with and without the wrapping-key pool).
#
#   bench/run-key-release.sh [--build-dir DIR] [-n N] [--pause-ms MS] [--warmup N]
#                            [--mode both|pool|no-pool] [--log-level LEVEL]
#
# The build dir defaults to $MESON_BUILD_ROOT (set by `ninja bench`) or ./build. N also comes
# from $KEY_RELEASE_N; $BENCH_WRAPPER prefixes the benchmark (e.g. "perf record -g").
# Everything started here is stopped on exit.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${MESON_BUILD_ROOT:-$top/build}
bench_args=(-n "${KEY_RELEASE_N:-200}")
while [ $# -gt 0 ]; do
	case "$1" in
	--build-dir) build=$2; shift 2 ;;
	-n|--releases) bench_args+=(-n "$2"); shift 2 ;;
	--pause-ms|--warmup|--mode|--log-level) bench_args+=("$1" "$2"); shift 2 ;;
	-h|--help) sed -n '2,11p' "$0"; exit 0 ;;
	*) echo "run-key-release.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
build=$(cd "$build" && pwd)
devcloud=$build/tools/devcloud/devcloud
importkey=$build/tools/importkey/importkey
bench=$build/bench/key_release
for b in "$devcloud" "$importkey" "$bench"; do
	[ -x "$b" ] || { echo "run-key-release.sh: $b not built (ninja -C $build)" >&2; exit 2; }
done

work=$(mktemp -d /tmp/bench-key-release.XXXXXX)
devcloud_pid=
cleanup() {
	if [ -n "$devcloud_pid" ]; then
		kill "$devcloud_pid" 2>/dev/null || true
		wait "$devcloud_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

state=$work/devcloud
log=$work/devcloud.log
host_data=$(openssl rand -hex 32)
"$devcloud" init --state "$state" --host-data "$host_data" >/dev/null 2>&1
# info level: the request log ("POST /keys/<name>/release 200 X ms") is the server time
"$devcloud" serve --state "$state" --attest-port 0 --kv-port 0 --imds-port 0 \
	--log-level info >"$work/devcloud.out" 2>"$log" &
devcloud_pid=$!
endpoint() {
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' \
		"$state/endpoints.json" "$1" 2>/dev/null || true
}
for _ in $(seq 1 300); do
	[ -s "$state/endpoints.json" ] && [ -n "$(endpoint kv_port)" ] && break
	kill -0 "$devcloud_pid" 2>/dev/null || { echo "devcloud exited early:" >&2; cat "$log" >&2; exit 1; }
	sleep 0.1
done
attest_port=$(endpoint attest_port)
kv_port=$(endpoint kv_port)
imds=$(endpoint imds)
case "$imds" in
http*) ;;
*) imds=http://127.0.0.1:$(endpoint imds_port) ;;
esac

kid=bench-key
cat >"$work/importkeyconfig.json" <<JSON
{"key": {"kid": "$kid", "kty": "oct-HSM",
         "authority": {"endpoint": "localhost:$attest_port"},
         "akv": {"endpoint": "localhost:$kv_port", "api_version": "api-version=7.4"}},
 "claims": [[{"claim": "x-ms-sevsnpvm-hostdata", "equals": "$host_data"},
             {"claim": "x-ms-compliance-status", "equals": "azure-compliant-uvm"},
             {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": "false"},
             {"claim": "x-ms-sevsnpvm-vmpl", "equals": "0"}]]}
JSON
echo "== importkey: oct key '$kid' with a policy bound to the virtual platform" >&2
(cd "$work" && "$importkey" -c importkeyconfig.json -a --imds-endpoint "$imds" \
	--ca-bundle "$state/ca.pem") | grep -E '^key (id|fingerprint):' >&2

echo "== key_release" >&2
${BENCH_WRAPPER:-} "$bench" --maa-endpoint "localhost:$attest_port" --akv-endpoint "localhost:$kv_port" \
	--kid "$kid" --virtual-dir "$state/platform" --ca-bundle "$state/ca.pem" \
	--imds-endpoint "$imds" --server-log "$log" "${bench_args[@]}"
