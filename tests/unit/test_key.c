/* SPDX-License-Identifier: MIT */
/*
 * Released keys (skr.h "Released keys"): the HKDF vectors of protocols.md §7.6, the oct LUKS key
 * rule, the fingerprint, and the JWK text for oct (exact bytes), RSA and EC (parsed back and
 * compared with the key, member order included).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "json_util.h"
#include "ossl.h"
#include "secret.h"
#include "skr.h"
#include "test_kv.h"

static EVP_PKEY *vector_key;

static char *testdata_read(const char *name, size_t *len)
{
	const char *dir = getenv("SKR_TESTDATA");
	_cleanup_free_ char *path = NULL;
	char *text = NULL;

	assert_non_null(dir);
	path = path_join(dir, name);
	assert_int_equal(read_file(path, 1 << 20, &text, len), 0);
	return text;
}

static int setup(void **state)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_json_ json_object *v = NULL;
	_cleanup_(BIO_free_allp) BIO *bio = NULL;
	json_object *pem;
	size_t len;

	text = testdata_read("rsa_aes_keywrap_vector.json", &len);
	if (json_parse(text, len, "vector", &v, NULL) < 0 ||
	    !json_object_object_get_ex(v, "private_key_pem", &pem))
		return -1;
	bio = BIO_new_mem_buf(json_object_get_string(pem), -1);
	vector_key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	return vector_key ? 0 : -1;
}

static int teardown(void **state)
{
	EVP_PKEY_free(vector_key);
	return 0;
}

static struct skr_key *key_new(enum skr_key_type type, struct secret *material,
                               const char *const *ops)
{
	struct skr_key *k = calloc(1, sizeof(*k));

	assert_non_null(k);
	k->type = type;
	k->material = material;
	k->kid = strdup("https://vault.local/keys/k/1");
	for (; ops && *ops; ops++)
		k->key_ops[k->n_key_ops++] = strdup(*ops);
	return k;
}

static void assert_locked(const struct secret *s)
{
	/* Root may always lock; an unprivileged run may hit RLIMIT_MEMLOCK (secret.h). */
	if (geteuid() == 0)
		assert_true(s->locked);
}

/* ---- HKDF (§7.6) ------------------------------------------------------------------------------ */

static void test_hkdf_vectors(void **state)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_json_ json_object *v = NULL;
	_cleanup_secret_ struct secret *der = test_kv_pkcs8(vector_key);
	_cleanup_(BIO_free_allp) BIO *pem_bio = BIO_new(BIO_s_mem());
	struct skr_key *k = key_new(SKR_KEY_RSA, secret_new_copy(der->data, der->len), NULL);
	struct skr_error err = {0};
	json_object *derived, *ikm_len;
	char *pem = NULL;
	long pem_len;
	size_t len;
	int n = 0;

	text = testdata_read("hkdf_vectors.json", &len);
	assert_int_equal(json_parse(text, len, "hkdf vectors", &v, &err), 0);
	assert_true(json_object_object_get_ex(v, "derived", &derived));
	assert_true(json_object_object_get_ex(v, "ikm_len", &ikm_len));
	assert_int_equal(json_object_get_int(ikm_len), 256);

	/* The PEM form importkey reads (PKCS#8). */
	assert_int_equal(PEM_write_bio_PrivateKey(pem_bio, vector_key, NULL, NULL, 0, NULL, NULL),
	                 1);
	pem_len = BIO_get_mem_data(pem_bio, &pem);
	assert_true(pem_len > 0);

	json_object_object_foreach(derived, spec, expected_obj)
	{
		const char *expected = json_object_get_string(expected_obj);
		const char *bar = strchr(spec, '|');
		char salt[128] = "";
		const char *label;
		uint8_t want[32];

		assert_non_null(bar);
		if (strncmp(spec, "<empty>|", 8) != 0) {
			assert_true((size_t)(bar - spec) < sizeof(salt));
			memcpy(salt, spec, (size_t)(bar - spec));
			salt[bar - spec] = '\0';
		}
		label = bar + 1;
		assert_int_equal(hex_decode(expected, strlen(expected), want, sizeof(want)), 0);

		for (int form = 0; form < 3; form++) {
			_cleanup_secret_ struct secret *out = NULL;
			int r;

			if (form == 0)
				r = skr_key_derive(k, salt, label, &out, &err);
			else if (form == 1)
				r = skr_rsa_derive_key(der->data, der->len, salt, label, &out,
				                       &err);
			else
				r = skr_rsa_derive_key((const uint8_t *)pem, (size_t)pem_len, salt,
				                       label, &out, &err);
			if (r < 0)
				fail_msg("%s form %d: %s", spec, form, err.msg);
			assert_int_equal(out->len, SKR_DERIVED_KEY_SIZE);
			assert_memory_equal(out->data, want, sizeof(want));
			assert_locked(out);
		}
		/* The default label is "Symmetric Encryption Key" (NULL and "" alike). */
		if (strcmp(label, SKR_DEFAULT_KDF_LABEL) == 0) {
			_cleanup_secret_ struct secret *a = NULL;
			_cleanup_secret_ struct secret *b = NULL;

			assert_int_equal(skr_key_derive(k, salt, NULL, &a, &err), 0);
			assert_int_equal(skr_key_derive(k, salt, "", &b, &err), 0);
			assert_memory_equal(a->data, want, sizeof(want));
			assert_memory_equal(b->data, want, sizeof(want));
		}
		/* An empty salt is the RFC 5869 default, however it is given. */
		if (!salt[0]) {
			_cleanup_secret_ struct secret *a = NULL;

			assert_int_equal(skr_key_derive(k, NULL, label, &a, &err), 0);
			assert_memory_equal(a->data, want, sizeof(want));
		}
		n++;
	}
	assert_int_equal(n, 3);
	skr_key_free(k);
}

