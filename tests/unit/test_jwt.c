/* SPDX-License-Identifier: MIT */
/*
 * JWT/JWS (skr/jwt.h): tokens are signed here with OpenSSL EVP and a key generated per run;
 * every way a token can be wrong is checked to fail with its own error, and the issuer key
 * discovery runs against a local HTTPS server.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "b64.h"
#include "cleanup.h"
#include "http.h"
#include "jwt.h"
#include "ossl.h"
#include "test_http_server.h"

struct keys {
	EVP_PKEY *key;   /* signs the tokens */
	EVP_PKEY *other; /* a key that did not */
	X509 *cert;      /* self-signed, for key */
	char *cert_b64;  /* standard base64 DER, as in x5c */
};

static struct keys K;

static EVP_PKEY *rsa_generate(void)
{
	EVP_PKEY *k = EVP_RSA_gen(2048);

	assert_non_null(k);
	return k;
}

static X509 *self_signed(EVP_PKEY *key)
{
	X509 *c = X509_new();
	X509_NAME *name;

	assert_non_null(c);
	assert_int_equal(X509_set_version(c, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(c), 1);
	X509_gmtime_adj(X509_getm_notBefore(c), -3600);
	X509_gmtime_adj(X509_getm_notAfter(c), 3600);
	assert_int_equal(X509_set_pubkey(c, key), 1);
	name = X509_get_subject_name(c);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"test signer",
	                           -1, -1, 0);
	assert_int_equal(X509_set_issuer_name(c, name), 1);
	assert_true(X509_sign(c, key, EVP_sha256()) > 0);
	return c;
}

static int setup(void **state)
{
	unsigned char *der = NULL;
	int len;

	K.key = rsa_generate();
	K.other = rsa_generate();
	K.cert = self_signed(K.key);
	len = i2d_X509(K.cert, &der);
	assert_true(len > 0);
	assert_int_equal(b64_encode(der, (size_t)len, B64_STD, &K.cert_b64), 0);
	OPENSSL_free(der);
	return 0;
}

static int teardown(void **state)
{
	EVP_PKEY_free(K.key);
	EVP_PKEY_free(K.other);
	X509_free(K.cert);
	free(K.cert_b64);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Signing (the test's side of the protocol)
 * ------------------------------------------------------------------------------------------- */

static char *b64url(const void *data, size_t len)
{
	char *out = NULL;

	assert_int_equal(b64_encode(data, len, B64_URL_NOPAD, &out), 0);
	return out;
}

static char *sign_rs256(EVP_PKEY *key, const char *header, const char *payload)
{
	_cleanup_free_ char *h = b64url(header, strlen(header));
	_cleanup_free_ char *p = b64url(payload, strlen(payload));
	_cleanup_free_ char *input = NULL, *s = NULL;
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char sig[512];
	size_t sig_len = sizeof(sig);
	char *token = NULL;

	assert_true(asprintf(&input, "%s.%s", h, p) > 0);
	assert_non_null(ctx);
	assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, key, NULL), 1);
	assert_int_equal(EVP_DigestSign(ctx, sig, &sig_len, (unsigned char *)input, strlen(input)),
	                 1);
	s = b64url(sig, sig_len);
	assert_true(asprintf(&token, "%s.%s", input, s) > 0);
	return token;
}

/* The classic confusion attack: HMAC keyed with the RSA public key the verifier holds. */
static char *sign_hs256_with_public_key(const char *header, const char *payload)
{
	_cleanup_free_ char *h = b64url(header, strlen(header));
	_cleanup_free_ char *p = b64url(payload, strlen(payload));
	_cleanup_free_ char *input = NULL, *s = NULL;
	unsigned char *pub = NULL, mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	char *token = NULL;
	int pub_len;

	assert_true(asprintf(&input, "%s.%s", h, p) > 0);
	pub_len = i2d_PUBKEY(K.key, &pub);
	assert_true(pub_len > 0);
	assert_non_null(HMAC(EVP_sha256(), pub, pub_len, (unsigned char *)input, strlen(input), mac,
	                     &mac_len));
	OPENSSL_free(pub);
	s = b64url(mac, mac_len);
	assert_true(asprintf(&token, "%s.%s", input, s) > 0);
	return token;
}

