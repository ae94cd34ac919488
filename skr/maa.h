/* SPDX-License-Identifier: MIT */
/*
 * Private to libskr: the MAA attest call (protocols.md §4.1) and MAA endpoint spelling.
 */
#pragma once

#include "skr_error.h"

struct http_client;

/*
 * "https://host[:port]" for an MAA endpoint given as host[:port] or https://host[:port][/]: the
 * host lower-cased, port 443 left out, so that it is the one spelling of the token issuer (iss)
 * as well as the base of the attest URL. http:// and other schemes, a path (MAA serves at its
 * host's root), queries, fragments and credentials are refused (-EINVAL). malloc'ed.
 */
int maa_base_url(const char *endpoint, char **out, struct skr_error *err);

/*
 * POST @body (maa_request_build()) to @endpoint's /attest/SevSnpVm?api-version=2020-10-01 and
 * return the token (malloc'ed; a bearer secret: never log it). Errors carry MAA's own
 * {"error":{"code","message"}}: -EACCES when MAA refuses the evidence (400/401/403), -EIO for
 * 5xx once the client's retries are spent, -EPROTO for any other status or a malformed answer.
 */
int maa_attest(struct http_client *c, const char *endpoint, const char *body, char **token,
               struct skr_error *err);
