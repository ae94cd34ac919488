/* SPDX-License-Identifier: MIT */
/*
 * http.c against the scripted server of tests/lib: retries, Retry-After, timeouts, size limit,
 * TLS verification, redaction of URLs and the absence of secrets in logs.
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
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "cleanup.h"
#include "http.h"
#include "log.h"
#include "test_http_server.h"

struct fixture {
	struct test_http_server *srv;
	struct http_client *client;
};

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Fast backoff so the retry tests measure Retry-After, not our own delays. */
static struct http_client *client_new(const char *ca_bundle, long timeout_ms, int attempts)
{
	struct http_client_config cfg = {
	        .ca_bundle = ca_bundle,
	        .connect_timeout_ms = 2000,
	        .timeout_ms = timeout_ms,
	        .max_attempts = attempts,
	        .backoff_ms = 10,
	        .max_retry_after_ms = 5000,
	};
	struct http_client *c = NULL;
	struct skr_error err = {0};

	assert_int_equal(http_client_new(&cfg, &c, &err), 0);
	return c;
}

static int setup_http(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(test_http_server_start(false, &f->srv), 0);
	f->client = client_new(NULL, 5000, 3);
	*state = f;
	return 0;
}

/* TLS with the test CA: what any request carrying an Authorization header needs. */
static int setup_https(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(test_http_server_start(true, &f->srv), 0);
	f->client = client_new(test_http_server_ca_file(f->srv), 5000, 3);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	http_client_free(f->client);
	test_http_server_stop(f->srv);
	free(f);
	return 0;
}

static char *url_of(struct fixture *f, const char *path)
{
	char *u;

	assert_true(asprintf(&u, "%s%s", test_http_server_url(f->srv), path) > 0);
	return u;
}

static void test_get_and_post_round_trip(void **state)
{
	struct fixture *f = *state;
	static const char *const headers[] = {"Content-Type: application/json", "X-Test: 1", NULL};
	_cleanup_free_ char *url = url_of(f, "/thing?a=1&b=two");
	struct http_response resp = {0};
	struct skr_error err = {0};
	const struct test_http_request *rq;

	test_http_server_reply(f->srv, "/thing", 200, "text/plain", "hello");
	assert_int_equal(http_request(f->client, "GET", url, NULL, NULL, 0, 0, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.body_len, 5);
	assert_string_equal(resp.body, "hello");
	assert_string_equal(resp.content_type, "text/plain");
	http_response_clear(&resp);

	test_http_server_reply(f->srv, "/thing", 201, "application/json", "{\"ok\":true}");
	assert_int_equal(
	        http_request(f->client, "POST", url, headers, "{\"x\":1}", 7, 0, &resp, &err), 0);
	assert_int_equal(resp.status, 201);
	assert_string_equal(resp.body, "{\"ok\":true}");
	http_response_clear(&resp);

	assert_int_equal(test_http_server_request_count(f->srv), 2);
	rq = test_http_server_request(f->srv, 0);
	assert_string_equal(rq->method, "GET");
	assert_string_equal(rq->target, "/thing?a=1&b=two");
	assert_string_equal(rq->path, "/thing");
	assert_int_equal(rq->body_len, 0);
	assert_non_null(
	        strstr(test_http_request_header(rq, "User-Agent"), "confidential-sidecar/"));
	rq = test_http_server_request(f->srv, 1);
	assert_string_equal(rq->method, "POST");
	assert_string_equal(rq->body, "{\"x\":1}");
	assert_string_equal(test_http_request_header(rq, "content-type"), "application/json");
	assert_string_equal(test_http_request_header(rq, "X-Test"), "1");
	/* Both requests on one connection: the easy handle was reused. */
	assert_int_equal(test_http_server_request(f->srv, 0)->client_port, rq->client_port);
}

static void test_put_empty_body_and_no_content_type(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *url = url_of(f, "/blob");
	struct http_response resp = {0};
	struct skr_error err = {0};
	const struct test_http_request *rq;

	test_http_server_reply(f->srv, "/blob", 204, NULL, NULL);
	assert_int_equal(http_request(f->client, "PUT", url, NULL, NULL, 0, 0, &resp, &err), 0);
	assert_int_equal(resp.status, 204);
	assert_non_null(resp.body);
	assert_string_equal(resp.body, "");
	assert_null(resp.content_type);
	http_response_clear(&resp);
	rq = test_http_server_request(f->srv, 0);
	assert_string_equal(rq->method, "PUT");
	assert_string_equal(test_http_request_header(rq, "Content-Length"), "0");
	/* curl's default form type must not be claimed for our bodies. */
	assert_null(test_http_request_header(rq, "Content-Type"));
}

static void test_retry_after_seconds(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *url = url_of(f, "/busy");
	struct test_http_reply busy = {
	        .path = "/busy", .status = 503, .headers = "Retry-After: 1", .body = "later"};
	struct http_response resp = {0};
	struct skr_error err = {0};
	long t0, elapsed;

	test_http_server_push(f->srv, &busy);
	test_http_server_reply(f->srv, "/busy", 200, NULL, "done");
	t0 = now_ms();
	assert_int_equal(http_request(f->client, "GET", url, NULL, NULL, 0, 0, &resp, &err), 0);
	elapsed = now_ms() - t0;
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, "done");
	assert_int_equal(test_http_server_request_count(f->srv), 2);
	/* The backoff is 10 ms: only Retry-After explains a wait of about a second. */
	assert_true(elapsed >= 950);
	assert_true(elapsed < 4000);
	http_response_clear(&resp);
}

