/* SPDX-License-Identifier: MIT */
/*
 * Key Vault / Managed HSM client (protocols.md §5.1, §5.2): import a key with its release
 * policy, read a key's release policy back, and the plumbing release.c shares (akv.h).
 *
 * An import body carries key material: it is built directly in locked memory and never passes
 * through json-c (whose heap copies could not be erased).
 */
#include "akv.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "b64.h"
#include "cleanup.h"
#include "endpoint.h"
#include "http.h"
#include "json_util.h"
#include "log.h"
#include "ossl.h"
#include "skr.h"

#define AKV_DEFAULT_TIMEOUT_MS 30000
#define AKV_ATTEMPTS 3
/* Key Vault answers are a few KiB (an RSA-16384 public key is the largest part). */
#define AKV_MAX_RESPONSE (1024u * 1024)
/* A policy is a small JSON document; Key Vault caps it far lower. */
#define AKV_MAX_POLICY (64u * 1024)
#define AKV_MAX_NAME 127

DEFINE_CLEANUP_FUNC(CURLU *, curl_url_cleanup)
DEFINE_CLEANUP_FUNC(struct http_client *, http_client_free)

static inline void curl_freep(char **p)
{
	if (*p)
		curl_free(*p);
}
#define _cleanup_curl_free_ _cleanup_(curl_freep)

/* ---------------------------------------------------------------------------------------------
 * Spelling of endpoints, versions, key ids
 * ------------------------------------------------------------------------------------------- */

int akv_base_url(const char *endpoint, char **base, char **host, struct skr_error *err)
{
	_cleanup_(curl_url_cleanupp) CURLU *u = NULL;
	_cleanup_curl_free_ char *h = NULL, *port = NULL, *path = NULL;
	size_t hlen;
	int r;

	*base = NULL;
	if (host)
		*host = NULL;
	r = endpoint_parse("Key Vault", endpoint, ": bearer tokens never travel in clear", &u, err);
	if (r < 0)
		return r;
	if (curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK || !*h)
		return skr_error_set(err, -EINVAL,
		                     "Key Vault endpoint \"%.128s\" is not a valid host or URL",
		                     endpoint);
	if (endpoint_has_part(u, CURLUPART_USER) || endpoint_has_part(u, CURLUPART_PASSWORD) ||
	    endpoint_has_part(u, CURLUPART_QUERY) || endpoint_has_part(u, CURLUPART_FRAGMENT) ||
	    (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && strcmp(path, "/") != 0 &&
	     *path))
		return skr_error_set(err, -EINVAL,
		                     "Key Vault endpoint \"%.128s\" must be a host[:port] or "
		                     "https://host[:port] without path, query or credentials",
		                     endpoint);
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
		port = NULL;
	if (asprintf(base, "https://%s%s%s", h, port ? ":" : "", port ? port : "") < 0) {
		*base = NULL;
		return skr_error_set(err, -ENOMEM, "out of memory");
	}
	if (host) {
		/* IPv6 literals come bracketed; a certificate's IP address does not. */
		hlen = strlen(h);
		if (hlen > 2 && h[0] == '[' && h[hlen - 1] == ']')
			*host = strndup(h + 1, hlen - 2);
		else
			*host = strdup(h);
		if (!*host) {
			free(*base);
			*base = NULL;
			return skr_error_set(err, -ENOMEM, "out of memory");
		}
	}
	return 0;
}

int akv_api_version(const char *in, const char **out, struct skr_error *err)
{
	const char *v = in;

	*out = AKV_DEFAULT_API_VERSION;
	if (!in || !*in)
		return 0;
	if (strncmp(v, "api-version=", 12) == 0)
		v += 12;
	if (!*v || strlen(v) > 32)
		return skr_error_set(err, -EINVAL, "Key Vault api-version \"%.40s\" is invalid",
		                     in);
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
			return skr_error_set(err, -EINVAL,
			                     "Key Vault api-version \"%.40s\" is invalid (expected "
			                     "e.g. 7.4)",
			                     in);
	*out = v;
	return 0;
}

