/* SPDX-License-Identifier: MIT */
/*
 * CKM_RSA_AES_KEY_WRAP family and key_hsm (skr/key_wrap.h): the published vector, RFC 5649's
 * own examples under an RSA block, wrap→unwrap round trips over every algorithm, KEK size and
 * padding case, every tampering, and every way a key_hsm blob can be malformed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "json_util.h"
#include "jwk.h"
#include "key_wrap.h"
#include "ossl.h"
#include "secret.h"
#include "skr.h"

#define AIV_MESSAGE "key unwrap failed: integrity check (RFC 5649 AIV) did not pass"

/* Keys generated once per binary: RSA-4096 generation alone takes seconds here. */
static EVP_PKEY *kek2048, *kek3072, *kek4096, *other2048;

static const enum skr_wrap_alg all_algs[] = {SKR_WRAP_RSA_AES, SKR_WRAP_RSA_AES_256,
                                             SKR_WRAP_RSA_AES_384};

static int setup_keys(void **state)
{
	kek2048 = EVP_RSA_gen(2048);
	kek3072 = EVP_RSA_gen(3072);
	kek4096 = EVP_RSA_gen(4096);
	other2048 = EVP_RSA_gen(2048);
	return kek2048 && kek3072 && kek4096 && other2048 ? 0 : -1;
}

static int teardown_keys(void **state)
{
	EVP_PKEY_free(kek2048);
	EVP_PKEY_free(kek3072);
	EVP_PKEY_free(kek4096);
	EVP_PKEY_free(other2048);
	return 0;
}

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + seed * 7 + 1);
}

static void wrap_or_die(EVP_PKEY *kek, enum skr_wrap_alg alg, const uint8_t *key, size_t len,
                        uint8_t **ct, size_t *ct_len)
{
	struct skr_error err = {0};

	if (key_wrap(kek, alg, key, len, ct, ct_len, &err) < 0)
		fail_msg("key_wrap: %s", err.msg);
}

/* ---- algorithm names ------------------------------------------------------------------------ */

static void test_alg_names(void **state)
{
	static const struct {
		const char *s;
		int r;
		enum skr_wrap_alg alg;
	} cases[] = {
	        {NULL, 0, SKR_WRAP_RSA_AES},
	        {"", 0, SKR_WRAP_RSA_AES},
	        {"CKM_RSA_AES_KEY_WRAP", 0, SKR_WRAP_RSA_AES},
	        {"RSA_AES_KEY_WRAP_256", 0, SKR_WRAP_RSA_AES_256},
	        {"RSA_AES_KEY_WRAP_384", 0, SKR_WRAP_RSA_AES_384},
	        {"ckm_rsa_aes_key_wrap", -EINVAL, 0},
	        {"RSA_AES_KEY_WRAP_512", -EINVAL, 0},
	        {"RSA-OAEP", -EINVAL, 0},
	        {"CKM_RSA_AES_KEY_WRAP ", -EINVAL, 0},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		enum skr_wrap_alg alg = 99;

		assert_int_equal(skr_wrap_alg_from_string(cases[i].s, &alg), cases[i].r);
		if (cases[i].r == 0) {
			assert_int_equal(alg, cases[i].alg);
			if (cases[i].s && *cases[i].s)
				assert_string_equal(skr_wrap_alg_name(alg), cases[i].s);
		}
	}
	assert_null(skr_wrap_alg_name((enum skr_wrap_alg)42));
	assert_string_equal(key_wrap_alg_digest(SKR_WRAP_RSA_AES), "SHA1");
	assert_string_equal(key_wrap_alg_digest(SKR_WRAP_RSA_AES_256), "SHA256");
	assert_string_equal(key_wrap_alg_digest(SKR_WRAP_RSA_AES_384), "SHA384");
}

/* ---- the shared vector (Go sidecar's RSAKeyUnwrap_Success) ----------------------------------- */

