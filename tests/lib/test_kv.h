/* SPDX-License-Identifier: MIT */
/*
 * Header-only helpers for the key vault tests (unit and integration): JWKs from OpenSSL keys,
 * release policies, the runtime data of a wrapping key, and an independent unwrap of a release
 * ciphertext (RSA-OAEP + RFC 5649 with OpenSSL directly, not libskr's code under test).
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "b64.h"
#include "cleanup.h"
#include "json_util.h"
#include "ossl.h"
#include "secret.h"

static inline void test_kv_add_bn(json_object *o, const char *name, EVP_PKEY *key,
                                  const char *param, size_t pad_to)
{
	BIGNUM *bn = NULL;
	uint8_t buf[1024];
	char *s = NULL;
	int n;

	if (EVP_PKEY_get_bn_param(key, param, &bn) != 1)
		abort();
	n = BN_num_bytes(bn);
	if (pad_to ? BN_bn2binpad(bn, buf, (int)pad_to) < 0 : BN_bn2bin(bn, buf) != n)
		abort();
	if (b64_encode(buf, pad_to ? pad_to : (size_t)n, B64_URL_NOPAD, &s) < 0)
		abort();
	json_object_object_add(o, name, json_object_new_string(s));
	free(s);
	BN_clear_free(bn);
}

/* The private JWK of an RSA or EC key (kty as given: "RSA-HSM", "EC", ...); malloc'ed text. */
static inline char *test_kv_private_jwk(EVP_PKEY *key, const char *kty)
{
	json_object *o = json_object_new_object();
	char *text;

	json_object_object_add(o, "kty", json_object_new_string(kty));
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
		test_kv_add_bn(o, "n", key, OSSL_PKEY_PARAM_RSA_N, 0);
		test_kv_add_bn(o, "e", key, OSSL_PKEY_PARAM_RSA_E, 0);
		test_kv_add_bn(o, "d", key, OSSL_PKEY_PARAM_RSA_D, 0);
		test_kv_add_bn(o, "p", key, OSSL_PKEY_PARAM_RSA_FACTOR1, 0);
		test_kv_add_bn(o, "q", key, OSSL_PKEY_PARAM_RSA_FACTOR2, 0);
		test_kv_add_bn(o, "dp", key, OSSL_PKEY_PARAM_RSA_EXPONENT1, 0);
		test_kv_add_bn(o, "dq", key, OSSL_PKEY_PARAM_RSA_EXPONENT2, 0);
		test_kv_add_bn(o, "qi", key, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, 0);
	} else {
		char group[32];
		size_t len = 0, field;

		if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
		                                   sizeof(group), &len) != 1)
			abort();
		field = strcmp(group, "prime256v1") == 0  ? 32
		        : strcmp(group, "secp384r1") == 0 ? 48
		                                          : 66;
		json_object_object_add(o, "crv",
		                       json_object_new_string(field == 32   ? "P-256"
		                                              : field == 48 ? "P-384"
		                                                            : "P-521"));
		test_kv_add_bn(o, "x", key, OSSL_PKEY_PARAM_EC_PUB_X, field);
		test_kv_add_bn(o, "y", key, OSSL_PKEY_PARAM_EC_PUB_Y, field);
		test_kv_add_bn(o, "d", key, OSSL_PKEY_PARAM_PRIV_KEY, field);
	}
	text = strdup(json_compact(o));
	json_object_put(o);
	return text;
}

/* PKCS#8 DER of @key in locked memory, as the unwrapper delivers released RSA/EC keys. */
static inline struct secret *test_kv_pkcs8(EVP_PKEY *key)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
	unsigned char *der = NULL;
	struct secret *s;
	int len;

	if (!p8)
		abort();
	len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
	PKCS8_PRIV_KEY_INFO_free(p8);
	if (len <= 0)
		abort();
	s = secret_new_copy(der, (size_t)len);
	OPENSSL_clear_free(der, (size_t)len);
	if (!s)
		abort();
	return s;
}

/* An oct JWK for @key (b64url-nopad k). */
static inline char *test_kv_oct_jwk(const uint8_t *key, size_t len, const char *kty)
{
	char *k = NULL, *out = NULL;

	if (b64_encode(key, len, B64_URL_NOPAD, &k) < 0 ||
	    asprintf(&out, "{\"kty\":\"%s\",\"k\":\"%s\"}", kty, k) < 0)
		abort();
	free(k);
	return out;
}

/*
 * A PUT body: {"key": @jwk, "hsm": true, "attributes": {"exportable": @exportable},
 * "release_policy": {"contentType", "data": b64url-nopad(@policy), "immutable"}} (no policy
 * when @policy is NULL).
 */