static bool segment_valid(const char *s, size_t len)
{
	if (len == 0 || len > AKV_MAX_NAME)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

int akv_key_path(const char *kid, char **path, struct skr_error *err)
{
	const char *slash;
	size_t len;

	*path = NULL;
	if (!kid || !*kid)
		return skr_error_set(err, -EINVAL, "key name (kid) is empty");
	len = strlen(kid);
	slash = strchr(kid, '/');
	if (slash ? !segment_valid(kid, (size_t)(slash - kid)) ||
	                    !segment_valid(slash + 1, len - (size_t)(slash - kid) - 1)
	          : !segment_valid(kid, len))
		return skr_error_set(err, -EINVAL,
		                     "key \"%.128s\" is not a key name or name/version (1-127 "
		                     "letters, digits and '-' each)",
		                     kid);
	if (asprintf(path, "keys/%s", kid) < 0) {
		*path = NULL;
		return skr_error_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

int akv_bearer_header(const char *token, struct secret **out, struct skr_error *err)
{
	static const char prefix[] = "Authorization: Bearer ";
	size_t len;
	struct secret *s;

	*out = NULL;
	if (!token || !*token)
		return skr_error_set(err, -EINVAL, "no bearer token for the vault");
	/* One header line: a CR/LF would let the token smuggle in another header. */
	if (strpbrk(token, "\r\n"))
		return skr_error_set(err, -EINVAL, "the bearer token contains a line break");
	len = strlen(token);
	s = secret_new(sizeof(prefix) + len);
	if (!s)
		return skr_error_set(err, -ENOMEM, "out of memory");
	memcpy(s->data, prefix, sizeof(prefix) - 1);
	memcpy(s->data + sizeof(prefix) - 1, token, len);
	s->data[sizeof(prefix) - 1 + len] = '\0';
	*out = s;
	return 0;
}

void akv_error_reason(const struct http_response *resp, char *out, size_t size)
{
	char code[96], message[320];

	out[0] = '\0';
	http_azure_error_fields(resp, code, sizeof(code), message, sizeof(message));
	if (code[0] || message[0])
		snprintf(out, size, ": %s%s%s", code[0] ? code : "(no code)",
		         message[0] ? ": " : "", message);
}

int akv_status_errno(long status)
{
	switch (status) {
	case 400:
		return -EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 409:
		return -EEXIST;
	case 429:
		return -EAGAIN;
	default:
		return status >= 500 && status <= 599 ? -EIO : -EPROTO;
	}
}

/* The common wording of a refused vault call. */
static int status_error(const struct http_response *resp, const char *what, const char *base,
                        struct skr_error *err)
{
	char reason[448];
	int code = akv_status_errno(resp->status);
	const char *hint = "";

	akv_error_reason(resp, reason, sizeof(reason));
	if (resp->status == 401)
		hint = " (the bearer token was refused: check its audience and expiry)";
	else if (resp->status == 403)
		hint = " (the identity lacks the permission for this operation)";
	else if (code == -EIO || code == -EAGAIN)
		hint = " (after retries)";
	return skr_error_set(err, code, "%s: %s answered HTTP %ld%s%s", what, base, resp->status,
	                     reason, hint);
}

static int client_new(const char *ca_bundle, long timeout_ms, struct http_client **out,
                      struct skr_error *err)
{
	struct http_client_config hc = {
	        .ca_bundle = ca_bundle,
	        .timeout_ms = timeout_ms > 0 ? timeout_ms : AKV_DEFAULT_TIMEOUT_MS,
	        .max_attempts = AKV_ATTEMPTS,
	};

	return http_client_new(&hc, out, err);
}

/* ---------------------------------------------------------------------------------------------
 * Import (§5.1)
 * ------------------------------------------------------------------------------------------- */

/* A JWK is an object: checked without parsing it, since a parser would copy the key. */
static bool looks_like_object(const char *s, size_t len)
{
	size_t i = 0, j = len;

	if (memchr(s, '\0', len))
		return false;
	while (i < j && isspace((unsigned char)s[i]))
		i++;
	while (j > i && isspace((unsigned char)s[j - 1]))
		j--;
	return j - i >= 2 && s[i] == '{' && s[j - 1] == '}';
}

static int import_body(const struct skr_akv_import *imp, const char *policy_b64,
                       struct secret **out, struct skr_error *err)
{
	char attrs[64], policy[256];
	struct secret *body;
	size_t n;
	int np;

	snprintf(attrs, sizeof(attrs), ",\"hsm\":%s,\"attributes\":{\"exportable\":%s}",
	         imp->hsm ? "true" : "false", imp->exportable ? "true" : "false");
	/* policy_b64 is base64url: no character needs escaping. */
	np = snprintf(policy, sizeof(policy),
	              ",\"release_policy\":{\"contentType\":\"application/json; "
	              "charset=utf-8\",\"data\":\"");
	if (np < 0 || (size_t)np >= sizeof(policy))
		return skr_error_set(err, -EINVAL, "internal: policy prefix");
	n = strlen("{\"key\":") + imp->jwk_len + strlen(attrs) + 1 /* } */ + 1 /* NUL */;
	if (policy_b64)
		n += strlen(policy) + strlen(policy_b64) + strlen("\",\"immutable\":false}");
	body = secret_new(n);
	if (!body)
		return skr_error_set(err, -ENOMEM, "out of memory");
	n = 0;
#define PUT(s, l)                                                                                  \
	do {                                                                                       \
		memcpy(body->data + n, (s), (l));                                                  \
		n += (l);                                                                          \
	} while (0)
	PUT("{\"key\":", strlen("{\"key\":"));
	PUT(imp->jwk_json, imp->jwk_len);
	PUT(attrs, strlen(attrs));
	if (policy_b64) {
		const char *tail =
		        imp->immutable ? "\",\"immutable\":true}" : "\",\"immutable\":false}";

		PUT(policy, strlen(policy));
		PUT(policy_b64, strlen(policy_b64));
		PUT(tail, strlen(tail));
	}
	PUT("}", 1);
#undef PUT
	body->data[n] = '\0';
	body->len = n;
	*out = body;
	return 0;
}

int skr_akv_import_key(const struct skr_akv_import *imp, char **key_id, struct skr_error *err)
{
	_cleanup_(http_client_freep) struct http_client *http = NULL;
	_cleanup_free_ char *base = NULL, *path = NULL, *url = NULL, *policy_b64 = NULL;
	_cleanup_secret_ struct secret *body = NULL, *auth = NULL;
	_cleanup_json_ json_object *root = NULL;
	struct http_response resp = {0};
	struct skr_error jerr = {0};
	const char *api, *kid;
	json_object *key;
	int r;

	*key_id = NULL;
	if (!imp)
		return skr_error_set(err, -EINVAL, "key import: no request");
	r = akv_base_url(imp->endpoint, &base, NULL, err);
	if (r < 0)
		return skr_error_prefix(err, "key import: ");
	r = akv_api_version(imp->api_version, &api, err);
	if (r < 0)
		return skr_error_prefix(err, "key import: ");
	if (!imp->name || strchr(imp->name, '/'))
		return skr_error_set(err, -EINVAL,
		                     "key import: key name \"%.128s\" is invalid (a name, without "
		                     "version)",
		                     imp->name ? imp->name : "");
	r = akv_key_path(imp->name, &path, err);
	if (r < 0)
		return skr_error_prefix(err, "key import: ");
	if (!imp->jwk_json || !imp->jwk_len || !looks_like_object(imp->jwk_json, imp->jwk_len))
		return skr_error_set(err, -EINVAL,
		                     "key import: the key is not a JWK (JSON object)");
	if (imp->policy_json) {
		_cleanup_json_ json_object *p = NULL;
		size_t plen = strlen(imp->policy_json);

		if (plen > AKV_MAX_POLICY)
			return skr_error_set(err, -EFBIG,
			                     "key import: release policy is larger than %u bytes",
			                     AKV_MAX_POLICY);
		r = json_parse(imp->policy_json, plen, "release policy", &p, &jerr);
		if (r < 0 || !json_object_is_type(p, json_type_object))
			return skr_error_set(err, -EINVAL, "key import: %s",
			                     r < 0 ? jerr.msg : "release policy is not an object");
		if (b64_encode(imp->policy_json, plen, B64_URL_NOPAD, &policy_b64) < 0)
			return skr_error_set(err, -ENOMEM, "out of memory");
	}
	r = akv_bearer_header(imp->bearer_token, &auth, err);
	if (r < 0)
		return skr_error_prefix(err, "key import: ");
	r = import_body(imp, policy_b64, &body, err);
	if (r < 0)
		return r;
	if (asprintf(&url, "%s/%s?api-version=%s", base, path, api) < 0) {
		url = NULL;
		return skr_error_set(err, -ENOMEM, "out of memory");
	}
	r = client_new(imp->ca_bundle, imp->timeout_ms, &http, err);
	if (r < 0)
		return skr_error_prefix(err, "key import: ");

	const char *headers[] = {(const char *)auth->data, "Content-Type: application/json",
	                         "Accept: application/json", NULL};

	log_info("key import: PUT %s/%s (hsm %s, exportable %s, %s policy)", base, path,
	         imp->hsm ? "yes" : "no", imp->exportable ? "yes" : "no",
	         !policy_b64      ? "no"
	         : imp->immutable ? "immutable"
	                          : "mutable");
	r = http_request(http, "PUT", url, headers, body->data, body->len, AKV_MAX_RESPONSE, &resp,
	                 err);
	if (r < 0)
		return skr_error_prefix(err, "key import: ");
	if (resp.status != 200) {
		_cleanup_free_ char *what = NULL;

		if (asprintf(&what, "key import of \"%s\"", imp->name) < 0)
			what = NULL;
		r = status_error(&resp, what ? what : "key import", base, err);
		goto out;
	}
	r = json_parse(resp.body, resp.body_len, "Key Vault import response", &root, &jerr);
	if (r < 0) {
		r = skr_error_set(err, -EPROTO, "key import: %s", jerr.msg);
		goto out;
	}
	r = json_get_object(root, "key", true, &key, &jerr);
	if (r == 0)
		r = json_get_string(key, "kid", true, &kid, &jerr);
	if (r < 0) {
		r = skr_error_set(err, -EPROTO, "key import: the answer of %s has no key.kid: %s",
		                  base, jerr.msg);
		goto out;
	}
	*key_id = strdup(kid);
	if (!*key_id) {
		r = skr_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	log_info("key import: imported %s", kid);
	r = 0;
out:
	http_response_clear(&resp);
	return r;
}

/* ---------------------------------------------------------------------------------------------
 * Release policy of a key
 * ------------------------------------------------------------------------------------------- */

int akv_get_release_policy(struct http_client *c, const char *base, const char *api_version,
                           const char *kid, const char *bearer_token, char **policy_json,
                           struct skr_error *err)
{
	_cleanup_free_ char *path = NULL, *url = NULL;
	_cleanup_free_ uint8_t *policy = NULL;
	_cleanup_secret_ struct secret *auth = NULL;
	_cleanup_json_ json_object *root = NULL, *parsed = NULL;
	struct http_response resp = {0};
	struct skr_error jerr = {0};
	json_object *rp;
	const char *data;
	size_t policy_len;
	int r;

	*policy_json = NULL;
	r = akv_key_path(kid, &path, err);
	if (r < 0)
		return r;
	r = akv_bearer_header(bearer_token, &auth, err);
	if (r < 0)
		return r;
	if (asprintf(&url, "%s/%s?api-version=%s", base, path, api_version) < 0) {
		url = NULL;
		return skr_error_set(err, -ENOMEM, "out of memory");
	}

	const char *headers[] = {(const char *)auth->data, "Accept: application/json", NULL};

	r = http_request(c, "GET", url, headers, NULL, 0, AKV_MAX_RESPONSE, &resp, err);
	if (r < 0)
		return r;
	if (resp.status != 200) {
		r = status_error(&resp, "reading the key's release policy", base, err);
		goto out;
	}
	r = json_parse(resp.body, resp.body_len, "Key Vault key", &root, &jerr);
	if (r < 0) {
		r = skr_error_set(err, -EPROTO, "%s", jerr.msg);
		goto out;
	}
	r = json_get_object(root, "release_policy", false, &rp, &jerr);
	if (r < 0) {
		r = skr_error_set(err, -EPROTO, "key %s: %s", kid, jerr.msg);
		goto out;
	}
	if (!rp) {
		r = skr_error_set(err, -ENOENT, "key %s has no release policy", kid);
		goto out;
	}
	r = json_get_string(rp, "data", true, &data, &jerr);
	if (r < 0) {
		r = skr_error_set(err, -EPROTO, "key %s: release_policy: %s", kid, jerr.msg);
		goto out;
	}
	/* b64url with or without padding per the REST API; std base64 from some SDKs. */
	if (strlen(data) > 2 * AKV_MAX_POLICY ||
	    b64_decode(data, strlen(data), B64_ACCEPT_ANY, &policy, &policy_len) < 0) {
		r = skr_error_set(err, -EPROTO, "key %s: release_policy.data is not base64url",
		                  kid);
		goto out;
	}
	r = json_parse((const char *)policy, policy_len, "release policy", &parsed, &jerr);
	if (r < 0) {
		r = skr_error_set(err, -EPROTO, "key %s: %s", kid, jerr.msg);
		goto out;
	}
	*policy_json = (char *)TAKE_PTR(policy); /* b64_decode leaves a NUL after the data */
	r = 0;
out:
	http_response_clear(&resp);
	return r;
}

int skr_akv_get_release_policy(const char *endpoint, const char *api_version, const char *kid,
                               const char *bearer_token, const char *ca_bundle, char **policy_json,
                               struct skr_error *err)
{
	_cleanup_(http_client_freep) struct http_client *http = NULL;
	_cleanup_free_ char *base = NULL;
	const char *api;
	int r;

	*policy_json = NULL;
	r = akv_base_url(endpoint, &base, NULL, err);
	if (r < 0)
		return r;
	r = akv_api_version(api_version, &api, err);
	if (r < 0)
		return r;
	r = client_new(ca_bundle, 0, &http, err);
	if (r < 0)
		return r;
	r = akv_get_release_policy(http, base, api, kid, bearer_token, policy_json, err);
	if (r < 0)
		return skr_error_prefix(err, "release policy: ");
	return 0;
}
