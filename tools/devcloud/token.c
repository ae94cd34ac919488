/* SPDX-License-Identifier: MIT */
/*
 * MAA-shaped attestation tokens: a JWS compact serialization, RS256, header
 * {"alg":"RS256","jku":<issuer>/certs,"kid":<kid>,"typ":"JWT"} (protocols.md §4.2). The kid is
 * b64url-nopad(SHA-256(signing certificate DER)), the key published at /certs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "b64.h"
#include "cleanup.h"
#include "devcloud.h"
#include "json_util.h"
#include "ossl.h"
#include "secret.h"

int devcloud_policy_hash(const char *text, char **out)
{
	unsigned char md[32];

	if (EVP_Digest(text, strlen(text), md, NULL, EVP_sha256(), NULL) != 1)
		return -ENOMEM;
	return b64_encode(md, sizeof(md), B64_URL_NOPAD, out);
}

static int b64url_json(json_object *obj, char **out)
{
	const char *text = json_compact(obj);

	if (!text)
		return -ENOMEM;
	return b64_encode(text, strlen(text), B64_URL_NOPAD, out);
}

int devcloud_token_sign(const struct devcloud *dc, const char *issuer, json_object *claims,
                        time_t now, char **jwt, struct skr_error *err)
{
	_cleanup_json_ json_object *header = json_object_new_object();
	_cleanup_free_ char *jku = NULL, *h64 = NULL, *p64 = NULL, *s64 = NULL, *input = NULL;
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = NULL;
	_cleanup_free_ unsigned char *sig = NULL;
	uint8_t jti_raw[32];
	char jti[65], *out;
	size_t sig_len = 0;

	if (!header || asprintf(&jku, "%s/certs", issuer) < 0) {
		jku = NULL;
		return skr_error_set(err, -ENOMEM, "token: out of memory");
	}
	if (devcloud_json_add(header, "alg", json_object_new_string("RS256")) < 0 ||
	    devcloud_json_add(header, "jku", json_object_new_string(jku)) < 0 ||
	    devcloud_json_add(header, "kid", json_object_new_string(dc->kid)) < 0 ||
	    devcloud_json_add(header, "typ", json_object_new_string("JWT")) < 0)
		return skr_error_set(err, -ENOMEM, "token: out of memory");

	if (RAND_bytes(jti_raw, sizeof(jti_raw)) != 1)
		return ossl_error_set(err, -EIO, "token jti");
	hex_encode(jti_raw, sizeof(jti_raw), jti);
	if (devcloud_json_add(claims, "iss", json_object_new_string(issuer)) < 0 ||
	    devcloud_json_add(claims, "iat", json_object_new_int64(now)) < 0 ||
	    devcloud_json_add(claims, "nbf", json_object_new_int64(now)) < 0 ||
	    devcloud_json_add(claims, "exp", json_object_new_int64(now + dc->token_lifetime)) < 0 ||
	    devcloud_json_add(claims, "jti", json_object_new_string(jti)) < 0)
		return skr_error_set(err, -ENOMEM, "token: out of memory");

	if (b64url_json(header, &h64) < 0 || b64url_json(claims, &p64) < 0 ||
	    asprintf(&input, "%s.%s", h64, p64) < 0) {
		input = NULL;
		return skr_error_set(err, -ENOMEM, "token: out of memory");
	}

	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, dc->signing_key) != 1 ||
	    EVP_DigestSign(md, NULL, &sig_len, (const unsigned char *)input, strlen(input)) != 1)
		return ossl_error_set(err, -EINVAL, "token signature");
	sig = malloc(sig_len);
	if (!sig)
		return skr_error_set(err, -ENOMEM, "token: out of memory");
	if (EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)input, strlen(input)) != 1)
		return ossl_error_set(err, -EINVAL, "token signature");
	if (b64_encode(sig, sig_len, B64_URL_NOPAD, &s64) < 0 ||
	    asprintf(&out, "%s.%s", input, s64) < 0)
		return skr_error_set(err, -ENOMEM, "token: out of memory");
	*jwt = out;
	return 0;
}
