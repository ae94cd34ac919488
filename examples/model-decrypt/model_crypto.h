/* SPDX-License-Identifier: MIT */
/*
 * The encrypted model format and its key, shared by encrypt-model (the model vendor's tool,
 * outside the TEE) and model-decrypt (the application inside the TEE). Private to this example.
 *
 * File layout (all integers big-endian; the 24-byte header is the AES-GCM additional data, so
 * changing the version or the nonce fails authentication like changing the ciphertext):
 *
 *   offset  size  field
 *        0     8  magic "CSMODEL\0"
 *        8     1  version (1)
 *        9     3  reserved, zero
 *       12    12  nonce (random per file)
 *       24     N  ciphertext (AES-256-GCM of the N-byte model)
 *     24+N    16  GCM tag
 *
 * The 32-byte AES key is either an oct key used as is, or derived from an RSA key exactly as
 * the sidecar derives LUKS keys (protocols.md 7.6): HKDF-SHA256 over the private exponent D
 * (big-endian, no leading zeros) with the configured salt (hex; empty = RFC 5869's default) and
 * label as info. So the same key in Key Vault can be released as an RSA key and still give the
 * vendor's AES key, and importkey -out prints the same fingerprint.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "secret.h"
#include "skr_error.h"

#define MODEL_MAGIC "CSMODEL\0"
#define MODEL_MAGIC_SIZE 8
#define MODEL_VERSION 1
#define MODEL_NONCE_SIZE 12
#define MODEL_HEADER_SIZE 24
#define MODEL_TAG_SIZE 16
#define MODEL_KEY_SIZE 32
#define MODEL_DEFAULT_LABEL "Symmetric Encryption Key"

/* "sha256:" + 32 hex digits: skr_key_fingerprint()'s spelling (importkey prints the same). */
#define MODEL_FINGERPRINT_SIZE (7 + 32 + 1)

struct model_header {
	uint8_t version;
	uint8_t nonce[MODEL_NONCE_SIZE];
};

/* Serialize @h into @out (MODEL_HEADER_SIZE bytes). */
void model_header_write(const struct model_header *h, uint8_t out[MODEL_HEADER_SIZE]);

/*
 * Parse a file of @file_size bytes whose first MODEL_HEADER_SIZE bytes are @buf (@len of them
 * available). On success *@ciphertext_len is the model's size. -EINVAL (not an encrypted
 * model, unknown version, truncated) with the reason in @err.
 */
int model_header_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct model_header *h,
                       uint64_t *ciphertext_len, struct skr_error *err);

/*
 * The AES key from an RSA private exponent (@d, big-endian; leading zeros are skipped here):
 * HKDF-SHA256(IKM = D, salt = hex @salt_hex (NULL or "": none), info = @label (NULL: the
 * default)). -EINVAL for a salt that is not hex.
 */
int model_key_derive(const uint8_t *d, size_t d_len, const char *salt_hex, const char *label,
                     struct secret **out, struct skr_error *err);

/* The fingerprint of a key, which identifies it without revealing it. */
void model_key_fingerprint(const struct secret *key, char out[MODEL_FINGERPRINT_SIZE]);