static void test_derive_refusals(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ec = EVP_EC_gen("P-256");
	_cleanup_secret_ struct secret *rsa_der = test_kv_pkcs8(vector_key);
	_cleanup_secret_ struct secret *ec_der = test_kv_pkcs8(ec);
	struct skr_key *k_rsa =
	        key_new(SKR_KEY_RSA, secret_new_copy(rsa_der->data, rsa_der->len), NULL);
	struct skr_key *k_ec =
	        key_new(SKR_KEY_EC, secret_new_copy(ec_der->data, ec_der->len), NULL);
	struct skr_key *k_mistyped =
	        key_new(SKR_KEY_RSA, secret_new_copy(ec_der->data, ec_der->len), NULL);
	struct skr_key *k_garbage = key_new(SKR_KEY_RSA, secret_new_copy("garbage", 7), NULL);
	const struct {
		const char *what;
		int r;
		const char *msg;
	} expect[] = {
	        {"odd salt", -EINVAL, "key_derivation.salt"},
	        {"non-hex salt", -EINVAL, "key_derivation.salt"},
	        {"EC key", -ENOTSUP, "EC key"},
	        {"mistyped", -EINVAL, "not an RSA key"},
	        {"garbage", -EINVAL, "not a DER"},
	        {"DER of EC", -EINVAL, "EC, not RSA"},
	        {"PEM garbage", -EINVAL, "PEM"},
	        {"empty", -EINVAL, "no key"},
	};
	_cleanup_(BIO_free_allp) BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long pem_len;

	/* An encrypted PEM must be refused, never prompt for a passphrase. */
	assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, vector_key, EVP_aes_256_cbc(), "pw", 2,
	                                               NULL, NULL),
	                 1);
	pem_len = BIO_get_mem_data(bio, &pem);

	for (size_t i = 0; i < ELEMENTSOF(expect); i++) {
		_cleanup_secret_ struct secret *out = NULL;
		struct skr_error err = {0};
		int r = 0;

		switch (i) {
		case 0:
			r = skr_key_derive(k_rsa, "abc", NULL, &out, &err);
			break;
		case 1:
			r = skr_key_derive(k_rsa, "zz", NULL, &out, &err);
			break;
		case 2:
			r = skr_key_derive(k_ec, NULL, NULL, &out, &err);
			break;
		case 3:
			r = skr_key_derive(k_mistyped, NULL, NULL, &out, &err);
			break;
		case 4:
			r = skr_key_derive(k_garbage, NULL, NULL, &out, &err);
			break;
		case 5:
			r = skr_rsa_derive_key(ec_der->data, ec_der->len, NULL, NULL, &out, &err);
			break;
		case 6:
			r = skr_rsa_derive_key((const uint8_t *)pem, (size_t)pem_len, NULL, NULL,
			                       &out, &err);
			break;
		case 7:
			r = skr_rsa_derive_key(NULL, 0, NULL, NULL, &out, &err);
			break;
		}
		if (r != expect[i].r || !strstr(err.msg, expect[i].msg))
			fail_msg("%s: got %d \"%s\", expected %d \"%s\"", expect[i].what, r,
			         err.msg, expect[i].r, expect[i].msg);
		assert_null(out);
	}
	skr_key_free(k_rsa);
	skr_key_free(k_ec);
	skr_key_free(k_mistyped);
	skr_key_free(k_garbage);
}

