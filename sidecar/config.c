/* SPDX-License-Identifier: MIT */
/*
 * The sidecar's configuration (config.h).
 *
 * Compatibility with the Go sidecar's documents follows Go's encoding/json, which wrote them:
 * a key matches a field case-insensitively, null leaves a field as it was, the last matching key
 * wins, unknown keys are ignored (we warn once per document, naming them, so a typo is visible),
 * and a value of the wrong type is an error. An empty string is Go's zero value, so it counts as
 * absent. Go's base64 decoder skips line breaks anywhere, so we do too (`base64` wraps at 76
 * columns unless told -w0); the URL-safe alphabet and missing padding are our extensions.
 *
 * Secrets: akv.bearer_token and raw_key stay malloc'ed strings (config.h) and are erased by
 * sidecar_config_clear(). Every intermediate copy of a document — the base64 text without line
 * breaks, the decoded JSON text and the string values inside json-c's tree — is erased before it
 * is freed. (json-c's tokener keeps a scratch buffer we cannot reach; it is freed, not erased.)
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "b64.h"
#include "cleanup.h"
#include "json_util.h"
#include "log.h"
#include "ossl.h"
#include "secret.h"

#define DOC_SKR_NAME "SkrSideCarArgs"
#define DOC_ENCFS_NAME "EncfsSideCarArgs"
#define REDACTED "<redacted>"
#define TIMEOUT_MS_MAX 600000L

/* Effective defaults for --print-config; they mirror libskr's (skr.h documents them). */
#define DEFAULT_LOG_LEVEL "info"
#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_USER_AGENT "ConfidentialSkrContainer"
#define DEFAULT_IMDS "http://169.254.169.254"
/* libencfs's block cache defaults (encfs.h) and the bounds we accept for "cache". */
#define DEFAULT_CACHE_BLOCK_SIZE (512u * 1024)
#define DEFAULT_CACHE_CAPACITY 64u
#define DEFAULT_CACHE_READAHEAD 32u
#define CACHE_BLOCK_SIZE_MIN 4096
#define CACHE_BLOCK_SIZE_MAX (64 * 1024 * 1024)
#define CACHE_CAPACITY_MAX 65536
#define CACHE_BYTES_MAX (UINT64_C(4) << 30)

enum {
	DOC_SKR = 1 << 0,
	DOC_ENCFS = 1 << 1,
};

DEFINE_CLEANUP_FUNC(CURLU *, curl_url_cleanup)
#define _cleanup_curlu_ _cleanup_(curl_url_cleanupp)

static inline void curl_freep(char **p)
{
	curl_free(*p);
}
#define _cleanup_curl_str_ _cleanup_(curl_freep)

bool sidecar_config_raw_key_allowed(void)
{
#ifdef SIDECAR_ALLOW_RAW_KEY
	return true;
#else
	return false;
#endif
}

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

/* A bounded, printable copy of untrusted text for an error or a warning (never a secret). */
static const char *printable(const char *s, char *buf, size_t size)
{
	size_t i = 0;

	for (; s && *s && i + 4 < size; s++)
		buf[i++] = isprint((unsigned char)*s) ? *s : '?';
	if (s && *s) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

static void free_secret_string(char **p)
{
	if (*p)
		secure_free(*p, strlen(*p));
	*p = NULL;
}

static void free_string(char **p)
{
	free(*p);
	*p = NULL;
}

/* Erase every string value of a parsed document before json-c frees it: they hold secrets. */
static void json_erase_strings(json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_string:
		secure_erase((char *)json_object_get_string(o),
		             (size_t)json_object_get_string_len(o));
		break;
	case json_type_object: {
		json_object_object_foreach(o, k, v)
		{
			(void)k;
			json_erase_strings(v);
		}
		break;
	}
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(o); i++)
			json_erase_strings(json_object_array_get_idx(o, i));
		break;
	default:
		break;
	}
}

static void json_put_erased(json_object **o)
{
	if (*o) {
		json_erase_strings(*o);
		json_object_put(*o);
		*o = NULL;
	}
}

static bool is_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if (iscntrl((unsigned char)*s))
			return true;
	return false;
}

/* [begin, end) of @s without surrounding white space (YAML-fed env vars end with '\n'). */
static void trim(const char *s, size_t len, size_t *begin, size_t *end)
{
	size_t b = 0, e = len;

	while (b < e && isspace((unsigned char)s[b]))
		b++;
	while (e > b && isspace((unsigned char)s[e - 1]))
		e--;
	*begin = b;
	*end = e;
}

/*
 * An attestation or key-vault endpoint in the one spelling the allowlists compare: lower-case
 * host, ":port" unless it is 443, the path without trailing '/' (attestation endpoints only).
 * Accepted input: host[:port] or https://host[:port][/]. Never http://: a bearer token, a key or
 * an attestation token would travel in clear.
 */
static int endpoint_normalise(const char *in, bool allow_path, char **out, const char **why)
{
	_cleanup_curlu_ CURLU *u = NULL;
	_cleanup_curl_str_ char *host = NULL, *port = NULL, *path = NULL, *part = NULL;
	_cleanup_free_ char *url = NULL;
	static const CURLUPart refused[] = {CURLUPART_USER, CURLUPART_PASSWORD, CURLUPART_QUERY,
	                                    CURLUPART_FRAGMENT};
	const char *sep;
	size_t plen;

	*out = NULL;
	*why = "expected host[:port] or https://host[:port]";
	if (!in || !*in)
		return -EINVAL;
	for (const char *p = in; *p; p++)
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
			return -EINVAL;
	/* A scheme only before the first '/': "host/a://b" is a path, and the normalised form of
	 * any endpoint (which has no scheme) must normalise to itself. */
	sep = strstr(in, "://");
	if (sep && memchr(in, '/', (size_t)(sep - in)))
		sep = NULL;
	if (sep) {
		if (strncasecmp(in, "http://", 7) == 0) {
			*why = "http:// is refused (tokens and keys never travel in clear); "
			       "expected "
			       "host[:port] or https://host[:port]";
			return -EINVAL;
		}
		if (strncasecmp(in, "https://", 8) != 0)
			return -EINVAL;
		url = strdup(in);
	} else if (asprintf(&url, "https://%s", in) < 0) {
		url = NULL;
	}
	if (!url)
		return -ENOMEM;
	u = curl_url();
	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host)
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
		if (curl_url_get(u, refused[i], &part, 0) == CURLUE_OK) {
			*why = "expected host[:port] or https://host[:port] without credentials, "
			       "query or fragment";
			return -EINVAL;
		}
		curl_free(part);
		part = NULL;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
		port = NULL;
	if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		path = NULL;
	plen = path ? strlen(path) : 0;
	while (plen > 0 && path[plen - 1] == '/')
		plen--;
	if (plen > 0 && !allow_path) {
		*why = "expected host[:port] or https://host[:port] without a path";
		return -EINVAL;
	}
	for (char *h = host; *h; h++)
		*h = (char)tolower((unsigned char)*h);
	if (port && strcmp(port, "443") == 0) {
		curl_free(port);
		port = NULL;
	}
	if (asprintf(out, "%s%s%s%.*s", host, port ? ":" : "", port ? port : "", (int)plen,
	             plen ? path : "") < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Loopback hosts, where http:// is a local emulator rather than the network. */
static bool host_is_loopback(const char *host)
{
	return strcasecmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
	       strcmp(host, "[::1]") == 0;
}

/* ---------------------------------------------------------------------------------------------
 * Field access with Go's encoding/json semantics
 * ------------------------------------------------------------------------------------------- */

struct parse_ctx {
	const char *doc; /* "SkrSideCarArgs" */
	const char *other_doc;
	struct skr_error *err;
	char unknown[384]; /* ignored field names, for one warning */
	size_t n_unknown;
	bool unknown_truncated;
};

enum field_type {
	FIELD_STRING,
	FIELD_BOOL,
	FIELD_OBJECT,
	FIELD_ARRAY,
	FIELD_INT,
};

static void field_path(char *buf, size_t size, const char *prefix, const char *name)
{
	if (prefix && *prefix)
		snprintf(buf, size, "%s.%s", prefix, name);
	else
		snprintf(buf, size, "%s", name);
}

static const char *type_expectation(enum field_type t)
{
	switch (t) {
	case FIELD_STRING:
		return "a string";
	case FIELD_BOOL:
		return "true or false";
	case FIELD_OBJECT:
		return "a JSON object";
	case FIELD_ARRAY:
		return "an array";
	case FIELD_INT:
		return "a whole number";
	}
	return "?";
}

static bool type_matches(json_object *v, enum field_type t)
{
	switch (t) {
	case FIELD_STRING:
		return json_object_is_type(v, json_type_string);
	case FIELD_BOOL:
		return json_object_is_type(v, json_type_boolean);
	case FIELD_OBJECT:
		return json_object_is_type(v, json_type_object);
	case FIELD_ARRAY:
		return json_object_is_type(v, json_type_array);
	case FIELD_INT:
		return json_object_is_type(v, json_type_int);
	}
	return false;
}

/*
 * The value of field @name of @obj (path @prefix) or NULL when absent or null: the last key that
 * matches case-insensitively and is not null, as Go's decoder leaves it.
 */
static int field_get(struct parse_ctx *p, json_object *obj, const char *prefix, const char *name,
                     enum field_type t, json_object **out)
{
	char path[256];

	*out = NULL;
	json_object_object_foreach(obj, k, v)
	{
		if (strcasecmp(k, name) != 0 || !v)
			continue;
		if (!type_matches(v, t)) {
			field_path(path, sizeof(path), prefix, name);
			return skr_error_set(p->err, -EINVAL, "%s %s: expected %s", p->doc, path,
			                     type_expectation(t));
		}
		*out = v;
	}
	return 0;
}

/* A string field; "" is Go's zero value and counts as absent (*out NULL). */
static int field_string(struct parse_ctx *p, json_object *obj, const char *prefix, const char *name,
                        const char **out)
{
	json_object *v;
	char path[256];
	int r;

	*out = NULL;
	r = field_get(p, obj, prefix, name, FIELD_STRING, &v);
	if (r < 0 || !v || json_object_get_string_len(v) == 0)
		return r;
	if (strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v)) {
		field_path(path, sizeof(path), prefix, name);
		return skr_error_set(p->err, -EINVAL, "%s %s: contains a NUL character", p->doc,
		                     path);
	}
	*out = json_object_get_string(v);
	return 0;
}

