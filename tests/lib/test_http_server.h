/* SPDX-License-Identifier: MIT */
/*
 * A scripted HTTP(S) server for tests, on libmicrohttpd, bound to 127.0.0.1 on an ephemeral
 * port. Tests queue replies (status, headers, body, delay, or a dropped connection) and afterwards
 * inspect the requests the server received.
 *
 *	struct test_http_server *s;
 *	assert_int_equal(test_http_server_start(true, &s), 0);
 *	test_http_server_reply(s, "/vcek/v1/Milan/cert_chain", 200, "application/x-pem-file", pem);
 *	... point the client at test_http_server_url(s), ca_bundle = test_http_server_ca_file(s) ...
 *	assert_string_equal(test_http_server_request(s, 0)->method, "GET");
 *	test_http_server_stop(s);
 *
 * Matching: a request takes the first queued reply whose path equals the request path (query
 * excluded) or whose path is NULL; a reply is consumed unless sticky. A request nothing matches
 * gets 404 "no scripted reply for <path>" (404 is never retried by clients, so a missing script
 * fails fast). Every request is recorded, answered or not.
 *
 * HTTPS: start() makes a throwaway CA (EC P-256) and a server certificate for localhost and
 * 127.0.0.1 in memory with OpenSSL, and writes the CA's PEM to a temporary file that clients
 * use as their CA bundle; stop() removes it.
 *
 * All functions may be called while the server runs (requests are served on MHD's threads).
 * Out-of-memory inside the helper aborts: it is a test fixture.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct test_http_server;

struct test_http_reply {
	const char *path;         /* request path to answer, without query; NULL = any */
	unsigned status;          /* 0 = 200 */
	const char *content_type; /* NULL = no Content-Type header */
	const char *headers;      /* extra "Name: value" lines separated by '\n', or NULL */
	const void *body;         /* NULL = empty body */
	size_t body_len;          /* 0 with a non-NULL body = strlen(body) */
	unsigned delay_ms;        /* wait before answering (or dropping) */
	bool drop;                /* close the connection without any answer */
	bool sticky;              /* never consumed: answers every later matching request */
	bool chunked;             /* send the body chunked, without Content-Length */
};

struct test_http_request {
	char *method;
	char *target;   /* the raw request target: path and query as sent */
	char *path;     /* without the query */
	char **headers; /* "Name: value" lines */
	size_t n_headers;
	char *body; /* NUL-terminated */
	size_t body_len;
	uint16_t client_port; /* the client's source port: equal ports = a reused connection */
};

/* Start on 127.0.0.1, port chosen by the kernel. Returns 0 or a negative errno. */
int test_http_server_start(bool https, struct test_http_server **out);
/* Stop, remove the CA file, free everything (recorded requests included). NULL is a no-op. */
void test_http_server_stop(struct test_http_server *s);

uint16_t test_http_server_port(const struct test_http_server *s);
/* "http://127.0.0.1:PORT" or "https://127.0.0.1:PORT" (no trailing slash). */
const char *test_http_server_url(const struct test_http_server *s);
/* PEM file of the CA that issued the server certificate; NULL for plain HTTP. */
const char *test_http_server_ca_file(const struct test_http_server *s);

/* Queue a reply (copied). */
void test_http_server_push(struct test_http_server *s, const struct test_http_reply *reply);
/* Shorthand for the common case: @body is a C string (may be NULL). */
void test_http_server_reply(struct test_http_server *s, const char *path, unsigned status,
                            const char *content_type, const char *body);

/* Recorded requests in arrival order; pointers stay valid until reset or stop. */
size_t test_http_server_request_count(struct test_http_server *s);
const struct test_http_request *test_http_server_request(struct test_http_server *s, size_t i);
/* Value of header @name (case-insensitive) or NULL. */
const char *test_http_request_header(const struct test_http_request *r, const char *name);

/* Forget queued replies and recorded requests. */
void test_http_server_reset(struct test_http_server *s);

/* Write the PEM of a fresh CA unrelated to any server (for "wrong CA bundle" tests). */
int test_http_write_unrelated_ca(const char *path);
