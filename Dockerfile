# syntax=docker/dockerfile:1
# The confidential-sidecar image: the SKR API daemon (/skr.sh), the encrypted-filesystem
# sidecar (/encfs.sh) and the operator tools (importkey, generatefs), on Debian 12 slim.
#   docker build -t confidential-sidecar .
# Checked without a Docker engine by tests/examples/check_dockerfile.py: the build stage's
# commands run in a throwaway root, every package exists, and the runtime packages cover what
# the binaries link (ldd) — a library added to the code without its package fails the test.

FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
	meson ninja-build pkg-config gcc libc6-dev \
	libssl-dev libcurl4-openssl-dev libjson-c-dev libmicrohttpd-dev \
	libcryptsetup-dev libmount-dev libfuse3-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . /src
# Only the shipped binaries (not devcloud, benchmarks, examples or tests). Warnings are not
# errors here: CI builds with -Werror; an image build must not break on a newer compiler's
# new warning.
RUN meson setup /build /src --buildtype=release -Dtests=disabled -Db_pie=true -Dwerror=false \
 && meson compile -C /build confidential-sidecar:executable importkey:executable \
	generatefs:executable \
 && install -D -m 0755 /build/sidecar/confidential-sidecar /out/usr/local/bin/confidential-sidecar \
 && install -D -m 0755 /build/tools/importkey/importkey /out/usr/local/bin/importkey \
 && install -D -m 0755 /build/tools/generatefs/generatefs /out/usr/local/bin/generatefs \
 && install -D -m 0755 /src/container/skr.sh /out/skr.sh \
 && install -D -m 0755 /src/container/encfs.sh /out/encfs.sh \
 && install -D -m 0755 /src/container/healthcheck.sh /out/healthcheck.sh

FROM debian:12-slim
# Runtime libraries of the binaries (ldd), plus: ca-certificates (the system CA store for MAA,
# Key Vault, Entra ID and Blob Storage), curl (the health check), fuse3 (/dev/fuse
# helpers for the lazy blob file), e2fsprogs (mke2fs -d for generatefs, fsck for mounts).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
	libssl3 libcurl4 libjson-c5 libmicrohttpd12 \
	libcryptsetup12 libmount1 libfuse3-3 \
	ca-certificates curl fuse3 e2fsprogs \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /
# The API listens on localhost only; containers of the group reach it on localhost:8080.
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 CMD ["/healthcheck.sh"]
# Root: mounting (dm-crypt, ext4, FUSE) needs it, as the Go image. ACI and Kata templates run
# the container privileged only for encfs (examples/encfs); /skr.sh needs no privilege.
CMD ["/skr.sh"]
