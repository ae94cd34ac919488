/* SPDX-License-Identifier: MIT */
/*
 * Azure bearer tokens for the key vault and storage (protocols.md §6.1, §6.2): IMDS managed
 * identity, or AKS workload identity (a federated token exchanged at Entra ID for an access
 * token), with a per-resource cache.
 *
 * The flow is chosen once, at creation, from the environment (AZURE_CLIENT_ID, AZURE_TENANT_ID,
 * AZURE_FEDERATED_TOKEN_FILE all set → workload identity), so a long-running process does not
 * change identity half-way and getenv() is not called concurrently with a setenv() elsewhere.
 *
 * Tokens are bearer secrets: they live in locked memory (struct secret), every heap copy the
 * HTTP and JSON libraries force on us is erased before it is freed, and they are never logged.
 *
 * Thread safety: the cache is guarded by id->lock, held while a token is fetched so that
 * concurrent callers wanting the same resource cause one request.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "cleanup.h"
#include "fileio.h"
#include "http.h"
#include "json_util.h"
#include "log.h"
#include "ossl.h"
#include "secret.h"
#include "skr.h"

#define IDENTITY_DEFAULT_IMDS "http://169.254.169.254"
#define IDENTITY_DEFAULT_AUTHORITY "https://login.microsoftonline.com/"
#define IDENTITY_IMDS_PATH "/metadata/identity/oauth2/token?api-version=2018-02-01"
#define IDENTITY_DEFAULT_TIMEOUT_MS 7000
/* The anchor makes 3 IMDS attempts, sleeping 1 s then 4 s; our client doubles from 1 s. */
#define IDENTITY_ATTEMPTS 3
#define IDENTITY_BACKOFF_MS 1000
/* A cached token is handed out until this long before it expires (then fetched again). */
#define IDENTITY_REFRESH_MARGIN_SEC 300
#define IDENTITY_MAX_CACHED 16
/* Token responses are a few KiB; a federated token file is a JWT of ~1–2 KiB. */
#define IDENTITY_MAX_RESPONSE (256u * 1024)
#define IDENTITY_MAX_ASSERTION (64u * 1024)

struct cached_token {
	char *resource;
	struct secret *token; /* NUL-terminated, len excludes the NUL */
	time_t expires_at;
};

struct skr_identity {
	pthread_mutex_t lock;
	struct http_client *http;
	bool workload;
	/* managed identity */
	char *imds_base; /* no trailing '/' */
	char *client_id; /* user-assigned identity, or NULL */
	/* workload identity */
	char *wi_client_id;
	char *wi_token_url; /* {authority}{tenant}/oauth2/v2.0/token */
	char *wi_token_file;

	struct cached_token cache[IDENTITY_MAX_CACHED];
	size_t n_cache;
};

DEFINE_CLEANUP_FUNC(struct skr_identity *, skr_identity_free)

static inline void curl_freep(char **p)
{
	if (*p)
		curl_free(*p);
}
#define _cleanup_curl_free_ _cleanup_(curl_freep)

