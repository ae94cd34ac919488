/* SPDX-License-Identifier: MIT */
/*
 * The LUKS2 header allowlist (luks_header_check_buffer) on arbitrary bytes: the first bytes of
 * an image from untrusted storage. Each input is checked twice: as it is (magic, sizes,
 * checksums, truncation), and "repaired" — the primary JSON area copied over the secondary's and
 * both checksums recomputed — so that mutations reach the JSON allowlist instead of stopping at
 * the checksum. Properties: never crash, a refusal always comes with a reason, and a repaired
 * header that passes has no "cipher_null" in it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "encfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BIN_HDR_SIZE 4096
#define OFF_CSUM 448

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void rechecksum(uint8_t *hdr, uint64_t hdr_size)
{
	unsigned int len = 0;
	uint8_t md[32];

	memset(hdr + OFF_CSUM, 0, 64);
	if (EVP_Digest(hdr, hdr_size, md, &len, EVP_sha256(), NULL) != 1 || len != sizeof(md))
		abort();
	memcpy(hdr + OFF_CSUM, md, sizeof(md));
}

static void check(const uint8_t *buf, size_t len)
{
	struct skr_error err = {0};
	int r = luks_header_check_buffer(buf, len, &err);

	if (r > 0 || (r < 0 && (err.code != r || !err.msg[0])))
		abort();
	if (r < 0 && r != -EBADMSG && r != -EMEDIUMTYPE && r != -ENOMEM && r != -EIO)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t hdr_size;
	uint8_t *copy;

	check(data, size);

	if (size < BIN_HDR_SIZE)
		return 0;
	hdr_size = be64(data + 8);
	if (hdr_size < 16384 || hdr_size > 4u * 1024 * 1024 || (hdr_size & (hdr_size - 1)) ||
	    size < 2 * hdr_size)
		return 0;
	copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	memcpy(copy + hdr_size + BIN_HDR_SIZE, copy + BIN_HDR_SIZE, hdr_size - BIN_HDR_SIZE);
	rechecksum(copy, hdr_size);
	rechecksum(copy + hdr_size, hdr_size);
	{
		struct skr_error err = {0};

		size_t json_len =
		        strnlen((const char *)copy + BIN_HDR_SIZE, hdr_size - BIN_HDR_SIZE);

		if (luks_header_check_buffer(copy, size, &err) == 0 &&
		    memmem(copy + BIN_HDR_SIZE, json_len, "cipher_null", 11))
			abort();
		check(copy, size);
	}
	free(copy);
	return 0;
}