static void test_vector(void **state)
{
	const char *dir = getenv("SKR_TESTDATA");
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *text = NULL;
	_cleanup_free_ uint8_t *ct = NULL;
	_cleanup_json_ json_object *v = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *kek = NULL;
	_cleanup_(BIO_free_allp) BIO *bio = NULL;
	_cleanup_secret_ struct secret *key = NULL;
	struct skr_error err = {0};
	json_object *expected;
	const char *pem, *ct_b64, *enc;
	enum skr_wrap_alg alg;
	size_t len, ct_len;

	assert_non_null(dir);
	path = path_join(dir, "rsa_aes_keywrap_vector.json");
	assert_int_equal(read_file(path, 1 << 20, &text, &len), 0);
	assert_int_equal(json_parse(text, len, "vector", &v, &err), 0);
	assert_int_equal(json_get_string(v, "private_key_pem", true, &pem, &err), 0);
	assert_int_equal(json_get_string(v, "ciphertext_b64url", true, &ct_b64, &err), 0);
	assert_int_equal(json_get_string(v, "enc", true, &enc, &err), 0);
	assert_true(json_object_object_get_ex(v, "expected_key", &expected));

	bio = BIO_new_mem_buf(pem, -1);
	kek = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	assert_non_null(kek);
	assert_int_equal(b64_decode(ct_b64, strlen(ct_b64), B64_ACCEPT_URL, &ct, &ct_len), 0);
	assert_int_equal(ct_len, 296);
	assert_int_equal(skr_wrap_alg_from_string(enc, &alg), 0);
	assert_int_equal(alg, SKR_WRAP_RSA_AES);

	if (key_unwrap(kek, alg, ct, ct_len, &key, &err) < 0)
		fail_msg("vector: %s", err.msg);
	assert_int_equal(key->len, json_object_array_length(expected));
	assert_int_equal(key->len, 32);
	for (size_t i = 0; i < key->len; i++)
		assert_int_equal(key->data[i],
		                 json_object_get_int(json_object_array_get_idx(expected, i)));

	/* The same bytes under another algorithm's OAEP hash must not unwrap. */
	secret_free(TAKE_PTR(key));
	memset(&err, 0, sizeof(err));
	assert_int_equal(key_unwrap(kek, SKR_WRAP_RSA_AES_256, ct, ct_len, &key, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "RSA-OAEP"));
	assert_null(key);
}

/*
 * RFC 5649 §6's examples (a 192-bit KEK, so the AES-192 path) behind an RSA-OAEP block built
 * here, and an AES-128 transfer key wrapped by OpenSSL directly: the unwrapper picks the cipher
 * from the transfer key's length.
 */