#define HEADER_OK "{\"alg\":\"RS256\",\"kid\":\"key-1\",\"typ\":\"JWT\"}"
#define ISSUER "https://shared.test.attest.azure.net"

static char *payload_at(time_t iat, long exp_off, long nbf_off, const char *iss)
{
	char *p = NULL;

	assert_true(asprintf(&p,
	                     "{\"iss\":\"%s\",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,"
	                     "\"x-ms-attestation-type\":\"sevsnpvm\"}",
	                     iss, (long long)iat, (long long)(iat + nbf_off),
	                     (long long)(iat + exp_off)) > 0);
	return p;
}

/* Parse, check alg and verify with @key, times and issuer: what a relying party does. */
static int verify_all(const char *token, EVP_PKEY *key, const char *issuer, struct skr_error *e)
{
	struct jwt j;
	int r = jwt_parse(token, strlen(token), &j, e);

	if (r < 0)
		return r;
	r = jwt_verify_rs256(&j, token, key, e);
	if (r == 0)
		r = jwt_check_time(&j, time(NULL), JWT_CLOCK_SKEW_SEC, true, e);
	if (r == 0)
		r = jwt_check_issuer(&j, issuer, e);
	jwt_clear(&j);
	return r;
}

/* ---------------------------------------------------------------------------------------------
 * Verification
 * ------------------------------------------------------------------------------------------- */

static void test_verify_ok(void **state)
{
	_cleanup_free_ char *payload = payload_at(time(NULL), 8 * 3600, 0, ISSUER);
	_cleanup_free_ char *token = sign_rs256(K.key, HEADER_OK, payload);
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = X509_get_pubkey(K.cert);
	struct skr_error err = {0};
	struct jwt j;

	assert_int_equal(verify_all(token, pub, ISSUER, &err), 0);
	/* A trailing slash on either side of the issuer is tolerated. */
	assert_int_equal(verify_all(token, pub, ISSUER "/", &err), 0);

	assert_int_equal(jwt_parse(token, strlen(token), &j, &err), 0);
	assert_string_equal(jwt_header_string(&j, "kid"), "key-1");
	assert_string_equal(jwt_payload_string(&j, "x-ms-attestation-type"), "sevsnpvm");
	assert_null(jwt_payload_string(&j, "iat")); /* a number, not a string */
	assert_int_equal(j.payload_len, strlen(payload));
	assert_memory_equal(j.payload_json, payload, strlen(payload));
	jwt_clear(&j);
}

static void test_verify_padded_segments(void **state)
{
	/* Some encoders pad; the segments are still base64url. */
	_cleanup_free_ char *payload = payload_at(time(NULL), 3600, 0, ISSUER);
	_cleanup_free_ char *token = sign_rs256(K.key, HEADER_OK, payload);
	_cleanup_free_ char *h = NULL, *p = NULL, *padded = NULL;
	const char *dot1 = strchr(token, '.'), *dot2 = strchr(dot1 + 1, '.');
	struct skr_error err = {0};
	struct jwt j;

	assert_int_equal(b64_encode(HEADER_OK, strlen(HEADER_OK), B64_URL, &h), 0);
	assert_int_equal(b64_encode(payload, strlen(payload), B64_URL, &p), 0);
	assert_true(asprintf(&padded, "%s.%s%s", h, p, dot2) > 0);
	assert_int_equal(jwt_parse(padded, strlen(padded), &j, &err), 0);
	assert_memory_equal(j.payload_json, payload, strlen(payload));
	jwt_clear(&j);
	(void)dot1;
}

struct bad_token {
	const char *name;
	int code;
	const char *msg;
};

static void expect(const char *name, int r, const struct skr_error *err, int code, const char *msg)
{
	if (r != code || !strstr(err->msg, msg))
		fail_msg("%s: got %d \"%s\", expected %d with \"%s\"", name, r, err->msg, code,
		         msg);
}

