/* SPDX-License-Identifier: MIT */
/*
 * JWKs of secure key release (skr/jwk.h): RFC 7638's published thumbprint, the exact runtime
 * data bytes (REPORT_DATA hashes them), public JWK parsing and its refusals, and the
 * identification of released key material.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/x509.h>

#include "b64.h"
#include "cleanup.h"
#include "json_util.h"
#include "jwk.h"
#include "ossl.h"
#include "secret.h"
#include "test_kv.h"

/* RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint. */
#define RFC7638_N                                                                                  \
	"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"  \
	"BJ"                                                                                       \
	"ECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FD" \
	"W2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4v" \
	"MQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
#define RFC7638_KID "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
/* The example's JWK as printed in RFC 7638 §3.1 (with its alg and kid members). */
#define RFC7638_JWK                                                                                \
	"{\"kty\":\"RSA\",\"n\":\"" RFC7638_N "\",\"e\":\"AQAB\",\"alg\":\"RS256\","               \
	"\"kid\":\"2011-04-29\"}"

static EVP_PKEY *rfc7638_key(void)
{
	EVP_PKEY *key = NULL;
	struct skr_error err = {0};

	if (jwk_rsa_public_parse(RFC7638_JWK, strlen(RFC7638_JWK), &key, &err) < 0)
		fail_msg("RFC 7638 key: %s", err.msg);
	return key;
}

static void test_rfc7638_thumbprint(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = rfc7638_key();
	_cleanup_free_ char *kid = NULL;
	_cleanup_free_ char *n = NULL;
	_cleanup_free_ char *e = NULL;
	struct skr_error err = {0};

	assert_int_equal(EVP_PKEY_get_bits(key), 2048);
	assert_int_equal(jwk_rsa_thumbprint(key, &kid, &err), 0);
	assert_string_equal(kid, RFC7638_KID);
	assert_int_equal(jwk_rsa_public_members(key, &n, &e, &err), 0);
	assert_string_equal(n, RFC7638_N);
	assert_string_equal(e, "AQAB");
}

static void test_runtime_data_exact(void **state)
{
	static const char expected[] =
	        "{\"keys\":[{\"e\":\"AQAB\",\"key_ops\":[\"encrypt\"],\"kid\":"
	        "\"" RFC7638_KID "\",\"kty\":\"RSA\",\"n\":\"" RFC7638_N "\"}]}";
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = rfc7638_key();
	_cleanup_free_ char *json = NULL;
	_cleanup_free_ char *kid = NULL;
	struct skr_error err = {0};
	size_t len = 0;

	assert_int_equal(jwk_runtime_data(key, &json, &len, &kid, &err), 0);
	assert_string_equal(json, expected);
	assert_int_equal(len, strlen(expected));
	assert_string_equal(kid, RFC7638_KID);

	/* kid and length are optional outputs. */
	free(TAKE_PTR(json));
	assert_int_equal(jwk_runtime_data(key, &json, NULL, NULL, &err), 0);
	assert_string_equal(json, expected);
}

/* A generated key: the runtime data parses back to the same public key, kid = thumbprint. */
static void test_runtime_data_round_trip(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_RSA_gen(2048);
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *back = NULL;
	_cleanup_free_ char *json = NULL;
	_cleanup_free_ char *kid = NULL;
	_cleanup_free_ char *thumb = NULL;
	_cleanup_json_ json_object *obj = NULL;
	struct skr_error err = {0};
	json_object *keys, *k0, *v;
	size_t len;

	assert_non_null(key);
	assert_int_equal(jwk_runtime_data(key, &json, &len, &kid, &err), 0);
	assert_null(strchr(json, ' '));
	assert_null(strchr(json, '='));
	assert_int_equal(json_parse(json, len, "runtime", &obj, &err), 0);
	assert_true(json_object_object_get_ex(obj, "keys", &keys));
	assert_int_equal(json_object_array_length(keys), 1);
	k0 = json_object_array_get_idx(keys, 0);
	assert_true(json_object_object_get_ex(k0, "kid", &v));
	assert_string_equal(json_object_get_string(v), kid);
	assert_int_equal(jwk_rsa_thumbprint(key, &thumb, &err), 0);
	assert_string_equal(kid, thumb);
	assert_int_equal(jwk_rsa_public_from_object(k0, &back, &err), 0);
	assert_int_equal(EVP_PKEY_eq(key, back), 1);
}