static void test_rfc5649_examples(void **state)
{
	static const uint8_t kek[24] = {0x58, 0x40, 0xdf, 0x6e, 0x29, 0xb0, 0x2a, 0xf1,
	                                0xab, 0x49, 0x3b, 0x70, 0x5b, 0xf1, 0x6e, 0xa1,
	                                0xae, 0x83, 0x38, 0xf4, 0xdc, 0xc1, 0x76, 0xa8};
	static const uint8_t key20[20] = {0xc3, 0x7b, 0x7e, 0x64, 0x92, 0x58, 0x43,
	                                  0x40, 0xbe, 0xd1, 0x22, 0x07, 0x80, 0x89,
	                                  0x41, 0x15, 0x50, 0x68, 0xf7, 0x38};
	static const uint8_t wrap20[32] = {0x13, 0x8b, 0xde, 0xaa, 0x9b, 0x8f, 0xa7, 0xfc,
	                                   0x61, 0xf9, 0x77, 0x42, 0xe7, 0x22, 0x48, 0xee,
	                                   0x5a, 0xe6, 0xae, 0x53, 0x60, 0xd1, 0xae, 0x6a,
	                                   0x5f, 0x54, 0xf3, 0x73, 0xfa, 0x54, 0x3b, 0x6a};
	static const uint8_t key7[7] = {0x46, 0x6f, 0x72, 0x50, 0x61, 0x73, 0x69};
	static const uint8_t wrap7[16] = {0xaf, 0xbe, 0xb0, 0xf0, 0x7d, 0xfb, 0xf5, 0x41,
	                                  0x92, 0x00, 0xf2, 0xcc, 0xb5, 0x0b, 0xb2, 0x4f};
	static const struct {
		const uint8_t *wrapped, *plain;
		size_t wrapped_len, plain_len;
	} cases[] = {
	        {wrap20, key20, sizeof(wrap20), sizeof(key20)},
	        {wrap7, key7, sizeof(wrap7), sizeof(key7)},
	};

	for (size_t alg_i = 0; alg_i < ELEMENTSOF(all_algs); alg_i++) {
		for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
			_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
			_cleanup_secret_ struct secret *out = NULL;
			struct skr_error err = {0};
			const char *md = key_wrap_alg_digest(all_algs[alg_i]);
			uint8_t ct[256 + 32];
			size_t n = 256;

			ctx = EVP_PKEY_CTX_new_from_pkey(NULL, kek2048, NULL);
			assert_int_equal(EVP_PKEY_encrypt_init(ctx), 1);
			assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING),
			                 1);
			assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md_name(ctx, md, NULL), 1);
			assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md_name(ctx, md, NULL), 1);
			assert_int_equal(EVP_PKEY_encrypt(ctx, ct, &n, kek, sizeof(kek)), 1);
			assert_int_equal(n, 256);
			memcpy(ct + 256, cases[i].wrapped, cases[i].wrapped_len);

			if (key_unwrap(kek2048, all_algs[alg_i], ct, 256 + cases[i].wrapped_len,
			               &out, &err) < 0)
				fail_msg("RFC 5649 case %zu: %s", i, err.msg);
			assert_int_equal(out->len, cases[i].plain_len);
			assert_memory_equal(out->data, cases[i].plain, cases[i].plain_len);
		}
	}

	/* AES-128 transfer key. */
	{
		_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
		_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *c = NULL;
		_cleanup_secret_ struct secret *out = NULL;
		struct skr_error err = {0};
		uint8_t tk[16], key[45], ct[256 + 56];
		size_t n = 256;
		int w = 0, f = 0;

		fill_pattern(tk, sizeof(tk), 3);
		fill_pattern(key, sizeof(key), 4);
		ctx = EVP_PKEY_CTX_new_from_pkey(NULL, kek2048, NULL);
		assert_int_equal(EVP_PKEY_encrypt_init(ctx), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md_name(ctx, "SHA256", NULL), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md_name(ctx, "SHA256", NULL), 1);
		assert_int_equal(EVP_PKEY_encrypt(ctx, ct, &n, tk, sizeof(tk)), 1);
		c = EVP_CIPHER_CTX_new();
		EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
		assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_128_wrap_pad(), NULL, tk, NULL), 1);
		assert_int_equal(EVP_EncryptUpdate(c, ct + 256, &w, key, sizeof(key)), 1);
		assert_int_equal(EVP_EncryptFinal_ex(c, ct + 256 + w, &f), 1);
		assert_int_equal(w + f, 56);
		if (key_unwrap(kek2048, SKR_WRAP_RSA_AES_256, ct, sizeof(ct), &out, &err) < 0)
			fail_msg("AES-128 transfer key: %s", err.msg);
		assert_int_equal(out->len, sizeof(key));
		assert_memory_equal(out->data, key, sizeof(key));
	}
}

/* ---- round trips ----------------------------------------------------------------------------- */

static void test_round_trip(void **state)
{
	static const size_t key_lens[] = {1, 7, 8, 9, 16, 31, 32, 64, 1000};
	EVP_PKEY *keks[] = {kek2048, kek3072, kek4096};

	for (size_t k = 0; k < ELEMENTSOF(keks); k++) {
		size_t rsa_len = (size_t)EVP_PKEY_get_size(keks[k]);

		for (size_t a = 0; a < ELEMENTSOF(all_algs); a++) {
			for (size_t l = 0; l < ELEMENTSOF(key_lens); l++) {
				_cleanup_free_ uint8_t *ct = NULL;
				_cleanup_secret_ struct secret *out = NULL;
				struct skr_error err = {0};
				uint8_t key[1000];
				size_t len = key_lens[l], ct_len;

				fill_pattern(key, len, (unsigned)(k * 100 + a * 10 + l));
				wrap_or_die(keks[k], all_algs[a], key, len, &ct, &ct_len);
				assert_int_equal(ct_len, rsa_len + 8 + (len + 7) / 8 * 8);
				if (key_unwrap(keks[k], all_algs[a], ct, ct_len, &out, &err) < 0)
					fail_msg("kek %zu alg %zu len %zu: %s", rsa_len * 8, a, len,
					         err.msg);
				assert_int_equal(out->len, len);
				assert_memory_equal(out->data, key, len);
				if (geteuid() == 0)
					assert_true(out->locked);
			}
		}
	}
}