static void test_verify_rejects(void **state)
{
	time_t now = time(NULL);
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = X509_get_pubkey(K.cert);
	_cleanup_free_ char *good_payload = payload_at(now, 3600, 0, ISSUER);
	_cleanup_free_ char *good = sign_rs256(K.key, HEADER_OK, good_payload);
	struct skr_error err = {0};

	/* Tampered payload: same header and signature, another payload. */
	{
		_cleanup_free_ char *evil = payload_at(now, 3600, 0, "https://evil.example");
		_cleanup_free_ char *p = b64url(evil, strlen(evil)), *t = NULL;
		const char *dot1 = strchr(good, '.'), *dot2 = strchr(dot1 + 1, '.');

		assert_true(asprintf(&t, "%.*s.%s%s", (int)(dot1 - good), good, p, dot2) > 0);
		skr_error_clear(&err);
		expect("tampered payload", verify_all(t, pub, ISSUER, &err), &err, -EBADMSG,
		       "signature is not valid");
	}
	/* Tampered signature: one bit of the last byte. */
	{
		_cleanup_free_ char *t = strdup(good);
		const char *dot2 = strrchr(t, '.');
		char *c = t + strlen(t) - 6;

		assert_true(c > dot2);
		*c = *c == 'A' ? 'B' : 'A';
		skr_error_clear(&err);
		expect("tampered signature", verify_all(t, pub, ISSUER, &err), &err, -EBADMSG,
		       "signature is not valid");
	}
	/* Right token, wrong key. */
	skr_error_clear(&err);
	expect("other key", verify_all(good, K.other, ISSUER, &err), &err, -EBADMSG,
	       "signature is not valid");
	/* alg none with an empty signature. */
	{
		_cleanup_free_ char *h = b64url("{\"alg\":\"none\"}", 14);
		_cleanup_free_ char *p = b64url(good_payload, strlen(good_payload)), *t = NULL;

		assert_true(asprintf(&t, "%s.%s.", h, p) > 0);
		skr_error_clear(&err);
		expect("alg none", verify_all(t, pub, ISSUER, &err), &err, -ENOTSUP,
		       "algorithm \"none\" refused");
	}
	/* HS256 keyed with the public key. */
	{
		_cleanup_free_ char *t = sign_hs256_with_public_key(
		        "{\"alg\":\"HS256\",\"kid\":\"key-1\"}", good_payload);

		skr_error_clear(&err);
		expect("alg HS256", verify_all(t, pub, ISSUER, &err), &err, -ENOTSUP,
		       "algorithm \"HS256\" refused");
	}
	/* No alg at all. */
	{
		_cleanup_free_ char *t = sign_rs256(K.key, "{\"kid\":\"key-1\"}", good_payload);

		skr_error_clear(&err);
		expect("no alg", verify_all(t, pub, ISSUER, &err), &err, -EINVAL, "no \"alg\"");
	}
	/* Expired beyond the skew; inside the skew is accepted. */
	{
		_cleanup_free_ char *p = payload_at(now - 7200, 7200 - 301, 0, ISSUER);
		_cleanup_free_ char *t = sign_rs256(K.key, HEADER_OK, p);
		_cleanup_free_ char *p2 = payload_at(now - 7200, 7200 - 200, 0, ISSUER);
		_cleanup_free_ char *t2 = sign_rs256(K.key, HEADER_OK, p2);

		skr_error_clear(&err);
		expect("expired", verify_all(t, pub, ISSUER, &err), &err, -ESTALE, "JWT expired");
		skr_error_clear(&err);
		assert_int_equal(verify_all(t2, pub, ISSUER, &err), 0);
	}
	/* Not yet valid beyond the skew; inside the skew is accepted. */
	{
		_cleanup_free_ char *p = payload_at(now, 7200, 301, ISSUER);
		_cleanup_free_ char *t = sign_rs256(K.key, HEADER_OK, p);
		_cleanup_free_ char *p2 = payload_at(now, 7200, 200, ISSUER);
		_cleanup_free_ char *t2 = sign_rs256(K.key, HEADER_OK, p2);

		skr_error_clear(&err);
		expect("nbf in the future", verify_all(t, pub, ISSUER, &err), &err, -EAGAIN,
		       "not valid before");
		skr_error_clear(&err);
		assert_int_equal(verify_all(t2, pub, ISSUER, &err), 0);
	}
	/* No exp, exp not a number. */
	{
		_cleanup_free_ char *t = sign_rs256(K.key, HEADER_OK, "{\"iss\":\"" ISSUER "\"}");
		_cleanup_free_ char *t2 =
		        sign_rs256(K.key, HEADER_OK, "{\"iss\":\"" ISSUER "\",\"exp\":\"soon\"}");

		skr_error_clear(&err);
		expect("no exp", verify_all(t, pub, ISSUER, &err), &err, -EINVAL, "no \"exp\"");
		skr_error_clear(&err);
		expect("exp string", verify_all(t2, pub, ISSUER, &err), &err, -EINVAL,
		       "\"exp\" is not a number");
	}
	/* Wrong issuer, a prefix of the issuer, no issuer. */
	{
		_cleanup_free_ char *p = payload_at(now, 3600, 0, "https://other.attest.azure.net");
		_cleanup_free_ char *t = sign_rs256(K.key, HEADER_OK, p);
		_cleanup_free_ char *t2 =
		        sign_rs256(K.key, HEADER_OK, "{\"exp\":99999999999,\"iss\":7}");

		skr_error_clear(&err);
		expect("wrong issuer", verify_all(t, pub, ISSUER, &err), &err, -EACCES,
		       "is not \"" ISSUER "\"");
		skr_error_clear(&err);
		expect("issuer prefix", verify_all(good, pub, ISSUER ".evil", &err), &err, -EACCES,
		       "JWT issuer");
		skr_error_clear(&err);
		expect("issuer not a string", verify_all(t2, pub, ISSUER, &err), &err, -EACCES,
		       "no \"iss\"");
	}
	/* Scheme and host are compared without regard to case, a path exactly. */
	{
		_cleanup_free_ char *p =
		        payload_at(now, 3600, 0, "HTTPS://Shared.Test.ATTEST.azure.net/");
		_cleanup_free_ char *t = sign_rs256(K.key, HEADER_OK, p);
		_cleanup_free_ char *p2 = payload_at(now, 3600, 0, ISSUER "/Tenant");
		_cleanup_free_ char *t2 = sign_rs256(K.key, HEADER_OK, p2);

		skr_error_clear(&err);
		assert_int_equal(verify_all(t, pub, ISSUER, &err), 0);
		assert_int_equal(
		        verify_all(good, pub, "https://SHARED.test.attest.azure.net", &err), 0);
		assert_int_equal(verify_all(t2, pub, ISSUER "/Tenant", &err), 0);
		expect("path case", verify_all(t2, pub, ISSUER "/tenant", &err), &err, -EACCES,
		       "JWT issuer");
		skr_error_clear(&err);
		expect("path vs none", verify_all(t2, pub, ISSUER, &err), &err, -EACCES,
		       "JWT issuer");
	}
}

