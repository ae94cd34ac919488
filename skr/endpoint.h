/* SPDX-License-Identifier: MIT */
/*
 * Private to libskr: the first steps of turning a service endpoint (host[:port] or an https://
 * URL) into a base URL, shared by the MAA and Key Vault clients. What each service then accepts
 * (paths, ports, the spelling of the host) stays with its client.
 */
#pragma once

#include <stdbool.h>

#include <curl/curl.h>

#include "skr_error.h"

/*
 * Parse @endpoint of the service @what ("MAA", "Key Vault": it starts every message) into @out,
 * refusing an empty endpoint, white space or control characters, and a scheme other than
 * https:// (a bare host gets https://). @scheme_why, when not NULL, is appended to the refusal
 * of another scheme (e.g. ": bearer tokens never travel in clear"). -EINVAL names the endpoint
 * (at most 128 characters) and the fault; -ENOMEM. On success the caller frees @out with
 * curl_url_cleanup().
 */
int endpoint_parse(const char *what, const char *endpoint, const char *scheme_why, CURLU **out,
                   struct skr_error *err);

/* Whether @u has the part @what (user, password, query, fragment, ...). */
bool endpoint_has_part(CURLU *u, CURLUPart what);