static int field_bool(struct parse_ctx *p, json_object *obj, const char *prefix, const char *name,
                      bool *out)
{
	json_object *v;
	int r = field_get(p, obj, prefix, name, FIELD_BOOL, &v);

	if (r == 0 && v)
		*out = json_object_get_boolean(v);
	return r;
}

/*
 * Note the keys of @obj that match none of @known nor @more (NULL-terminated; @more may be
 * NULL) for the warning.
 */
static void note_unknown2(struct parse_ctx *p, json_object *obj, const char *prefix,
                          const char *const *known, const char *const *more)
{
	char name[48], path[128];
	size_t used;

	json_object_object_foreach(obj, k, v)
	{
		bool found = false;

		(void)v;
		for (size_t i = 0; known[i] && !found; i++)
			found = strcasecmp(k, known[i]) == 0;
		for (size_t i = 0; more && more[i] && !found; i++)
			found = strcasecmp(k, more[i]) == 0;
		if (found)
			continue;
		field_path(path, sizeof(path), prefix, printable(k, name, sizeof(name)));
		used = strlen(p->unknown);
		if (used + strlen(path) + 3 >= sizeof(p->unknown)) {
			p->unknown_truncated = true;
			continue;
		}
		snprintf(p->unknown + used, sizeof(p->unknown) - used, "%s%s",
		         p->n_unknown ? ", " : "", path);
		p->n_unknown++;
	}
}

static void note_unknown(struct parse_ctx *p, json_object *obj, const char *prefix,
                         const char *const *known)
{
	note_unknown2(p, obj, prefix, known, NULL);
}

static void warn_unknown(const struct parse_ctx *p)
{
	if (p->n_unknown == 0 && !p->unknown_truncated)
		return;
	log_warn("%s: ignoring unknown field%s %s%s (the Go sidecar ignores them too; check the "
	         "spelling)",
	         p->doc, p->n_unknown == 1 && !p->unknown_truncated ? "" : "s", p->unknown,
	         p->unknown_truncated ? ", ..." : "");
}

/*
 * A value both documents may carry (EncfsSideCarArgs azure_info mirrors SkrSideCarArgs): an
 * equal value merges, a different one is an error naming both places.
 */
static int merge_string(struct parse_ctx *p, char **dst, const char *value, const char *own_prefix,
                        const char *other_prefix, const char *name)
{
	char own[128], other[128];

	if (!value)
		return 0;
	if (*dst && strcmp(*dst, value) != 0) {
		field_path(own, sizeof(own), own_prefix, name);
		field_path(other, sizeof(other), other_prefix, name);
		return skr_error_set(p->err, -EINVAL,
		                     "%s %s conflicts with %s %s: give it in one document or the "
		                     "same value in both",
		                     p->doc, own, p->other_doc, other);
	}
	if (*dst)
		return 0;
	*dst = strdup(value);
	return *dst ? 0 : skr_error_set(p->err, -ENOMEM, "%s: out of memory", p->doc);
}

/* Replace *dst with a copy of @value (NULL: leave it). */
static int set_string(struct parse_ctx *p, char **dst, const char *value)
{
	char *copy;

	if (!value)
		return 0;
	copy = strdup(value);
	if (!copy)
		return skr_error_set(p->err, -ENOMEM, "%s: out of memory", p->doc);
	free(*dst);
	*dst = copy;
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Documents: base64 → JSON
 * ------------------------------------------------------------------------------------------- */

static bool b64_char(char c, bool *std, bool *url)
{
	if (isalnum((unsigned char)c))
		return true;
	if (c == '+' || c == '/')
		return (*std = true);
	if (c == '-' || c == '_')
		return (*url = true);
	return false;
}

/*
 * Decode one document: white space around it trimmed, line breaks inside skipped (Go's decoder
 * skips them), then base64 of either alphabet. *text is NUL-terminated; the caller erases it.
 */
static int doc_decode(const char *what, const char *in, size_t len, char **text, size_t *text_len,
                      struct skr_error *err)
{
	_cleanup_free_ char *clean = NULL;
	size_t begin, end, n = 0, pad_at = 0;
	bool std = false, url = false;
	uint8_t *out = NULL;
	int r;

	*text = NULL;
	*text_len = 0;
	trim(in, len, &begin, &end);
	if (begin == end)
		return skr_error_set(err, -EINVAL,
		                     "%s is empty: expected base64 of a JSON document", what);
	clean = malloc(end - begin + 1);
	if (!clean)
		return skr_error_set(err, -ENOMEM, "%s: out of memory", what);
	for (size_t i = begin; i < end; i++)
		if (in[i] != '\r' && in[i] != '\n')
			clean[n++] = in[i];
	clean[n] = '\0';

	r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		if (clean[i] == '=') {
			if (!pad_at)
				pad_at = i + 1;
		} else if (pad_at || !b64_char(clean[i], &std, &url)) {
			r = skr_error_set(
			        err, -EINVAL,
			        "%s is not base64: %s at offset %zu (line breaks not "
			        "counted); expected standard or URL-safe base64 of a JSON "
			        "document",
			        what,
			        pad_at ? "data after the '=' padding"
			               : "a character outside the base64 alphabet",
			        i);
		}
	}
	if (r == 0 && std && url)
		r = skr_error_set(err, -EINVAL,
		                  "%s is not base64: it mixes the standard (+/) and URL-safe (-_) "
		                  "alphabets",
		                  what);
	if (r == 0) {
		r = b64_decode(clean, n, B64_ACCEPT_ANY, &out, text_len);
		if (r == -ENOMEM)
			r = skr_error_set(err, r, "%s: out of memory", what);
		else if (r < 0)
			r = skr_error_set(
			        err, r,
			        "%s is not base64: wrong length or padding (was the value "
			        "cut short?)",
			        what);
	}
	secure_erase(clean, n);
	if (r < 0)
		return r;
	*text = (char *)out;
	return 0;
}

/* Decode and parse; *root is NULL for the document `null` (Go accepts it as empty). */
static int doc_parse(const char *what, const char *b64, size_t len, json_object **root,
                     struct skr_error *err)
{
	char *text;
	size_t text_len, b, e;
	int r;

	*root = NULL;
	if (!b64)
		return skr_error_set(err, -EINVAL,
		                     "%s is empty: expected base64 of a JSON document", what);
	r = doc_decode(what, b64, len, &text, &text_len, err);
	if (r < 0)
		return r;
	trim(text, text_len, &b, &e);
	if (e - b == 4 && memcmp(text + b, "null", 4) == 0)
		r = 0;
	else
		r = json_parse(text, text_len, what, root, err);
	secure_free(text, text_len + 1);
	if (r == 0 && *root && !json_object_is_type(*root, json_type_object)) {
		json_put_erased(root);
		r = skr_error_set(err, -EINVAL, "%s: expected a JSON object at the top level",
		                  what);
	}
	return r;
}

/* ---------------------------------------------------------------------------------------------
 * SkrSideCarArgs (§7.1) and EncfsSideCarArgs azure_info
 * ------------------------------------------------------------------------------------------- */

static const char *certcache_type_name(enum snp_certcache_type t)
{
	switch (t) {
	case SNP_CERTCACHE_NONE:
		return NULL;
	case SNP_CERTCACHE_AMD:
		return "AMD";
	case SNP_CERTCACHE_AZCACHE:
		return "AzCache";
	case SNP_CERTCACHE_LOCAL_THIM:
		return "LocalTHIM";
	}
	return NULL;
}

/*
 * certcache.endpoint without endpoint_type is the Go sidecar's format from before endpoint_type
 * existed (examples/skr/skr-sidecar-args.json), when the Azure cache was the only kind.
 */
static enum snp_certcache_type certcache_effective_type(const struct snp_certcache_config *cc)
{
	return cc->type == SNP_CERTCACHE_NONE && cc->endpoint ? SNP_CERTCACHE_AZCACHE : cc->type;
}

/* certcache and identity: the part both documents share. @prefix is this document's path. */
static int parse_shared(struct parse_ctx *p, json_object *obj, const char *prefix,
                        const char *other_prefix, struct sidecar_config *c)
{
	static const char *const certcache_known[] = {"endpoint_type", "endpoint",  "tee_type",
	                                              "api_version",   "client_id", NULL};
	static const char *const identity_known[] = {"client_id", NULL};
	static const struct {
		const char *name;
		size_t offset;
	} cc_strings[] = {
	        {"endpoint", offsetof(struct snp_certcache_config, endpoint)},
	        {"tee_type", offsetof(struct snp_certcache_config, tee_type)},
	        {"api_version", offsetof(struct snp_certcache_config, api_version)},
	        {"client_id", offsetof(struct snp_certcache_config, client_id)},
	};
	char own[64], other[64], shown[48];
	json_object *cc, *id;
	const char *s;
	int r;

	r = field_get(p, obj, prefix, "certcache", FIELD_OBJECT, &cc);
	if (r < 0)
		return r;
	if (cc) {
		enum snp_certcache_type type;

		field_path(own, sizeof(own), prefix, "certcache");
		field_path(other, sizeof(other), other_prefix, "certcache");
		note_unknown(p, cc, own, certcache_known);
		r = field_string(p, cc, own, "endpoint_type", &s);
		if (r < 0)
			return r;
		if (s) {
			if (snp_certcache_type_from_string(s, &type) < 0)
				return skr_error_set(p->err, -EINVAL,
				                     "%s %s.endpoint_type: unknown type '%s'; "
				                     "expected AMD, AzCache or LocalTHIM",
				                     p->doc, own,
				                     printable(s, shown, sizeof(shown)));
			if (c->certcache.type != SNP_CERTCACHE_NONE && c->certcache.type != type)
				return skr_error_set(p->err, -EINVAL,
				                     "%s %s.endpoint_type conflicts with %s "
				                     "%s.endpoint_type: give it in one document or "
				                     "the same value in both",
				                     p->doc, own, p->other_doc, other);
			c->certcache.type = type;
		}
		for (size_t i = 0; i < ELEMENTSOF(cc_strings); i++) {
			char **dst = (char **)((char *)&c->certcache + cc_strings[i].offset);

			r = field_string(p, cc, own, cc_strings[i].name, &s);
			if (r < 0)
				return r;
			if (s && (has_control(s) || strpbrk(s, " ?#")))
				return skr_error_set(p->err, -EINVAL,
				                     "%s %s.%s: expected text without spaces, '?', "
				                     "'#' or control characters",
				                     p->doc, own, cc_strings[i].name);
			r = merge_string(p, dst, s, own, other, cc_strings[i].name);
			if (r < 0)
				return r;
		}
	}

	r = field_get(p, obj, prefix, "identity", FIELD_OBJECT, &id);
	if (r < 0)
		return r;
	if (id) {
		field_path(own, sizeof(own), prefix, "identity");
		field_path(other, sizeof(other), other_prefix, "identity");
		note_unknown(p, id, own, identity_known);
		r = field_string(p, id, own, "client_id", &s);
		if (r < 0)
			return r;
		if (s && has_control(s))
			return skr_error_set(
			        p->err, -EINVAL,
			        "%s %s.client_id: expected the managed identity's client "
			        "id (a GUID)",
			        p->doc, own);
		r = merge_string(p, &c->identity_client_id, s, own, other, "client_id");
		if (r < 0)
			return r;
	}
	return 0;
}

