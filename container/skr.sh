#!/bin/sh
# Entry point compatible with the Go sidecar's /skr.sh: the SKR API on localhost:$Port.
# Environment (as container groups set it): SkrSideCarArgs (base64 of the JSON), Port, LogFile,
# LogLevel; the Go script's positional fallbacks work too: /skr.sh [SkrSideCarArgs [Port]].
# confidential-sidecar reads the environment itself, so nothing is echoed here (the Go script
# printed the arguments, which may name identities and endpoints).
set -eu

if [ -z "${SkrSideCarArgs:-}" ] && [ $# -ge 1 ]; then
	SkrSideCarArgs=$1
	export SkrSideCarArgs
fi
if [ -z "${Port:-}" ] && [ $# -ge 2 ]; then
	Port=$2
	export Port
fi
if [ -n "${ServerType:-}" ] && [ "$ServerType" != "http" ]; then
	echo "skr.sh: ServerType=$ServerType is not supported: confidential-sidecar serves the HTTP API only" >&2
	exit 2
fi

# On PATH: /usr/local/bin in the image (tests put their build first).
exec confidential-sidecar
