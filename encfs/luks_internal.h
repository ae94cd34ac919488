/* SPDX-License-Identifier: MIT */
/*
 * Private to libencfs (luks_header.c, luks_open.c) and their unit tests: what the allowlist
 * learned from the header, so luks_open() can require that libcryptsetup's view is the same, and
 * the key check without activation (the only part of luks_open() a host without device-mapper
 * can exercise).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "encfs.h"

/* The facts of a header that passed the allowlist. */
struct luks_header_info {
	uint64_t hdr_size;      /* bytes of one binary header + JSON area */
	uint64_t keyslots_size; /* bytes of the keyslot area after the two headers */
	uint64_t data_offset;   /* bytes from the start of the image to segment 0 */
	uint64_t data_size;     /* bytes of segment 0, 0 for "dynamic" (up to the end) */
	uint32_t sector_size;   /* 512 or 4096 */
	unsigned keyslots;      /* number of keyslots */
};

/*
 * luks_header_check_buffer() with the facts returned; @image_size is the size of the whole
 * image (0 when unknown): segment 0 must lie inside it.
 */
int luks_header_check(const uint8_t *buf, size_t len, uint64_t image_size,
                      struct luks_header_info *info, struct skr_error *err);

/* luks_header_check_file() with the facts returned. */
int luks_header_check_path(const char *path, struct luks_header_info *info, struct skr_error *err);

/*
 * Everything luks_open() does before activation: the allowlist on the bytes of @device, the
 * same checks on what libcryptsetup loaded, and the passphrase tried against the keyslots
 * without creating a mapping. -EPERM with the passphrase's fingerprint when no keyslot accepts
 * it. Runs rootless on an image file.
 */
int luks_check_passphrase(const char *device, const struct secret *passphrase,
                          struct skr_error *err);

/* Route libcryptsetup's messages (also those without a device) to our logger; idempotent. */
void luks_log_setup(void);