/* One list of allowed_endpoints, stored normalised and without duplicates. */
static int parse_endpoint_list(struct parse_ctx *p, json_object *obj, const char *name,
                               bool allow_path, char **list, size_t *n)
{
	json_object *arr;
	int r;

	r = field_get(p, obj, "allowed_endpoints", name, FIELD_ARRAY, &arr);
	if (r < 0 || !arr)
		return r;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *v = json_object_array_get_idx(arr, i);
		_cleanup_free_ char *norm = NULL;
		const char *why;
		bool dup = false;

		if (!json_object_is_type(v, json_type_string))
			return skr_error_set(p->err, -EINVAL,
			                     "%s allowed_endpoints.%s[%zu]: expected a string "
			                     "(host[:port] or https://host[:port])",
			                     p->doc, name, i);
		r = endpoint_normalise(json_object_get_string(v), allow_path, &norm, &why);
		if (r == -ENOMEM)
			return skr_error_set(p->err, r, "%s: out of memory", p->doc);
		if (r < 0 ||
		    strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
			return skr_error_set(p->err, -EINVAL, "%s allowed_endpoints.%s[%zu]: %s",
			                     p->doc, name, i, why);
		for (size_t j = 0; j < *n && !dup; j++)
			dup = strcmp(list[j], norm) == 0;
		if (dup)
			continue;
		if (*n >= SIDECAR_ENDPOINTS_MAX)
			return skr_error_set(p->err, -EINVAL,
			                     "%s allowed_endpoints.%s: at most %d endpoints",
			                     p->doc, name, SIDECAR_ENDPOINTS_MAX);
		list[(*n)++] = TAKE_PTR(norm);
	}
	return 0;
}

/* Our optional fields (README "Our optional fields"): the same names in both documents. */
static const char *const ours_known[] = {
        "attestation_source",   "virtual_platform_dir", "ca_bundle",  "imds_endpoint",
        "security_context_dir", "cert_cache_dir",       "timeout_ms", "allowed_endpoints",
        "audit_file",           "log_format",           NULL};

/*
 * A non-string value of ours given in both documents: equal is fine, different names both
 * places. @set tells whether the other document gave it.
 */
static int merge_value(struct parse_ctx *p, bool differs, bool set, const char *own_prefix,
                       const char *other_prefix, const char *name)
{
	char own[128], other[128];

	if (!set || !differs)
		return 0;
	field_path(own, sizeof(own), own_prefix, name);
	field_path(other, sizeof(other), other_prefix, name);
	return skr_error_set(p->err, -EINVAL,
	                     "%s %s conflicts with %s %s: give it in one document or the same "
	                     "value in both",
	                     p->doc, own, p->other_doc, other);
}

/* "@prefix.@field" (or "@field") in @buf, for messages. */
static const char *path(const char *prefix, const char *field, char buf[static 64])
{
	field_path(buf, 64, prefix, field);
	return buf;
}

/*
 * Our optional fields, in SkrSideCarArgs (@prefix "") or in EncfsSideCarArgs azure_info
 * (@prefix "azure_info"): an encfs-only container group configures the sidecar through
 * EncfsSideCarArgs alone, as the Go sidecar's encfs.sh passes it. A value both documents give
 * must agree; endpoint allowlists are the union of both.
 */
static int parse_ours(struct parse_ctx *p, json_object *root, const char *prefix,
                      const char *other_prefix, struct sidecar_config *c)
{
	static const char *const allowed_known[] = {"attestation", "key_vault", NULL};
	static const struct {
		const char *name;
		size_t offset;
	} paths[] = {
	        {"virtual_platform_dir", offsetof(struct sidecar_config, virtual_dir)},
	        {"ca_bundle", offsetof(struct sidecar_config, ca_bundle)},
	        {"security_context_dir", offsetof(struct sidecar_config, security_context_dir)},
	        {"cert_cache_dir", offsetof(struct sidecar_config, cert_cache_dir)},
	        {"audit_file", offsetof(struct sidecar_config, audit_file)},
	};
	char allowed_prefix[64], name[64];
	json_object *v;
	const char *s;
	char shown[48];
	int r;

	r = field_string(p, root, prefix, "attestation_source", &s);
	if (r < 0)
		return r;
	if (s) {
		enum snp_source_kind kind;

		if (snp_source_kind_from_string(s, &kind) < 0)
			return skr_error_set(
			        p->err, -EINVAL,
			        "%s %s: unknown source '%s'; expected auto, sev-guest, "
			        "sev, configfs-tsm or virtual",
			        p->doc, path(prefix, "attestation_source", name),
			        printable(s, shown, sizeof(shown)));
		r = merge_value(p, kind != c->attestation_source, c->attestation_source_set, prefix,
		                other_prefix, "attestation_source");
		if (r < 0)
			return r;
		c->attestation_source = kind;
		c->attestation_source_set = true;
	}

	for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
		r = field_string(p, root, prefix, paths[i].name, &s);
		if (r < 0)
			return r;
		r = merge_string(p, (char **)((char *)c + paths[i].offset), s, prefix, other_prefix,
		                 paths[i].name);
		if (r < 0)
			return r;
	}

	r = field_string(p, root, prefix, "imds_endpoint", &s);
	if (r < 0)
		return r;
	if (s && ((strncasecmp(s, "http://", 7) != 0 && strncasecmp(s, "https://", 8) != 0) ||
	          has_control(s) || strpbrk(s, " ?#")))
		return skr_error_set(p->err, -EINVAL,
		                     "%s %s: expected an http(s):// URL such as "
		                     "http://169.254.169.254",
		                     p->doc, path(prefix, "imds_endpoint", name));
	r = merge_string(p, &c->imds_endpoint, s, prefix, other_prefix, "imds_endpoint");
	if (r < 0)
		return r;

	r = field_get(p, root, prefix, "timeout_ms", FIELD_INT, &v);
	if (r < 0)
		return r;
	if (v) {
		int64_t t = json_object_get_int64(v);

		if (t < 1 || t > TIMEOUT_MS_MAX)
			return skr_error_set(
			        p->err, -EINVAL, "%s %s: expected milliseconds between 1 and %ld",
			        p->doc, path(prefix, "timeout_ms", name), TIMEOUT_MS_MAX);
		r = merge_value(p, c->timeout_ms != (long)t, c->timeout_ms != 0, prefix,
		                other_prefix, "timeout_ms");
		if (r < 0)
			return r;
		c->timeout_ms = (long)t;
	}

	r = field_get(p, root, prefix, "allowed_endpoints", FIELD_OBJECT, &v);
	if (r < 0)
		return r;
	if (v) {
		field_path(allowed_prefix, sizeof(allowed_prefix), prefix, "allowed_endpoints");
		note_unknown(p, v, allowed_prefix, allowed_known);
		r = parse_endpoint_list(p, v, "attestation", true, c->allowed_maa,
		                        &c->n_allowed_maa);
		if (r < 0)
			return r;
		r = parse_endpoint_list(p, v, "key_vault", false, c->allowed_akv,
		                        &c->n_allowed_akv);
		if (r < 0)
			return r;
	}

	r = field_string(p, root, prefix, "log_format", &s);
	if (r < 0)
		return r;
	if (s) {
		enum sidecar_log_format format;

		if (strcmp(s, "human") == 0)
			format = SIDECAR_LOG_HUMAN;
		else if (strcmp(s, "json") == 0)
			format = SIDECAR_LOG_JSON;
		else
			return skr_error_set(p->err, -EINVAL,
			                     "%s %s: unknown format '%s'; expected human or json",
			                     p->doc, path(prefix, "log_format", name),
			                     printable(s, shown, sizeof(shown)));
		r = merge_value(p, format != c->log_format, c->log_format_set, prefix, other_prefix,
		                "log_format");
		if (r < 0)
			return r;
		c->log_format = format;
		c->log_format_set = true;
	}
	return 0;
}

static int parse_skr_doc(struct parse_ctx *p, json_object *root, struct sidecar_config *c)
{
	static const char *const known[] = {"certcache", "identity", "maaconfig", NULL};
	static const char *const maaconfig_known[] = {"user_agent", NULL};
	json_object *v;
	const char *s;
	int r;

	note_unknown2(p, root, "", known, ours_known);
	r = parse_shared(p, root, "", "azure_info", c);
	if (r < 0)
		return r;

	r = field_get(p, root, "", "maaconfig", FIELD_OBJECT, &v);
	if (r < 0)
		return r;
	if (v) {
		note_unknown(p, v, "maaconfig", maaconfig_known);
		r = field_string(p, v, "maaconfig", "user_agent", &s);
		if (r < 0)
			return r;
		/* A header value: a line break would inject headers into the MAA request. */
		if (s && has_control(s))
			return skr_error_set(
			        p->err, -EINVAL,
			        "%s maaconfig.user_agent: expected printable text without "
			        "line breaks",
			        p->doc);
		r = set_string(p, &c->maa_user_agent, s);
		if (r < 0)
			return r;
	}
	return parse_ours(p, root, "", "azure_info", c);
}

