#!/usr/bin/env bash
# SKR API load benchmark on loopback (issue 4): devcloud (attestation service, key vault, IMDS),
# an oct key imported by importkey with a policy bound to the virtual platform, the daemon
# (confidential-sidecar) configured through SkrSideCarArgs / EncfsSideCarArgs as a container
# group configures it (virtual SEV-SNP platform, no filesystems, so no mounts), then
# bench/api_load: C concurrent POST /key/release clients (default 200), N requests in all.
#
#   bench/run-api-load.sh [--build-dir DIR] [-n N] [-c C] [--warmup N] [--new-connections]
#
# The build dir defaults to $MESON_BUILD_ROOT (set by `ninja bench-api`) or ./build. N also comes
# from $API_LOAD_N (default 1000). $DAEMON_WRAPPER prefixes the daemon (e.g. "valgrind
# --tool=massif"; the RSS figures are then the wrapper's). Everything started here is stopped on
# exit, by process id.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${MESON_BUILD_ROOT:-$top/build}
load_args=(-n "${API_LOAD_N:-1000}")
while [ $# -gt 0 ]; do
	case "$1" in
	--build-dir) build=$2; shift 2 ;;
	-n|--requests) load_args+=(-n "$2"); shift 2 ;;
	-c|--concurrency) load_args+=(-c "$2"); shift 2 ;;
	--warmup) load_args+=("$1" "$2"); shift 2 ;;
	--new-connections) load_args+=("$1"); shift ;;
	-h|--help) sed -n '2,13p' "$0"; exit 0 ;;
	*) echo "run-api-load.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
build=$(cd "$build" && pwd)
devcloud=$build/tools/devcloud/devcloud
importkey=$build/tools/importkey/importkey
sidecar=$build/sidecar/confidential-sidecar
load=$build/bench/api_load
# shellcheck source=bench/lib.sh
. "$top/bench/lib.sh"
bench_require_built run-api-load.sh "$build" "$devcloud" "$importkey" "$sidecar" "$load"

work=$(mktemp -d /tmp/bench-api-load.XXXXXX)
trap bench_cleanup EXIT

# shellcheck disable=SC2119 # devcloud's default log level: no extra arguments
bench_start_devcloud
bench_import_key

# A port free on 127.0.0.1 and ::1 (the daemon serves both on one port).
port=$(python3 - <<'PY'
import socket
for _ in range(50):
    s4 = socket.socket(socket.AF_INET); s4.bind(("127.0.0.1", 0)); p = s4.getsockname()[1]
    try:
        s6 = socket.socket(socket.AF_INET6); s6.bind(("::1", p)); s6.close()
    except OSError as e:
        if e.errno == 98:  # EADDRINUSE; no IPv6 at all is fine (the daemon serves IPv4 only)
            s4.close(); continue
    s4.close(); print(p); break
PY
)
[ -n "$port" ] || { echo "run-api-load.sh: no free port on loopback" >&2; exit 1; }

# As a container group passes them: standard base64 of the JSON documents. No filesystems, so
# the endpoints the API may call are listed explicitly.
skr_args=$(python3 -c 'import json,sys; print(json.dumps({
    "certcache": {"endpoint_type": "AMD"},
    "attestation_source": "virtual", "virtual_platform_dir": sys.argv[1],
    "ca_bundle": sys.argv[2], "imds_endpoint": sys.argv[3],
    "allowed_endpoints": {"attestation": [sys.argv[4]], "key_vault": [sys.argv[5]]}}))' \
	"$state/platform" "$ca" "$imds" "$maa" "$akv" | base64 -w0)
encfs_args=$(printf '%s' '{"azure_info": {"certcache": {"endpoint_type": "AMD"}}, "azure_filesystems": []}' |
	base64 -w0)
echo "== confidential-sidecar on 127.0.0.1:$port (virtual SEV-SNP, no filesystems)" >&2
SkrSideCarArgs=$skr_args EncfsSideCarArgs=$encfs_args Port=$port LogLevel=info \
	LogFile=$work/daemon.log ${DAEMON_WRAPPER:-} "$sidecar" 2>"$work/daemon.err" &
daemon_pid=$!
for i in $(seq 1 300); do
	curl -sf -o /dev/null "http://127.0.0.1:$port/status" && break
	kill -0 "$daemon_pid" 2>/dev/null ||
		{ echo "the daemon exited at start:" >&2; cat "$work/daemon.err" "$work/daemon.log" >&2; exit 1; }
	[ "$i" -lt 300 ] || { echo "the daemon did not answer /status in 30 s" >&2; exit 1; }
	sleep 0.1
done

echo "== api_load" >&2
rc=0
"$load" --port "$port" --pid "$daemon_pid" --maa-endpoint "$maa" --akv-endpoint "$akv" \
	--kid "$kid" "${load_args[@]}" || rc=$?
# SIGTERM: the daemon drains and exits 0; anything else (a crash, a sanitizer report in a
# sanitizer build) is shown.
daemon_rc=0
bench_stop "$daemon_pid" || daemon_rc=$?
daemon_pid=
if [ "$daemon_rc" -ne 0 ] || grep -qE 'Sanitizer|runtime error' "$work/daemon.err"; then
	echo "== the daemon exited with status $daemon_rc; its stderr (last 40 lines):" >&2
	tail -40 "$work/daemon.err" >&2
	rc=1
fi
# The daemon's own complaints (anything at warning level or above) are part of the result.
n_warn=$(grep -cE '^[^ ]+ (warn|error) ' "$work/daemon.log" 2>/dev/null || true)
if [ "${n_warn:-0}" -gt 0 ]; then
	echo "== the daemon logged $n_warn warning/error line(s); the first 10:" >&2
	grep -E '^[^ ]+ (warn|error) ' "$work/daemon.log" | head -10 >&2
fi
exit "$rc"
