/* SPDX-License-Identifier: MIT */
/*
 * The token verifier (skr.h "Token verification without an attester") against an issuer played
 * by the scripted HTTPS server: OpenID configuration → JWKS → kid → x5c[0], the per-issuer cache
 * and its refetch on an unknown kid, and each refusal (expired, wrong issuer, bad signature,
 * alg none).
 */
#include <errno.h>
#include <pthread.h>
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

#include "cleanup.h"
#include "ossl.h"
#include "skr.h"
#include "test_http_server.h"
#include "test_pki.h"
#include "token_verifier.h"

static struct {
	struct test_http_server *srv;
	const char *issuer; /* https://127.0.0.1:PORT */
	struct test_pki_cert k1, k2, other;
	char *x5c1, *x5c2;
} W;

static int setup(void **state)
{
	assert_int_equal(test_http_server_start(true, &W.srv), 0);
	W.issuer = test_http_server_url(W.srv);
	test_pki_leaf(NULL, "maa signer 1", NULL, &W.k1);
	test_pki_leaf(NULL, "maa signer 2", NULL, &W.k2);
	test_pki_leaf(NULL, "forger", NULL, &W.other);
	W.x5c1 = test_pki_der_b64(W.k1.cert);
	W.x5c2 = test_pki_der_b64(W.k2.cert);
	return 0;
}

static int teardown(void **state)
{
	test_http_server_stop(W.srv);
	test_pki_cert_clear(&W.k1);
	test_pki_cert_clear(&W.k2);
	test_pki_cert_clear(&W.other);
	free(W.x5c1);
	free(W.x5c2);
	return 0;
}

static int reset(void **state)
{
	test_http_server_reset(W.srv);
	return 0;
}

/* The issuer publishes the keys named (k1 and/or k2) as x5c certificates. */
static void publish(bool k1, bool k2)
{
	_cleanup_free_ char *meta = NULL, *jwks = NULL;

	assert_true(asprintf(&meta, "{\"issuer\":\"%s\",\"jwks_uri\":\"%s/certs\"}", W.issuer,
	                     W.issuer) > 0);
	assert_true(asprintf(&jwks, "{\"keys\":[%s%s%s%s%s%s%s]}",
	                     k1 ? "{\"kid\":\"k1\",\"kty\":\"RSA\",\"x5c\":[\"" : "",
	                     k1 ? W.x5c1 : "", k1 ? "\"]}" : "", k1 && k2 ? "," : "",
	                     k2 ? "{\"kid\":\"k2\",\"kty\":\"RSA\",\"x5c\":[\"" : "",
	                     k2 ? W.x5c2 : "", k2 ? "\"]}" : "") > 0);
	test_http_server_push(W.srv,
	                      &(struct test_http_reply){.path = "/.well-known/openid-configuration",
	                                                .content_type = "application/json",
	                                                .body = meta,
	                                                .sticky = true});
	test_http_server_push(W.srv, &(struct test_http_reply){.path = "/certs",
	                                                       .content_type = "application/json",
	                                                       .body = jwks,
	                                                       .sticky = true});
}

static char *token(EVP_PKEY *key, const char *kid, const char *alg, const char *iss,
                   long long exp_delta)
{
	_cleanup_free_ char *header = NULL, *payload = NULL;
	long long now = (long long)time(NULL);

	assert_true(asprintf(&header, "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}", alg, kid) >
	            0);
	assert_true(asprintf(&payload,
	                     "{\"iss\":\"%s\",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,"
	                     "\"x-ms-sevsnpvm-vmpl\":0}",
	                     iss, now, now, now + exp_delta) > 0);
	return test_jws_sign(key, header, payload);
}

static struct skr_token_verifier *verifier(void)
{
	struct skr_token_verifier *v = NULL;
	struct skr_error err = {0};

	if (skr_token_verifier_new(test_http_server_ca_file(W.srv), &v, &err) < 0)
		fail_msg("skr_token_verifier_new: %s", err.msg);
	return v;
}