/* ---------------------------------------------------------------------------------------------
 * Creation
 * ------------------------------------------------------------------------------------------- */

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* A tenant is a GUID or a domain name: anything else would change the URL's path. */
static bool tenant_valid(const char *t)
{
	if (!*t || strlen(t) > 256)
		return false;
	for (const char *p = t; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
			return false;
	return true;
}

static int setup_workload(struct skr_identity *id, const char *client_id, const char *tenant,
                          const char *file, struct skr_error *err)
{
	const char *authority = env_nonempty("AZURE_AUTHORITY_HOST");
	const char *slash;

	if (!authority)
		authority = IDENTITY_DEFAULT_AUTHORITY;
	/* The federated token is a credential: it only travels over TLS. */
	if (strncasecmp(authority, "https://", 8) != 0 || strpbrk(authority, "?# \t\r\n"))
		return skr_error_set(
		        err, -EINVAL,
		        "workload identity: AZURE_AUTHORITY_HOST \"%.128s\" must be an "
		        "https:// URL without query",
		        authority);
	if (!tenant_valid(tenant))
		return skr_error_set(err, -EINVAL,
		                     "workload identity: AZURE_TENANT_ID \"%.64s\" is not a tenant "
		                     "id or domain",
		                     tenant);
	slash = authority[strlen(authority) - 1] == '/' ? "" : "/";
	if (asprintf(&id->wi_token_url, "%s%s%s/oauth2/v2.0/token", authority, slash, tenant) < 0) {
		id->wi_token_url = NULL;
		return skr_error_set(err, -ENOMEM, "out of memory");
	}
	id->wi_client_id = strdup(client_id);
	id->wi_token_file = strdup(file);
	if (!id->wi_client_id || !id->wi_token_file)
		return skr_error_set(err, -ENOMEM, "out of memory");
	id->workload = true;
	return 0;
}

static int setup_imds(struct skr_identity *id, const struct skr_identity_config *cfg,
                      struct skr_error *err)
{
	const char *base = cfg->imds_endpoint && *cfg->imds_endpoint ? cfg->imds_endpoint
	                                                             : IDENTITY_DEFAULT_IMDS;
	size_t n;

	if (strncasecmp(base, "http://", 7) != 0 && strncasecmp(base, "https://", 8) != 0)
		return skr_error_set(
		        err, -EINVAL,
		        "managed identity: IMDS endpoint \"%.128s\" must be an http:// "
		        "or https:// URL",
		        base);
	if (strpbrk(base, "?# \t\r\n"))
		return skr_error_set(err, -EINVAL,
		                     "managed identity: IMDS endpoint \"%.128s\" may not carry a "
		                     "query, a fragment or white space",
		                     base);
	id->imds_base = strdup(base);
	if (!id->imds_base)
		return skr_error_set(err, -ENOMEM, "out of memory");
	n = strlen(id->imds_base);
	while (n > 0 && id->imds_base[n - 1] == '/')
		id->imds_base[--n] = '\0';
	if (cfg->client_id && *cfg->client_id) {
		id->client_id = strdup(cfg->client_id);
		if (!id->client_id)
			return skr_error_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

int skr_identity_new(const struct skr_identity_config *cfg, struct skr_identity **out,
                     struct skr_error *err)
{
	static const struct skr_identity_config defaults = {0};
	_cleanup_(skr_identity_freep) struct skr_identity *id = NULL;
	const char *wi_client = env_nonempty("AZURE_CLIENT_ID");
	const char *wi_tenant = env_nonempty("AZURE_TENANT_ID");
	const char *wi_file = env_nonempty("AZURE_FEDERATED_TOKEN_FILE");
	struct http_client_config hc = {0};
	int r;

	*out = NULL;
	if (!cfg)
		cfg = &defaults;
	id = calloc(1, sizeof(*id));
	if (!id)
		return skr_error_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&id->lock, NULL);

	if (wi_client && wi_tenant && wi_file)
		r = setup_workload(id, wi_client, wi_tenant, wi_file, err);
	else
		r = setup_imds(id, cfg, err);
	if (r < 0)
		return r;

	hc.ca_bundle = cfg->ca_bundle;
	hc.timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : IDENTITY_DEFAULT_TIMEOUT_MS;
	hc.max_attempts = IDENTITY_ATTEMPTS;
	hc.backoff_ms = IDENTITY_BACKOFF_MS;
	r = http_client_new(&hc, &id->http, err);
	if (r < 0)
		return skr_error_prefix(err, "identity: ");
	if (id->workload)
		log_info("identity: workload identity (client %s) via %s", id->wi_client_id,
		         id->wi_token_url);
	else
		log_info("identity: managed identity via IMDS at %s%s%s", id->imds_base,
		         id->client_id ? ", client " : "", id->client_id ? id->client_id : "");
	*out = TAKE_PTR(id);
	return 0;
}

static void cached_token_clear(struct cached_token *c)
{
	free(c->resource);
	secret_free(c->token);
	memset(c, 0, sizeof(*c));
}

void skr_identity_free(struct skr_identity *id)
{
	if (!id)
		return;
	for (size_t i = 0; i < id->n_cache; i++)
		cached_token_clear(&id->cache[i]);
	http_client_free(id->http);
	free(id->imds_base);
	free(id->client_id);
	free(id->wi_client_id);
	free(id->wi_token_url);
	free(id->wi_token_file);
	pthread_mutex_destroy(&id->lock);
	free(id);
}

/* ---------------------------------------------------------------------------------------------
 * Token responses
 * ------------------------------------------------------------------------------------------- */

/* A NUL-terminated copy of @len bytes in locked memory; ->len excludes the NUL. */
static struct secret *secret_string(const char *s, size_t len)
{
	struct secret *sec = secret_new(len + 1);

	if (!sec)
		return NULL;
	memcpy(sec->data, s, len);
	sec->data[len] = '\0';
	sec->len = len;
	return sec;
}

/* Copy an untrusted server string into an error text: bounded, no control characters. */
static void sanitize(const char *in, char *out, size_t size)
{
	size_t i = 0;

	for (; in && *in && i + 1 < size; in++)
		out[i++] = iscntrl((unsigned char)*in) ? ' ' : *in;
	out[i] = '\0';
}

/*
 * The reason in an error body: OAuth's {"error": "...", "error_description": "..."} (IMDS and
 * Entra) or the ARM style {"error": {"code", "message"}}.
 */
static void error_reason(const struct http_response *resp, char *out, size_t size)
{
	_cleanup_json_ json_object *root = NULL;
	char code[96] = "", desc[320] = "";
	json_object *e, *v;

	out[0] = '\0';
	if (!resp->body || json_parse(resp->body, resp->body_len, "error", &root, NULL) < 0 ||
	    !json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "error", &e))
		return;
	if (json_object_is_type(e, json_type_string)) {
		sanitize(json_object_get_string(e), code, sizeof(code));
		if (json_object_object_get_ex(root, "error_description", &v) &&
		    json_object_is_type(v, json_type_string))
			sanitize(json_object_get_string(v), desc, sizeof(desc));
	} else if (json_object_is_type(e, json_type_object)) {
		if (json_object_object_get_ex(e, "code", &v) &&
		    json_object_is_type(v, json_type_string))
			sanitize(json_object_get_string(v), code, sizeof(code));
		if (json_object_object_get_ex(e, "message", &v) &&
		    json_object_is_type(v, json_type_string))
			sanitize(json_object_get_string(v), desc, sizeof(desc));
	}
	if (code[0] || desc[0])
		snprintf(out, size, ": %s%s%s", code[0] ? code : "(no code)", desc[0] ? ": " : "",
		         desc);
}

/* A number sent as a JSON number (Entra) or as a decimal string (IMDS). */
static bool get_seconds(json_object *root, const char *name, long long *out)
{
	json_object *v;
	const char *s;
	char *end;

	if (!json_object_object_get_ex(root, name, &v))
		return false;
	if (json_object_is_type(v, json_type_int)) {
		*out = (long long)json_object_get_int64(v);
		return true;
	}
	if (json_object_is_type(v, json_type_double)) {
		double d = json_object_get_double(v);

		if (!isfinite(d) || d < 0 || d > 1e15)
			return false;
		*out = (long long)d;
		return true;
	}
	if (!json_object_is_type(v, json_type_string))
		return false;
	s = json_object_get_string(v);
	if (!isdigit((unsigned char)*s))
		return false;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0';
}

/*
 * access_token and its expiry from a 200 answer. Expiry: expires_on (absolute, IMDS) when
 * present, else now + expires_in; neither → 0 (the token is used once, not cached).
 */
static int parse_token_response(const struct http_response *resp, const char *what,
                                struct secret **token, time_t *expires_at, struct skr_error *err)
{
	_cleanup_json_ json_object *root = NULL;
	struct skr_error jerr = {0};
	const char *tok = NULL, *type = NULL;
	long long v;
	time_t now = time(NULL);
	int r;

	r = json_parse(resp->body, resp->body_len, what, &root, &jerr);
	if (r < 0)
		return skr_error_set(err, -EPROTO, "%s", jerr.msg);
	r = json_get_string(root, "access_token", true, &tok, &jerr);
	if (r < 0 || !*tok) {
		r = skr_error_set(err, -EPROTO, "%s has no access_token%s%s", what,
		                  jerr.msg[0] ? ": " : "", jerr.msg);
		goto out;
	}
	if (json_get_string(root, "token_type", false, &type, NULL) == 0 && type &&
	    strcasecmp(type, "Bearer") != 0) {
		r = skr_error_set(err, -EPROTO, "%s: token_type is \"%.32s\", not Bearer", what,
		                  type);
		goto out;
	}
	*expires_at = 0;
	if (get_seconds(root, "expires_on", &v) && v > 0)
		*expires_at = (time_t)v;
	else if (get_seconds(root, "expires_in", &v) && v > 0)
		*expires_at = now + (time_t)v;
	*token = secret_string(tok, strlen(tok));
	r = *token ? 0 : skr_error_set(err, -ENOMEM, "out of memory");
out:
	/* json-c's copy goes back to the heap with the tree: erase it first. */
	if (tok)
		secure_erase((char *)tok, strlen(tok));
	return r;
}

static int status_error(const struct http_response *resp, const char *what, const char *where,
                        struct skr_error *err)
{
	char reason[448];
	int code;

	error_reason(resp, reason, sizeof(reason));
	if (resp->status == 400 || resp->status == 401 || resp->status == 403 ||
	    resp->status == 404)
		code = -EACCES;
	else if (resp->status == 429 || resp->status >= 500)
		code = -EIO;
	else
		code = -EPROTO;
	return skr_error_set(err, code, "%s: %s answered HTTP %ld%s%s", what, where, resp->status,
	                     reason, code == -EIO ? " (after retries)" : "");
}

/* ---------------------------------------------------------------------------------------------
 * IMDS (§6.1)
 * ------------------------------------------------------------------------------------------- */

static int escape(const char *in, char **out, struct skr_error *err)
{
	*out = curl_easy_escape(NULL, in, 0);
	return *out ? 0 : skr_error_set(err, -ENOMEM, "out of memory");
}

static int imds_fetch(struct skr_identity *id, const char *resource, struct secret **token,
                      time_t *expires_at, struct skr_error *err)
{
	static const char *const headers[] = {"Metadata: true", "Accept: application/json", NULL};
	_cleanup_curl_free_ char *res = NULL, *cid = NULL;
	_cleanup_free_ char *url = NULL;
	struct http_response resp = {0};
	int r;

	r = escape(resource, &res, err);
	if (r < 0)
		return r;
	if (id->client_id) {
		r = escape(id->client_id, &cid, err);
		if (r < 0)
			return r;
	}
	if (asprintf(&url, "%s" IDENTITY_IMDS_PATH "&resource=%s%s%s", id->imds_base, res,
	             cid ? "&client_id=" : "", cid ? cid : "") < 0) {
		url = NULL;
		return skr_error_set(err, -ENOMEM, "out of memory");
	}
	log_debug("identity: IMDS token for %s", resource);
	r = http_request(id->http, "GET", url, headers, NULL, 0, IDENTITY_MAX_RESPONSE, &resp, err);
	if (r < 0)
		return skr_error_prefix(err, "managed identity (IMDS): ");
	if (resp.status != 200)
		r = status_error(&resp, "managed identity", "IMDS", err);
	else
		r = parse_token_response(&resp, "IMDS token response", token, expires_at, err);
	if (resp.body)
		secure_erase(resp.body, resp.body_len);
	http_response_clear(&resp);
	return r;
}

/* ---------------------------------------------------------------------------------------------
 * Workload identity (§6.2)
 * ------------------------------------------------------------------------------------------- */

/* The federated token, re-read for every request (the kubelet rotates it); erased on free. */
static int read_assertion(const char *path, struct secret **out, struct skr_error *err)
{
	char *buf = NULL;
	size_t len;
	int r;

	r = read_file(path, IDENTITY_MAX_ASSERTION, &buf, &len);
	if (r < 0)
		return skr_error_set(
		        err, r,
		        "workload identity: cannot read AZURE_FEDERATED_TOKEN_FILE %s: "
		        "%s",
		        path, r == -EFBIG ? "file too large" : strerror(-r));
	while (len > 0 && isspace((unsigned char)buf[len - 1]))
		len--;
	if (len == 0) {
		secure_free(buf, len + 1);
		return skr_error_set(err, -EINVAL,
		                     "workload identity: AZURE_FEDERATED_TOKEN_FILE %s is empty",
		                     path);
	}
	*out = secret_string(buf, len);
	secure_free(buf, len + 1);
	return *out ? 0 : skr_error_set(err, -ENOMEM, "out of memory");
}

/* The form body, built in locked memory since it carries the federated token. */
static int workload_body(const struct skr_identity *id, const char *resource,
                         const struct secret *assertion, struct secret **out, struct skr_error *err)
{
	_cleanup_curl_free_ char *cid = NULL, *scope = NULL;
	_cleanup_free_ char *scope_raw = NULL;
	char *assert_esc = NULL;
	size_t res_len = strlen(resource);
	struct secret *body = NULL;
	int n, r;

	/* scope = <resource>/.default; a resource given with its trailing '/' keeps one '/'. */
	while (res_len > 0 && resource[res_len - 1] == '/')
		res_len--;
	if (asprintf(&scope_raw, "%.*s/.default", (int)res_len, resource) < 0) {
		scope_raw = NULL;
		return skr_error_set(err, -ENOMEM, "out of memory");
	}
	r = escape(id->wi_client_id, &cid, err);
	if (r < 0)
		return r;
	r = escape(scope_raw, &scope, err);
	if (r < 0)
		return r;
	assert_esc = curl_easy_escape(NULL, (const char *)assertion->data, (int)assertion->len);
	if (!assert_esc)
		return skr_error_set(err, -ENOMEM, "out of memory");

#define WI_FORM                                                                                    \
	"client_id=%s&scope=%s&grant_type=client_credentials&client_assertion_type="               \
	"urn%%3Aietf%%3Aparams%%3Aoauth%%3Aclient-assertion-type%%3Ajwt-bearer&client_assertion=%" \
	"s"
	n = snprintf(NULL, 0, WI_FORM, cid, scope, assert_esc);
	if (n > 0)
		body = secret_new((size_t)n + 1);
	if (body) {
		snprintf((char *)body->data, (size_t)n + 1, WI_FORM, cid, scope, assert_esc);
		body->len = (size_t)n;
	}
#undef WI_FORM
	secure_erase(assert_esc, strlen(assert_esc));
	curl_free(assert_esc);
	if (!body)
		return skr_error_set(err, -ENOMEM, "out of memory");
	*out = body;
	return 0;
}

static int workload_fetch(struct skr_identity *id, const char *resource, struct secret **token,
                          time_t *expires_at, struct skr_error *err)
{
	static const char *const headers[] = {"Content-Type: application/x-www-form-urlencoded",
	                                      "Accept: application/json", NULL};
	_cleanup_secret_ struct secret *assertion = NULL, *body = NULL;
	struct http_response resp = {0};
	int r;

	r = read_assertion(id->wi_token_file, &assertion, err);
	if (r < 0)
		return r;
	r = workload_body(id, resource, assertion, &body, err);
	if (r < 0)
		return r;
	log_debug("identity: workload identity token for %s", resource);
	r = http_request(id->http, "POST", id->wi_token_url, headers, body->data, body->len,
	                 IDENTITY_MAX_RESPONSE, &resp, err);
	if (r < 0)
		return skr_error_prefix(err, "workload identity: ");
	if (resp.status != 200)
		r = status_error(&resp, "workload identity", id->wi_token_url, err);
	else
		r = parse_token_response(&resp, "workload identity token response", token,
		                         expires_at, err);
	if (resp.body)
		secure_erase(resp.body, resp.body_len);
	http_response_clear(&resp);
	return r;
}

/* ---------------------------------------------------------------------------------------------
 * Cache
 * ------------------------------------------------------------------------------------------- */

static struct cached_token *cache_find(struct skr_identity *id, const char *resource)
{
	for (size_t i = 0; i < id->n_cache; i++)
		if (strcmp(id->cache[i].resource, resource) == 0)
			return &id->cache[i];
	return NULL;
}

/* Remember @token (ownership taken on success) for @resource. */
static int cache_store(struct skr_identity *id, const char *resource, struct secret *token,
                       time_t expires_at)
{
	struct cached_token *c = cache_find(id, resource);

	if (!c) {
		char *name = strdup(resource);

		if (!name)
			return -ENOMEM;
		if (id->n_cache < IDENTITY_MAX_CACHED) {
			c = &id->cache[id->n_cache++];
		} else {
			/* Evict the entry closest to expiry. */
			c = &id->cache[0];
			for (size_t i = 1; i < id->n_cache; i++)
				if (id->cache[i].expires_at < c->expires_at)
					c = &id->cache[i];
			cached_token_clear(c);
		}
		c->resource = name;
	}
	secret_free(c->token);
	c->token = token;
	c->expires_at = expires_at;
	return 0;
}

int skr_identity_get_token(struct skr_identity *id, const char *resource, struct secret **token,
                           struct skr_error *err)
{
	_cleanup_secret_ struct secret *fresh = NULL;
	struct cached_token *c;
	time_t now = time(NULL), expires_at = 0;
	int r = 0;

	*token = NULL;
	if (!id)
		return skr_error_set(err, -EINVAL, "identity: not configured");
	if (!resource || !*resource || strpbrk(resource, " \t\r\n"))
		return skr_error_set(err, -EINVAL, "identity: resource \"%.128s\" is not a URL",
		                     resource ? resource : "");

	pthread_mutex_lock(&id->lock);
	c = cache_find(id, resource);
	if (c && c->expires_at - IDENTITY_REFRESH_MARGIN_SEC > now) {
		*token = secret_string((const char *)c->token->data, c->token->len);
		if (!*token)
			r = skr_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (id->workload)
		r = workload_fetch(id, resource, &fresh, &expires_at, err);
	else
		r = imds_fetch(id, resource, &fresh, &expires_at, err);
	if (r < 0)
		goto out;
	*token = secret_string((const char *)fresh->data, fresh->len);
	if (!*token) {
		r = skr_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	/* A token without a usable lifetime, or one about to expire, is not kept. */
	if (expires_at - IDENTITY_REFRESH_MARGIN_SEC > now &&
	    cache_store(id, resource, fresh, expires_at) == 0)
		fresh = NULL;
	log_info("identity: token for %s obtained (%s, expires in %lld s)", resource,
	         id->workload ? "workload identity" : "managed identity",
	         expires_at ? (long long)(expires_at - now) : -1LL);
out:
	pthread_mutex_unlock(&id->lock);
	return r;
}

/* ---------------------------------------------------------------------------------------------
 * Audience of a vault endpoint (§5)
 * ------------------------------------------------------------------------------------------- */

const char *skr_akv_resource_for(const char *akv_endpoint)
{
	/* The anchor's rule: a Managed HSM endpoint is one whose name contains "managedhsm". */
	if (akv_endpoint && strcasestr(akv_endpoint, "managedhsm"))
		return "https://managedhsm.azure.net";
	return "https://vault.azure.net";
}