/* The same through the public entry point, with the KEK given as a public JWK. */
static void test_skr_key_wrap_jwk(void **state)
{
	EVP_PKEY *keks[] = {kek2048, kek3072, kek4096};

	for (size_t k = 0; k < ELEMENTSOF(keks); k++) {
		_cleanup_free_ char *n = NULL;
		_cleanup_free_ char *e = NULL;
		_cleanup_free_ char *jwk = NULL;
		struct skr_error err = {0};

		assert_int_equal(jwk_rsa_public_members(keks[k], &n, &e, &err), 0);
		assert_true(asprintf(&jwk,
		                     "{\"kty\":\"RSA\",\"key_ops\":[\"encrypt\"],\"e\":\"%s\","
		                     "\"n\":\"%s\",\"kid\":\"x\"}",
		                     e, n) > 0);
		for (size_t a = 0; a < ELEMENTSOF(all_algs); a++) {
			_cleanup_free_ uint8_t *ct = NULL;
			_cleanup_secret_ struct secret *out = NULL;
			uint8_t key[40];
			size_t ct_len;

			fill_pattern(key, sizeof(key), (unsigned)(k + a));
			if (skr_key_wrap(jwk, strlen(jwk), all_algs[a], key, sizeof(key), &ct,
			                 &ct_len, &err) < 0)
				fail_msg("skr_key_wrap: %s", err.msg);
			assert_int_equal(key_unwrap(keks[k], all_algs[a], ct, ct_len, &out, &err),
			                 0);
			assert_memory_equal(out->data, key, sizeof(key));
		}
	}
}

static void test_wrap_refuses(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *small = EVP_RSA_gen(1024);
	_cleanup_free_ char *n = NULL;
	_cleanup_free_ char *e = NULL;
	_cleanup_free_ char *jwk = NULL;
	uint8_t *ct = NULL, key[32] = {1};
	size_t ct_len;
	struct skr_error err = {0};

	assert_non_null(small);
	assert_int_equal(jwk_rsa_public_members(small, &n, &e, &err), 0);
	assert_true(asprintf(&jwk, "{\"kty\":\"RSA\",\"e\":\"%s\",\"n\":\"%s\"}", e, n) > 0);
	assert_int_equal(skr_key_wrap(jwk, strlen(jwk), SKR_WRAP_RSA_AES, key, sizeof(key), &ct,
	                              &ct_len, &err),
	                 -EINVAL);
	assert_non_null(strstr(err.msg, "1024 bits; at least 2048 required"));
	assert_null(ct);

	memset(&err, 0, sizeof(err));
	assert_int_equal(skr_key_wrap("{\"kty\":\"EC\"}", 12, SKR_WRAP_RSA_AES, key, sizeof(key),
	                              &ct, &ct_len, &err),
	                 -EINVAL);
	assert_non_null(strstr(err.msg, "kty"));

	memset(&err, 0, sizeof(err));
	assert_int_equal(key_wrap(kek2048, SKR_WRAP_RSA_AES, key, 0, &ct, &ct_len, &err), -EINVAL);
	memset(&err, 0, sizeof(err));
	assert_int_equal(key_wrap(kek2048, (enum skr_wrap_alg)7, key, 32, &ct, &ct_len, &err),
	                 -EINVAL);
	assert_null(ct);
}

/* ---- tampering ------------------------------------------------------------------------------- */

static void test_wrong_kek(void **state)
{
	_cleanup_free_ uint8_t *ct = NULL;
	_cleanup_secret_ struct secret *out = NULL;
	struct skr_error err = {0};
	uint8_t key[32];
	size_t ct_len;

	fill_pattern(key, sizeof(key), 9);
	wrap_or_die(kek2048, SKR_WRAP_RSA_AES, key, sizeof(key), &ct, &ct_len);
	assert_int_equal(key_unwrap(other2048, SKR_WRAP_RSA_AES, ct, ct_len, &out, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "RSA-OAEP (SHA1)"));
	assert_null(out);
	/* A KEK of another size reads a different RSA block length: refused, never a crash. */
	memset(&err, 0, sizeof(err));
	assert_true(key_unwrap(kek3072, SKR_WRAP_RSA_AES, ct, ct_len, &out, &err) < 0);
	assert_true(err.msg[0]);
	assert_null(out);
}

