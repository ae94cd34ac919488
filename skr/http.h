/* SPDX-License-Identifier: MIT */
/*
 * Private to libskr: an HTTP(S) client over libcurl with the project's rules built in. TLS
 * verification is always on (a CA bundle may be configured, never disabled); every request has
 * a timeout; retryable failures (transport errors, 408, 429, 5xx) are retried with backoff,
 * honouring Retry-After; connections are reused; redirects are never followed.
 *
 * A client may be shared by threads: it lends each request one of a few pooled curl handles.
 */
#pragma once

#include <stddef.h>

#include "skr_error.h"

struct http_client_config {
	const char *ca_bundle;   /* PEM file; NULL = system store */
	long connect_timeout_ms; /* default 5000 */
	long timeout_ms;         /* one attempt, connect to last byte; default 30000 */
	int max_attempts;        /* default 3; 1 = no retry */
	long backoff_ms;         /* first retry delay, doubled each time; default 500 */
	long max_retry_after_ms; /* cap on a server's Retry-After and on backoff, default 30000 */
	const char *user_agent;  /* NULL = "confidential-sidecar/<version>" */
};

/*
 * Release a response only with http_response_clear(): bodies carry tokens and released keys,
 * and it erases the body before freeing it. Taking the body out (TAKE_PTR) is for bodies known
 * to hold nothing secret (public certificates).
 */
struct http_response {
	long status;
	char *body; /* NUL-terminated, malloc'ed */
	size_t body_len;
	char *content_type; /* malloc'ed or NULL */
};

struct http_client;

int http_client_new(const struct http_client_config *cfg, struct http_client **out,
                    struct skr_error *err);
void http_client_free(struct http_client *c);

/*
 * Perform @method on @url with extra @headers ("Name: value", NULL-terminated, may be NULL) and
 * an optional body. Any HTTP status is a success of this function (the caller judges it) once
 * retries are exhausted (the last attempt's response is returned); transport failures return
 * -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET (connection dropped), -EPROTO (TLS or protocol),
 * -EHOSTUNREACH. The response body is capped at @max_body bytes (0 = 16 MiB; -EFBIG, not
 * retried). Retried: transport errors other than TLS verification, 408, 429, 500-599.
 * Errors name the method and the URL with its query string removed (SAS signatures never reach
 * a message); headers and bodies are never logged. A body with no Content-Type header is sent
 * without one. resp->body is always NUL-terminated (empty string when there is no body).
 * A request carrying an Authorization header to a plain http:// URL is refused (-EPERM) before
 * anything is sent; header copies made for libcurl are erased after the request.
 */
int http_request(struct http_client *c, const char *method, const char *url,
                 const char *const *headers, const void *body, size_t body_len, size_t max_body,
                 struct http_response *resp, struct skr_error *err);

void http_response_clear(struct http_response *r);

/* @url with everything from '?' on replaced by "?<redacted>"; malloc'ed. */
char *http_url_redact(const char *url);

/*
 * The {"error":{"code","message"}} body Azure services answer errors with (MAA, Key Vault):
 * both fields sanitized (untrusted: bounded, control characters blanked), "" when absent.
 */
void http_azure_error_fields(const struct http_response *resp, char *code, size_t code_size,
                             char *message, size_t message_size);
