#!/usr/bin/env bash
# Install everything the project needs to build, demo and test on Debian 12 (run as root).
# Kept in one place so README, CI and the demo cannot drift apart.
set -euo pipefail

packages=(
	# build
	meson ninja-build pkg-config gcc clang libclang-rt-14-dev clang-format
	# libraries
	libssl-dev libcurl4-openssl-dev libjson-c-dev libmicrohttpd-dev libcmocka-dev
	libcryptsetup-dev libmount-dev libfuse3-dev
	# runtime helpers used by the demo and tests
	openssl ca-certificates curl python3 python3-yaml procps
	# images and mounts: mke2fs -d, FUSE, cryptsetup/veritysetup for cross-checks and baselines
	e2fsprogs fuse3 cryptsetup-bin util-linux
	# the QEMU guest of the end-to-end test (the host has no device-mapper)
	qemu-system-x86 busybox-static cpio kmod
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Azurite (the Azure Storage emulator the blob integration tests and bench/run-blob-read.sh run)
# from the npm registry, into a cache outside the repository; skipped when already there. The
# tests look for it at $AZURITE_BLOB_BIN, then at this path, then on $PATH
# (tests/lib/test_azurite.h); a missing Azurite fails them unless SKR_ALLOW_SKIP=1.
azurite_dir=${XDG_CACHE_HOME:-$HOME/.cache}/csc-azurite
if [ ! -x "$azurite_dir/node_modules/.bin/azurite-blob" ]; then
	if ! command -v npm >/dev/null 2>&1; then
		echo "install-deps: installing nodejs npm (for Azurite)" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
	fi
	echo "install-deps: npm install azurite@3 into $azurite_dir" >&2
	mkdir -p "$azurite_dir"
	npm install --prefix "$azurite_dir" --no-audit --no-fund --loglevel=error azurite@3 >&2
fi
"$azurite_dir/node_modules/.bin/azurite-blob" --version >/dev/null ||
	{ echo "install-deps: $azurite_dir/node_modules/.bin/azurite-blob does not run" >&2; exit 1; }
