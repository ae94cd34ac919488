/* SPDX-License-Identifier: MIT */
/*
 * Private to libskr: Key Vault / Managed HSM request plumbing shared by the import and policy
 * calls (akv.c) and the release (release.c): endpoint and key path spelling, the bearer header,
 * and Key Vault's error bodies.
 */
#pragma once

#include <stddef.h>

#include "secret.h"
#include "skr_error.h"

struct http_client;
struct http_response;

#define AKV_DEFAULT_API_VERSION "7.4"

/*
 * A vault endpoint given as host[:port] or https://host[:port][/] → *base "https://host[:port]"
 * (malloc'ed) and *host (malloc'ed, may be NULL: the name its certificates must carry; IPv6
 * literals without brackets). http:// and other schemes, paths, queries, fragments and
 * credentials are refused (-EINVAL): the bearer token travels only over TLS to a bare vault.
 */
int akv_base_url(const char *endpoint, char **base, char **host, struct skr_error *err);

/* "7.4" or the Go config's "api-version=7.4" → "7.4" (a pointer into @in); NULL/"" → default. */
int akv_api_version(const char *in, const char **out, struct skr_error *err);

/*
 * "name" or "name/version" (Key Vault: 1–127 of [0-9A-Za-z-]; versions alike) → "keys/name[/
 * version]" (malloc'ed). Anything else is refused so a key id cannot rewrite the URL's path.
 */
int akv_key_path(const char *kid, char **path, struct skr_error *err);

/* "Authorization: Bearer <token>" in locked memory (NUL-terminated). */
int akv_bearer_header(const char *token, struct secret **out, struct skr_error *err);

/*
 * ": <code>: <message>" from Key Vault's {"error":{"code","message"}} (sanitized, bounded), or
 * "" when the body has none.
 */
void akv_error_reason(const struct http_response *resp, char *out, size_t size);

/*
 * The errno for a vault status: 400 -EINVAL, 401/403 -EACCES, 404 -ENOENT, 409 -EEXIST, 429
 * -EAGAIN, 5xx -EIO, others -EPROTO.
 */
int akv_status_errno(long status);

/* skr_akv_get_release_policy() over an existing client and a parsed endpoint. */
int akv_get_release_policy(struct http_client *c, const char *base, const char *api_version,
                           const char *kid, const char *bearer_token, char **policy_json,
                           struct skr_error *err);