static void test_tampered(void **state)
{
	static const size_t lens[] = {1, 8, 32, 100};

	for (size_t l = 0; l < ELEMENTSOF(lens); l++) {
		_cleanup_free_ uint8_t *ct = NULL;
		uint8_t key[100];
		size_t ct_len;

		fill_pattern(key, lens[l], (unsigned)l);
		wrap_or_die(kek2048, SKR_WRAP_RSA_AES_384, key, lens[l], &ct, &ct_len);

		/* RSA block: a few positions, start, middle, end. */
		for (size_t pos = 0; pos < 256; pos += 127) {
			_cleanup_secret_ struct secret *out = NULL;
			struct skr_error err = {0};

			ct[pos] ^= 0x01;
			assert_int_equal(
			        key_unwrap(kek2048, SKR_WRAP_RSA_AES_384, ct, ct_len, &out, &err),
			        -EBADMSG);
			assert_non_null(strstr(err.msg, "RSA-OAEP"));
			assert_null(out);
			ct[pos] ^= 0x01;
		}
		/* Every byte of the key wrap part. */
		for (size_t pos = 256; pos < ct_len; pos++) {
			_cleanup_secret_ struct secret *out = NULL;
			struct skr_error err = {0};

			ct[pos] ^= 0x80;
			assert_int_equal(
			        key_unwrap(kek2048, SKR_WRAP_RSA_AES_384, ct, ct_len, &out, &err),
			        -EBADMSG);
			assert_string_equal(err.msg, AIV_MESSAGE);
			assert_null(out);
			ct[pos] ^= 0x80;
		}
	}
}

static void test_truncated(void **state)
{
	_cleanup_free_ uint8_t *ct = NULL;
	uint8_t key[64];
	size_t ct_len;
	static const struct {
		size_t cut;
		int r;
	} cases[] = {
	        {1, -EINVAL},   /* not whole 8-byte blocks */
	        {8, -EBADMSG},  /* a block short: the integrity check fails */
	        {16, -EBADMSG}, /* two blocks short */
	        {63, -EINVAL},  /* 9 bytes of key wrap left */
	        {64, -EINVAL},  /* only 8 bytes of key wrap: below the RFC 5649 minimum */
	        {72, -EINVAL},  /* the RSA block alone */
	        {100, -EINVAL}, /* not even a whole RSA block */
	        {328, -EINVAL}, /* empty */
	};

	fill_pattern(key, sizeof(key), 5);
	wrap_or_die(kek2048, SKR_WRAP_RSA_AES_256, key, sizeof(key), &ct, &ct_len);
	assert_int_equal(ct_len, 256 + 72);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_secret_ struct secret *out = NULL;
		struct skr_error err = {0};

		assert_int_equal(key_unwrap(kek2048, SKR_WRAP_RSA_AES_256, ct,
		                            ct_len - cases[i].cut, &out, &err),
		                 cases[i].r);
		assert_true(err.msg[0]);
		assert_null(out);
	}
	{
		_cleanup_secret_ struct secret *out = NULL;
		struct skr_error err = {0};

		assert_int_equal(key_unwrap(kek2048, SKR_WRAP_RSA_AES_256, NULL, 0, &out, &err),
		                 -EINVAL);
	}
}

/* ---- key_hsm ---------------------------------------------------------------------------------- */

/* A key_hsm value: base64url (@padded or not) of the JSON built from the given members. */
static char *make_key_hsm(const char *schema, const char *kid, const char *alg, const char *enc,
                          const uint8_t *ct, size_t ct_len, bool padded, const char *extra)
{
	_cleanup_free_ char *ct_b64 = NULL;
	_cleanup_free_ char *json = NULL;
	char *out = NULL;

	assert_int_equal(b64_encode(ct, ct_len, padded ? B64_URL : B64_URL_NOPAD, &ct_b64), 0);
	assert_true(asprintf(&json,
	                     "{\"schema_version\":\"%s\",\"header\":{\"kid\":\"%s\",\"alg\":\"%s\","
	                     "\"enc\":\"%s\"},\"ciphertext\":\"%s\"%s}",
	                     schema, kid, alg, enc, ct_b64, extra ? extra : "") > 0);
	assert_int_equal(b64_encode(json, strlen(json), padded ? B64_URL : B64_URL_NOPAD, &out), 0);
	return out;
}

