/* SPDX-License-Identifier: MIT */
/*
 * RS256 token verification against issuers' published keys (skr.h "Token verification without
 * an attester"), with a small per-issuer cache of key sets. The attester's skr_token_verify()
 * and the key vault side of devcloud both go through here, so there is one cache and one
 * refresh policy.
 *
 * Thread safety: the cache is guarded by v->lock, which is held while a key set is fetched so
 * that concurrent verifications of tokens from one issuer fetch it once; signatures are checked
 * outside the lock.
 */
#include "token_verifier.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "http.h"
#include "jwt.h"
#include "log.h"
#include "maa.h"
#include "ossl.h"

#define VERIFIER_DEFAULT_TTL_SEC 600
#define VERIFIER_DEFAULT_MIN_REFRESH_SEC 60
/* Issuers are named by configuration (policy authorities, the MAA endpoint), so few. */
#define VERIFIER_MAX_ISSUERS 16
#define VERIFIER_DEFAULT_TIMEOUT_MS 10000

struct issuer_keys {
	char *issuer; /* normalized: https://host[:port][/path], no trailing '/' */
	char *jwks;
	size_t jwks_len;
	time_t fetched;
	time_t used; /* for eviction */
};

struct skr_token_verifier {
	pthread_mutex_t lock;
	struct http_client *http;
	bool own_http;
	long ttl_sec, min_refresh_sec;
	struct issuer_keys issuers[VERIFIER_MAX_ISSUERS];
	size_t n_issuers;
};

DEFINE_CLEANUP_FUNC(struct skr_token_verifier *, skr_token_verifier_free)

static int verifier_alloc(struct skr_token_verifier **out, struct skr_error *err)
{
	struct skr_token_verifier *v = calloc(1, sizeof(*v));

	if (!v)
		return skr_error_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&v->lock, NULL);
	v->ttl_sec = VERIFIER_DEFAULT_TTL_SEC;
	v->min_refresh_sec = VERIFIER_DEFAULT_MIN_REFRESH_SEC;
	*out = v;
	return 0;
}

int skr_token_verifier_new(const char *ca_bundle, struct skr_token_verifier **out,
                           struct skr_error *err)
{
	_cleanup_(skr_token_verifier_freep) struct skr_token_verifier *v = NULL;
	struct http_client_config hc = {
	        .ca_bundle = ca_bundle,
	        .timeout_ms = VERIFIER_DEFAULT_TIMEOUT_MS,
	};
	int r;

	*out = NULL;
	r = verifier_alloc(&v, err);
	if (r < 0)
		return r;
	r = http_client_new(&hc, &v->http, err);
	if (r < 0)
		return skr_error_prefix(err, "token verifier: ");
	v->own_http = true;
	*out = TAKE_PTR(v);
	return 0;
}

int token_verifier_new_with_http(struct http_client *http, struct skr_token_verifier **out,
                                 struct skr_error *err)
{
	int r;

	*out = NULL;
	if (!http)
		return skr_error_set(err, -EINVAL, "token verifier: no HTTP client");
	r = verifier_alloc(out, err);
	if (r < 0)
		return r;
	(*out)->http = http;
	return 0;
}

void token_verifier_set_refresh(struct skr_token_verifier *v, long ttl_sec, long min_refresh_sec)
{
	pthread_mutex_lock(&v->lock);
	v->ttl_sec = ttl_sec >= 0 ? ttl_sec : VERIFIER_DEFAULT_TTL_SEC;
	v->min_refresh_sec = min_refresh_sec >= 0 ? min_refresh_sec : 0;
	pthread_mutex_unlock(&v->lock);
}

static void issuer_keys_clear(struct issuer_keys *k)
{
	free(k->issuer);
	free(k->jwks);
	memset(k, 0, sizeof(*k));
}

void skr_token_verifier_free(struct skr_token_verifier *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n_issuers; i++)
		issuer_keys_clear(&v->issuers[i]);
	if (v->own_http)
		http_client_free(v->http);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

/* ---------------------------------------------------------------------------------------------
 * Key cache (called under v->lock)
 * ------------------------------------------------------------------------------------------- */

static struct issuer_keys *cache_find(struct skr_token_verifier *v, const char *issuer)
{
	for (size_t i = 0; i < v->n_issuers; i++)
		if (strcmp(v->issuers[i].issuer, issuer) == 0)
			return &v->issuers[i];
	return NULL;
}

/* A slot for @issuer: a free one, else the least recently used one (its keys are dropped). */
static struct issuer_keys *cache_slot(struct skr_token_verifier *v)
{
	struct issuer_keys *lru;

	if (v->n_issuers < VERIFIER_MAX_ISSUERS)
		return &v->issuers[v->n_issuers++];
	lru = &v->issuers[0];
	for (size_t i = 1; i < v->n_issuers; i++)
		if (v->issuers[i].used < lru->used)
			lru = &v->issuers[i];
	issuer_keys_clear(lru);
	return lru;
}

/* Fetch @issuer's key set into its slot (created on success only). */
static int cache_fetch(struct skr_token_verifier *v, const char *issuer, time_t now,
                       struct issuer_keys **slot, struct skr_error *err)
{
	_cleanup_free_ char *jwks = NULL, *name = NULL;
	struct issuer_keys *k;
	size_t jwks_len;
	int r;