/* ---------------------------------------------------------------------------------------------
 * EncfsSideCarArgs azure_filesystems (§7.3)
 * ------------------------------------------------------------------------------------------- */

/*
 * Absolute, without '.', '..' or empty components; a trailing '/' is dropped so that one
 * directory has one spelling (duplicates and nesting are compared as text).
 */
static int mount_point_normalise(struct parse_ctx *p, const char *prefix, const char *in,
                                 char **out)
{
	const char *why = NULL;
	size_t len = strlen(in);

	*out = NULL;
	while (len > 1 && in[len - 1] == '/')
		len--;
	if (in[0] != '/')
		why = "is not absolute";
	else if (len == 1)
		why = "is the root directory";
	else if (len >= 4096)
		why = "is too long";
	else if (has_control(in))
		why = "contains control characters";
	for (size_t i = 0; !why && i < len;) {
		size_t j = i + 1, n;

		while (j < len && in[j] != '/')
			j++;
		n = j - i - 1; /* component in[i+1 .. j) */
		if (n == 0)
			why = "contains '//'";
		else if ((n == 1 && in[i + 1] == '.') ||
		         (n == 2 && in[i + 1] == '.' && in[i + 2] == '.'))
			why = "contains a '.' or '..' component";
		i = j;
	}
	if (why)
		return skr_error_set(p->err, -EINVAL,
		                     "%s %s.mount_point %s: expected an absolute path without '.', "
		                     "'..' or '//' components, such as /mnt/remote/share",
		                     p->doc, prefix, why);
	*out = strndup(in, len);
	return *out ? 0 : skr_error_set(p->err, -ENOMEM, "%s: out of memory", p->doc);
}

/* The image URL: http(s) with a host, no credentials; never echoed (a SAS signature). */
static int check_azure_url(struct parse_ctx *p, const char *prefix, const char *url, bool private)
{
	_cleanup_curlu_ CURLU *u = NULL;
	_cleanup_curl_str_ char *scheme = NULL, *host = NULL, *user = NULL;
	bool https;

	u = curl_url();
	if (!u)
		return skr_error_set(p->err, -ENOMEM, "%s: out of memory", p->doc);
	if (has_control(url) || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcasecmp(scheme, "https") != 0 && strcasecmp(scheme, "http") != 0) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host)
		return skr_error_set(p->err, -EINVAL,
		                     "%s %s.azure_url: expected the https:// URL of the image blob "
		                     "(https://account.blob.core.windows.net/container/image.img)",
		                     p->doc, prefix);
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
		return skr_error_set(p->err, -EINVAL,
		                     "%s %s.azure_url: must not carry user credentials; use "
		                     "azure_url_private or a SAS query",
		                     p->doc, prefix);
	https = strcasecmp(scheme, "https") == 0;
	if (private && !https && !host_is_loopback(host))
		return skr_error_set(
		        p->err, -EINVAL,
		        "%s %s.azure_url: azure_url_private sends a bearer token, so the "
		        "URL must be https:// (http:// only for a loopback emulator)",
		        p->doc, prefix);
	return 0;
}

static int parse_endpoint_field(struct parse_ctx *p, json_object *obj, const char *prefix,
                                bool allow_path, const char *what, char **dst)
{
	_cleanup_free_ char *norm = NULL;
	const char *s, *why;
	int r;

	r = field_string(p, obj, prefix, "endpoint", &s);
	if (r < 0)
		return r;
	if (!s)
		return skr_error_set(p->err, -EINVAL, "%s %s.endpoint is missing: expected %s",
		                     p->doc, prefix, what);
	r = endpoint_normalise(s, allow_path, &norm, &why);
	if (r == -ENOMEM)
		return skr_error_set(p->err, r, "%s: out of memory", p->doc);
	if (r < 0)
		return skr_error_set(p->err, -EINVAL, "%s %s.endpoint: %s", p->doc, prefix, why);
	return set_string(p, dst, s);
}

static int parse_key(struct parse_ctx *p, json_object *key, const char *prefix,
                     struct sidecar_filesystem *fs)
{
	static const char *const key_known[] = {"kid", "kty", "key_ops", "authority", "akv", NULL};
	static const char *const authority_known[] = {"endpoint", "api_version", "tee_type", NULL};
	static const char *const akv_known[] = {"endpoint", "api_version", "bearer_token", NULL};
	char kp[96], sub[128];
	json_object *v;
	const char *s;
	int r;

	snprintf(kp, sizeof(kp), "%s.key", prefix);
	note_unknown(p, key, kp, key_known);

	r = field_string(p, key, kp, "kid", &s);
	if (r < 0)
		return r;
	if (!s)
		return skr_error_set(
		        p->err, -EINVAL,
		        "%s %s.kid is missing: expected the name of the key in the vault", p->doc,
		        kp);
	if (has_control(s) || strpbrk(s, "/?# "))
		return skr_error_set(p->err, -EINVAL,
		                     "%s %s.kid: expected a key name (letters, digits and '-')",
		                     p->doc, kp);
	r = set_string(p, &fs->kid, s);
	if (r < 0)
		return r;
	/* Informational in the Go sidecar: the released key says what it is. */
	r = field_string(p, key, kp, "kty", &s);
	if (r < 0 || (r = set_string(p, &fs->kty, s)) < 0)
		return r;

	r = field_get(p, key, kp, "key_ops", FIELD_ARRAY, &v);
	if (r < 0)
		return r;
	for (size_t i = 0; v && i < json_object_array_length(v); i++) {
		json_object *op = json_object_array_get_idx(v, i);

		if (!json_object_is_type(op, json_type_string) ||
		    strlen(json_object_get_string(op)) != (size_t)json_object_get_string_len(op))
			return skr_error_set(p->err, -EINVAL,
			                     "%s %s.key_ops[%zu]: expected a string", p->doc, kp,
			                     i);
		if (fs->n_key_ops >= SKR_KEY_OPS_MAX)
			return skr_error_set(p->err, -EINVAL, "%s %s.key_ops: at most %d entries",
			                     p->doc, kp, SKR_KEY_OPS_MAX);
		fs->key_ops[fs->n_key_ops] = strdup(json_object_get_string(op));
		if (!fs->key_ops[fs->n_key_ops])
			return skr_error_set(p->err, -ENOMEM, "%s: out of memory", p->doc);
		fs->n_key_ops++;
	}

	/* api_version and tee_type are accepted and ignored: the Go sidecar overwrites them
	 * (api-version=7.4, api-version=2020-10-01, SevSnpVM), and so does libskr. */
	r = field_get(p, key, kp, "authority", FIELD_OBJECT, &v);
	if (r < 0)
		return r;
	snprintf(sub, sizeof(sub), "%s.authority", kp);
	if (!v)
		return skr_error_set(p->err, -EINVAL,
		                     "%s %s.endpoint is missing: expected the attestation service "
		                     "host[:port] named in the key's release policy",
		                     p->doc, sub);
	note_unknown(p, v, sub, authority_known);
	r = parse_endpoint_field(p, v, sub, true,
	                         "the attestation service host[:port] named in the key's release "
	                         "policy",
	                         &fs->maa_endpoint);
	if (r < 0)
		return r;

	r = field_get(p, key, kp, "akv", FIELD_OBJECT, &v);
	if (r < 0)
		return r;
	snprintf(sub, sizeof(sub), "%s.akv", kp);
	if (!v)
		return skr_error_set(p->err, -EINVAL,
		                     "%s %s.endpoint is missing: expected the key vault or managed "
		                     "HSM host[:port] (myvault.vault.azure.net)",
		                     p->doc, sub);
	note_unknown(p, v, sub, akv_known);
	r = parse_endpoint_field(
	        p, v, sub, false,
	        "the key vault or managed HSM host[:port] (myvault.vault.azure.net)",
	        &fs->akv_endpoint);
	if (r < 0)
		return r;
	r = field_string(p, v, sub, "bearer_token", &s);
	if (r < 0)
		return r;
	if (s) {
		/* Never echoed: it is a credential. An Authorization header cannot hold these. */
		if (has_control(s) || strchr(s, ' '))
			return skr_error_set(
			        p->err, -EINVAL,
			        "%s %s.bearer_token: expected a token without spaces or "
			        "line breaks",
			        p->doc, sub);
		free_secret_string(&fs->akv_bearer_token);
		fs->akv_bearer_token = strdup(s);
		if (!fs->akv_bearer_token)
			return skr_error_set(p->err, -ENOMEM, "%s: out of memory", p->doc);
	}
	return 0;
}

static int parse_filesystem(struct parse_ctx *p, json_object *obj, const char *prefix,
                            struct sidecar_filesystem *fs)
{
	static const char *const known[] = {
	        "azure_url",      "azure_url_private", "mount_point",      "read_write", "key",
	        "key_derivation", "raw_key",           "verity_root_hash", NULL};
	static const char *const kdf_known[] = {"salt", "label", NULL};
	json_object *key, *kdf;
	const char *url, *mount, *raw, *s;
	char sub[96];
	int r;

	note_unknown(p, obj, prefix, known);
	if ((r = field_string(p, obj, prefix, "azure_url", &url)) < 0 ||
	    (r = field_bool(p, obj, prefix, "azure_url_private", &fs->azure_url_private)) < 0 ||
	    (r = field_string(p, obj, prefix, "mount_point", &mount)) < 0 ||
	    (r = field_bool(p, obj, prefix, "read_write", &fs->read_write)) < 0 ||
	    (r = field_get(p, obj, prefix, "key", FIELD_OBJECT, &key)) < 0 ||
	    (r = field_get(p, obj, prefix, "key_derivation", FIELD_OBJECT, &kdf)) < 0 ||
	    (r = field_string(p, obj, prefix, "raw_key", &raw)) < 0 ||
	    (r = field_string(p, obj, prefix, "verity_root_hash", &s)) < 0)
		return r;