static void test_key_hsm_valid(void **state)
{
	_cleanup_free_ char *kid = NULL;
	struct skr_error err = {0};

	assert_int_equal(jwk_rsa_thumbprint(kek2048, &kid, &err), 0);
	for (size_t a = 0; a < ELEMENTSOF(all_algs); a++) {
		for (int variant = 0; variant < 3; variant++) {
			_cleanup_free_ uint8_t *ct = NULL;
			_cleanup_free_ char *blob = NULL;
			_cleanup_secret_ struct secret *out = NULL;
			enum skr_wrap_alg got = 99;
			uint8_t key[33];
			size_t ct_len;

			fill_pattern(key, sizeof(key), (unsigned)(a * 3 + variant));
			wrap_or_die(kek2048, all_algs[a], key, sizeof(key), &ct, &ct_len);
			/* 0: release blob unpadded; 1: padded; 2: BYOK-style 1.0.0 with generator */
			blob = make_key_hsm(variant == 2 ? "1.0.0" : "1.0", kid, "dir",
			                    skr_wrap_alg_name(all_algs[a]), ct, ct_len,
			                    variant == 1,
			                    variant == 2 ? ",\"generator\":\"test 1.0\"" : NULL);
			if (key_hsm_unwrap(kek2048, kid, blob, strlen(blob), &got, &out, &err) < 0)
				fail_msg("key_hsm alg %zu variant %d: %s", a, variant, err.msg);
			assert_int_equal(got, all_algs[a]);
			assert_int_equal(out->len, sizeof(key));
			assert_memory_equal(out->data, key, sizeof(key));
			/* No kid expectation: accepted as well. */
			secret_free(TAKE_PTR(out));
			assert_int_equal(
			        key_hsm_unwrap(kek2048, NULL, blob, strlen(blob), NULL, &out, &err),
			        0);
			assert_memory_equal(out->data, key, sizeof(key));
		}
	}
}

