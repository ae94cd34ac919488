/* SPDX-License-Identifier: MIT */
/*
 * Compact JWS with RS256 for the tokens devcloud both signs and checks itself: access tokens,
 * federated assertions, and the key vault's release responses (which only clients verify).
 * Tokens of other issuers are verified by libskr's skr_token_verifier, never here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "b64.h"
#include "cleanup.h"
#include "devcloud.h"
#include "json_util.h"
#include "ossl.h"

static int b64url_json(json_object *obj, char **out)
{
	const char *text = json_compact(obj);

	if (!text)
		return -ENOMEM;
	return b64_encode(text, strlen(text), B64_URL_NOPAD, out);
}

int devcloud_jws_sign(EVP_PKEY *key, json_object *header, json_object *payload, char **out,
                      struct skr_error *err)
{
	_cleanup_free_ char *h64 = NULL, *p64 = NULL, *s64 = NULL, *input = NULL;
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = NULL;
	_cleanup_free_ unsigned char *sig = NULL;
	size_t sig_len = 0;

	if (b64url_json(header, &h64) < 0 || b64url_json(payload, &p64) < 0 ||
	    asprintf(&input, "%s.%s", h64, p64) < 0) {
		input = NULL;
		return skr_error_set(err, -ENOMEM, "JWS: out of memory");
	}
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, NULL, &sig_len, (const unsigned char *)input, strlen(input)) != 1)
		return ossl_error_set(err, -EINVAL, "JWS signature");
	sig = malloc(sig_len);
	if (!sig)
		return skr_error_set(err, -ENOMEM, "JWS: out of memory");
	if (EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)input, strlen(input)) != 1)
		return ossl_error_set(err, -EINVAL, "JWS signature");
	if (b64_encode(sig, sig_len, B64_URL_NOPAD, &s64) < 0 ||
	    asprintf(out, "%s.%s", input, s64) < 0)
		return skr_error_set(err, -ENOMEM, "JWS: out of memory");
	return 0;
}

static int decode_object(const char *seg, size_t len, const char *what, json_object **out,
                         struct skr_error *err)
{
	_cleanup_free_ uint8_t *raw = NULL;
	size_t raw_len;
	int r;

	if (b64_decode(seg, len, B64_ACCEPT_URL, &raw, &raw_len) < 0)
		return skr_error_set(err, -EINVAL, "token %s is not base64url", what);
	r = json_parse((const char *)raw, raw_len, what, out, err);
	if (r < 0)
		return r;
	if (!json_object_is_type(*out, json_type_object)) {
		json_object_put(*out);
		*out = NULL;
		return skr_error_set(err, -EINVAL, "token %s is not a JSON object", what);
	}
	return 0;
}

int devcloud_jws_verify(EVP_PKEY *key, const char *token, json_object **header_out,
                        json_object **payload_out, struct skr_error *err)
{
	_cleanup_json_ json_object *header = NULL, *payload = NULL;
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = NULL;
	_cleanup_free_ uint8_t *sig = NULL;
	const char *dot1, *dot2, *alg;
	size_t len, sig_len;
	int r;

	len = strnlen(token, DEVCLOUD_JWS_MAX + 1);
	if (len > DEVCLOUD_JWS_MAX)
		return skr_error_set(err, -EINVAL, "token is longer than %u bytes",
		                     DEVCLOUD_JWS_MAX);
	dot1 = memchr(token, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
	if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
		return skr_error_set(err, -EINVAL,
		                     "token is not a compact JWS (three '.'-separated parts)");
	r = decode_object(token, (size_t)(dot1 - token), "header", &header, err);
	if (r < 0)
		return r;
	/* alg first: "none" or HS256 must never reach the signature check. */
	alg = json_object_get_string(json_object_object_get(header, "alg"));
	if (!alg || strcmp(alg, "RS256") != 0)
		return skr_error_set(err, -EINVAL, "token alg is '%s', only RS256 is accepted",
		                     alg ? alg : "(none)");
	r = decode_object(dot1 + 1, (size_t)(dot2 - dot1 - 1), "payload", &payload, err);
	if (r < 0)
		return r;
	if (b64_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), B64_ACCEPT_URL, &sig, &sig_len) <
	            0 ||
	    sig_len == 0)
		return skr_error_set(err, -EINVAL, "token signature is not base64url");
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1)
		return ossl_error_set(err, -ENOMEM, "token signature check");
	if (EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)token,
	                     (size_t)(dot2 - token)) != 1) {
		ERR_clear_error();
		return skr_error_set(err, -EBADMSG, "token signature does not verify");
	}
	if (header_out)
		*header_out = TAKE_PTR(header);
	*payload_out = TAKE_PTR(payload);
	return 0;
}