	if (!url)
		return skr_error_set(p->err, -EINVAL,
		                     "%s %s.azure_url is missing: expected the https:// URL of the "
		                     "image blob",
		                     p->doc, prefix);
	r = check_azure_url(p, prefix, url, fs->azure_url_private);
	if (r < 0 || (r = set_string(p, &fs->azure_url, url)) < 0)
		return r;

	if (!mount)
		return skr_error_set(
		        p->err, -EINVAL,
		        "%s %s.mount_point is missing: expected the absolute path where "
		        "the filesystem appears (/mnt/remote/share)",
		        p->doc, prefix);
	r = mount_point_normalise(p, prefix, mount, &fs->mount_point);
	if (r < 0)
		return r;

	if (s) {
		size_t n = strlen(s);

		/* The layout generatefs writes hashes with SHA-256 (encfs.h, dm-verity). */
		if (n != 64 || !is_hex(s, n))
			return skr_error_set(p->err, -EINVAL,
			                     "%s %s.verity_root_hash: expected the dm-verity root "
			                     "hash generatefs printed: 64 hex digits (SHA-256)",
			                     p->doc, prefix);
		if (fs->read_write)
			return skr_error_set(
			        p->err, -EINVAL,
			        "%s %s.verity_root_hash pins a read-only image: expected "
			        "read_write false",
			        p->doc, prefix);
		r = set_string(p, &fs->verity_root_hash, s);
		if (r < 0)
			return r;
	}

	if (raw) {
		/* The value is never echoed, not even its length: it is a LUKS key. */
		if (!sidecar_config_raw_key_allowed())
			return skr_error_set(
			        p->err, -EINVAL,
			        "%s %s.raw_key is for testing only: this build does not "
			        "accept it (meson -Dallow_raw_key=true)",
			        p->doc, prefix);
		if (strlen(raw) != 64 || !is_hex(raw, 64))
			return skr_error_set(
			        p->err, -EINVAL,
			        "%s %s.raw_key: expected 64 hex digits (a 32-byte LUKS "
			        "key)",
			        p->doc, prefix);
		if (key)
			return skr_error_set(p->err, -EINVAL,
			                     "%s %s: expected key or raw_key, not both", p->doc,
			                     prefix);
		fs->raw_key_hex = strdup(raw);
		if (!fs->raw_key_hex)
			return skr_error_set(p->err, -ENOMEM, "%s: out of memory", p->doc);
	} else if (!key) {
		return skr_error_set(p->err, -EINVAL,
		                     "%s %s.key is missing: a filesystem needs the key to release "
		                     "(kid, authority.endpoint, akv.endpoint)",
		                     p->doc, prefix);
	} else {
		r = parse_key(p, key, prefix, fs);
		if (r < 0)
			return r;
	}

	if (kdf) {
		snprintf(sub, sizeof(sub), "%s.key_derivation", prefix);
		note_unknown(p, kdf, sub, kdf_known);
		r = field_string(p, kdf, sub, "salt", &s);
		if (r < 0)
			return r;
		if (s && (strlen(s) % 2 != 0 || !is_hex(s, strlen(s))))
			return skr_error_set(
			        p->err, -EINVAL,
			        "%s %s.salt: expected hex digits (an even number of them)", p->doc,
			        sub);
		if ((r = set_string(p, &fs->kdf_salt_hex, s)) < 0 ||
		    (r = field_string(p, kdf, sub, "label", &s)) < 0 ||
		    (r = set_string(p, &fs->kdf_label, s)) < 0)
			return r;
	}
	return 0;
}

/*
 * An absolute path for one of our options (@name at the top of the document): no '.', '..' or
 * empty components, no control characters, not the root; a trailing '/' dropped.
 */
static int parse_path_field(struct parse_ctx *p, json_object *root, const char *name, char **dst)
{
	const char *s, *why = NULL;
	size_t len;
	int r;

	r = field_string(p, root, "", name, &s);
	if (r < 0 || !s)
		return r;
	len = strlen(s);
	while (len > 1 && s[len - 1] == '/')
		len--;
	if (s[0] != '/')
		why = "is not absolute";
	else if (len == 1)
		why = "is the root directory";
	else if (len >= 4096)
		why = "is too long";
	else if (has_control(s))
		why = "contains control characters";
	for (size_t i = 0; !why && i < len;) {
		size_t j = i + 1, n;

		while (j < len && s[j] != '/')
			j++;
		n = j - i - 1;
		if (n == 0)
			why = "contains '//'";
		else if ((n == 1 && s[i + 1] == '.') ||
		         (n == 2 && s[i + 1] == '.' && s[i + 2] == '.'))
			why = "contains a '.' or '..' component";
		i = j;
	}
	if (why)
		return skr_error_set(
		        p->err, -EINVAL,
		        "%s %s %s: expected an absolute path without '.', '..' or '//' "
		        "components",
		        p->doc, name, why);
	free(*dst);
	*dst = strndup(s, len);
	return *dst ? 0 : skr_error_set(p->err, -ENOMEM, "%s: out of memory", p->doc);
}

/* A whole number field in [@min, @max]; absent leaves *out. */
static int parse_uint_field(struct parse_ctx *p, json_object *obj, const char *prefix,
                            const char *name, int64_t min, int64_t max, const char *what,
                            uint32_t *out)
{
	json_object *v;
	char path[96];
	int64_t n;
	int r;

	r = field_get(p, obj, prefix, name, FIELD_INT, &v);
	if (r < 0 || !v)
		return r;
	n = json_object_get_int64(v);
	if (n < min || n > max) {
		field_path(path, sizeof(path), prefix, name);
		return skr_error_set(p->err, -EINVAL, "%s %s: expected %s between %lld and %lld",
		                     p->doc, path, what, (long long)min, (long long)max);
	}
	*out = (uint32_t)n;
	return 0;
}

/* Our options of EncfsSideCarArgs: work_dir, ready_file, on_mount_failure, access, cache. */
static int parse_encfs_ours(struct parse_ctx *p, json_object *root, struct sidecar_config *c)
{
	static const char *const cache_known[] = {"block_size", "capacity_blocks",
	                                          "readahead_blocks", NULL};
	uint32_t capacity;
	json_object *cache;
	const char *s;
	char shown[48];
	int r;

	if ((r = parse_path_field(p, root, "work_dir", &c->work_dir)) < 0 ||
	    (r = parse_path_field(p, root, "ready_file", &c->ready_file)) < 0)
		return r;

	r = field_string(p, root, "", "on_mount_failure", &s);
	if (r < 0)
		return r;
	if (s) {
		if (strcmp(s, "exit") == 0)
			c->on_mount_failure = SIDECAR_ON_FAILURE_EXIT;
		else if (strcmp(s, "continue") == 0)
			c->on_mount_failure = SIDECAR_ON_FAILURE_CONTINUE;
		else
			return skr_error_set(
			        p->err, -EINVAL,
			        "%s on_mount_failure: unknown policy '%s'; expected exit "
			        "(the default: clean up and exit non-zero) or continue "
			        "(keep serving the others)",
			        p->doc, printable(s, shown, sizeof(shown)));
	}

	r = field_string(p, root, "", "access", &s);
	if (r < 0)
		return r;
	if (s) {
		if (strcmp(s, "fuse") == 0)
			c->access = SIDECAR_ACCESS_FUSE;
		else if (strcmp(s, "download") == 0)
			c->access = SIDECAR_ACCESS_DOWNLOAD;
		else
			return skr_error_set(
			        p->err, -EINVAL,
			        "%s access: unknown mode '%s'; expected fuse (lazy, the "
			        "default) or download (the whole image first)",
			        p->doc, printable(s, shown, sizeof(shown)));
	}

	r = field_get(p, root, "", "cache", FIELD_OBJECT, &cache);
	if (r < 0 || !cache)
		return r;
	note_unknown(p, cache, "cache", cache_known);
	if ((r = parse_uint_field(p, cache, "cache", "block_size", CACHE_BLOCK_SIZE_MIN,
	                          CACHE_BLOCK_SIZE_MAX, "bytes", &c->cache_block_size)) < 0 ||
	    (r = parse_uint_field(p, cache, "cache", "capacity_blocks", 2, CACHE_CAPACITY_MAX,
	                          "a number of blocks", &c->cache_capacity_blocks)) < 0 ||
	    (r = parse_uint_field(p, cache, "cache", "readahead_blocks", 1, CACHE_CAPACITY_MAX / 2,
	                          "a number of blocks", &c->cache_readahead_blocks)) < 0)
		return r;
	if (c->cache_block_size & (c->cache_block_size - 1))
		return skr_error_set(p->err, -EINVAL,
		                     "%s cache.block_size: expected a power of two (such as 524288 "
		                     "for 512 KiB)",
		                     p->doc);
	capacity = c->cache_capacity_blocks ? c->cache_capacity_blocks : DEFAULT_CACHE_CAPACITY;
	if (c->cache_readahead_blocks > capacity / 2)
		return skr_error_set(p->err, -EINVAL,
		                     "%s cache.readahead_blocks: expected at most half of "
		                     "capacity_blocks (%u)",
		                     p->doc, capacity / 2);
	if ((uint64_t)(c->cache_block_size ? c->cache_block_size : DEFAULT_CACHE_BLOCK_SIZE) *
	            capacity >
	    CACHE_BYTES_MAX)
		return skr_error_set(p->err, -EINVAL,
		                     "%s cache: block_size * capacity_blocks is over %llu MiB of "
		                     "memory per filesystem",
		                     p->doc, (unsigned long long)(CACHE_BYTES_MAX >> 20));
	return 0;
}

