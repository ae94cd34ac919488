/* SPDX-License-Identifier: MIT */
/*
 * The MAA attest call (skr/maa.h) against a local HTTPS server: the request MAA receives, the
 * token on success, and MAA's own error text with the right errno on each kind of failure.
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

#include "cleanup.h"
#include "http.h"
#include "log.h"
#include "maa.h"
#include "test_http_server.h"
#include "test_log.h"

#define ATTEST_PATH "/attest/SevSnpVm"
/* A syntactically valid compact JWS ({"alg":"RS256"}.{"a":1}.sig); maa_attest does not verify. */
#define TOKEN "eyJhbGciOiJSUzI1NiJ9.eyJhIjoxfQ.c2lnbmF0dXJl"

struct fixture {
	struct test_http_server *srv;
	struct http_client *http;
	const char *endpoint; /* "127.0.0.1:PORT" */
};

static int setup(void **state)
{
	static struct fixture f;
	struct http_client_config hc = {0};
	struct skr_error err = {0};

	assert_int_equal(test_http_server_start(true, &f.srv), 0);
	hc.ca_bundle = test_http_server_ca_file(f.srv);
	hc.max_attempts = 2;
	hc.backoff_ms = 10;
	hc.timeout_ms = 5000;
	hc.user_agent = "ConfidentialSkrContainer";
	if (http_client_new(&hc, &f.http, &err) < 0)
		fail_msg("http_client_new: %s", err.msg);
	f.endpoint = test_http_server_url(f.srv) + strlen("https://");
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	http_client_free(f->http);
	test_http_server_stop(f->srv);
	return 0;
}

static int reset(void **state)
{
	struct fixture *f = *state;

	test_http_server_reset(f->srv);
	return 0;
}

static void test_base_url(void **state)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
	        {"shared.eus.attest.azure.net", "https://shared.eus.attest.azure.net"},
	        {"shared.eus.attest.azure.net/", "https://shared.eus.attest.azure.net"},
	        {"127.0.0.1:8443", "https://127.0.0.1:8443"},
	        {"https://x.attest.azure.net", "https://x.attest.azure.net"},
	        {"HTTPS://x.attest.azure.net//", "https://x.attest.azure.net"},
	        /* the token issuer's one spelling: lower-case host, no default port */
	        {"https://Shared.EUS.Attest.Azure.NET/", "https://shared.eus.attest.azure.net"},
	        {"X.Attest.Azure.Net:443", "https://x.attest.azure.net"},
	        {"https://[::1]:8443", "https://[::1]:8443"},
	};
	static const struct {
		const char *in, *msg;
	} bad[] = {
	        {"", "empty"},
	        {"http://x.attest.azure.net", "must use https://"},
	        {"ftp://x", "must use https://"},
	        {"x.test attest", "white space"},
	        {"https://", "not a valid host"},
	        {"https://user:pw@x.test", "credentials"},
	        {"x.test/?a=b", "query"},
	        {"x.test#frag", "fragment"},
	        /* MAA serves at its root: a path gives an attest URL and an issuer that never
	         * match what MAA does */
	        {"https://x.test/prefix", "has a path"},
	        {"x.test/a/", "has a path"},
	};

	for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
		_cleanup_free_ char *url = NULL;
		struct skr_error err = {0};

		if (maa_base_url(ok[i].in, &url, &err) < 0)
			fail_msg("%s: %s", ok[i].in, err.msg);
		assert_string_equal(url, ok[i].out);
	}
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_free_ char *url = NULL;
		struct skr_error err = {0};
		int r = maa_base_url(bad[i].in, &url, &err);

		if (r != -EINVAL || !strstr(err.msg, bad[i].msg))
			fail_msg("\"%s\": got %d \"%s\", expected \"%s\"", bad[i].in, r, err.msg,
			         bad[i].msg);
		assert_null(url);
	}
}

static void test_attest_ok(void **state)
{
	struct fixture *f = *state;
	static const char body[] = "{\"report\":\"e30=\"}";
	_cleanup_free_ char *token = NULL;
	const struct test_http_request *req;
	struct skr_error err = {0};
	int r;

	test_http_server_reply(f->srv, ATTEST_PATH, 200, "application/json",
	                       "{\"token\":\"" TOKEN "\"}");
	test_log_capture_start(LOG_LEVEL_TRACE);
	r = maa_attest(f->http, f->endpoint, body, &token, &err);
	test_log_capture_stop();
	if (r < 0)
		fail_msg("maa_attest: %s", err.msg);
	assert_string_equal(token, TOKEN);

	assert_int_equal(test_http_server_request_count(f->srv), 1);
	req = test_http_server_request(f->srv, 0);
	assert_string_equal(req->method, "POST");
	assert_string_equal(req->target, ATTEST_PATH "?api-version=2020-10-01");
	assert_string_equal(test_http_request_header(req, "Content-Type"), "application/json");
	assert_string_equal(test_http_request_header(req, "User-Agent"),
	                    "ConfidentialSkrContainer");
	assert_null(test_http_request_header(req, "Authorization"));
	assert_string_equal(req->body, body);

	/* The token's signature never reaches the log, even at trace level. */
	assert_non_null(test_log_captured());
	assert_null(strstr(test_log_captured(), "c2lnbmF0dXJl"));
	assert_non_null(strstr(test_log_captured(), "eyJhbGciOiJSUzI1NiJ9.eyJhIjoxfQ.<redacted>"));
	test_log_capture_clear();

	/* 201..207 count as success too (the anchor's rule). */
	test_http_server_reply(f->srv, ATTEST_PATH, 207, "application/json",
	                       "{\"token\":\"" TOKEN "\"}");
	free(token);
	token = NULL;
	assert_int_equal(maa_attest(f->http, f->endpoint, body, &token, &err), 0);

	/* A full https:// URL as the endpoint. */
	test_http_server_reply(f->srv, ATTEST_PATH, 200, "application/json",
	                       "{\"token\":\"" TOKEN "\"}");
	free(token);
	token = NULL;
	assert_int_equal(maa_attest(f->http, test_http_server_url(f->srv), body, &token, &err), 0);
}