static void test_ok_and_cached(void **state)
{
	struct skr_token_verifier *v = verifier();
	_cleanup_free_ char *t = token(W.k1.key, "k1", "RS256", W.issuer, 3600);
	_cleanup_free_ char *claims = NULL, *with_slash = NULL, *bare = NULL;
	struct skr_error err = {0};

	publish(true, false);
	if (skr_token_verifier_verify(v, W.issuer, t, &claims, &err) < 0)
		fail_msg("verify: %s", err.msg);
	assert_non_null(strstr(claims, "\"x-ms-sevsnpvm-vmpl\":0"));
	assert_int_equal(test_http_server_request_count(W.srv), 2);
	assert_string_equal(test_http_server_request(W.srv, 0)->path,
	                    "/.well-known/openid-configuration");
	assert_string_equal(test_http_server_request(W.srv, 1)->path, "/certs");

	/* The same issuer spelled with a trailing '/' or as a bare host: one cache entry. */
	assert_true(asprintf(&with_slash, "%s/", W.issuer) > 0);
	bare = strdup(W.issuer + strlen("https://"));
	free(claims);
	claims = NULL;
	assert_int_equal(skr_token_verifier_verify(v, with_slash, t, &claims, &err), 0);
	free(claims);
	claims = NULL;
	assert_int_equal(skr_token_verifier_verify(v, bare, t, &claims, &err), 0);
	assert_int_equal(test_http_server_request_count(W.srv), 2);

	/* A TTL of 0 refetches every time. */
	token_verifier_set_refresh(v, 0, 0);
	free(claims);
	claims = NULL;
	assert_int_equal(skr_token_verifier_verify(v, W.issuer, t, &claims, &err), 0);
	assert_int_equal(test_http_server_request_count(W.srv), 4);
	skr_token_verifier_free(v);
}

static void test_refusals(void **state)
{
	static const struct {
		const char *name;
		int key; /* 1 = k1, 0 = forger */
		const char *alg;
		const char *iss; /* NULL = the issuer */
		long long exp_delta;
		int expect;
		const char *msg;
	} cases[] = {
	        {"expired", 1, "RS256", NULL, -3600, -ESTALE, "JWT expired"},
	        {"expired within skew", 1, "RS256", NULL, -60, 0, NULL},
	        {"wrong issuer", 1, "RS256", "https://evil.attest.azure.net", 3600, -EACCES,
	         "is not \""},
	        {"bad signature", 0, "RS256", NULL, 3600, -EBADMSG, "signature is not valid"},
	        {"HS256", 1, "HS256", NULL, 3600, -ENOTSUP, "only RS256"},
	};
	struct skr_token_verifier *v = verifier();

	publish(true, false);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_free_ char *t = NULL, *claims = NULL;
		struct skr_error err = {0};
		int r;

		t = token(cases[i].key ? W.k1.key : W.other.key, "k1", cases[i].alg,
		          cases[i].iss ? cases[i].iss : W.issuer, cases[i].exp_delta);
		r = skr_token_verifier_verify(v, W.issuer, t, &claims, &err);
		if (r != cases[i].expect)
			fail_msg("%s: expected %d, got %d (%s)", cases[i].name, cases[i].expect, r,
			         err.msg);
		if (cases[i].msg) {
			assert_null(claims);
			if (!strstr(err.msg, cases[i].msg) || !strstr(err.msg, "token from "))
				fail_msg("%s: message '%s' lacks '%s'", cases[i].name, err.msg,
				         cases[i].msg);
		}
	}
	/* Malformed input and configuration. */
	{
		char *claims = NULL;
		struct skr_error err = {0};

		assert_int_equal(skr_token_verifier_verify(v, W.issuer, "a.b", &claims, &err),
		                 -EINVAL);
		skr_error_clear(&err);
		assert_int_equal(
		        skr_token_verifier_verify(v, "http://127.0.0.1:1", "a.b.c", &claims, &err),
		        -EINVAL);
		assert_non_null(strstr(err.msg, "https"));
	}
	skr_token_verifier_free(v);
}

