/* SPDX-License-Identifier: MIT */
/*
 * Private to libskr: what the attester and tests need of the token verifier beyond skr.h.
 */
#pragma once

#include "skr.h"

struct http_client;

/*
 * A verifier that uses @http (borrowed: it must outlive the verifier) instead of a client of
 * its own, so the attester's timeouts, retries and CA bundle apply to key fetches too.
 */
int token_verifier_new_with_http(struct http_client *http, struct skr_token_verifier **out,
                                 struct skr_error *err);

/*
 * Key-set caching: a set is reused for @ttl_sec; a token whose kid is not in it forces a refetch
 * when the set is at least @min_refresh_sec old (defaults 600 and 60: issuers publish a new key
 * before signing with it, and the floor keeps tokens with made-up kids from turning the verifier
 * into a request amplifier against the issuer).
 */
void token_verifier_set_refresh(struct skr_token_verifier *v, long ttl_sec, long min_refresh_sec);

/*
 * skr_token_verifier_verify() without the "token from <issuer>: " prefix on errors, for callers
 * that name the token themselves ("MAA token: ").
 */
int token_verifier_verify(struct skr_token_verifier *v, const char *issuer_url, const char *token,
                          char **claims_json, struct skr_error *err);