static void test_oct_luks_key(void **state)
{
	uint8_t raw[33];
	struct skr_error err = {0};

	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(0xa0 + i);
	{
		struct skr_key *k = key_new(SKR_KEY_OCT, secret_new_copy(raw, 32), NULL);
		_cleanup_secret_ struct secret *out = NULL;

		/* Salt and label do not apply to oct keys: the key is used as it is. */
		assert_int_equal(skr_key_derive(k, "00ff", "whatever", &out, &err), 0);
		assert_int_equal(out->len, 32);
		assert_memory_equal(out->data, raw, 32);
		assert_ptr_not_equal(out, k->material);
		assert_locked(out);
		skr_key_free(k);
	}
	static const size_t bad[] = {16, 31, 33, 1};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		struct skr_key *k = key_new(SKR_KEY_OCT, secret_new_copy(raw, bad[i]), NULL);
		_cleanup_secret_ struct secret *out = NULL;
		char want[96];

		memset(&err, 0, sizeof(err));
		snprintf(want, sizeof(want), "released oct key is %zu bytes; a LUKS key needs 32",
		         bad[i]);
		assert_int_equal(skr_key_derive(k, NULL, NULL, &out, &err), -EINVAL);
		assert_string_equal(err.msg, want);
		assert_null(out);
		skr_key_free(k);
	}
	skr_key_free(NULL);
}

/* ---- fingerprint ------------------------------------------------------------------------------ */

static void test_fingerprint(void **state)
{
	uint8_t key[32], other[32];
	char a[SKR_FINGERPRINT_STR_SIZE], b[SKR_FINGERPRINT_STR_SIZE], c[SKR_FINGERPRINT_STR_SIZE];
	char key_hex[65];

	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	memcpy(other, key, sizeof(other));
	other[31] ^= 1;

	skr_key_fingerprint(key, sizeof(key), a);
	skr_key_fingerprint(key, sizeof(key), b);
	skr_key_fingerprint(other, sizeof(other), c);
	/* SHA-256("confidential-sidecar key fingerprint v1" ‖ 0x00 ‖ 00 01 … 1f), first 16 bytes,
	 * computed independently with Python's hashlib. */
	assert_string_equal(a, "sha256:ef590ca149402f35504ad6a91b5aea59");
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_int_equal(strlen(a), SKR_FINGERPRINT_STR_SIZE - 1);

	/* No run of the key's hex (8 bytes or more) appears in it. */
	hex_encode(key, sizeof(key), key_hex);
	for (size_t off = 0; off + 16 <= 64; off += 2) {
		char window[17];

		memcpy(window, key_hex + off, 16);
		window[16] = '\0';
		assert_null(strstr(a, window));
	}
	/* A prefix of a key is a different key. */
	skr_key_fingerprint(key, 16, c);
	assert_string_not_equal(a, c);
}

/* ---- JWK text (§7.2) ------------------------------------------------------------------------- */

static void test_jwk_oct_exact(void **state)
{
	static const char *const ops[] = {"wrapKey", "unwrapKey", NULL};
	static const struct {
		const char *const *ops;
		const char *json;
	} cases[] = {
	        {ops,
	         "{\"k\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\",\"key_ops\":[\"wrapKey\","
	         "\"unwrapKey\"],\"kty\":\"oct\"}"},
	        {NULL, "{\"k\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\",\"kty\":\"oct\"}"},
	};
	uint8_t raw[32];

	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)i;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct skr_key *k = key_new(SKR_KEY_OCT, secret_new_copy(raw, 32), cases[i].ops);
		_cleanup_secret_ struct secret *json = NULL;
		struct skr_error err = {0};

		assert_int_equal(skr_key_to_jwk(k, &json, &err), 0);
		assert_int_equal(json->len, strlen(cases[i].json));
		assert_memory_equal(json->data, cases[i].json, json->len);
		assert_int_equal(json->data[json->len], '\0');
		assert_locked(json);
		skr_key_free(k);
	}

	/* Every padding length of base64url, and a key_op that needs JSON escaping. */
	for (size_t len = 1; len <= 4; len++) {
		static const char *const odd_ops[] = {"a\"b", NULL};
		struct skr_key *k =
		        key_new(SKR_KEY_OCT, secret_new_copy(raw + 250 % 32, len), odd_ops);
		_cleanup_secret_ struct secret *json = NULL;
		_cleanup_json_ json_object *obj = NULL;
		_cleanup_free_ char *want_k = NULL;
		struct skr_error err = {0};
		json_object *v;

		assert_int_equal(skr_key_to_jwk(k, &json, &err), 0);
		assert_int_equal(json_parse((const char *)json->data, json->len, "jwk", &obj, &err),
		                 0);
		assert_int_equal(b64_encode(k->material->data, len, B64_URL_NOPAD, &want_k), 0);
		assert_true(json_object_object_get_ex(obj, "k", &v));
		assert_string_equal(json_object_get_string(v), want_k);
		assert_true(json_object_object_get_ex(obj, "key_ops", &v));
		assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 0)),
		                    "a\"b");
		skr_key_free(k);
	}
}