/*
 * The signature is checked over the text the claims were decoded from: token A parsed, token B
 * (same lengths, B's valid signature) passed as the text, is refused, so B's signature can
 * never vouch for A's claims.
 */
static void test_verify_other_text_refused(void **state)
{
	time_t now = time(NULL);
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = X509_get_pubkey(K.cert);
	_cleanup_free_ char *pa = payload_at(now, 3600, 0, "https://aaaaa.attest.azure.net");
	_cleanup_free_ char *pb = payload_at(now, 3600, 0, "https://bbbbb.attest.azure.net");
	_cleanup_free_ char *a = sign_rs256(K.other, HEADER_OK, pa);
	_cleanup_free_ char *b = sign_rs256(K.key, HEADER_OK, pb);
	struct skr_error err = {0};
	struct jwt ja, jb;

	assert_int_equal(strlen(a), strlen(b));
	assert_int_equal(jwt_parse(a, strlen(a), &ja, &err), 0);
	/* A's own signature is not the trusted key's. */
	assert_int_equal(jwt_verify_rs256(&ja, NULL, pub, &err), -EBADMSG);
	skr_error_clear(&err);
	expect("A parsed, B's text", jwt_verify_rs256(&ja, b, pub, &err), &err, -EINVAL,
	       "does not match the parsed token");
	jwt_clear(&ja);
	/* B verifies as itself, with or without its text. */
	assert_int_equal(jwt_parse(b, strlen(b), &jb, &err), 0);
	assert_int_equal(jwt_verify_rs256(&jb, NULL, pub, &err), 0);
	assert_int_equal(jwt_verify_rs256(&jb, b, pub, &err), 0);
	jwt_clear(&jb);
}