static void test_key_hsm_malformed(void **state)
{
	_cleanup_free_ uint8_t *ct = NULL;
	_cleanup_free_ char *kid = NULL;
	uint8_t key[32];
	size_t ct_len;
	struct skr_error err = {0};

	fill_pattern(key, sizeof(key), 1);
	wrap_or_die(kek2048, SKR_WRAP_RSA_AES, key, sizeof(key), &ct, &ct_len);
	assert_int_equal(jwk_rsa_thumbprint(kek2048, &kid, &err), 0);

	struct {
		const char *what;
		char *blob;
		int r;
		const char *msg;
	} cases[] = {
	        {"wrong kid",
	         make_key_hsm("1.0", "someone-else", "dir", "CKM_RSA_AES_KEY_WRAP", ct, ct_len,
	                      false, NULL),
	         -EPROTO, "header.kid"},
	        {"unknown enc",
	         make_key_hsm("1.0", kid, "dir", "RSA_AES_KEY_WRAP_512", ct, ct_len, false, NULL),
	         -EPROTO, "header.enc"},
	        {"empty enc", make_key_hsm("1.0", kid, "dir", "", ct, ct_len, false, NULL), -EPROTO,
	         "header.enc"},
	        {"bad schema",
	         make_key_hsm("2.0", kid, "dir", "CKM_RSA_AES_KEY_WRAP", ct, ct_len, false, NULL),
	         -EPROTO, "schema_version"},
	        {"alg not dir",
	         make_key_hsm("1.0", kid, "RSA-OAEP", "CKM_RSA_AES_KEY_WRAP", ct, ct_len, false,
	                      NULL),
	         -EPROTO, "header.alg"},
	        {"enc of another alg",
	         make_key_hsm("1.0", kid, "dir", "RSA_AES_KEY_WRAP_256", ct, ct_len, false, NULL),
	         -EBADMSG, "RSA-OAEP (SHA256)"},
	        {"not base64", strdup("eyJzY2hlbWFfdmVyc2lvbiI6!!"), -EPROTO, "not base64url"},
	        {"standard alphabet", strdup("ab+/"), -EPROTO, "not base64url"},
	        {"not JSON", NULL, -EPROTO, "key_hsm"},
	        {"not an object", NULL, -EPROTO, "not a JSON object"},
	        {"no header", NULL, -EPROTO, "header"},
	        {"header not object", NULL, -EPROTO, "header"},
	        {"no ciphertext", NULL, -EPROTO, "ciphertext"},
	        {"ciphertext not b64", NULL, -EPROTO, "ciphertext is not base64url"},
	        {"ciphertext number", NULL, -EPROTO, "ciphertext"},
	        {"short ciphertext", NULL, -EINVAL, "ciphertext is 3 bytes"},
	        {"empty", strdup(""), -EPROTO, "empty"},
	};
	static const char *const json_cases[][2] = {
	        {"not JSON", "{\"schema_version\":"},
	        {"not an object", "[1,2]"},
	        {"no header", "{\"schema_version\":\"1.0\",\"ciphertext\":\"AAAA\"}"},
	        {"header not object",
	         "{\"schema_version\":\"1.0\",\"header\":\"x\",\"ciphertext\":\"AA\"}"},
	        {"no ciphertext",
	         "{\"schema_version\":\"1.0\",\"header\":{\"kid\":\"K\",\"alg\":\"dir\","
	         "\"enc\":\"CKM_RSA_AES_KEY_WRAP\"}}"},
	        {"ciphertext not b64",
	         "{\"schema_version\":\"1.0\",\"header\":{\"kid\":\"K\",\"alg\":"
	         "\"dir\",\"enc\":\"CKM_RSA_AES_KEY_WRAP\"},\"ciphertext\":\"@@\"}"},
	        {"ciphertext number",
	         "{\"schema_version\":\"1.0\",\"header\":{\"kid\":\"K\",\"alg\":"
	         "\"dir\",\"enc\":\"CKM_RSA_AES_KEY_WRAP\"},\"ciphertext\":5}"},
	        {"short ciphertext",
	         "{\"schema_version\":\"1.0\",\"header\":{\"kid\":\"K\",\"alg\":"
	         "\"dir\",\"enc\":\"CKM_RSA_AES_KEY_WRAP\"},\"ciphertext\":\"AAAA\"}"},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		if (cases[i].blob)
			continue;
		for (size_t j = 0; j < ELEMENTSOF(json_cases); j++)
			if (strcmp(json_cases[j][0], cases[i].what) == 0)
				assert_int_equal(b64_encode(json_cases[j][1],
				                            strlen(json_cases[j][1]), B64_URL_NOPAD,
				                            &cases[i].blob),
				                 0);
		assert_non_null(cases[i].blob);
	}
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_secret_ struct secret *out = NULL;
		struct skr_error e = {0};
		const char *expect_kid = strstr(cases[i].what, "ciphertext") ? NULL : kid;
		int r = key_hsm_unwrap(kek2048, expect_kid, cases[i].blob, strlen(cases[i].blob),
		                       NULL, &out, &e);

		if (r != cases[i].r || !strstr(e.msg, cases[i].msg))
			fail_msg("%s: got %d \"%s\", expected %d containing \"%s\"", cases[i].what,
			         r, e.msg, cases[i].r, cases[i].msg);
		assert_null(out);
		free(cases[i].blob);
	}

	/* Larger than the cap: refused before decoding. */
	{
		size_t big = KEY_HSM_MAX_SIZE + 4;
		_cleanup_free_ char *blob = malloc(big + 1);
		_cleanup_secret_ struct secret *out = NULL;

		assert_non_null(blob);
		memset(blob, 'A', big);
		blob[big] = '\0';
		memset(&err, 0, sizeof(err));
		assert_int_equal(key_hsm_unwrap(kek2048, kid, blob, big, NULL, &out, &err), -EFBIG);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_alg_names),         cmocka_unit_test(test_vector),
	        cmocka_unit_test(test_rfc5649_examples),  cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_skr_key_wrap_jwk),  cmocka_unit_test(test_wrap_refuses),
	        cmocka_unit_test(test_wrong_kek),         cmocka_unit_test(test_tampered),
	        cmocka_unit_test(test_truncated),         cmocka_unit_test(test_key_hsm_valid),
	        cmocka_unit_test(test_key_hsm_malformed),
	};

	return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