/* Member names of @obj in document order, comma-separated. */
static void member_order(json_object *obj, char *out, size_t size)
{
	size_t pos = 0;

	out[0] = '\0';
	json_object_object_foreach(obj, name, val)
	{
		(void)val;
		pos += (size_t)snprintf(out + pos, size - pos, "%s%s", pos ? "," : "", name);
		assert_true(pos < size);
	}
}

/* The member @name decodes (base64url, no padding) to @param of @key, @width bytes wide. */
static void assert_member_bn(json_object *obj, const char *name, EVP_PKEY *key, const char *param,
                             size_t width)
{
	_cleanup_(BN_freep) BIGNUM *want = NULL;
	_cleanup_(BN_freep) BIGNUM *got = NULL;
	_cleanup_free_ uint8_t *raw = NULL;
	json_object *v;
	const char *s;
	size_t len;

	assert_true(json_object_object_get_ex(obj, name, &v));
	s = json_object_get_string(v);
	assert_null(strchr(s, '='));
	assert_int_equal(b64_decode(s, strlen(s), B64_ACCEPT_URL, &raw, &len), 0);
	if (width)
		assert_int_equal(len, width);
	else
		assert_true(raw[0] != 0); /* minimal big-endian, as Go's big.Int.Bytes() */
	got = BN_bin2bn(raw, (int)len, NULL);
	assert_int_equal(EVP_PKEY_get_bn_param(key, param, &want), 1);
	if (BN_cmp(got, want) != 0)
		fail_msg("JWK member %s does not match the key", name);
}

static void test_jwk_rsa_round_trip(void **state)
{
	static const char *const ops[] = {"sign", "decrypt", NULL};
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *gen = EVP_RSA_gen(3072);
	EVP_PKEY *keys[] = {vector_key, gen};

	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		struct skr_key *k = key_new(SKR_KEY_RSA, test_kv_pkcs8(keys[i]), i ? NULL : ops);
		_cleanup_secret_ struct secret *json = NULL;
		_cleanup_json_ json_object *obj = NULL;
		struct skr_error err = {0};
		char order[256];
		json_object *v;

		if (skr_key_to_jwk(k, &json, &err) < 0)
			fail_msg("RSA JWK: %s", err.msg);
		assert_locked(json);
		assert_null(memchr(json->data, ' ', json->len));
		assert_int_equal(json_parse((const char *)json->data, json->len, "jwk", &obj, &err),
		                 0);
		member_order(obj, order, sizeof(order));
		assert_string_equal(order, i ? "d,dp,dq,e,kty,n,p,q,qi"
		                             : "d,dp,dq,e,key_ops,kty,n,p,q,qi");
		assert_true(json_object_object_get_ex(obj, "kty", &v));
		assert_string_equal(json_object_get_string(v), "RSA");
		if (!i) {
			assert_true(json_object_object_get_ex(obj, "key_ops", &v));
			assert_int_equal(json_object_array_length(v), 2);
			assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 1)),
			                    "decrypt");
		}
		assert_member_bn(obj, "n", keys[i], OSSL_PKEY_PARAM_RSA_N, 0);
		assert_member_bn(obj, "e", keys[i], OSSL_PKEY_PARAM_RSA_E, 0);
		assert_member_bn(obj, "d", keys[i], OSSL_PKEY_PARAM_RSA_D, 0);
		assert_member_bn(obj, "p", keys[i], OSSL_PKEY_PARAM_RSA_FACTOR1, 0);
		assert_member_bn(obj, "q", keys[i], OSSL_PKEY_PARAM_RSA_FACTOR2, 0);
		assert_member_bn(obj, "dp", keys[i], OSSL_PKEY_PARAM_RSA_EXPONENT1, 0);
		assert_member_bn(obj, "dq", keys[i], OSSL_PKEY_PARAM_RSA_EXPONENT2, 0);
		assert_member_bn(obj, "qi", keys[i], OSSL_PKEY_PARAM_RSA_COEFFICIENT1, 0);
		skr_key_free(k);
	}
}