static void test_verify_refuses_small_or_non_rsa_key(void **state)
{
	_cleanup_free_ char *payload = payload_at(time(NULL), 3600, 0, ISSUER);
	_cleanup_free_ char *token = sign_rs256(K.key, HEADER_OK, payload);
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ec = EVP_EC_gen("P-256");
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *small = EVP_RSA_gen(1024);
	struct skr_error err = {0};

	assert_non_null(ec);
	assert_non_null(small);
	expect("EC key", verify_all(token, ec, ISSUER, &err), &err, -EINVAL, "not an RSA key");
	skr_error_clear(&err);
	expect("RSA-1024", verify_all(token, small, ISSUER, &err), &err, -EINVAL, "1024 bits");
}

static void test_parse_rejects(void **state)
{
	static const struct {
		const char *name;
		const char *token;
		int code;
		const char *msg;
	} cases[] = {
	        {"empty", "", -EINVAL, "empty"},
	        {"two segments", "eyJhbGciOiJSUzI1NiJ9.e30", -EINVAL, "3 segments"},
	        {"four segments", "eyJhbGciOiJSUzI1NiJ9.e30.AA.AA", -EINVAL, "3 segments"},
	        {"empty header", ".e30.AA", -EINVAL, "segment is empty"},
	        {"header not base64url", "ey+hbGc.e30.AA", -EINVAL, "header is not base64url"},
	        {"header not JSON", "bm90IGpzb24.e30.AA", -EINVAL, "header is not JSON"},
	        {"header an array", "WzFd.e30.AA", -EINVAL, "header is not a JSON object"},
	        {"payload not base64url", "e30.e30=x.AA", -EINVAL, "payload is not base64url"},
	        {"payload a string", "e30.ImEi.AA", -EINVAL, "payload is not a JSON object"},
	        {"signature not base64url", "e30.e30.A*", -EINVAL, "signature is not base64url"},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct skr_error err = {0};
		struct jwt j;
		int r = jwt_parse(cases[i].token, strlen(cases[i].token), &j, &err);

		expect(cases[i].name, r, &err, cases[i].code, cases[i].msg);
		assert_null(j.header);
		assert_null(j.payload);
	}

	/* Size cap, and a NUL inside the stated length. */
	{
		_cleanup_free_ char *huge = malloc(JWT_MAX_SIZE + 2);
		struct skr_error err = {0};
		struct jwt j;

		assert_non_null(huge);
		memset(huge, 'A', JWT_MAX_SIZE + 1);
		huge[JWT_MAX_SIZE + 1] = '\0';
		expect("too large", jwt_parse(huge, JWT_MAX_SIZE + 1, &j, &err), &err, -EFBIG,
		       "larger than");
		skr_error_clear(&err);
		expect("NUL", jwt_parse("e30\0.e30.AA", 11, &j, &err), &err, -EINVAL, "NUL");
	}
}

static void test_redact(void **state)
{
	_cleanup_free_ char *a = jwt_redact("aaa.bbb.signature");
	_cleanup_free_ char *b = jwt_redact("not-a-token");

	assert_string_equal(a, "aaa.bbb.<redacted>");
	assert_string_equal(b, "<redacted>");
}

/* ---------------------------------------------------------------------------------------------
 * JWKS
 * ------------------------------------------------------------------------------------------- */

