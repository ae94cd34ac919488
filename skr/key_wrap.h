/* SPDX-License-Identifier: MIT */
/*
 * Private to libskr: the CKM_RSA_AES_KEY_WRAP family (protocols.md §5.3) and the key_hsm key
 * transfer blob of a Key Vault release response (§5.2).
 *
 *   ciphertext = RSA-OAEP_KEK(K_tmp) ‖ AES-KWP_K_tmp(key material)      (RFC 8017, RFC 5649)
 *
 * OAEP hash and MGF1 hash are the same (SHA-1, SHA-256 or SHA-384 by algorithm), the label is
 * empty. Everything is OpenSSL's EVP; nothing here implements a primitive.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "secret.h"
#include "skr.h"
#include "skr_error.h"

/* Key material wrapped or unwrapped at most (an RSA-16384 PKCS#8 key is ~9.5 KiB). */
#define KEY_WRAP_MAX_KEY_SIZE (64u * 1024)
/* key_hsm text accepted at most (base64url of a JSON blob holding a ciphertext as above). */
#define KEY_HSM_MAX_SIZE (256u * 1024)

/* The OpenSSL digest name of @alg's OAEP/MGF1 hash ("SHA1", "SHA256", "SHA384"); NULL if unknown. */
const char *key_wrap_alg_digest(enum skr_wrap_alg alg);

/*
 * Wrap @key (1..KEY_WRAP_MAX_KEY_SIZE bytes) for @kek (an RSA public or private key of any size
 * OpenSSL accepts): a fresh random AES-256 key, RSA-OAEP-encrypted with @alg's hash, followed by
 * the RFC 5649 wrap of @key under it. The temporary AES key lives in locked memory and is erased.
 * *out (malloc'ed, not secret) is EVP_PKEY_get_size(kek) + 8 + round_up(key_len, 8) bytes.
 */
int key_wrap(EVP_PKEY *kek, enum skr_wrap_alg alg, const uint8_t *key, size_t key_len,
             uint8_t **out, size_t *out_len, struct skr_error *err);

/*
 * Unwrap @ct with the private RSA key @kek (any modulus size: the RSA block is the first
 * EVP_PKEY_get_size(kek) bytes). The recovered transfer key's length (16/24/32) selects
 * AES-128/192/256 key wrap with padding. *out holds the key material in locked memory.
 * Errors (all name the step, none reveal key bytes):
 *   -EINVAL  @ct too short / not a whole number of 8-byte blocks after the RSA block, or too long
 *   -EBADMSG RSA-OAEP decryption failed (not wrapped for this key, or with another enc), or the
 *            transfer key has an impossible length, or the RFC 5649 AIV/MLI/padding check failed:
 *            "key unwrap failed: integrity check (RFC 5649 AIV) did not pass"
 *   -ENOMEM
 * Every temporary (transfer key, padded plaintext) is in locked memory and erased.
 */
int key_unwrap(EVP_PKEY *kek, enum skr_wrap_alg alg, const uint8_t *ct, size_t len,
               struct secret **out, struct skr_error *err);

/*
 * Decode and unwrap a key_hsm value (untrusted server output; fuzzed):
 *   base64url (padded or not) of
 *   {"schema_version": "1.0" | "1.0.0",
 *    "header": {"kid": "<KEK kid>", "alg": "dir", "enc": "<one of the three algorithms>"},
 *    "ciphertext": "<base64url, padded or not>", "generator"?: ...}
 * header.kid must equal @expected_kek_kid unless that is NULL (-EPROTO otherwise: the vault
 * wrapped to another key). Unknown members are ignored. @len bytes of @key_hsm_b64url are read
 * (at most KEY_HSM_MAX_SIZE, else -EFBIG). On success *alg_out (may be NULL) is the header's
 * enc (the caller compares it with the JWS payload's request.enc when it cares) and *material
 * the unwrapped key in locked memory. Malformed blobs → -EPROTO naming the member; unwrap
 * failures as key_unwrap().
 */
int key_hsm_unwrap(EVP_PKEY *kek, const char *expected_kek_kid, const char *key_hsm_b64url,
                   size_t len, enum skr_wrap_alg *alg_out, struct secret **material,
                   struct skr_error *err);
