/* SPDX-License-Identifier: MIT */
/*
 * Private to libskr: compact JWS/JWT (RFC 7515/7519) as MAA tokens and Key Vault release
 * responses use them: split and decode, RS256 verification with a given key, time and issuer
 * claims, and the OpenID discovery → JWKS → key-by-kid lookup of an issuer.
 *
 * Only RS256 is implemented; every verification refuses any other "alg" (in particular "none"
 * and the HMAC family, whose "key" would be a public key an attacker knows) before touching the
 * signature.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "cleanup.h"
#include "skr_error.h"

struct http_client;

/* Compact tokens larger than this are refused before decoding (MAA tokens are ~10–20 KiB). */
#define JWT_MAX_SIZE (512u * 1024)
/* Clock skew tolerated on exp/nbf (protocols.md §4.2, skr.h). */
#define JWT_CLOCK_SKEW_SEC 300

struct jwt {
	json_object *header;  /* decoded protected header (an object) */
	json_object *payload; /* decoded payload (an object) */
	char *payload_json;   /* the payload exactly as decoded, NUL-terminated */
	size_t payload_len;
	uint8_t *signature;
	size_t signature_len;
	size_t signing_input_len; /* bytes of "header.payload" at the start of the token */
	char *signing_input;      /* a copy of those bytes: what the signature must cover */
};

/*
 * Split @token (exactly three '.'-separated segments, base64url with or without padding) and
 * decode header and payload as JSON objects. Does not verify anything.
 */
int jwt_parse(const char *token, size_t len, struct jwt *out, struct skr_error *err);
void jwt_clear(struct jwt *j);

static inline void jwt_clearp(struct jwt *j)
{
	jwt_clear(j);
}
#define _cleanup_jwt_ _cleanup_(jwt_clearp)

/* Header / payload string member, NULL when absent or not a string. */
const char *jwt_header_string(const struct jwt *j, const char *name);
const char *jwt_payload_string(const struct jwt *j, const char *name);

/* The header's "alg" is "RS256" (else -ENOTSUP; -EINVAL when absent). */
int jwt_check_alg_rs256(const struct jwt *j, struct skr_error *err);

/*
 * Verify the RS256 signature of the parsed token (over the exact text jwt_parse() decoded; @token,
 * if not NULL, must be that same text) with @key, an RSA
 * public key. Refuses a header "alg" other than "RS256" first (-ENOTSUP), a non-RSA key
 * (-EINVAL); a bad signature is -EBADMSG.
 */
int jwt_verify_rs256(const struct jwt *j, const char *token, EVP_PKEY *key, struct skr_error *err);

/*
 * exp/nbf against @now with @skew seconds of tolerance. exp is required when @require_exp;
 * present claims must be numbers. Expired → -ESTALE, not yet valid → -EAGAIN.
 */
int jwt_check_time(const struct jwt *j, time_t now, long skew, bool require_exp,
                   struct skr_error *err);

/*
 * iss == @issuer, a trailing '/' on either side tolerated, scheme and host compared without
 * regard to case (the path exactly). Mismatch → -EACCES.
 */
int jwt_check_issuer(const struct jwt *j, const char *issuer, struct skr_error *err);

/*
 * The public key of the JWKS entry whose "kid" equals @kid: x5c[0] (standard base64 DER
 * certificate) when present, else the RSA "n"/"e" members. -ENOENT when no key has that kid.
 * @jwks is untrusted text (fuzzed).
 */
int jwks_find_key(const char *jwks, size_t len, const char *kid, EVP_PKEY **out,
                  struct skr_error *err);

/*
 * GET @issuer/.well-known/openid-configuration, check its jwks_uri (https, same origin as
 * @issuer), GET it, and return its JSON text (malloc'ed) for jwks_find_key().
 */
int jwks_fetch(struct http_client *c, const char *issuer, char **jwks, size_t *jwks_len,
               struct skr_error *err);

/* "header.payload.<redacted>" for logs (a token is a bearer secret); malloc'ed, NULL on ENOMEM. */
char *jwt_redact(const char *token);