/* The RSA modulus and exponent of K.key as base64url, for an n/e-only JWK. */
static void key_n_e(char **n, char **e)
{
	_cleanup_(BN_freep) BIGNUM *bn = NULL, *be = NULL;
	unsigned char buf[1024];
	int len;

	assert_int_equal(EVP_PKEY_get_bn_param(K.key, "n", &bn), 1);
	assert_int_equal(EVP_PKEY_get_bn_param(K.key, "e", &be), 1);
	len = BN_bn2bin(bn, buf);
	*n = b64url(buf, (size_t)len);
	len = BN_bn2bin(be, buf);
	*e = b64url(buf, (size_t)len);
}

static char *jwks_with(const char *kid_x5c, const char *kid_ne)
{
	_cleanup_free_ char *n = NULL, *e = NULL;
	char *jwks = NULL;

	key_n_e(&n, &e);
	assert_true(
	        asprintf(&jwks,
	                 "{\"keys\":[{\"kid\":\"unrelated\",\"kty\":\"RSA\",\"x5c\":[\"AAAA\"]},"
	                 "{\"kid\":\"%s\",\"kty\":\"RSA\",\"x5c\":[\"%s\",\"ignored\"]},"
	                 "{\"kid\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"}]}",
	                 kid_x5c, K.cert_b64, kid_ne, n, e) > 0);
	return jwks;
}

static void test_jwks_find_key(void **state)
{
	_cleanup_free_ char *jwks = jwks_with("key-1", "key-ne");
	_cleanup_free_ char *payload = payload_at(time(NULL), 3600, 0, ISSUER);
	_cleanup_free_ char *token = sign_rs256(K.key, HEADER_OK, payload);
	struct skr_error err = {0};
	EVP_PKEY *k = NULL;

	/* x5c[0] */
	assert_int_equal(jwks_find_key(jwks, strlen(jwks), "key-1", &k, &err), 0);
	assert_int_equal(EVP_PKEY_eq(k, K.key), 1);
	assert_int_equal(verify_all(token, k, ISSUER, &err), 0);
	EVP_PKEY_free(k);
	/* n/e when there is no x5c */
	assert_int_equal(jwks_find_key(jwks, strlen(jwks), "key-ne", &k, &err), 0);
	assert_int_equal(EVP_PKEY_eq(k, K.key), 1);
	EVP_PKEY_free(k);
	k = NULL;
	/* unknown kid */
	expect("missing kid", jwks_find_key(jwks, strlen(jwks), "key-2", &k, &err), &err, -ENOENT,
	       "no key with kid \"key-2\"");
	assert_null(k);
	/* a matching kid whose x5c is not a certificate */
	skr_error_clear(&err);
	expect("bad x5c", jwks_find_key(jwks, strlen(jwks), "unrelated", &k, &err), &err, -EINVAL,
	       "x5c[0] is not a DER certificate");
}

static void test_jwks_rejects(void **state)
{
	static const struct {
		const char *name;
		const char *jwks;
		int code;
		const char *msg;
	} cases[] = {
	        {"not JSON", "keys", -EPROTO, "JWKS is not valid JSON"},
	        {"no keys", "{\"k\":[]}", -EPROTO, "no \"keys\" array"},
	        {"keys an object", "{\"keys\":{}}", -EPROTO, "no \"keys\" array"},
	        {"x5c empty", "{\"keys\":[{\"kid\":\"k\",\"x5c\":[]}]}", -EINVAL,
	         "x5c is not a non-empty array"},
	        {"x5c[0] a number", "{\"keys\":[{\"kid\":\"k\",\"x5c\":[1]}]}", -EINVAL,
	         "x5c[0] is not a string"},
	        {"x5c[0] not base64", "{\"keys\":[{\"kid\":\"k\",\"x5c\":[\"*\"]}]}", -EINVAL,
	         "x5c[0] is not base64"},
	        {"EC key by n/e", "{\"keys\":[{\"kid\":\"k\",\"kty\":\"EC\"}]}", -ENOTSUP,
	         "not an RSA key"},
	        {"no n", "{\"keys\":[{\"kid\":\"k\",\"kty\":\"RSA\",\"e\":\"AQAB\"}]}", -EINVAL,
	         "neither x5c nor \"n\""},
	        {"bad e", "{\"keys\":[{\"kid\":\"k\",\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"+\"}]}",
	         -EINVAL, "\"e\" is not base64url"},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct skr_error err = {0};
		EVP_PKEY *k = NULL;
		int r = jwks_find_key(cases[i].jwks, strlen(cases[i].jwks), "k", &k, &err);

		expect(cases[i].name, r, &err, cases[i].code, cases[i].msg);
		assert_null(k);
	}
}

