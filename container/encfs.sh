#!/bin/sh
# Entry point compatible with the Go sidecar's /encfs.sh: mounts every filesystem of
# EncfsSideCarArgs (base64 of the JSON) below /mnt/remote and serves the SKR API on
# localhost:${Port:-8080}. Environment: EncfsSideCarArgs, SkrSideCarArgs (optional), Port,
# LogFile, LogLevel; the Go script's positional fallbacks work too:
# /encfs.sh [EncfsSideCarArgs [LogFile [LogLevel]]].
# Unlike the Go script there is no "sleep infinity" after a failure: the daemon exits non-zero
# when a mount fails (unless configured to keep serving), so the container's restart policy
# and the group's status show it.
set -eu

if [ -z "${EncfsSideCarArgs:-}" ] && [ $# -ge 1 ]; then
	EncfsSideCarArgs=$1
	export EncfsSideCarArgs
fi
if [ -z "${LogFile:-}" ] && [ $# -ge 2 ] && [ -n "$2" ]; then
	LogFile=$2
	export LogFile
fi
if [ -z "${LogLevel:-}" ] && [ $# -ge 3 ] && [ -n "$3" ]; then
	LogLevel=$3
	export LogLevel
fi
if [ -z "${EncfsSideCarArgs:-}" ]; then
	echo "encfs.sh: EncfsSideCarArgs is not set: base64 of the filesystems' JSON (examples/encfs/README.md)" >&2
	exit 2
fi
if [ ! -c /dev/fuse ]; then
	echo "encfs.sh: warning: /dev/fuse is missing; images are downloaded instead of read lazily (run the container privileged)" >&2
fi

# On PATH: /usr/local/bin in the image (tests put their build first).
exec confidential-sidecar
