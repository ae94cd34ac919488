/* SPDX-License-Identifier: MIT */
/*
 * Private to libskr: the JSON Web Keys of secure key release.
 *
 * - The runtime data a release attests (protocols.md §4.3, §7.5): a JWK set with the public
 *   half of the wrapping key, serialised byte for byte as the Go sidecar (lestrrat-go/jwx)
 *   does, because REPORT_DATA = SHA-256 of exactly these bytes:
 *     {"keys":[{"e":"AQAB","key_ops":["encrypt"],"kid":"<RFC 7638>","kty":"RSA","n":"<b64url>"}]}
 * - RFC 7638 thumbprints: base64url-nopad(SHA-256('{"e":"…","kty":"RSA","n":"…"}')).
 * - Parsing an RSA public JWK (the vault side picks the wrapping key from the token).
 * - Identifying released key material (raw oct bytes or PKCS#8 DER of an RSA/EC private key).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "secret.h"
#include "skr.h"
#include "skr_error.h"

/* Smallest and largest RSA modulus a wrapping key may have (NIST SP 800-131A; OpenSSL's cap). */
#define JWK_RSA_MIN_BITS 2048
#define JWK_RSA_MAX_BITS 16384
/* Text of a public JWK accepted at most. */
#define JWK_MAX_SIZE (64u * 1024)

/*
 * The RSA public key @key as base64url-nopad members: *n_b64 (modulus) and *e_b64 (exponent),
 * big-endian without leading zeros. Both malloc'ed. -EINVAL if @key is not RSA.
 */
int jwk_rsa_public_members(EVP_PKEY *key, char **n_b64, char **e_b64, struct skr_error *err);

/* RFC 7638 SHA-256 thumbprint of an RSA key (public or private), base64url-nopad; malloc'ed. */
int jwk_rsa_thumbprint(EVP_PKEY *key, char **kid, struct skr_error *err);

/*
 * The runtime data of a release for the wrapping key @kek (RSA):
 *   {"keys":[{"e":…,"key_ops":["encrypt"],"kid":<thumbprint>,"kty":"RSA","n":…}]}
 * compact, members in this order. *json (malloc'ed, NUL-terminated, *json_len bytes without the
 * NUL) is what SHA-256 covers for REPORT_DATA; *kid (may be NULL; malloc'ed) is the thumbprint,
 * which the vault echoes as key_hsm header.kid (key_hsm_unwrap's expected_kek_kid).
 */
int jwk_runtime_data(EVP_PKEY *kek, char **json, size_t *json_len, char **kid,
                     struct skr_error *err);

/*
 * An RSA public key from a JWK object / text: "kty" must be "RSA"; "n" and "e" base64url (padded
 * or not). Refuses moduli below JWK_RSA_MIN_BITS ("RSA key is N bits; at least 2048 required")
 * or above JWK_RSA_MAX_BITS, and exponents that are even, < 3 or wider than 64 bits. Other
 * members (kid, key_ops, alg, …) are ignored. -EINVAL with the member named.
 */
int jwk_rsa_public_from_object(json_object *jwk, EVP_PKEY **out, struct skr_error *err);
int jwk_rsa_public_parse(const char *json, size_t len, EVP_PKEY **out, struct skr_error *err);

/*
 * The skr_key_type of a JWK "kty": "oct"/"oct-HSM" → SKR_KEY_OCT, "RSA"/"RSA-HSM" →
 * SKR_KEY_RSA, "EC"/"EC-HSM" → SKR_KEY_EC; anything else -ENOTSUP naming it.
 */
int jwk_key_type_from_kty(const char *kty, enum skr_key_type *out, struct skr_error *err);

/*
 * Parse released PKCS#8 DER (an RSA or EC private key; OpenSSL clears the BIGNUMs when the key
 * is freed). *type (may be NULL) is SKR_KEY_RSA or SKR_KEY_EC; *out (may be NULL) the key.
 * -EINVAL when it is not DER of a private key, -ENOTSUP for another algorithm (Ed25519, DSA…).
 */
int jwk_private_key_from_der(const uint8_t *der, size_t len, EVP_PKEY **out,
                             enum skr_key_type *type, struct skr_error *err);

/*
 * Check released material against the "kty" the vault announced and return its type: oct →
 * at least one byte; RSA/EC → PKCS#8 DER of a private key of that algorithm (a mismatch is
 * -EPROTO: "released key says kty RSA-HSM but the material is an EC key"). Unsupported kty →
 * -ENOTSUP. Nothing of the material is copied.
 */
int jwk_check_material(const char *kty, const struct secret *material, enum skr_key_type *type,
                       struct skr_error *err);