	r = jwks_fetch(v->http, issuer, &jwks, &jwks_len, err);
	if (r < 0)
		return r;
	k = cache_find(v, issuer);
	if (!k) {
		name = strdup(issuer);
		if (!name)
			return skr_error_set(err, -ENOMEM, "out of memory");
		k = cache_slot(v);
		k->issuer = TAKE_PTR(name);
	}
	free(k->jwks);
	k->jwks = TAKE_PTR(jwks);
	k->jwks_len = jwks_len;
	k->fetched = now;
	log_debug("token verifier: fetched the signing keys of %s", issuer);
	*slot = k;
	return 0;
}

/*
 * The key of @issuer with @kid: from the cached set unless it is older than the TTL; a kid the
 * cached set lacks triggers one refetch (the issuer may have rotated its keys), at most once
 * per min_refresh_sec.
 */
static int issuer_key(struct skr_token_verifier *v, const char *issuer, const char *kid,
                      EVP_PKEY **key, struct skr_error *err)
{
	struct skr_error kerr = {0};
	struct issuer_keys *k;
	time_t now = time(NULL);
	bool fresh = false;
	int r = 0;

	pthread_mutex_lock(&v->lock);
	k = cache_find(v, issuer);
	if (!k || now - k->fetched >= v->ttl_sec) {
		r = cache_fetch(v, issuer, now, &k, err);
		if (r < 0)
			goto out;
		fresh = true;
	}
	k->used = now;
	r = jwks_find_key(k->jwks, k->jwks_len, kid, key, &kerr);
	if (r == -ENOENT && !fresh && now - k->fetched >= v->min_refresh_sec) {
		log_debug("token verifier: kid \"%.64s\" unknown, refetching the keys of %s", kid,
		          issuer);
		r = cache_fetch(v, issuer, now, &k, err);
		if (r < 0)
			goto out;
		skr_error_clear(&kerr);
		r = jwks_find_key(k->jwks, k->jwks_len, kid, key, &kerr);
	}
	if (r < 0)
		skr_error_set(err, r, "%s (issuer %s)", kerr.msg, issuer);
out:
	pthread_mutex_unlock(&v->lock);
	return r;
}

/* ---------------------------------------------------------------------------------------------
 * Verification
 * ------------------------------------------------------------------------------------------- */

/* "https://host[:port][/path]" for an issuer given as a URL or a bare host[:port]. */
static int issuer_normalize(const char *issuer_url, char **out, struct skr_error *err)
{
	struct skr_error e = {0};
	int r = maa_base_url(issuer_url, out, &e);

	if (r < 0)
		return skr_error_set(err, r, "issuer: %s", e.msg);
	return 0;
}

int token_verifier_verify(struct skr_token_verifier *v, const char *issuer_url, const char *token,
                          char **claims_json, struct skr_error *err)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	_cleanup_free_ char *issuer = NULL;
	struct jwt j = {0};
	const char *kid;
	int r;

	*claims_json = NULL;
	if (!v)
		return skr_error_set(err, -EINVAL, "no token verifier");
	r = issuer_normalize(issuer_url, &issuer, err);
	if (r < 0)
		return r;
	if (!token || !*token)
		return skr_error_set(err, -EINVAL, "token is missing");
	r = jwt_parse(token, strlen(token), &j, err);
	if (r < 0)
		return r;
	/* Refuse "none"/HS256 before fetching anything on the token's behalf. */
	r = jwt_check_alg_rs256(&j, err);
	if (r < 0)
		goto out;
	kid = jwt_header_string(&j, "kid");
	if (!kid) {
		r = skr_error_set(err, -EINVAL, "token header has no \"kid\"");
		goto out;
	}
	/*
	 * Keys always come from the issuer the caller expects, never from the token's own "iss",
	 * "jku" or "x5u": a token cannot choose who vouches for it.
	 */
	r = issuer_key(v, issuer, kid, &key, err);
	if (r < 0)
		goto out;
	r = jwt_verify_rs256(&j, token, key, err);
	if (r < 0)
		goto out;
	r = jwt_check_time(&j, time(NULL), JWT_CLOCK_SKEW_SEC, true, err);
	if (r < 0)
		goto out;
	r = jwt_check_issuer(&j, issuer, err);
	if (r < 0)
		goto out;
	*claims_json = strndup(j.payload_json, j.payload_len);
	if (!*claims_json)
		r = skr_error_set(err, -ENOMEM, "out of memory");
out:
	jwt_clear(&j);
	return r;
}

int skr_token_verifier_verify(struct skr_token_verifier *v, const char *issuer_url,
                              const char *token, char **claims_json, struct skr_error *err)
{
	int r = token_verifier_verify(v, issuer_url, token, claims_json, err);

	if (r < 0)
		skr_error_prefix(err, "token from %.128s: ", issuer_url ? issuer_url : "(none)");
	return r;
}

int skr_token_peek_issuer(const char *token, char **issuer, struct skr_error *err)
{
	struct jwt j = {0};
	const char *iss;
	int r;

	*issuer = NULL;
	if (!token || !*token)
		return skr_error_set(err, -EINVAL, "token is missing");
	r = jwt_parse(token, strlen(token), &j, err);
	if (r < 0)
		return skr_error_prefix(err, "token: ");
	iss = jwt_payload_string(&j, "iss");
	if (!iss || !*iss) {
		r = skr_error_set(err, -EINVAL, "token has no \"iss\" claim");
	} else {
		*issuer = strdup(iss);
		r = *issuer ? 0 : skr_error_set(err, -ENOMEM, "out of memory");
	}
	jwt_clear(&j);
	return r;
}
