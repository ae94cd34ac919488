/* SPDX-License-Identifier: MIT */
/*
 * The SKR HTTP API (protocols.md §7.2), compatible with the Go sidecar's clients without its
 * quirks (§8). Private to sidecar/.
 *
 * Two layers:
 *   - api.c: routing, request parsing and the handlers, as plain functions over a parsed
 *     request (unit tests call sidecar_api_handle() without sockets);
 *   - api_server.c: libmicrohttpd on 127.0.0.1 and ::1 only. Its thread pool does the I/O and
 *     answers quick routes (GET /status, every refusal) itself; requests that reach the
 *     attester or a remote service are suspended and run on a separate worker pool, so any
 *     number of slow upstream calls never delays /status.
 *
 * Routes: GET /status; POST /attest/raw, /attest/combined, /attest/maa, /key/release.
 * Every error is exactly one body {"error":"<message>"} (Content-Type application/json):
 * 400 bad request, 403 refused (attestation, release policy, endpoint not allowed), 404 unknown
 * path or no such key, 405 wrong method (with Allow), 413 body over 64 KiB, 500 internal,
 * 502 upstream failure, 504 upstream timeout.
 *
 * Request bodies follow Go's binding:"required": a required field that is missing, null or the
 * empty string is a 400; a field of another JSON type is a 400; unknown fields are ignored.
 * runtime_data is base64 with padding in the standard alphabet (Go StdEncoding, what the Go
 * sidecar decodes) or the URL-safe one (Go URLEncoding: what the Go sidecar's own tests send,
 * and which the Go sidecar only accepted by luck when no '-' or '_' occurred); unpadded input,
 * whitespace and mixed alphabets are refused.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "skr.h"
#include "skr_error.h"

#define SIDECAR_API_MAX_BODY 65536

struct sidecar_status;
struct sidecar_audit;
struct secret;

/* What the handlers work with; all borrowed, shared by every thread. */
struct sidecar_api {
	const struct sidecar_config *cfg; /* endpoint allowlists */
	struct skr_attester *attester;    /* thread-safe (skr.h) */
	struct sidecar_status *status;
	struct sidecar_audit *audit; /* may be NULL: no audit records (tests) */
};

struct sidecar_api_request {
	const char *method;
	const char *path; /* without the query string */
	const char *body; /* the whole body (NUL-terminated), or NULL */
	size_t body_len;
	size_t content_length; /* announced or received size, even when the body was not kept */
};

struct sidecar_api_response {
	unsigned status;
	const char *allow; /* Allow header of a 405 (static string) */
	char *body;        /* JSON, NUL-terminated; malloc'ed, or inside @secret */
	size_t body_len;
	/*
	 * Set when the body carries a key or a token: the body lives in this locked memory and is
	 * erased when freed. The first bytes of secret->data hold the owning pointer, so that
	 * sidecar_api_secret_body_free() can free it given only @body (libmicrohttpd's free
	 * callback gets nothing else).
	 */
	struct secret *secret;
};

/*
 * Answer @req. Always fills @resp (a status and one JSON body) unless it returns -ENOMEM, in
 * which case nothing is allocated and the server answers 500 itself.
 */
int sidecar_api_handle(struct sidecar_api *api, const struct sidecar_api_request *req,
                       struct sidecar_api_response *resp);
void sidecar_api_response_clear(struct sidecar_api_response *resp);

/*
 * True when @method @path names a route that calls the attester or a remote service (the
 * server runs those on its worker pool). Refusals of such a request are still quick, but
 * routing them the same way keeps the rule simple.
 */
bool sidecar_api_route_is_slow(const char *method, const char *path);

/* The HTTP status for a libskr error code (the one mapping table; see api.c). */
unsigned sidecar_api_status_for_error(int code);

/* Free a response body created with @resp->secret set, given only its body pointer. */
void sidecar_api_secret_body_free(void *body);

/* ---------------------------------------------------------------------------------------------
 * The server (api_server.c)
 * ------------------------------------------------------------------------------------------- */

struct sidecar_api_server;

/*
 * Listen on 127.0.0.1:@port and [::1]:@port (@port 0: an ephemeral port, the same for both)
 * and serve @api. ::1 is skipped with a warning when the machine has no IPv6 loopback; any
 * other failure (port in use) is an error naming the address.
 */
int sidecar_api_server_start(struct sidecar_api *api, uint16_t port,
                             struct sidecar_api_server **out, struct skr_error *err);
uint16_t sidecar_api_server_port(const struct sidecar_api_server *srv);
/* Whether ::1 is served too. */
bool sidecar_api_server_has_ipv6(const struct sidecar_api_server *srv);

/* Stop accepting connections (the listening sockets are closed); requests in flight go on. */
void sidecar_api_server_quiesce(struct sidecar_api_server *srv);

/* Requests received and not yet fully answered. */
unsigned sidecar_api_server_in_flight(struct sidecar_api_server *srv);

/*
 * Wait until no request is in flight, at most @timeout_ms. 0, or -ETIMEDOUT with requests
 * still running (the caller must then not free anything they use).
 */
int sidecar_api_server_drain(struct sidecar_api_server *srv, long timeout_ms);

/* Stop the daemons and the workers. Only after a successful drain (or with nothing running). */
void sidecar_api_server_free(struct sidecar_api_server *srv);