static void test_unknown_kid_refetch(void **state)
{
	struct skr_token_verifier *v = verifier();
	_cleanup_free_ char *t1 = token(W.k1.key, "k1", "RS256", W.issuer, 3600);
	_cleanup_free_ char *t2 = token(W.k2.key, "k2", "RS256", W.issuer, 3600);
	char *claims = NULL;
	struct skr_error err = {0};

	publish(true, false);
	assert_int_equal(skr_token_verifier_verify(v, W.issuer, t1, &claims, &err), 0);
	free(claims);
	claims = NULL;
	assert_int_equal(test_http_server_request_count(W.srv), 2);

	/* The issuer rotates to k2. Within the refresh floor the cached set is not refetched. */
	test_http_server_reset(W.srv);
	publish(true, true);
	assert_int_equal(skr_token_verifier_verify(v, W.issuer, t2, &claims, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no key with kid \"k2\""));
	assert_int_equal(test_http_server_request_count(W.srv), 0);

	/* Past the floor (0 here), an unknown kid triggers one refetch, which finds it. */
	token_verifier_set_refresh(v, 600, 0);
	skr_error_clear(&err);
	if (skr_token_verifier_verify(v, W.issuer, t2, &claims, &err) < 0)
		fail_msg("verify after rotation: %s", err.msg);
	free(claims);
	claims = NULL;
	assert_int_equal(test_http_server_request_count(W.srv), 2);

	/* A kid nobody publishes: one refetch, then a clear refusal. */
	{
		_cleanup_free_ char *t3 = token(W.k1.key, "k3", "RS256", W.issuer, 3600);

		skr_error_clear(&err);
		assert_int_equal(skr_token_verifier_verify(v, W.issuer, t3, &claims, &err),
		                 -ENOENT);
		assert_null(claims);
		assert_int_equal(test_http_server_request_count(W.srv), 4);
	}
	skr_token_verifier_free(v);
}

struct thread_arg {
	struct skr_token_verifier *v;
	const char *token;
	int r;
};

static void *verify_thread(void *p)
{
	struct thread_arg *a = p;

	for (int i = 0; i < 20 && a->r == 0; i++) {
		char *claims = NULL;

		a->r = skr_token_verifier_verify(a->v, W.issuer, a->token, &claims, NULL);
		free(claims);
	}
	return NULL;
}

/* Many threads, one issuer: all verify, and the key set is fetched once. */
static void test_concurrent(void **state)
{
	struct skr_token_verifier *v = verifier();
	_cleanup_free_ char *t = token(W.k1.key, "k1", "RS256", W.issuer, 3600);
	struct thread_arg args[6];
	pthread_t th[6];

	publish(true, false);
	for (size_t i = 0; i < ELEMENTSOF(th); i++) {
		args[i] = (struct thread_arg){v, t, 0};
		assert_int_equal(pthread_create(&th[i], NULL, verify_thread, &args[i]), 0);
	}
	for (size_t i = 0; i < ELEMENTSOF(th); i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].r, 0);
	}
	assert_int_equal(test_http_server_request_count(W.srv), 2);
	skr_token_verifier_free(v);
}

static void test_peek_issuer(void **state)
{
	_cleanup_free_ char *t = token(W.k1.key, "k1", "RS256", "https://x.attest.azure.net", 60);
	_cleanup_free_ char *no_iss = NULL, *iss = NULL;
	struct skr_error err = {0};

	assert_int_equal(skr_token_peek_issuer(t, &iss, &err), 0);
	assert_string_equal(iss, "https://x.attest.azure.net");
	no_iss = test_jws_sign(W.k1.key, "{\"alg\":\"RS256\"}", "{\"exp\":1}");
	free(iss);
	iss = NULL;
	assert_int_equal(skr_token_peek_issuer(no_iss, &iss, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "\"iss\""));
	assert_null(iss);
	skr_error_clear(&err);
	assert_int_equal(skr_token_peek_issuer("not a token", &iss, &err), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup(test_ok_and_cached, reset),
	        cmocka_unit_test_setup(test_refusals, reset),
	        cmocka_unit_test_setup(test_unknown_kid_refetch, reset),
	        cmocka_unit_test_setup(test_concurrent, reset),
	        cmocka_unit_test_setup(test_peek_issuer, reset),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
