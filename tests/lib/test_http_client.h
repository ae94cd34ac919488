/* SPDX-License-Identifier: MIT */
/*
 * One HTTP(S) request with libcurl, as a client of the servers under test (devcloud, the
 * sidecar daemon) sees them: status, body, and the response headers tests check. No proxy.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

struct test_http_client_request {
	const char *method;         /* NULL: GET */
	const char *url;            /* http:// or https:// */
	const char *ca_bundle;      /* PEM file for https (NULL: the system's) */
	const char *const *headers; /* "Name: value", NULL-terminated (may be NULL) */
	const char *bearer;         /* Authorization: Bearer @bearer (NULL: none) */
	const char *body;           /* sent as application/json (NULL: no body) */
	size_t body_len;            /* 0: strlen(body) */
	long timeout_s;             /* 0: 30 s */
	bool quiet;                 /* no message on a transport error (polling a start) */
};

struct test_http_client_response {
	CURLcode rc; /* transport outcome */
	long status; /* HTTP status, 0 on a transport error */
	char *body;  /* NUL-terminated, never NULL after a request */
	size_t len;
	char *content_type;     /* NULL if none */
	char *allow;            /* Allow header, NULL if none */
	char *www_authenticate; /* WWW-Authenticate header, NULL if none */
};

/* Perform @req into @res (cleared first); returns res->status. A transport error is printed. */
long test_http_client_request(const struct test_http_client_request *req,
                              struct test_http_client_response *res);

void test_http_client_response_clear(struct test_http_client_response *res);