static void test_retry_after_date_and_cap(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *url = url_of(f, "/busy");
	struct http_client *capped;
	struct http_client_config cfg = {
	        .max_attempts = 2, .backoff_ms = 10, .max_retry_after_ms = 200};
	struct test_http_reply r = {.path = "/busy", .status = 429};
	struct http_response resp = {0};
	struct skr_error err = {0};
	char hdr[96], date[64];
	time_t when = time(NULL) + 2;
	struct tm tm;
	long t0, elapsed;

	/* HTTP-date form, two seconds ahead (one-second resolution: expect 1..3 s). */
	gmtime_r(&when, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	snprintf(hdr, sizeof(hdr), "Retry-After: %s", date);
	r.headers = hdr;
	test_http_server_push(f->srv, &r);
	test_http_server_reply(f->srv, "/busy", 200, NULL, "ok");
	t0 = now_ms();
	assert_int_equal(http_request(f->client, "GET", url, NULL, NULL, 0, 0, &resp, &err), 0);
	elapsed = now_ms() - t0;
	assert_int_equal(resp.status, 200);
	assert_true(elapsed >= 900);
	assert_true(elapsed < 3500);
	http_response_clear(&resp);

	/* A server asking for an hour is held to max_retry_after_ms. */
	assert_int_equal(http_client_new(&cfg, &capped, &err), 0);
	r.headers = "Retry-After: 3600";
	test_http_server_push(f->srv, &r);
	test_http_server_reply(f->srv, "/busy", 200, NULL, "ok");
	t0 = now_ms();
	assert_int_equal(http_request(capped, "GET", url, NULL, NULL, 0, 0, &resp, &err), 0);
	elapsed = now_ms() - t0;
	assert_int_equal(resp.status, 200);
	assert_true(elapsed >= 190);
	assert_true(elapsed < 2000);
	http_response_clear(&resp);
	http_client_free(capped);
}

static void test_retryable_statuses(void **state)
{
	static const unsigned statuses[] = {408, 429, 500, 502, 503, 504, 599};
	struct fixture *f = *state;
	_cleanup_free_ char *url = url_of(f, "/flaky");

	for (size_t i = 0; i < ELEMENTSOF(statuses); i++) {
		struct http_response resp = {0};
		struct skr_error err = {0};

		test_http_server_reset(f->srv);
		test_http_server_reply(f->srv, "/flaky", statuses[i], NULL, "no");
		test_http_server_reply(f->srv, "/flaky", 200, NULL, "yes");
		assert_int_equal(http_request(f->client, "GET", url, NULL, NULL, 0, 0, &resp, &err),
		                 0);
		assert_int_equal(resp.status, 200);
		assert_int_equal(test_http_server_request_count(f->srv), 2);
		http_response_clear(&resp);
	}
}

static void test_non_retryable_statuses(void **state)
{
	static const unsigned statuses[] = {400, 401, 403, 404, 409, 410, 422};
	struct fixture *f = *state;
	_cleanup_free_ char *url = url_of(f, "/final");

	for (size_t i = 0; i < ELEMENTSOF(statuses); i++) {
		struct http_response resp = {0};
		struct skr_error err = {0};

		test_http_server_reset(f->srv);
		test_http_server_reply(f->srv, "/final", statuses[i], "text/plain", "nope");
		test_http_server_reply(f->srv, "/final", 200, NULL, "should not be asked");
		assert_int_equal(http_request(f->client, "GET", url, NULL, NULL, 0, 0, &resp, &err),
		                 0);
		assert_int_equal(resp.status, statuses[i]);
		assert_string_equal(resp.body, "nope");
		assert_int_equal(test_http_server_request_count(f->srv), 1);
		http_response_clear(&resp);
	}
}

static void test_attempts_exhausted(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *url = url_of(f, "/down");
	struct test_http_reply down = {
	        .path = "/down", .status = 503, .body = "down", .sticky = true};
	struct http_response resp = {0};
	struct skr_error err = {0};

	test_http_server_push(f->srv, &down);
	assert_int_equal(http_request(f->client, "GET", url, NULL, NULL, 0, 0, &resp, &err), 0);
	assert_int_equal(resp.status, 503);
	assert_string_equal(resp.body, "down");
	assert_int_equal(test_http_server_request_count(f->srv), 3);
	http_response_clear(&resp);
}

static void test_timeout(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *url = url_of(f, "/slow?sig=abc");
	struct http_client *c = client_new(NULL, 300, 2);
	struct test_http_reply slow = {
	        .path = "/slow", .body = "late", .delay_ms = 1500, .sticky = true};
	struct http_response resp = {0};
	struct skr_error err = {0};
	long t0, elapsed;

	test_http_server_push(f->srv, &slow);
	t0 = now_ms();
	assert_int_equal(http_request(c, "GET", url, NULL, NULL, 0, 0, &resp, &err), -ETIMEDOUT);
	elapsed = now_ms() - t0;
	assert_int_equal(err.code, -ETIMEDOUT);
	/* Timeouts are transient: retried once (2 attempts), each cut at 300 ms. */
	assert_int_equal(test_http_server_request_count(f->srv), 2);
	assert_true(elapsed >= 600);
	assert_true(elapsed < 1500);
	assert_non_null(strstr(err.msg, "GET "));
	assert_non_null(strstr(err.msg, "/slow?<redacted>"));
	assert_null(strstr(err.msg, "sig=abc"));
	assert_null(resp.body);
	http_client_free(c);
}

static void test_dropped_connection(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *url = url_of(f, "/drop");
	struct test_http_reply drop = {.path = "/drop", .drop = true};
	struct http_client *fresh;
	struct http_response resp = {0};
	struct skr_error err = {0};

	/* Dropped once, then answered: the retry hides the failure. */
	test_http_server_push(f->srv, &drop);
	test_http_server_reply(f->srv, "/drop", 200, NULL, "second time lucky");
	assert_int_equal(http_request(f->client, "GET", url, NULL, NULL, 0, 0, &resp, &err), 0);
	assert_string_equal(resp.body, "second time lucky");
	assert_int_equal(test_http_server_request_count(f->srv), 2);
	http_response_clear(&resp);

	/*
	 * Dropped every time: an error after all attempts. A fresh client, because curl itself
	 * silently re-sends once when a *reused* keep-alive connection dies, which would make the
	 * count 4.
	 */
	test_http_server_reset(f->srv);
	drop.sticky = true;
	test_http_server_push(f->srv, &drop);
	fresh = client_new(NULL, 5000, 3);
	assert_int_equal(http_request(fresh, "GET", url, NULL, NULL, 0, 0, &resp, &err),
	                 -ECONNRESET);
	http_client_free(fresh);
	assert_int_equal(test_http_server_request_count(f->srv), 3);
	assert_non_null(strstr(err.msg, "after 3 attempts"));
	assert_non_null(strstr(err.msg, "/drop"));
}

static void test_body_too_big(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *url = url_of(f, "/big");
	_cleanup_free_ char *big = malloc(4097);
	struct http_response resp = {0};
	struct skr_error err = {0};

	memset(big, 'x', 4096);
	big[4096] = '\0';
	test_http_server_reply(f->srv, "/big", 200, NULL, big);
	assert_int_equal(http_request(f->client, "GET", url, NULL, NULL, 0, 1000, &resp, &err),
	                 -EFBIG);
	assert_non_null(strstr(err.msg, "1000 bytes"));
	/* Not a transient failure: asked once. */
	assert_int_equal(test_http_server_request_count(f->srv), 1);

	/* Chunked, so no Content-Length warns curl: the write callback must stop it. */
	skr_error_clear(&err);
	test_http_server_reset(f->srv);
	{
		struct test_http_reply chunked = {
		        .path = "/big", .body = big, .body_len = 4096, .chunked = true};

		test_http_server_push(f->srv, &chunked);
	}
	assert_int_equal(http_request(f->client, "GET", url, NULL, NULL, 0, 1000, &resp, &err),
	                 -EFBIG);
	assert_non_null(strstr(err.msg, "1000 bytes"));
	assert_null(resp.body);
	assert_int_equal(test_http_server_request_count(f->srv), 1);

	/* Chunked within the limit arrives whole. */
	{
		struct test_http_reply chunked = {
		        .path = "/big", .body = big, .body_len = 3000, .chunked = true};

		test_http_server_push(f->srv, &chunked);
	}
	assert_int_equal(http_request(f->client, "GET", url, NULL, NULL, 0, 0, &resp, &err), 0);
	assert_int_equal(resp.body_len, 3000);
	assert_int_equal(resp.body[2999], 'x');
	assert_int_equal(resp.body[3000], '\0');
	http_response_clear(&resp);

	/* Exactly at the limit is fine. */
	big[1000] = '\0';
	test_http_server_reply(f->srv, "/big", 200, NULL, big);
	assert_int_equal(http_request(f->client, "GET", url, NULL, NULL, 0, 1000, &resp, NULL), 0);
	assert_int_equal(resp.body_len, 1000);
	http_response_clear(&resp);
}

static void test_connection_refused(void **state)
{
	struct test_http_server *gone;
	struct http_client *c = client_new(NULL, 2000, 2);
	struct http_response resp = {0};
	struct skr_error err = {0};
	char url[64];

	(void)state;
	/* A port that was just in use and is now closed. */
	assert_int_equal(test_http_server_start(false, &gone), 0);
	snprintf(url, sizeof(url), "%s/x", test_http_server_url(gone));
	test_http_server_stop(gone);
	assert_int_equal(http_request(c, "GET", url, NULL, NULL, 0, 0, &resp, &err), -ECONNREFUSED);
	assert_non_null(strstr(err.msg, url));
	http_client_free(c);
}

static void test_bad_arguments(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *url = url_of(f, "/x");
	static const char *const injected[] = {"X-A: 1\r\nX-B: 2", NULL};
	static const char *const no_colon[] = {"Authorization Bearer secret", NULL};
	struct http_response resp = {0};
	struct skr_error err = {0};

	assert_int_equal(http_request(f->client, "get", url, NULL, NULL, 0, 0, &resp, &err),
	                 -EINVAL);
	skr_error_clear(&err);
	assert_int_equal(
	        http_request(f->client, "GET", "ftp://127.0.0.1/x", NULL, NULL, 0, 0, &resp, &err),
	        -EINVAL);
	assert_non_null(strstr(err.msg, "http:// and https://"));
	skr_error_clear(&err);
	assert_int_equal(http_request(f->client, "GET", url, injected, NULL, 0, 0, &resp, &err),
	                 -EINVAL);
	skr_error_clear(&err);
	assert_int_equal(http_request(f->client, "GET", url, no_colon, NULL, 0, 0, &resp, &err),
	                 -EINVAL);
	assert_null(strstr(err.msg, "secret"));
	assert_int_equal(test_http_server_request_count(f->srv), 0);
}

static void test_no_redirects(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *url = url_of(f, "/moved");
	struct test_http_reply moved = {
	        .path = "/moved", .status = 302, .headers = "Location: /elsewhere"};
	struct http_response resp = {0};
	struct skr_error err = {0};

	test_http_server_push(f->srv, &moved);
	test_http_server_reply(f->srv, "/elsewhere", 200, NULL, "followed");
	assert_int_equal(http_request(f->client, "GET", url, NULL, NULL, 0, 0, &resp, &err), 0);
	assert_int_equal(resp.status, 302);
	assert_int_equal(test_http_server_request_count(f->srv), 1);
	http_response_clear(&resp);
}

static void test_https_right_ca(void **state)
{
	struct test_http_server *srv;
	struct http_client *c;
	_cleanup_free_ char *url = NULL;
	struct http_response resp = {0};
	struct skr_error err = {0};

	(void)state;
	assert_int_equal(test_http_server_start(true, &srv), 0);
	assert_non_null(test_http_server_ca_file(srv));
	assert_int_equal(strncmp(test_http_server_url(srv), "https://", 8), 0);
	c = client_new(test_http_server_ca_file(srv), 5000, 1);
	assert_true(asprintf(&url, "%s/tls?x=1", test_http_server_url(srv)) > 0);
	test_http_server_reply(srv, "/tls", 200, "text/plain", "secure hello");
	assert_int_equal(http_request(c, "GET", url, NULL, NULL, 0, 0, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, "secure hello");
	http_response_clear(&resp);
	http_client_free(c);
	test_http_server_stop(srv);
}

static void test_https_wrong_ca(void **state)
{
	struct test_http_server *srv;
	struct http_client *c;
	char other[] = "/tmp/test-http-other-ca-XXXXXX";
	_cleanup_free_ char *url = NULL, *expect = NULL;
	struct http_response resp = {0};
	struct skr_error err = {0};
	int fd;

	(void)state;
	fd = mkstemp(other);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(test_http_write_unrelated_ca(other), 0);
	assert_int_equal(test_http_server_start(true, &srv), 0);
	c = client_new(other, 5000, 3);
	assert_true(asprintf(&url, "%s/secret/path?sv=2020&sig=TOPSECRET",
	                     test_http_server_url(srv)) > 0);
	assert_true(asprintf(&expect, "GET %s/secret/path?<redacted>", test_http_server_url(srv)) >
	            0);
	test_http_server_reply(srv, "/secret/path", 200, NULL, "must not be reached");
	assert_int_equal(http_request(c, "GET", url, NULL, NULL, 0, 0, &resp, &err), -EPROTO);
	assert_non_null(strstr(err.msg, expect));
	assert_null(strstr(err.msg, "TOPSECRET"));
	assert_null(strstr(err.msg, "sv=2020"));
	/* A certificate that does not verify is not retried, and no request reached the server. */
	assert_int_equal(test_http_server_request_count(srv), 0);
	http_client_free(c);
	test_http_server_stop(srv);
	unlink(other);
}

/* ---- logging never carries Authorization headers, bodies or query strings ---- */

struct capture {
	char buf[16384];
	size_t len;
};

static void capture_sink(enum log_level level, const char *msg, void *userdata)
{
	struct capture *c = userdata;
	int n = snprintf(c->buf + c->len, sizeof(c->buf) - c->len, "%s\n", msg);

	if (n > 0 && (size_t)n < sizeof(c->buf) - c->len)
		c->len += (size_t)n;
}

static void test_logs_hold_no_secrets(void **state)
{
	struct fixture *f = *state;
	static const char *const headers[] = {"Authorization: Bearer TOKEN-SECRET", NULL};
	_cleanup_free_ char *url = url_of(f, "/keys/k1/release?api-version=7.4&sig=QUERY-SECRET");
	struct capture cap = {0};
	struct http_response resp = {0};
	struct skr_error err = {0};
	enum log_level old = log_get_level();

	log_set_sink(capture_sink, &cap);
	log_set_level(LOG_LEVEL_TRACE);
	test_http_server_reply(f->srv, "/keys/k1/release", 500, NULL, "RESPONSE-SECRET");
	test_http_server_reply(f->srv, "/keys/k1/release", 200, NULL, "RESPONSE-SECRET");
	assert_int_equal(
	        http_request(f->client, "POST", url, headers, "BODY-SECRET", 11, 0, &resp, &err),
	        0);
	http_response_clear(&resp);
	log_set_sink(NULL, NULL);
	log_set_level(old);

	assert_string_equal(
	        test_http_request_header(test_http_server_request(f->srv, 0), "Authorization"),
	        "Bearer TOKEN-SECRET");
	assert_true(cap.len > 0);
	assert_non_null(strstr(cap.buf, "/keys/k1/release?<redacted>"));
	assert_non_null(strstr(cap.buf, "500"));
	assert_null(strstr(cap.buf, "SECRET"));
}

/* A bearer token never travels over plain HTTP: refused before any connection is made. */
static void test_authorization_needs_https(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *url = url_of(f, "/metadata/identity/oauth2/token?resource=x");
	static const char *const bearer[] = {"Metadata: true", "authorization: Bearer TOK-SECRET",
	                                     NULL};
	static const char *const metadata[] = {"Metadata: true", NULL};
	struct http_response resp = {0};
	struct skr_error err = {0};

	assert_int_equal(http_request(f->client, "GET", url, bearer, NULL, 0, 0, &resp, &err),
	                 -EPERM);
	assert_non_null(strstr(err.msg, "Authorization header over plain http://"));
	assert_null(strstr(err.msg, "SECRET"));
	assert_null(resp.body);
	assert_int_equal(test_http_server_request_count(f->srv), 0);

	/* The same URL without the credential (the IMDS token request itself) is fine. */
	test_http_server_reply(f->srv, "/metadata/identity/oauth2/token", 200, NULL, "{}");
	assert_int_equal(http_request(f->client, "GET", url, metadata, NULL, 0, 0, &resp, NULL), 0);
	assert_int_equal(resp.status, 200);
	http_response_clear(&resp);
	assert_int_equal(test_http_server_request_count(f->srv), 1);
}

/* ---- several threads share one client ---- */

struct worker {
	struct http_client *client;
	const char *url;
	int ok;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 5; i++) {
		struct http_response resp = {0};

		if (http_request(w->client, "GET", w->url, NULL, NULL, 0, 0, &resp, NULL) == 0 &&
		    resp.status == 200 && strcmp(resp.body, "shared") == 0)
			w->ok++;
		http_response_clear(&resp);
	}
	return NULL;
}

static void test_threads_share_client(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *url = url_of(f, "/shared");
	struct test_http_reply rep = {
	        .path = "/shared", .body = "shared", .delay_ms = 20, .sticky = true};
	pthread_t th[6];
	struct worker w[6];

	test_http_server_push(f->srv, &rep);
	for (size_t i = 0; i < ELEMENTSOF(th); i++) {
		w[i] = (struct worker){.client = f->client, .url = url};
		assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	}
	for (size_t i = 0; i < ELEMENTSOF(th); i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].ok, 5);
	}
	assert_int_equal(test_http_server_request_count(f->srv), 30);
}