struct failure_case {
	const char *name;
	unsigned status;
	const char *answer;
	bool sticky; /* answer every attempt (retried statuses) */
	int code;
	const char *msg;
};

static void test_attest_failures(void **state)
{
	static const struct failure_case cases[] = {
	        {"evidence refused", 400,
	         "{\"error\":{\"code\":\"InvalidParameter\",\"message\":\"The attestation report "
	         "signature\\nis invalid\"}}",
	         false, -EACCES,
	         "HTTP 400 from https://127.0.0.1:@: InvalidParameter: The attestation report "
	         "signature is invalid"},
	        {"unauthorized without body", 401, "", false, -EACCES, "HTTP 401 from"},
	        {"forbidden", 403, "{\"error\":{\"code\":\"Forbidden\"}}", false, -EACCES,
	         "Forbidden"},
	        {"server error after retries", 503,
	         "{\"error\":{\"code\":\"ServiceUnavailable\",\"message\":\"busy\"}}", true, -EIO,
	         "HTTP 503 from https://127.0.0.1:@: ServiceUnavailable: busy"},
	        {"bare 500", 500, "oops", true, -EIO,
	         "HTTP 500 from https://127.0.0.1:@ (after "
	         "retries)"},
	        {"not found", 404, "{}", false, -EPROTO, "HTTP 404"},
	        {"not JSON", 200, "<html>", false, -EPROTO, "MAA response is not valid JSON"},
	        {"no token", 200, "{\"jwt\":\"x\"}", false, -EPROTO, "has no token"},
	        {"empty token", 200, "{\"token\":\"\"}", false, -EPROTO, "has no token"},
	        {"token not a string", 200, "{\"token\":5}", false, -EPROTO, "has no token"},
	        {"token not a JWS", 200, "{\"token\":\"abc\"}", false, -EPROTO,
	         "token is malformed"},
	};
	struct fixture *f = *state;
	char port[16];

	snprintf(port, sizeof(port), "%u", (unsigned)test_http_server_port(f->srv));
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		const struct failure_case *c = &cases[i];
		_cleanup_free_ char *token = NULL, *msg = NULL;
		struct skr_error err = {0};
		const char *at = strchr(c->msg, '@');
		int r;

		if (at)
			assert_true(asprintf(&msg, "%.*s%s%s", (int)(at - c->msg), c->msg, port,
			                     at + 1) > 0);
		else
			msg = strdup(c->msg);
		test_http_server_reset(f->srv);
		test_http_server_push(f->srv, &(struct test_http_reply){
		                                      .path = ATTEST_PATH,
		                                      .status = c->status,
		                                      .content_type = "application/json",
		                                      .body = c->answer,
		                                      .sticky = c->sticky,
		                              });
		r = maa_attest(f->http, f->endpoint, "{}", &token, &err);
		if (r != c->code || !strstr(err.msg, msg))
			fail_msg("%s: got %d \"%s\", expected %d with \"%s\"", c->name, r, err.msg,
			         c->code, msg);
		assert_null(token);
		/* 5xx is retried (max_attempts 2), evidence refusals are not. */
		assert_int_equal(test_http_server_request_count(f->srv), c->sticky ? 2 : 1);
	}
}

static void test_attest_transport_failure(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *token = NULL;
	struct skr_error err = {0};
	int r;

	/* Nothing listens on port 1: a transport error, named as the MAA step. */
	r = maa_attest(f->http, "127.0.0.1:1", "{}", &token, &err);
	assert_true(r < 0);
	assert_non_null(strstr(err.msg, "MAA attest request: "));
	assert_null(token);

	skr_error_clear(&err);
	assert_int_equal(maa_attest(f->http, "http://127.0.0.1:1", "{}", &token, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "must use https://"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_base_url),
	        cmocka_unit_test_setup(test_attest_ok, reset),
	        cmocka_unit_test_setup(test_attest_failures, reset),
	        cmocka_unit_test_setup(test_attest_transport_failure, reset),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