/* ---------------------------------------------------------------------------------------------
 * Discovery against a local HTTPS server
 * ------------------------------------------------------------------------------------------- */

struct discovery {
	struct test_http_server *srv;
	struct http_client *http;
	char issuer[128];
};

static void discovery_start(struct discovery *d)
{
	struct http_client_config hc = {0};
	struct skr_error err = {0};

	assert_int_equal(test_http_server_start(true, &d->srv), 0);
	snprintf(d->issuer, sizeof(d->issuer), "%s", test_http_server_url(d->srv));
	hc.ca_bundle = test_http_server_ca_file(d->srv);
	hc.max_attempts = 1;
	hc.timeout_ms = 5000;
	if (http_client_new(&hc, &d->http, &err) < 0)
		fail_msg("http_client_new: %s", err.msg);
}

static void discovery_stop(struct discovery *d)
{
	http_client_free(d->http);
	test_http_server_stop(d->srv);
}

/* Requests the server received for @path. */
static size_t hits(struct discovery *d, const char *path)
{
	size_t n = 0;

	for (size_t i = 0; i < test_http_server_request_count(d->srv); i++)
		if (strcmp(test_http_server_request(d->srv, i)->path, path) == 0)
			n++;
	return n;
}

static void serve_openid(struct discovery *d, const char *jwks_uri)
{
	_cleanup_free_ char *meta = NULL;

	assert_true(asprintf(&meta,
	                     "{\"issuer\":\"%s\",\"jwks_uri\":\"%s\","
	                     "\"id_token_signing_alg_values_supported\":[\"RS256\"]}",
	                     d->issuer, jwks_uri) > 0);
	test_http_server_reply(d->srv, "/.well-known/openid-configuration", 200, "application/json",
	                       meta);
}

static void test_discovery_ok(void **state)
{
	struct discovery d = {0};
	_cleanup_free_ char *jwks_uri = NULL, *jwks = NULL, *got = NULL, *payload = NULL;
	_cleanup_free_ char *token = NULL, *slash = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
	struct skr_error err = {0};
	size_t got_len = 0;
	int r;

	discovery_start(&d);
	assert_true(asprintf(&jwks_uri, "%s/certs", d.issuer) > 0);
	jwks = jwks_with("key-1", "key-ne");

	serve_openid(&d, jwks_uri);
	test_http_server_reply(d.srv, "/certs", 200, "application/json", jwks);
	r = jwks_fetch(d.http, d.issuer, &got, &got_len, &err);
	if (r < 0)
		fail_msg("jwks_fetch: %s", err.msg);
	assert_string_equal(got, jwks);
	assert_int_equal(got_len, strlen(jwks));
	assert_string_equal(test_http_server_request(d.srv, 0)->method, "GET");
	free(got);
	got = NULL;

	/* An issuer URL with the trailing slash some configurations carry. */
	serve_openid(&d, jwks_uri);
	test_http_server_reply(d.srv, "/certs", 200, "application/json", jwks);
	assert_true(asprintf(&slash, "%s/", d.issuer) > 0);
	r = jwks_fetch(d.http, slash, &got, &got_len, &err);
	if (r < 0)
		fail_msg("jwks_fetch: %s", err.msg);
	assert_int_equal(hits(&d, "/.well-known/openid-configuration"), 2);
	assert_int_equal(hits(&d, "/certs"), 2);

	/* The whole relying-party path: discovery, key by kid, signature, time, issuer. */
	payload = payload_at(time(NULL), 3600, 0, d.issuer);
	token = sign_rs256(K.key, HEADER_OK, payload);
	assert_int_equal(jwks_find_key(got, got_len, "key-1", &k, &err), 0);
	assert_int_equal(verify_all(token, k, d.issuer, &err), 0);
	discovery_stop(&d);
}

