#!/usr/bin/env bash
# Install everything the project needs to build, demo and test on Debian 12 (run as root).
# Kept in one place so README, CI and the demo cannot drift apart.
set -euo pipefail

packages=(
	# build
	meson ninja-build pkg-config gcc clang libclang-rt-14-dev clang-format
	# libraries
	libssl-dev libcurl4-openssl-dev libjson-c-dev libmicrohttpd-dev libcmocka-dev
	# runtime helpers used by the demo and tests
	openssl ca-certificates curl python3 procps
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
