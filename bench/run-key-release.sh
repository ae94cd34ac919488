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
# shellcheck source=bench/lib.sh
. "$top/bench/lib.sh"
bench_require_built run-key-release.sh "$build" "$devcloud" "$importkey" "$bench"

work=$(mktemp -d /tmp/bench-key-release.XXXXXX)
trap bench_cleanup EXIT

# info level: the request log ("POST /keys/<name>/release 200 X ms") is the server time
bench_start_devcloud --log-level info
bench_import_key

echo "== key_release" >&2
${BENCH_WRAPPER:-} "$bench" --maa-endpoint "$maa" --akv-endpoint "$akv" \
	--kid "$kid" --virtual-dir "$state/platform" --ca-bundle "$ca" \
	--imds-endpoint "$imds" --server-log "$devcloud_log" "${bench_args[@]}"
