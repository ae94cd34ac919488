# shellcheck shell=bash disable=SC2154
# Shared by the benchmark scripts (sourced, not run): devcloud on loopback with a key imported
# into it, and stopping what was started, by process id. The caller sets `work` (a fresh
# directory), `devcloud` and `importkey` (the binaries) and, if it starts one, `daemon_pid`.

devcloud_pid=
daemon_pid=

# $1: pid (may be empty). SIGTERM, then SIGKILL after 15 s. Returns its exit status.
bench_stop() {
	[ -n "$1" ] || return 0
	kill "$1" 2>/dev/null || true
	for _ in $(seq 1 150); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null
}

# For `trap bench_cleanup EXIT`.
bench_cleanup() {
	bench_stop "$daemon_pid" || true
	bench_stop "$devcloud_pid" || true
	rm -rf "$work"
}

# $1: script name, $2: build dir, then the binaries it needs. Exits 2 when one is not built.
bench_require_built() {
	local script=$1 build_dir=$2 b
	shift 2
	for b in "$@"; do
		[ -x "$b" ] || { echo "$script: $b not built (ninja -C $build_dir)" >&2; exit 2; }
	done
}

# The value of key $1 in devcloud's endpoints.json ("" until it is written).
bench_endpoint() {
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' \
		"$state/endpoints.json" "$1" 2>/dev/null || true
}

# Start devcloud on free loopback ports with its stderr in $work/devcloud.log; extra arguments
# go to `devcloud serve`. Waits for endpoints.json and sets state, host_data, devcloud_log,
# maa and akv (host:port), imds (URL) and ca (the PEM its TLS endpoints chain to).
bench_start_devcloud() {
	state=$work/devcloud
	devcloud_log=$work/devcloud.log
	host_data=$(openssl rand -hex 32)
	"$devcloud" init --state "$state" --host-data "$host_data" >/dev/null 2>&1
	"$devcloud" serve --state "$state" --attest-port 0 --kv-port 0 --imds-port 0 "$@" \
		>"$work/devcloud.out" 2>"$devcloud_log" &
	devcloud_pid=$!
	for _ in $(seq 1 300); do
		[ -s "$state/endpoints.json" ] && [ -n "$(bench_endpoint kv_port)" ] && break
		kill -0 "$devcloud_pid" 2>/dev/null ||
			{ echo "devcloud exited early:" >&2; cat "$devcloud_log" >&2; exit 1; }
		sleep 0.1
	done
	maa=localhost:$(bench_endpoint attest_port)
	akv=localhost:$(bench_endpoint kv_port)
	imds=$(bench_endpoint imds)
	case "$imds" in
	http*) ;;
	*) imds=http://127.0.0.1:$(bench_endpoint imds_port) ;;
	esac
	ca=$state/ca.pem
}

# Import the oct key $kid (bench-key) with a release policy bound to the virtual platform
# (its host data and the claims devcloud's attestation service issues for it).
bench_import_key() {
	kid=bench-key
	cat >"$work/importkeyconfig.json" <<JSON
{"key": {"kid": "$kid", "kty": "oct-HSM",
         "authority": {"endpoint": "$maa"},
         "akv": {"endpoint": "$akv", "api_version": "api-version=7.4"}},
 "claims": [[{"claim": "x-ms-sevsnpvm-hostdata", "equals": "$host_data"},
             {"claim": "x-ms-compliance-status", "equals": "azure-compliant-uvm"},
             {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": "false"},
             {"claim": "x-ms-sevsnpvm-vmpl", "equals": "0"}]]}
JSON
	echo "== importkey: oct key '$kid' with a policy bound to the virtual platform" >&2
	(cd "$work" && "$importkey" -c importkeyconfig.json -a --imds-endpoint "$imds" \
		--ca-bundle "$ca") | grep -E '^key (id|fingerprint):' >&2
}