static inline char *test_kv_import_body(const char *jwk, bool exportable, const char *policy,
                                        bool immutable)
{
	char *data = NULL, *out = NULL;

	if (policy && b64_encode(policy, strlen(policy), B64_URL_NOPAD, &data) < 0)
		abort();
	if (policy) {
		if (asprintf(&out,
		             "{\"key\":%s,\"hsm\":true,\"attributes\":{\"exportable\":%s},"
		             "\"release_policy\":{\"contentType\":\"application/json; "
		             "charset=utf-8\",\"data\":\"%s\",\"immutable\":%s}}",
		             jwk, exportable ? "true" : "false", data,
		             immutable ? "true" : "false") < 0)
			abort();
	} else if (asprintf(&out, "{\"key\":%s,\"hsm\":true,\"attributes\":{\"exportable\":%s}}",
	                    jwk, exportable ? "true" : "false") < 0) {
		abort();
	}
	free(data);
	return out;
}

/* {"version":"1.0.0","anyOf":[{"authority":@authority,"allOf":[@conditions]}]} */
static inline char *test_kv_policy(const char *authority, const char *conditions)
{
	char *out = NULL;

	if (asprintf(&out,
	             "{\"version\":\"1.0.0\",\"anyOf\":[{\"authority\":\"%s\",\"allOf\":[%s]}]}",
	             authority, conditions) < 0)
		abort();
	return out;
}

/* Runtime data with @kek's public key as the anchor sends it (key_ops encrypt). */
static inline char *test_kv_runtime(EVP_PKEY *kek, const char *kid)
{
	json_object *root = json_object_new_object(), *keys = json_object_new_array();
	json_object *k = json_object_new_object(), *ops = json_object_new_array();
	char *text;

	json_object_object_add(root, "keys", keys);
	json_object_array_add(keys, k);
	test_kv_add_bn(k, "e", kek, OSSL_PKEY_PARAM_RSA_E, 0);
	json_object_array_add(ops, json_object_new_string("encrypt"));
	json_object_object_add(k, "key_ops", ops);
	json_object_object_add(k, "kid", json_object_new_string(kid));
	json_object_object_add(k, "kty", json_object_new_string("RSA"));
	test_kv_add_bn(k, "n", kek, OSSL_PKEY_PARAM_RSA_N, 0);
	text = strdup(json_compact(root));
	json_object_put(root);
	return text;
}

/*
 * Unwrap a CKM_RSA_AES_KEY_WRAP-family ciphertext (@md: SHA-1/256/384) with @kek: RSA-OAEP of
 * the AES key, then AES-256 key wrap with padding. Returns the key (malloc'ed) or NULL.
 */
static inline uint8_t *test_kv_unwrap(EVP_PKEY *kek, const EVP_MD *md, const uint8_t *ct,
                                      size_t ct_len, size_t *out_len)
{
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(kek, NULL);
	EVP_CIPHER_CTX *cctx = EVP_CIPHER_CTX_new();
	size_t mlen = (size_t)EVP_PKEY_get_size(kek), aes_len = 512;
	uint8_t aes[512], *out = NULL;
	int n = 0, fin = 0;

	if (!pctx || !cctx || ct_len <= mlen || EVP_PKEY_decrypt_init(pctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pctx, md) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1 ||
	    EVP_PKEY_decrypt(pctx, aes, &aes_len, ct, mlen) != 1 || aes_len != 32)
		goto out;
	out = malloc(ct_len);
	EVP_CIPHER_CTX_set_flags(cctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (!out || EVP_DecryptInit_ex2(cctx, EVP_aes_256_wrap_pad(), aes, NULL, NULL) != 1 ||
	    EVP_DecryptUpdate(cctx, out, &n, ct + mlen, (int)(ct_len - mlen)) != 1 ||
	    EVP_DecryptFinal_ex(cctx, out + n, &fin) != 1) {
		free(out);
		out = NULL;
		goto out;
	}
	*out_len = (size_t)(n + fin);
out:
	EVP_PKEY_CTX_free(pctx);
	EVP_CIPHER_CTX_free(cctx);
	return out;
}

/* Decode one '.'-separated segment of a compact JWS as a JSON object (NULL if it is not). */
static inline json_object *test_kv_jws_segment(const char *jws, int index)
{
	const char *start = jws, *end;
	uint8_t *raw = NULL;
	size_t len = 0;
	json_object *obj = NULL;

	for (int i = 0; i < index; i++) {
		start = strchr(start, '.');
		if (!start)
			return NULL;
		start++;
	}
	end = strchr(start, '.');
	if (!end)
		end = start + strlen(start);
	if (b64_decode(start, (size_t)(end - start), B64_ACCEPT_URL, &raw, &len) < 0)
		return NULL;
	json_parse((const char *)raw, len, "segment", &obj, NULL);
	free(raw);
	return obj;
}

/* Nested string member by a path of names ("response", "key", "key", "kid", NULL). */
static inline const char *test_kv_get_path(json_object *o, ...)
{
	va_list ap;
	const char *name;

	va_start(ap, o);
	while (o && (name = va_arg(ap, const char *)))
		o = json_object_object_get(o, name);
	va_end(ap);
	return o ? json_object_get_string(o) : NULL;
}
