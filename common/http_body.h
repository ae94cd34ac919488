/* SPDX-License-Identifier: MIT */
/*
 * A request body received in pieces (libmicrohttpd's upload callback), bounded and erased.
 *
 * Bodies carry bearer tokens and private keys (key imports), so the buffer is erased whenever it
 * is dropped or grown, never realloc'ed. A body over @max is never stored. A client already
 * sending it (curl without "Expect: 100-continue") would see a connection reset instead of the
 * 413 if the server answered and closed mid-upload, so up to @drain_max bytes are read and
 * discarded before answering; a larger announced body is answered at once, and a connection
 * sending more than that is dropped.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct http_body {
	char *data; /* NUL-terminated; NULL until the first byte */
	size_t len, cap;
	size_t received;  /* bytes seen, stored or not */
	size_t announced; /* Content-Length, 0 when absent or malformed */
	size_t max;       /* largest body stored */
	size_t drain_max; /* largest body read (and discarded) to answer 413 cleanly */
	bool too_large;
};

/* An empty body accepting up to @max bytes, draining up to @drain_max (≥ @max). */
void http_body_init(struct http_body *b, size_t max, size_t drain_max);

/*
 * Record the request's Content-Length (@content_length may be NULL). True when the body is
 * already known to be too large and should be answered before it is read: the client waits for
 * "100 Continue" (@expect), or it announced more than drain_max.
 */
bool http_body_announce(struct http_body *b, const char *content_length, const char *expect);

/*
 * Take @n more bytes. 0: keep reading; -E2BIG: keep the connection but the body is too large
 * (nothing stored, the answer is 413 once it ends); -ECONNABORTED: drop the connection (more
 * than drain_max sent); -ENOMEM.
 */
int http_body_receive(struct http_body *b, const char *data, size_t n);

/* The body's size as far as known: what was stored, or for a too-large one the larger of what
 * was announced and what was received (for the 413's message). */
size_t http_body_size(const struct http_body *b);

/* Erase and free the stored bytes; the counters stay. */
void http_body_erase(struct http_body *b);