static void test_discovery_refuses_other_origin(void **state)
{
	static const struct {
		const char *name;
		const char *jwks_uri; /* '@' = the server's host:port; NULL = another port */
		int code;
		const char *msg;
	} cases[] = {
	        {"other host", "https://keys.evil.example/certs", -EPERM,
	         "not on the issuer's host"},
	        {"localhost for 127.0.0.1", "https://localhost:1/certs", -EPERM,
	         "not on the issuer's host"},
	        {"other port", NULL, -EPERM, "not on the issuer's host"},
	        {"plain http", "http://%s/certs", -EPROTO, "is not an https URL"},
	        {"not a URL", "certs", -EPROTO, "is not a URL"},
	};
	struct discovery d = {0};

	discovery_start(&d);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_free_ char *uri = NULL, *got = NULL;
		const char *hostport = d.issuer + strlen("https://");
		struct skr_error err = {0};
		size_t len;
		int r;

		const char *at = cases[i].jwks_uri ? strchr(cases[i].jwks_uri, '@') : NULL;

		if (at)
			assert_true(asprintf(&uri, "%.*s%s%s", (int)(at - cases[i].jwks_uri),
			                     cases[i].jwks_uri, hostport, at + 1) > 0);
		else if (cases[i].jwks_uri)
			assert_true(asprintf(&uri, "%s", cases[i].jwks_uri) > 0);
		else
			assert_true(asprintf(&uri, "https://127.0.0.1:%u/certs",
			                     (unsigned)test_http_server_port(d.srv) ^ 1u) > 0);
		serve_openid(&d, uri);
		r = jwks_fetch(d.http, d.issuer, &got, &len, &err);
		expect(cases[i].name, r, &err, cases[i].code, cases[i].msg);
		assert_null(got);
	}
	/* Only the metadata was requested: no refused key set was fetched. */
	assert_int_equal(test_http_server_request_count(d.srv), ELEMENTSOF(cases));
	assert_int_equal(hits(&d, "/certs"), 0);

	/* Metadata errors: HTTP status, no jwks_uri, not JSON; an http:// issuer. */
	{
		_cleanup_free_ char *got = NULL;
		struct skr_error err = {0};
		size_t len;

		test_http_server_reply(d.srv, "/.well-known/openid-configuration", 404,
		                       "application/json", "{}");
		expect("404", jwks_fetch(d.http, d.issuer, &got, &len, &err), &err, -EPROTO,
		       "answered HTTP 404");
		skr_error_clear(&err);
		test_http_server_reply(d.srv, "/.well-known/openid-configuration", 200,
		                       "application/json", "{\"issuer\":\"x\"}");
		expect("no jwks_uri", jwks_fetch(d.http, d.issuer, &got, &len, &err), &err, -EPROTO,
		       "jwks_uri");
		skr_error_clear(&err);
		test_http_server_reply(d.srv, "/.well-known/openid-configuration", 200, "text/html",
		                       "<html>");
		expect("not JSON", jwks_fetch(d.http, d.issuer, &got, &len, &err), &err, -EPROTO,
		       "OpenID configuration is not valid JSON");
		skr_error_clear(&err);
		expect("http issuer", jwks_fetch(d.http, "http://127.0.0.1:1", &got, &len, &err),
		       &err, -EINVAL, "is not an https URL");
	}
	discovery_stop(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_verify_ok),
	        cmocka_unit_test(test_verify_padded_segments),
	        cmocka_unit_test(test_verify_rejects),
	        cmocka_unit_test(test_verify_other_text_refused),
	        cmocka_unit_test(test_verify_refuses_small_or_non_rsa_key),
	        cmocka_unit_test(test_parse_rejects),
	        cmocka_unit_test(test_redact),
	        cmocka_unit_test(test_jwks_find_key),
	        cmocka_unit_test(test_jwks_rejects),
	        cmocka_unit_test(test_discovery_ok),
	        cmocka_unit_test(test_discovery_refuses_other_origin),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