static void test_jwk_ec_round_trip(void **state)
{
	static const struct {
		const char *curve, *crv;
		size_t width;
	} curves[] = {
	        {"P-256", "P-256", 32},
	        {"P-384", "P-384", 48},
	        {"P-521", "P-521", 66},
	        {"secp256k1", "P-256K", 32},
	};
	static const char *const ops[] = {"sign", NULL};

	for (size_t i = 0; i < ELEMENTSOF(curves); i++) {
		_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_EC_gen(curves[i].curve);
		struct skr_key *k;
		_cleanup_secret_ struct secret *json = NULL;
		_cleanup_json_ json_object *obj = NULL;
		struct skr_error err = {0};
		char order[128];
		json_object *v;

		assert_non_null(key);
		k = key_new(SKR_KEY_EC, test_kv_pkcs8(key), ops);
		if (skr_key_to_jwk(k, &json, &err) < 0)
			fail_msg("EC JWK %s: %s", curves[i].curve, err.msg);
		assert_locked(json);
		assert_int_equal(json_parse((const char *)json->data, json->len, "jwk", &obj, &err),
		                 0);
		member_order(obj, order, sizeof(order));
		assert_string_equal(order, "crv,d,key_ops,kty,x,y");
		assert_true(json_object_object_get_ex(obj, "crv", &v));
		assert_string_equal(json_object_get_string(v), curves[i].crv);
		assert_true(json_object_object_get_ex(obj, "kty", &v));
		assert_string_equal(json_object_get_string(v), "EC");
		assert_member_bn(obj, "d", key, OSSL_PKEY_PARAM_PRIV_KEY, curves[i].width);
		assert_member_bn(obj, "x", key, OSSL_PKEY_PARAM_EC_PUB_X, curves[i].width);
		assert_member_bn(obj, "y", key, OSSL_PKEY_PARAM_EC_PUB_Y, curves[i].width);
		skr_key_free(k);
	}
}

static void test_jwk_refusals(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ec = EVP_EC_gen("P-256");
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *p224 = EVP_EC_gen("P-224");
	struct skr_key *mistyped = key_new(SKR_KEY_RSA, test_kv_pkcs8(ec), NULL);
	struct skr_key *garbage = key_new(SKR_KEY_EC, secret_new_copy("xyz", 3), NULL);
	struct skr_key *unnamed = key_new(SKR_KEY_EC, test_kv_pkcs8(p224), NULL);
	struct skr_key *empty = key_new(SKR_KEY_OCT, secret_new(0), NULL);
	struct {
		struct skr_key *k;
		int r;
		const char *msg;
	} cases[] = {
	        {mistyped, -EINVAL, "typed RSA but its material is EC"},
	        {garbage, -EINVAL, "not a DER"},
	        {unnamed, -ENOTSUP, "no JWK name"},
	        {empty, -EINVAL, "no key material"},
	        {NULL, -EINVAL, "no key material"},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_secret_ struct secret *json = NULL;
		struct skr_error err = {0};
		int r = skr_key_to_jwk(cases[i].k, &json, &err);

		if (r != cases[i].r || !strstr(err.msg, cases[i].msg))
			fail_msg("case %zu: got %d \"%s\"", i, r, err.msg);
		assert_null(json);
		skr_key_free(cases[i].k);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_hkdf_vectors),      cmocka_unit_test(test_derive_refusals),
	        cmocka_unit_test(test_oct_luks_key),      cmocka_unit_test(test_fingerprint),
	        cmocka_unit_test(test_jwk_oct_exact),     cmocka_unit_test(test_jwk_rsa_round_trip),
	        cmocka_unit_test(test_jwk_ec_round_trip), cmocka_unit_test(test_jwk_refusals),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