static void test_public_parse_errors(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *small = EVP_RSA_gen(1024);
	_cleanup_free_ char *sn = NULL;
	_cleanup_free_ char *se = NULL;
	_cleanup_free_ char *small_jwk = NULL;
	_cleanup_free_ char *huge_n = NULL;
	_cleanup_free_ char *huge_jwk = NULL;
	struct skr_error err = {0};

	assert_int_equal(jwk_rsa_public_members(small, &sn, &se, &err), 0);
	assert_true(asprintf(&small_jwk, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"}", sn, se) >
	            0);
	huge_n = malloc(5001);
	assert_non_null(huge_n);
	memset(huge_n, 'A', 5000);
	huge_n[5000] = '\0';
	assert_true(asprintf(&huge_jwk, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}", huge_n) >
	            0);

	const struct {
		const char *json;
		const char *msg;
	} cases[] = {
	        {"", "empty"},
	        {"{\"kty\":", "RSA JWK"},
	        {"[]", "not a JSON object"},
	        {"{\"n\":\"" RFC7638_N "\",\"e\":\"AQAB\"}", "kty"},
	        {"{\"kty\":\"EC\",\"crv\":\"P-256\"}", "an RSA key is required"},
	        {"{\"kty\":\"RSA-HSM\",\"n\":\"" RFC7638_N "\",\"e\":\"AQAB\"}", "kty"},
	        {"{\"kty\":\"RSA\",\"e\":\"AQAB\"}", "'n'"},
	        {"{\"kty\":\"RSA\",\"n\":5,\"e\":\"AQAB\"}", "'n'"},
	        {"{\"kty\":\"RSA\",\"n\":\"\",\"e\":\"AQAB\"}", "\"n\" is empty"},
	        {"{\"kty\":\"RSA\",\"n\":\"a+b/\",\"e\":\"AQAB\"}", "\"n\" is not base64url"},
	        {"{\"kty\":\"RSA\",\"n\":\"" RFC7638_N "\"}", "'e'"},
	        {"{\"kty\":\"RSA\",\"n\":\"" RFC7638_N "\",\"e\":\"AQAA\"}",
	         "\"e\" is not a usable"},
	        {"{\"kty\":\"RSA\",\"n\":\"" RFC7638_N "\",\"e\":\"AQ\"}", "\"e\" is not a usable"},
	        {"{\"kty\":\"RSA\",\"n\":\"" RFC7638_N "\",\"e\":\"AQAAAAAAAAAAAQ\"}",
	         "\"e\" is not a usable"},
	        {"{\"kty\":\"RSA\",\"n\":\"" RFC7638_N "\",\"e\":\"AQABAQABAQABAQABAQAB\"}",
	         "\"e\" is too long"},
	        {small_jwk, "1024 bits; at least 2048 required"},
	        {huge_jwk, "\"n\" is too long"},
	        /* Members other than kty, n and e are ignored. */
	        {"{\"kty\":\"RSA\",\"n\":\"" RFC7638_N "\",\"e\":\"AQAB\",\"x\":1}", NULL},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		EVP_PKEY *key = NULL;
		struct skr_error e = {0};
		int r = jwk_rsa_public_parse(cases[i].json, strlen(cases[i].json), &key, &e);

		if (!cases[i].msg) {
			assert_int_equal(r, 0);
			EVP_PKEY_free(key);
			continue;
		}
		if (r != -EINVAL || !strstr(e.msg, cases[i].msg))
			fail_msg("case %zu: got %d \"%s\", expected -EINVAL with \"%s\"", i, r,
			         e.msg, cases[i].msg);
		assert_null(key);
	}

	/* An even modulus of 2048 bits. */
	{
		_cleanup_free_ char *even = strdup(RFC7638_N);
		_cleanup_free_ char *jwk = NULL;
		EVP_PKEY *key = NULL;

		even[strlen(even) - 1] = 'A'; /* "…Kgw" → "…KgA": low bits cleared */
		assert_true(asprintf(&jwk, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}", even) >
		            0);
		memset(&err, 0, sizeof(err));
		assert_int_equal(jwk_rsa_public_parse(jwk, strlen(jwk), &key, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "even"));
	}

	/* A public key is refused where a key (any) must be RSA. */
	{
		_cleanup_(EVP_PKEY_freep) EVP_PKEY *ec = EVP_EC_gen("P-256");
		char *n = NULL, *e = NULL;

		memset(&err, 0, sizeof(err));
		assert_int_equal(jwk_rsa_public_members(ec, &n, &e, &err), -EINVAL);
		assert_null(n);
	}
}