static int parse_encfs_doc(struct parse_ctx *p, json_object *root, struct sidecar_config *c)
{
	static const char *const known[] = {"azure_info",
	                                    "azure_filesystems",
	                                    "work_dir",
	                                    "ready_file",
	                                    "on_mount_failure",
	                                    "access",
	                                    "cache",
	                                    NULL};
	static const char *const info_known[] = {"certcache", "identity", NULL};
	json_object *info, *arr;
	char prefix[48];
	int r;

	note_unknown(p, root, "", known);
	r = field_get(p, root, "", "azure_info", FIELD_OBJECT, &info);
	if (r < 0)
		return r;
	if (info) {
		note_unknown2(p, info, "azure_info", info_known, ours_known);
		r = parse_shared(p, info, "azure_info", "", c);
		if (r < 0)
			return r;
		r = parse_ours(p, info, "azure_info", "", c);
		if (r < 0)
			return r;
	}

	r = parse_encfs_ours(p, root, c);
	if (r < 0)
		return r;

	r = field_get(p, root, "", "azure_filesystems", FIELD_ARRAY, &arr);
	if (r < 0 || !arr)
		return r;
	if (json_object_array_length(arr) > SIDECAR_FILESYSTEMS_MAX)
		return skr_error_set(p->err, -EINVAL,
		                     "%s azure_filesystems: at most %d filesystems", p->doc,
		                     SIDECAR_FILESYSTEMS_MAX);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *fs = json_object_array_get_idx(arr, i);

		snprintf(prefix, sizeof(prefix), "azure_filesystems[%zu]", i);
		if (!json_object_is_type(fs, json_type_object))
			return skr_error_set(p->err, -EINVAL, "%s %s: expected a JSON object",
			                     p->doc, prefix);
		/* Counted first so that clear() frees what a failing entry allocated. */
		c->n_filesystems++;
		r = parse_filesystem(p, fs, prefix, &c->filesystems[c->n_filesystems - 1]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Public parse functions
 * ------------------------------------------------------------------------------------------- */

static int parse_doc(const char *b64, size_t len, struct sidecar_config *c, unsigned doc,
                     struct skr_error *err)
{
	_cleanup_(json_put_erased) json_object *root = NULL;
	struct parse_ctx p = {
	        .doc = doc == DOC_SKR ? DOC_SKR_NAME : DOC_ENCFS_NAME,
	        .other_doc = doc == DOC_SKR ? DOC_ENCFS_NAME : DOC_SKR_NAME,
	        .err = err,
	};
	int r;

	if (c->parsed_docs & doc)
		return skr_error_set(err, -EINVAL, "%s given twice: expected one document", p.doc);
	r = doc_parse(p.doc, b64, len, &root, err);
	if (r < 0)
		return r;
	c->parsed_docs |= doc;
	if (!root)
		return 0;
	r = doc == DOC_SKR ? parse_skr_doc(&p, root, c) : parse_encfs_doc(&p, root, c);
	if (r == 0)
		warn_unknown(&p);
	return r;
}

int sidecar_config_parse_skr_args(const char *b64, size_t len, struct sidecar_config *c,
                                  struct skr_error *err)
{
	return parse_doc(b64, len, c, DOC_SKR, err);
}

int sidecar_config_parse_encfs_args(const char *b64, size_t len, struct sidecar_config *c,
                                    struct skr_error *err)
{
	return parse_doc(b64, len, c, DOC_ENCFS, err);
}

/* ---------------------------------------------------------------------------------------------
 * Validation across fields
 * ------------------------------------------------------------------------------------------- */

/* @path is @dir or below it (both normalised: absolute, no trailing '/'). */
static bool path_below_or_equal(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int sidecar_config_validate(const struct sidecar_config *c, struct skr_error *err)
{
	enum log_level level;
	char shown[48];

	if (c->n_filesystems > SIDECAR_FILESYSTEMS_MAX ||
	    c->n_allowed_maa > SIDECAR_ENDPOINTS_MAX || c->n_allowed_akv > SIDECAR_ENDPOINTS_MAX)
		return skr_error_set(err, -EINVAL, "configuration: too many entries");
	if (c->attestation_source == SNP_SOURCE_VIRTUAL && !c->virtual_dir)
		return skr_error_set(err, -EINVAL,
		                     DOC_SKR_NAME
		                     " attestation_source virtual needs "
		                     "virtual_platform_dir: the directory made by 'devcloud init'");
	if (c->attestation_source != SNP_SOURCE_VIRTUAL && c->virtual_dir)
		return skr_error_set(err, -EINVAL,
		                     DOC_SKR_NAME
		                     " virtual_platform_dir is only used with "
		                     "attestation_source virtual: the virtual platform is never "
		                     "chosen implicitly");
	if (c->log_level && log_level_from_string(c->log_level, &level) < 0)
		return skr_error_set(err, -EINVAL,
		                     "LogLevel: unknown level '%s'; expected panic, fatal, error, "
		                     "warning, warn, info, debug or trace",
		                     printable(c->log_level, shown, sizeof(shown)));

	for (size_t i = 0; i < c->n_filesystems; i++) {
		const struct sidecar_filesystem *a = &c->filesystems[i];
		const char *wd = c->work_dir ? c->work_dir : SIDECAR_DEFAULT_WORK_DIR;

		/* A restart unmounts everything below work_dir: a mount point must lie outside. */
		if (a->mount_point && (path_below_or_equal(a->mount_point, wd) ||
		                       path_below_or_equal(wd, a->mount_point)))
			return skr_error_set(
			        err, -EINVAL,
			        DOC_ENCFS_NAME
			        " work_dir %s and azure_filesystems[%zu].mount_point %s "
			        "overlap: expected a work_dir of the sidecar's own",
			        wd, i, a->mount_point);
		if (!a->azure_url || !a->mount_point)
			return skr_error_set(err, -EINVAL,
			                     DOC_ENCFS_NAME
			                     " azure_filesystems[%zu]: azure_url and "
			                     "mount_point are required",
			                     i);
		if (!a->kid && !a->raw_key_hex)
			return skr_error_set(err, -EINVAL,
			                     DOC_ENCFS_NAME
			                     " azure_filesystems[%zu].key is missing: a "
			                     "filesystem needs the key to release",
			                     i);
		if (a->raw_key_hex && !sidecar_config_raw_key_allowed())
			return skr_error_set(err, -EINVAL,
			                     DOC_ENCFS_NAME
			                     " azure_filesystems[%zu].raw_key is for "
			                     "testing only: this build does not accept it (meson "
			                     "-Dallow_raw_key=true)",
			                     i);
		if (a->kid && (!a->maa_endpoint || !a->akv_endpoint))
			return skr_error_set(err, -EINVAL,
			                     DOC_ENCFS_NAME
			                     " azure_filesystems[%zu].key: "
			                     "authority.endpoint and akv.endpoint are required",
			                     i);
		for (size_t j = 0; j < i; j++) {
			const struct sidecar_filesystem *b = &c->filesystems[j];
			const struct sidecar_filesystem *outer = NULL, *inner = NULL;
			size_t la = strlen(a->mount_point), lb = strlen(b->mount_point);

			if (strcmp(a->mount_point, b->mount_point) == 0)
				return skr_error_set(
				        err, -EINVAL,
				        DOC_ENCFS_NAME
				        " azure_filesystems[%zu].mount_point "
				        "%s duplicates azure_filesystems[%zu]: expected a "
				        "different directory for each filesystem",
				        i, a->mount_point, j);
			if (lb < la && strncmp(a->mount_point, b->mount_point, lb) == 0 &&
			    a->mount_point[lb] == '/') {
				outer = b;
				inner = a;
			} else if (la < lb && strncmp(b->mount_point, a->mount_point, la) == 0 &&
			           b->mount_point[la] == '/') {
				outer = a;
				inner = b;
			}
			if (outer)
				return skr_error_set(
				        err, -EINVAL,
				        DOC_ENCFS_NAME
				        " azure_filesystems[%zu].mount_point %s and "
				        "azure_filesystems[%zu].mount_point %s nest: "
				        "expected directories outside each other",
				        (size_t)(inner - c->filesystems), inner->mount_point,
				        (size_t)(outer - c->filesystems), outer->mount_point);
		}
	}
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Allowlists
 * ------------------------------------------------------------------------------------------- */

/*
 * Explicit allowed_endpoints plus, always, the endpoints the filesystems' keys name: the sidecar
 * itself must reach those, and a mount that our own check refused would make no sense.
 */
static bool endpoint_allowed(const struct sidecar_config *c, const char *endpoint, bool maa)
{
	_cleanup_free_ char *norm = NULL;
	char *const *list = maa ? c->allowed_maa : c->allowed_akv;
	size_t n = maa ? c->n_allowed_maa : c->n_allowed_akv;
	const char *why;

	if (endpoint_normalise(endpoint, maa, &norm, &why) < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (list[i] && strcmp(list[i], norm) == 0)
			return true;
	for (size_t i = 0; i < c->n_filesystems; i++) {
		const char *own =
		        maa ? c->filesystems[i].maa_endpoint : c->filesystems[i].akv_endpoint;
		_cleanup_free_ char *own_norm = NULL;

		if (own && endpoint_normalise(own, maa, &own_norm, &why) == 0 &&
		    strcmp(own_norm, norm) == 0)
			return true;
	}
	return false;
}

bool sidecar_config_maa_allowed(const struct sidecar_config *c, const char *endpoint)
{
	return endpoint_allowed(c, endpoint, true);
}

bool sidecar_config_akv_allowed(const struct sidecar_config *c, const char *endpoint)
{
	return endpoint_allowed(c, endpoint, false);
}

/* ---------------------------------------------------------------------------------------------
 * Attester configuration
 * ------------------------------------------------------------------------------------------- */

void sidecar_config_attest(const struct sidecar_config *c, struct skr_attest_config *out)
{
	memset(out, 0, sizeof(*out));
	out->source.kind = c->attestation_source;
	out->source.virtual_dir = c->virtual_dir;
	out->certcache = c->certcache;
	out->certcache.type = certcache_effective_type(&c->certcache);
	out->certcache.cache_dir = c->cert_cache_dir;
	out->certcache.ca_bundle = c->ca_bundle;
	out->certcache.timeout_ms = c->timeout_ms;
	out->security_context_dir = c->security_context_dir;
	out->ca_bundle = c->ca_bundle;
	out->user_agent = c->maa_user_agent;
	out->timeout_ms = c->timeout_ms;
	out->identity.client_id = c->identity_client_id;
	out->identity.imds_endpoint = c->imds_endpoint;
	out->identity.ca_bundle = c->ca_bundle;
	out->identity.timeout_ms = c->timeout_ms;
}

/* ---------------------------------------------------------------------------------------------
 * --print-config
 * ------------------------------------------------------------------------------------------- */

static json_object *json_str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

/* The image URL without its query: a SAS signature is a credential. */
static json_object *json_url_redacted(const char *url)
{
	const char *q = url ? strchr(url, '?') : NULL;
	_cleanup_free_ char *s = NULL;

	if (!q)
		return json_str_or_null(url);
	if (asprintf(&s, "%.*s?" REDACTED, (int)(q - url), url) < 0)
		return NULL;
	return json_object_new_string(s);
}

static void json_list_add_unique(json_object *arr, const char *s)
{
	for (size_t i = 0; i < json_object_array_length(arr); i++)
		if (strcmp(json_object_get_string(json_object_array_get_idx(arr, i)), s) == 0)
			return;
	json_object_array_add(arr, json_object_new_string(s));
}

static json_object *effective_allowlist(const struct sidecar_config *c, bool maa)
{
	json_object *arr = json_object_new_array();
	char *const *list = maa ? c->allowed_maa : c->allowed_akv;
	size_t n = maa ? c->n_allowed_maa : c->n_allowed_akv;
	const char *why;

	if (!arr)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (list[i])
			json_list_add_unique(arr, list[i]);
	for (size_t i = 0; i < c->n_filesystems; i++) {
		const char *own =
		        maa ? c->filesystems[i].maa_endpoint : c->filesystems[i].akv_endpoint;
		_cleanup_free_ char *norm = NULL;

		if (own && endpoint_normalise(own, maa, &norm, &why) == 0)
			json_list_add_unique(arr, norm);
	}
	return arr;
}

static json_object *certcache_effective(const struct snp_certcache_config *cc, long timeout_ms)
{
	json_object *o = json_object_new_object();
	const char *endpoint = cc->endpoint, *tee = cc->tee_type, *api = cc->api_version,
	           *client = cc->client_id;
	enum snp_certcache_type type = certcache_effective_type(cc);

	if (!o)
		return NULL;
	switch (type) {
	case SNP_CERTCACHE_AMD:
		endpoint = endpoint ? endpoint : "https://kdsintf.amd.com";
		break;
	case SNP_CERTCACHE_AZCACHE:
		endpoint = endpoint ? endpoint : "global.acccache.azure.net";
		tee = tee ? tee : "SevSnpVM";
		api = api ? api : "api-version=2020-10-15-preview";
		client = client ? client : "clientId=ConfidentialACI";
		break;
	case SNP_CERTCACHE_LOCAL_THIM:
		endpoint = endpoint ? endpoint : "169.254.169.254/metadata/THIM/amd/certification";
		break;
	case SNP_CERTCACHE_NONE:
		break;
	}
	json_object_object_add(o, "endpoint_type",
	                       json_object_new_string(type == SNP_CERTCACHE_NONE
	                                                      ? "none"
	                                                      : certcache_type_name(type)));
	json_object_object_add(o, "endpoint", json_str_or_null(endpoint));
	json_object_object_add(o, "tee_type", json_str_or_null(tee));
	json_object_object_add(o, "api_version", json_str_or_null(api));
	json_object_object_add(o, "client_id", json_str_or_null(client));
	json_object_object_add(o, "timeout_ms",
	                       json_object_new_int64(timeout_ms ? timeout_ms : 10000));
	return o;
}

static json_object *filesystem_effective(const struct sidecar_filesystem *fs)
{
	json_object *o = json_object_new_object(), *key, *ops, *auth, *akv, *kdf;

	if (!o)
		return NULL;
	json_object_object_add(o, "azure_url", json_url_redacted(fs->azure_url));
	json_object_object_add(o, "azure_url_private",
	                       json_object_new_boolean(fs->azure_url_private));
	json_object_object_add(o, "mount_point", json_str_or_null(fs->mount_point));
	json_object_object_add(o, "read_write", json_object_new_boolean(fs->read_write));
	if (fs->kid) {
		key = json_object_new_object();
		ops = json_object_new_array();
		auth = json_object_new_object();
		akv = json_object_new_object();
		json_object_object_add(key, "kid", json_object_new_string(fs->kid));
		json_object_object_add(key, "kty", json_str_or_null(fs->kty));
		for (size_t i = 0; i < fs->n_key_ops; i++)
			json_object_array_add(ops, json_object_new_string(fs->key_ops[i]));
		json_object_object_add(key, "key_ops", ops);
		json_object_object_add(auth, "endpoint", json_str_or_null(fs->maa_endpoint));
		json_object_object_add(key, "authority", auth);
		json_object_object_add(akv, "endpoint", json_str_or_null(fs->akv_endpoint));
		json_object_object_add(akv, "bearer_token",
		                       fs->akv_bearer_token ? json_object_new_string(REDACTED)
		                                            : NULL);
		json_object_object_add(key, "akv", akv);
		json_object_object_add(o, "key", key);
		kdf = json_object_new_object();
		json_object_object_add(kdf, "salt", json_str_or_null(fs->kdf_salt_hex));
		json_object_object_add(kdf, "label",
		                       json_object_new_string(fs->kdf_label
		                                                      ? fs->kdf_label
		                                                      : SKR_DEFAULT_KDF_LABEL));
		json_object_object_add(o, "key_derivation", kdf);
	}
	if (fs->raw_key_hex)
		json_object_object_add(o, "raw_key", json_object_new_string(REDACTED));
	json_object_object_add(o, "verity_root_hash", json_str_or_null(fs->verity_root_hash));
	return o;
}

int sidecar_config_print(const struct sidecar_config *c, FILE *f)
{
	_cleanup_json_ json_object *root = json_object_new_object();
	json_object *o, *arr;
	enum log_level level = LOG_LEVEL_INFO;
	const char *text;

	if (!root)
		return -ENOMEM;
	if (!c->log_level || log_level_from_string(c->log_level, &level) < 0)
		(void)log_level_from_string(DEFAULT_LOG_LEVEL, &level);
	json_object_object_add(root, "port",
	                       json_object_new_int(c->port ? c->port : SIDECAR_DEFAULT_PORT));
	json_object_object_add(root, "log_level", json_object_new_string(log_level_name(level)));
	json_object_object_add(root, "log_file", json_str_or_null(c->log_file));
	json_object_object_add(
	        root, "log_format",
	        json_object_new_string(c->log_format == SIDECAR_LOG_JSON ? "json" : "human"));
	json_object_object_add(root, "audit_file", json_str_or_null(c->audit_file));

	json_object_object_add(root, "certcache",
	                       certcache_effective(&c->certcache, c->timeout_ms));
	o = json_object_new_object();
	json_object_object_add(o, "client_id", json_str_or_null(c->identity_client_id));
	json_object_object_add(root, "identity", o);
	o = json_object_new_object();
	json_object_object_add(
	        o, "user_agent",
	        json_object_new_string(c->maa_user_agent ? c->maa_user_agent : DEFAULT_USER_AGENT));
	json_object_object_add(root, "maaconfig", o);

	json_object_object_add(root, "attestation_source",
	                       json_object_new_string(snp_source_kind_name(c->attestation_source)));
	json_object_object_add(root, "virtual_platform_dir", json_str_or_null(c->virtual_dir));
	json_object_object_add(root, "ca_bundle", json_str_or_null(c->ca_bundle));
	json_object_object_add(
	        root, "imds_endpoint",
	        json_object_new_string(c->imds_endpoint ? c->imds_endpoint : DEFAULT_IMDS));
	/* null: discovered at start (UVM_SECURITY_CONTEXT_DIR, /security-context-*, kata). */
	json_object_object_add(root, "security_context_dir",
	                       json_str_or_null(c->security_context_dir));
	json_object_object_add(root, "cert_cache_dir", json_str_or_null(c->cert_cache_dir));
	json_object_object_add(
	        root, "timeout_ms",
	        json_object_new_int64(c->timeout_ms ? c->timeout_ms : DEFAULT_TIMEOUT_MS));
	o = json_object_new_object();
	json_object_object_add(o, "attestation", effective_allowlist(c, true));
	json_object_object_add(o, "key_vault", effective_allowlist(c, false));
	json_object_object_add(root, "allowed_endpoints", o);

	arr = json_object_new_array();
	for (size_t i = 0; i < c->n_filesystems && i < SIDECAR_FILESYSTEMS_MAX; i++)
		json_object_array_add(arr, filesystem_effective(&c->filesystems[i]));
	json_object_object_add(root, "azure_filesystems", arr);
	json_object_object_add(root, "raw_key_allowed",
	                       json_object_new_boolean(sidecar_config_raw_key_allowed()));
	json_object_object_add(
	        root, "work_dir",
	        json_object_new_string(c->work_dir ? c->work_dir : SIDECAR_DEFAULT_WORK_DIR));
	json_object_object_add(root, "ready_file", json_str_or_null(c->ready_file));
	json_object_object_add(
	        root, "on_mount_failure",
	        json_object_new_string(
	                c->on_mount_failure == SIDECAR_ON_FAILURE_CONTINUE ? "continue" : "exit"));
	json_object_object_add(
	        root, "access",
	        json_object_new_string(c->access == SIDECAR_ACCESS_DOWNLOAD ? "download" : "fuse"));
	o = json_object_new_object();
	json_object_object_add(o, "block_size",
	                       json_object_new_int64(c->cache_block_size
	                                                     ? c->cache_block_size
	                                                     : DEFAULT_CACHE_BLOCK_SIZE));
	json_object_object_add(o, "capacity_blocks",
	                       json_object_new_int64(c->cache_capacity_blocks
	                                                     ? c->cache_capacity_blocks
	                                                     : DEFAULT_CACHE_CAPACITY));
	json_object_object_add(o, "readahead_blocks",
	                       json_object_new_int64(c->cache_readahead_blocks
	                                                     ? c->cache_readahead_blocks
	                                                     : DEFAULT_CACHE_READAHEAD));
	json_object_object_add(root, "cache", o);

	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
	                                                    JSON_C_TO_STRING_SPACED |
	                                                    JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text)
		return -ENOMEM;
	if (fprintf(f, "%s\n", text) < 0 || fflush(f) != 0)
		return -EIO;
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Environment and command line
 * ------------------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: confidential-sidecar [options]\n"
	        "\n"
	        "Serve the secure key release API on localhost:PORT (127.0.0.1 and ::1 only).\n"
	        "Configuration as the Go sidecar's scripts pass it, from the environment:\n"
	        "  SkrSideCarArgs     base64 of the JSON document of protocols.md 7.1 (+ our "
	        "options)\n"
	        "  EncfsSideCarArgs   base64 of the JSON document of protocols.md 7.3\n"
	        "  Port               port to listen on (default %d)\n"
	        "  LogLevel           panic, fatal, error, warning, info (default), debug, trace\n"
	        "  LogFile            append logs to this file instead of stderr\n"
	        "The command line overrides the environment:\n"
	        "  --skr-args B64     SkrSideCarArgs\n"
	        "  --encfs-args B64   EncfsSideCarArgs\n"
	        "  --port N           1..65535\n"
	        "  --log-level LEVEL\n"
	        "  --log-file FILE\n"
	        "  --log-format F     human (default) or json (one JSON object per line)\n"
	        "  --print-config     print the effective configuration (secrets redacted), exit\n"
	        "  -h, --help         this text\n",
	        SIDECAR_DEFAULT_PORT);
}

/* The value of an environment variable, NULL when unset or only white space. */
static const char *env_value(const char *name)
{
	const char *v = getenv(name);
	size_t b, e;

	if (!v)
		return NULL;
	trim(v, strlen(v), &b, &e);
	return b == e ? NULL : v;
}

/* A copy without surrounding white space (Port and LogLevel from YAML end with '\n'). */
static int dup_trimmed(const char *s, char **out)
{
	size_t b, e;

	trim(s, strlen(s), &b, &e);
	*out = strndup(s + b, e - b);
	return *out ? 0 : -ENOMEM;
}

static int port_parse(const char *what, const char *s, uint16_t *out, struct skr_error *err)
{
	size_t b, e;
	unsigned long v = 0;

	trim(s, strlen(s), &b, &e);
	if (b == e || e - b > 5)
		goto bad;
	for (size_t i = b; i < e; i++) {
		if (s[i] < '0' || s[i] > '9')
			goto bad;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		goto bad;
	*out = (uint16_t)v;
	return 0;
bad:
	return skr_error_set(err, -EINVAL, "%s: expected a decimal port number between 1 and 65535",
	                     what);
}

int sidecar_config_load(int argc, char **argv, struct sidecar_config *out, struct skr_error *err)
{
	enum {
		OPT_SKR = 0x100,
		OPT_ENCFS,
		OPT_PORT,
		OPT_LOG_LEVEL,
		OPT_LOG_FILE,
		OPT_LOG_FORMAT,
		OPT_PRINT,
	};
	static const struct option options[] = {
	        {"skr-args", required_argument, NULL, OPT_SKR},
	        {"encfs-args", required_argument, NULL, OPT_ENCFS},
	        {"port", required_argument, NULL, OPT_PORT},
	        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	        {"log-file", required_argument, NULL, OPT_LOG_FILE},
	        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
	        {"print-config", no_argument, NULL, OPT_PRINT},
	        {"help", no_argument, NULL, 'h'},
	        {},
	};
	const char *skr = NULL, *encfs = NULL, *port = NULL, *level = NULL, *file = NULL,
	           *format = NULL, *port_what, *level_what, *file_what;
	bool print = false;
	char shown[48];
	int opt, r;

	memset(out, 0, sizeof(*out));
	out->port = SIDECAR_DEFAULT_PORT;

	optind = 0; /* GNU: start over (tests call this more than once) */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
		switch (opt) {
		case OPT_SKR:
			skr = optarg;
			break;
		case OPT_ENCFS:
			encfs = optarg;
			break;
		case OPT_PORT:
			port = optarg;
			break;
		case OPT_LOG_LEVEL:
			level = optarg;
			break;
		case OPT_LOG_FILE:
			file = optarg;
			break;
		case OPT_LOG_FORMAT:
			format = optarg;
			break;
		case OPT_PRINT:
			print = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case ':':
			return skr_error_set(err, -EINVAL, "%s needs a value; see --help",
			                     printable(argv[optind - 1], shown, sizeof(shown)));
		default:
			return skr_error_set(err, -EINVAL, "unknown option '%s'; see --help",
			                     printable(argv[optind - 1], shown, sizeof(shown)));
		}
	}
	if (optind < argc)
		return skr_error_set(err, -EINVAL, "unexpected argument '%s'; see --help",
		                     printable(argv[optind], shown, sizeof(shown)));

	/* Later sources win: a document on the command line replaces the environment's. */
	if (!skr)
		skr = env_value("SkrSideCarArgs");
	if (!encfs)
		encfs = env_value("EncfsSideCarArgs");
	if (skr && (r = sidecar_config_parse_skr_args(skr, strlen(skr), out, err)) < 0)
		goto fail;
	if (encfs && (r = sidecar_config_parse_encfs_args(encfs, strlen(encfs), out, err)) < 0)
		goto fail;

	r = 0;
	port_what = "--port";
	if (!port) {
		port = env_value("Port");
		port_what = "Port";
	}
	if (port && (r = port_parse(port_what, port, &out->port, err)) < 0)
		goto fail;

	level_what = "--log-level";
	if (!level) {
		level = env_value("LogLevel");
		level_what = "LogLevel";
	}
	if (level) {
		enum log_level l;

		if (dup_trimmed(level, &out->log_level) < 0)
			goto oom;
		if (log_level_from_string(out->log_level, &l) < 0) {
			r = skr_error_set(err, -EINVAL,
			                  "%s: unknown level '%s'; expected panic, fatal, error, "
			                  "warning, warn, info, debug or trace",
			                  level_what,
			                  printable(out->log_level, shown, sizeof(shown)));
			goto fail;
		}
	}

	file_what = "--log-file";
	if (!file) {
		file = env_value("LogFile");
		file_what = "LogFile";
	}
	if (file) {
		if (dup_trimmed(file, &out->log_file) < 0)
			goto oom;
		if (!*out->log_file) {
			r = skr_error_set(err, -EINVAL, "%s: expected a file name", file_what);
			goto fail;
		}
	}

	if (format) {
		if (strcmp(format, "human") == 0) {
			out->log_format = SIDECAR_LOG_HUMAN;
		} else if (strcmp(format, "json") == 0) {
			out->log_format = SIDECAR_LOG_JSON;
		} else {
			r = skr_error_set(
			        err, -EINVAL,
			        "--log-format: unknown format '%s'; expected human or json",
			        printable(format, shown, sizeof(shown)));
			goto fail;
		}
	}

	r = sidecar_config_validate(out, err);
	if (r < 0)
		goto fail;

	if (out->certcache.type == SNP_CERTCACHE_NONE && out->certcache.endpoint)
		log_warn("certcache.endpoint_type is missing: using AzCache, as the Go sidecar did "
		         "before endpoint_type existed; set it to AzCache, AMD or LocalTHIM");
	if (out->n_allowed_maa == 0 && out->n_filesystems == 0)
		log_warn("no attestation or key vault endpoint is allowed: /attest/maa and "
		         "/key/release will refuse every request; list them in " DOC_SKR_NAME
		         " allowed_endpoints {\"attestation\": [...], \"key_vault\": [...]}");
	for (size_t i = 0; i < out->n_filesystems; i++)
		if (out->filesystems[i].raw_key_hex)
			log_warn(DOC_ENCFS_NAME
			         " azure_filesystems[%zu] uses raw_key: testing only, "
			         "no key release protects this filesystem",
			         i);

	if (print) {
		r = sidecar_config_print(out, stdout);
		if (r < 0) {
			r = skr_error_set(err, -EIO, "--print-config: cannot write to stdout");
			goto fail;
		}
		/* the caller exits without the configuration: nothing of it may outlive this */
		sidecar_config_clear(out);
		return 1;
	}
	return 0;

oom:
	r = skr_error_set(err, -ENOMEM, "configuration: out of memory");
fail:
	sidecar_config_clear(out);
	return r < 0 ? r : -EINVAL;
}

/* ---------------------------------------------------------------------------------------------
 * Cleanup
 * ------------------------------------------------------------------------------------------- */

static void filesystem_clear(struct sidecar_filesystem *fs)
{
	free_string(&fs->azure_url);
	free_string(&fs->mount_point);
	free_string(&fs->kid);
	free_string(&fs->kty);
	for (size_t i = 0; i < fs->n_key_ops && i < SKR_KEY_OPS_MAX; i++)
		free_string(&fs->key_ops[i]);
	free_string(&fs->maa_endpoint);
	free_string(&fs->akv_endpoint);
	free_secret_string(&fs->akv_bearer_token);
	free_string(&fs->kdf_salt_hex);
	free_string(&fs->kdf_label);
	free_secret_string(&fs->raw_key_hex);
	free_string(&fs->verity_root_hash);
}

void sidecar_config_clear(struct sidecar_config *c)
{
	if (!c)
		return;
	free_string(&c->log_level);
	free_string(&c->log_file);
	free_string(&c->audit_file);
	free((char *)c->certcache.endpoint);
	free((char *)c->certcache.tee_type);
	free((char *)c->certcache.api_version);
	free((char *)c->certcache.client_id);
	free_string(&c->identity_client_id);
	free_string(&c->maa_user_agent);
	free_string(&c->virtual_dir);
	free_string(&c->ca_bundle);
	free_string(&c->imds_endpoint);
	free_string(&c->security_context_dir);
	free_string(&c->cert_cache_dir);
	free_string(&c->work_dir);
	free_string(&c->ready_file);
	for (size_t i = 0; i < c->n_allowed_maa && i < SIDECAR_ENDPOINTS_MAX; i++)
		free_string(&c->allowed_maa[i]);
	for (size_t i = 0; i < c->n_allowed_akv && i < SIDECAR_ENDPOINTS_MAX; i++)
		free_string(&c->allowed_akv[i]);
	for (size_t i = 0; i < c->n_filesystems && i < SIDECAR_FILESYSTEMS_MAX; i++)
		filesystem_clear(&c->filesystems[i]);
	memset(c, 0, sizeof(*c));
}