static void test_url_redact(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	        {"https://a.b/c", "https://a.b/c"},
	        {"https://a.b/c?sig=x&se=1", "https://a.b/c?<redacted>"},
	        {"https://a.b/?", "https://a.b/?<redacted>"},
	        {"https://a.b/c#frag", "https://a.b/c?<redacted>"},
	        {"http://h:80/p/q?x", "http://h:80/p/q?<redacted>"},
	        {"", ""},
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_free_ char *r = http_url_redact(cases[i].in);

		assert_string_equal(r, cases[i].out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_get_and_post_round_trip, setup_http, teardown),
	        cmocka_unit_test_setup_teardown(test_put_empty_body_and_no_content_type, setup_http,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_retry_after_seconds, setup_http, teardown),
	        cmocka_unit_test_setup_teardown(test_retry_after_date_and_cap, setup_http,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_retryable_statuses, setup_http, teardown),
	        cmocka_unit_test_setup_teardown(test_non_retryable_statuses, setup_http, teardown),
	        cmocka_unit_test_setup_teardown(test_attempts_exhausted, setup_http, teardown),
	        cmocka_unit_test_setup_teardown(test_timeout, setup_http, teardown),
	        cmocka_unit_test_setup_teardown(test_dropped_connection, setup_http, teardown),
	        cmocka_unit_test_setup_teardown(test_body_too_big, setup_http, teardown),
	        cmocka_unit_test_setup_teardown(test_bad_arguments, setup_http, teardown),
	        cmocka_unit_test_setup_teardown(test_no_redirects, setup_http, teardown),
	        cmocka_unit_test_setup_teardown(test_logs_hold_no_secrets, setup_https, teardown),
	        cmocka_unit_test_setup_teardown(test_authorization_needs_https, setup_http,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_threads_share_client, setup_http, teardown),
	        cmocka_unit_test(test_connection_refused),
	        cmocka_unit_test(test_https_right_ca),
	        cmocka_unit_test(test_https_wrong_ca),
	        cmocka_unit_test(test_url_redact),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