static void test_kty(void **state)
{
	static const struct {
		const char *kty;
		int r;
		enum skr_key_type type;
	} cases[] = {
	        {"oct", 0, SKR_KEY_OCT},     {"oct-HSM", 0, SKR_KEY_OCT}, {"RSA", 0, SKR_KEY_RSA},
	        {"RSA-HSM", 0, SKR_KEY_RSA}, {"EC", 0, SKR_KEY_EC},       {"EC-HSM", 0, SKR_KEY_EC},
	        {"OKP", -ENOTSUP, 0},        {"rsa", -ENOTSUP, 0},        {"", -ENOTSUP, 0},
	        {NULL, -EPROTO, 0},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		enum skr_key_type t = 0;
		struct skr_error err = {0};

		assert_int_equal(jwk_key_type_from_kty(cases[i].kty, &t, &err), cases[i].r);
		if (cases[i].r == 0)
			assert_int_equal(t, cases[i].type);
		else
			assert_true(err.msg[0]);
	}
}

static void test_material(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *rsa = EVP_RSA_gen(2048);
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ec = EVP_EC_gen("P-384");
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	_cleanup_secret_ struct secret *rsa_der = test_kv_pkcs8(rsa);
	_cleanup_secret_ struct secret *ec_der = test_kv_pkcs8(ec);
	_cleanup_secret_ struct secret *ed_der = test_kv_pkcs8(ed);
	_cleanup_secret_ struct secret *oct = secret_new_copy("0123456789abcdef", 16);
	_cleanup_secret_ struct secret *trailing = secret_new(rsa_der->len + 1);
	_cleanup_secret_ struct secret *empty = secret_new(0);
	const struct {
		const char *kty;
		struct secret *m;
		int r;
		enum skr_key_type type;
		const char *msg;
	} cases[] = {
	        {"RSA-HSM", rsa_der, 0, SKR_KEY_RSA, NULL},
	        {"RSA", rsa_der, 0, SKR_KEY_RSA, NULL},
	        {"EC-HSM", ec_der, 0, SKR_KEY_EC, NULL},
	        {"oct-HSM", oct, 0, SKR_KEY_OCT, NULL},
	        {"oct", rsa_der, 0, SKR_KEY_OCT, NULL}, /* oct material is opaque bytes */
	        {"RSA-HSM", ec_der, -EPROTO, 0, "says kty RSA-HSM but the material is an EC key"},
	        {"EC-HSM", rsa_der, -EPROTO, 0, "material is an RSA key"},
	        {"RSA-HSM", oct, -EPROTO, 0, "not a DER (PKCS#8) private key"},
	        {"RSA-HSM", trailing, -EPROTO, 0, "after its DER encoding"},
	        {"EC", ed_der, -ENOTSUP, 0, "ED25519"},
	        {"OKP", oct, -ENOTSUP, 0, "\"OKP\" is not supported"},
	        {"oct", empty, -EPROTO, 0, "empty"},
	        {"oct", NULL, -EPROTO, 0, "empty"},
	};

	assert_non_null(ed);
	memcpy(trailing->data, rsa_der->data, rsa_der->len);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct skr_error err = {0};
		enum skr_key_type t = 0;
		int r = jwk_check_material(cases[i].kty, cases[i].m, &t, &err);

		if (r != cases[i].r || (cases[i].msg && !strstr(err.msg, cases[i].msg)))
			fail_msg("case %zu: got %d \"%s\", expected %d \"%s\"", i, r, err.msg,
			         cases[i].r, cases[i].msg ? cases[i].msg : "");
		if (r == 0)
			assert_int_equal(t, cases[i].type);
	}

	/* The DER parser hands back the key it identified. */
	{
		_cleanup_(EVP_PKEY_freep) EVP_PKEY *back = NULL;
		struct skr_error err = {0};
		enum skr_key_type t;

		assert_int_equal(
		        jwk_private_key_from_der(ec_der->data, ec_der->len, &back, &t, &err), 0);
		assert_int_equal(t, SKR_KEY_EC);
		assert_int_equal(EVP_PKEY_eq(back, ec), 1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_rfc7638_thumbprint),
	        cmocka_unit_test(test_runtime_data_exact),
	        cmocka_unit_test(test_runtime_data_round_trip),
	        cmocka_unit_test(test_public_parse_errors),
	        cmocka_unit_test(test_kty),
	        cmocka_unit_test(test_material),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
