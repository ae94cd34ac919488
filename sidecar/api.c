/* SPDX-License-Identifier: MIT */
/*
 * The SKR API's routes and handlers (protocols.md §7.2), transport-free: a parsed request in,
 * a status and exactly one JSON body out. See api.h for the contract.
 */
#include "api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "audit.h"
#include "b64.h"
#include "cleanup.h"
#include "json_util.h"
#include "log.h"
#include "ossl.h"
#include "secret.h"
#include "status.h"

/* Caller-supplied text quoted in an error message is cut here (it is echoed back and logged). */
#define QUOTE_MAX 128

/* ---------------------------------------------------------------------------------------------
 * Error codes → HTTP statuses
 * ------------------------------------------------------------------------------------------- */

/*
 * The one mapping from libskr's error codes (skr.h, http.h) to statuses. Anything not listed is
 * our own failure: 500.
 */
static const struct {
	int code;
	unsigned status;
} error_statuses[] = {
        /* The request named something unusable: a malformed endpoint, a kid the vault
         * refuses as invalid (its 400). */
        {-EINVAL, 400},
        /* Refused: MAA refused the evidence, the vault's release policy or its check of the
         * bearer token said no, a certificate service refused us, an endpoint not allowed. */
        {-EACCES, 403},
        {-EPERM, 403},
        /* The vault has no such key (or the certificate service none for this chip). */
        {-ENOENT, 404},
        /* An upstream service failed: 5xx or throttling after retries, a malformed or
         * unverifiable answer (bad JWS signature, expired certificate), a key type we cannot
         * represent, the connection refused, reset or unroutable, an oversized answer. */
        {-EIO, 502},
        {-EPROTO, 502},
        {-EAGAIN, 502},
        {-EBADMSG, 502},
        {-ESTALE, 502},
        {-EKEYEXPIRED, 502},
        {-ENOTSUP, 502},
        {-ECONNREFUSED, 502},
        {-ECONNRESET, 502},
        {-EHOSTUNREACH, 502},
        {-EFBIG, 502},
        /* An upstream service did not answer in time (after retries). */
        {-ETIMEDOUT, 504},
};

unsigned sidecar_api_status_for_error(int code)
{
	if (code > 0)
		code = -code;
	for (size_t i = 0; i < ELEMENTSOF(error_statuses); i++)
		if (error_statuses[i].code == code)
			return error_statuses[i].status;
	return 500;
}

/* ---------------------------------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------------------------------- */

void sidecar_api_secret_body_free(void *body)
{
	struct secret *s;

	if (!body)
		return;
	memcpy(&s, (uint8_t *)body - sizeof(s), sizeof(s));
	secret_free(s);
}

void sidecar_api_response_clear(struct sidecar_api_response *resp)
{
	if (resp->secret)
		secret_free(resp->secret);
	else
		free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

static int respond_json(struct sidecar_api_response *resp, unsigned status, json_object *obj)
{
	const char *text = json_compact(obj);

	if (!text)
		return -ENOMEM;
	resp->body = strdup(text);
	if (!resp->body)
		return -ENOMEM;
	resp->body_len = strlen(resp->body);
	resp->status = status;
	return 0;
}

static int respond_error(struct sidecar_api_response *resp, unsigned status, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int respond_error(struct sidecar_api_response *resp, unsigned status, const char *fmt, ...)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	_cleanup_free_ char *msg = NULL;
	json_object *v;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0 || !o)
		return -ENOMEM;
	v = json_object_new_string(msg);
	if (!v || json_object_object_add(o, "error", v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return respond_json(resp, status, o);
}

/*
 * Escape @len bytes as the contents of a JSON string (RFC 8259 §7). Written out here rather
 * than through json-c because the text is a released key or a token: json-c would copy it into
 * heap buffers (and printbuf reallocations) that are freed without being erased. @out must
 * hold 6 * @len bytes; returns the bytes written.
 */
static size_t json_escape_into(const char *in, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			out[o++] = '\\';
			out[o++] = 'u';
			out[o++] = '0';
			out[o++] = '0';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		} else {
			out[o++] = (char)c;
		}
	}
	return o;
}

/* 200 {"@field":"<@value escaped>"} built in locked memory (see api.h on the layout). */
static int respond_secret_string(struct sidecar_api_response *resp, const char *field,
                                 const char *value, size_t len)
{
	size_t head = sizeof(struct secret *);
	size_t field_len = strlen(field);
	struct secret *s;
	char *body;
	size_t n = 0;

	if (len > (SIZE_MAX - head - field_len - 16) / 6)
		return -ENOMEM;
	s = secret_new(head + field_len + 6 * len + 16);
	if (!s)
		return -ENOMEM;
	memcpy(s->data, &s, sizeof(s));
	body = (char *)s->data + head;
	body[n++] = '{';
	body[n++] = '"';
	memcpy(body + n, field, field_len);
	n += field_len;
	memcpy(body + n, "\":\"", 3);
	n += 3;
	n += json_escape_into(value, len, body + n);
	body[n++] = '"';
	body[n++] = '}';
	body[n] = '\0';
	resp->secret = s;
	resp->body = body;
	resp->body_len = n;
	resp->status = 200;
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Request parsing (Go's binding:"required" semantics)
 * ------------------------------------------------------------------------------------------- */

/* For parsers that answer themselves: 1 = answered (the handler is done), or -ENOMEM. */
static int answered(int r)
{
	return r < 0 ? r : 1;
}

/* Parse the body as a JSON object, or answer 400. Returns 1 when answered. */
static int parse_body(const struct sidecar_api_request *req, struct sidecar_api_response *resp,
                      json_object **out)
{
	struct skr_error e = {0};
	json_object *obj = NULL;

	if (!req->body || req->body_len == 0)
		return answered(
		        respond_error(resp, 400, "request body is empty: expected a JSON object"));
	if (json_parse(req->body, req->body_len, "request body", &obj, &e) < 0)
		return answered(respond_error(resp, 400, "%s", e.msg));
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return answered(respond_error(resp, 400, "request body must be a JSON object"));
	}
	*out = obj;
	return 0;
}

/*
 * String field @key: required ones may not be missing, null or empty (Go's binding:"required");
 * optional ones yield NULL when missing, null or empty. Returns 1 when answered (400).
 */
static int get_field(json_object *obj, const char *key, bool required,
                     struct sidecar_api_response *resp, const char **out)
{
	json_object *v = NULL;

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null)) {
		if (required)
			return answered(respond_error(resp, 400, "field '%s' is required", key));
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return answered(respond_error(resp, 400, "field '%s' must be a string", key));
	if ((size_t)json_object_get_string_len(v) != strlen(json_object_get_string(v)))
		return answered(
		        respond_error(resp, 400, "field '%s' contains a NUL character", key));
	if (!*json_object_get_string(v)) {
		if (required)
			return answered(respond_error(
			        resp, 400, "field '%s' is required and may not be empty", key));
		return 0;
	}
	*out = json_object_get_string(v);
	return 0;
}

/* Decode runtime_data (see api.h for what is accepted). Returns 1 when answered (400). */
/* runtime_data (base64) → bytes, and the REPORT_DATA an attestation of them carries. */
static int decode_runtime(const char *b64, struct sidecar_api_response *resp, uint8_t **out,
                          size_t *out_len, uint8_t report_data[SNP_REPORT_DATA_SIZE])
{
	int r = b64_decode(b64, strlen(b64), B64_ACCEPT_ANY | B64_REQUIRE_PAD, out, out_len);

	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return answered(respond_error(
		        resp, 400,
		        "field 'runtime_data' is not base64: expected the standard or "
		        "URL-safe alphabet with '=' padding"));
	skr_report_data_for(*out, *out_len, report_data);
	return 0;
}

/* The body of /attest/raw and /attest/combined: {"runtime_data": b64}. */
static int parse_runtime_request(const struct sidecar_api_request *req,
                                 struct sidecar_api_response *resp, json_object **body,
                                 uint8_t **runtime, size_t *len,
                                 uint8_t report_data[SNP_REPORT_DATA_SIZE])
{
	const char *b64;
	int r;

	if ((r = parse_body(req, resp, body)) ||
	    (r = get_field(*body, "runtime_data", true, resp, &b64)))
		return r;
	return decode_runtime(b64, resp, runtime, len, report_data);
}

/* A caller-supplied string for an error message: cut, never trusted to be short. */
static const char *quote(const char *s, char *buf, size_t size)
{
	size_t n = strnlen(s, QUOTE_MAX);

	snprintf(buf, size, "%.*s%s", (int)n, s, s[n] ? "..." : "");
	return buf;
}

/* Append @item to the ", "-separated @buf unless already listed. */
static void list_add(char *buf, size_t size, const char *item)
{
	size_t off = strlen(buf), n = strlen(item);

	for (const char *p = buf; (p = strstr(p, item)); p += n)
		if ((p == buf || p[-1] == ' ') && (p[n] == '\0' || p[n] == ','))
			return;
	snprintf(buf + off, size - off, "%s%s", off ? ", " : "", item);
}

/*
 * What sidecar_config_*_allowed() accepts, for the refusal message: the explicit allowlist and
 * the endpoints the configured filesystems' keys name (as configured, not normalised).
 */
static void list_allowed(const struct sidecar_config *cfg, bool akv, char *buf, size_t size)
{
	char *const *list = akv ? cfg->allowed_akv : cfg->allowed_maa;
	size_t n = akv ? cfg->n_allowed_akv : cfg->n_allowed_maa;

	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		if (list[i])
			list_add(buf, size, list[i]);
	for (size_t i = 0; i < cfg->n_filesystems; i++) {
		const char *own =
		        akv ? cfg->filesystems[i].akv_endpoint : cfg->filesystems[i].maa_endpoint;

		if (own)
			list_add(buf, size, own);
	}
	if (!buf[0])
		snprintf(buf, size, "none");
}

/*
 * Confused deputy: the endpoints a request names must be allowed by configuration, checked
 * before anything is attested or any token fetched. Returns 1 when answered (403).
 */
static int check_allowed(const struct sidecar_config *cfg, const char *what, const char *endpoint,
                         struct sidecar_api_response *resp)
{
	bool akv = strcmp(what, "akv_endpoint") == 0;
	char q[QUOTE_MAX + 4], allowed[1024];

	if (akv ? sidecar_config_akv_allowed(cfg, endpoint)
	        : sidecar_config_maa_allowed(cfg, endpoint))
		return 0;
	list_allowed(cfg, akv, allowed, sizeof(allowed));
	return answered(respond_error(resp, 403,
	                              "%s '%s' is not allowed by configuration (allowed: %s); add "
	                              "it to allowed_endpoints.%s in SkrSideCarArgs",
	                              what, quote(endpoint, q, sizeof(q)), allowed,
	                              akv ? "key_vault" : "attestation"));
}

/* ---------------------------------------------------------------------------------------------
 * Handlers
 * ------------------------------------------------------------------------------------------- */

static const char *outcome_of(unsigned status)
{
	if (status == 200)
		return "success";
	return status == 403 ? "denied" : "error";
}

static void audit(struct sidecar_api *api, struct sidecar_audit_event *ev, unsigned status)
{
	ev->status = status;
	ev->outcome = outcome_of(status);
	if (api->audit)
		sidecar_audit_record(api->audit, ev);
}

/* Answer a libskr failure: the mapped status, @what ("attestation failed") and the reason. */
static int respond_skr_error(struct sidecar_api_response *resp, int code, const char *what,
                             const struct skr_error *e)
{
	unsigned status = sidecar_api_status_for_error(code);

	log_warn("%s: %s", what, skr_error_message(e));
	return respond_error(resp, status, "%s: %s", what, skr_error_message(e));
}

static int handle_status(struct sidecar_api *api, const struct sidecar_api_request *req,
                         struct sidecar_api_response *resp)
{
	int r = sidecar_status_to_json(api->status, &resp->body);

	(void)req;
	if (r < 0)
		return r;
	resp->body_len = strlen(resp->body);
	resp->status = 200;
	return 0;
}

static int handle_attest_raw(struct sidecar_api *api, const struct sidecar_api_request *req,
                             struct sidecar_api_response *resp)
{
	_cleanup_json_ json_object *body = NULL, *out = NULL;
	_cleanup_free_ uint8_t *runtime = NULL;
	struct sidecar_audit_event ev = {.endpoint = req->path};
	uint8_t report[SNP_REPORT_SIZE], report_data[SNP_REPORT_DATA_SIZE];
	char hex[2 * SNP_REPORT_SIZE + 1];
	struct skr_error e = {0};
	size_t len;
	int r;

	r = parse_runtime_request(req, resp, &body, &runtime, &len, report_data);
	if (r)
		return r < 0 ? r : 0;
	ev.report_data = report_data;
	r = skr_attest_raw(api->attester, runtime, len, report, &e);
	if (r < 0) {
		ev.reason = skr_error_message(&e);
		r = respond_skr_error(resp, r, "attestation failed", &e);
		audit(api, &ev, resp->status);
		return r;
	}
	hex_encode(report, sizeof(report), hex);
	out = json_object_new_object();
	if (!out || json_object_object_add(out, "report", json_object_new_string(hex)) < 0)
		return -ENOMEM;
	ev.report = report;
	ev.report_len = sizeof(report);
	r = respond_json(resp, 200, out);
	if (r == 0)
		audit(api, &ev, 200);
	return r;
}

static int add_b64(json_object *o, const char *key, const void *data, size_t len)
{
	_cleanup_free_ char *b64 = NULL;

	if (b64_encode(data, len, B64_STD, &b64) < 0)
		return -ENOMEM;
	return json_object_object_add(o, key, json_object_new_string(b64)) < 0 ? -ENOMEM : 0;
}

static int handle_attest_combined(struct sidecar_api *api, const struct sidecar_api_request *req,
                                  struct sidecar_api_response *resp)
{
	_cleanup_json_ json_object *body = NULL, *out = NULL;
	_cleanup_free_ uint8_t *runtime = NULL;
	struct sidecar_audit_event ev = {.endpoint = req->path};
	uint8_t report_data[SNP_REPORT_DATA_SIZE];
	struct skr_evidence evidence = {0};
	struct skr_error e = {0};
	size_t len;
	int r;

	r = parse_runtime_request(req, resp, &body, &runtime, &len, report_data);
	if (r)
		return r < 0 ? r : 0;
	ev.report_data = report_data;
	r = skr_attest_evidence(api->attester, runtime, len, &evidence, &e);
	if (r < 0) {
		ev.reason = skr_error_message(&e);
		r = respond_skr_error(resp, r, "attestation failed", &e);
		audit(api, &ev, resp->status);
		return r;
	}
	/* §7.2: endorsements = b64(VCEK ‖ ASK ‖ ARK PEM), evidence = b64(report), reference info
	 * passed through as found (empty when the security context has none, as in Go). */
	out = json_object_new_object();
	r = -ENOMEM;
	if (out &&
	    json_object_object_add(out, "endorsed_tcb",
	                           json_object_new_string(evidence.endorsed_tcb)) == 0 &&
	    add_b64(out, "endorsements", evidence.cert_chain_pem,
	            strlen(evidence.cert_chain_pem)) == 0 &&
	    add_b64(out, "evidence", evidence.report, sizeof(evidence.report)) == 0 &&
	    json_object_object_add(out, "uvm_endorsements",
	                           json_object_new_string(evidence.uvm_reference_info
	                                                          ? evidence.uvm_reference_info
	                                                          : "")) == 0)
		r = respond_json(resp, 200, out);
	if (r == 0) {
		ev.report = evidence.report;
		ev.report_len = sizeof(evidence.report);
		audit(api, &ev, 200);
	}
	skr_evidence_clear(&evidence);
	return r;
}

static int handle_attest_maa(struct sidecar_api *api, const struct sidecar_api_request *req,
                             struct sidecar_api_response *resp)
{
	_cleanup_json_ json_object *body = NULL;
	_cleanup_free_ uint8_t *runtime = NULL;
	struct sidecar_audit_event ev = {.endpoint = req->path};
	uint8_t report_data[SNP_REPORT_DATA_SIZE];
	struct skr_attest_info info = {0};
	struct skr_error e = {0};
	const char *b64, *maa;
	char *token = NULL;
	size_t len;
	int r;

	if ((r = parse_body(req, resp, &body)) ||
	    (r = get_field(body, "maa_endpoint", true, resp, &maa)) ||
	    (r = get_field(body, "runtime_data", true, resp, &b64)))
		return r < 0 ? r : 0;
	ev.maa_endpoint = maa;
	if ((r = check_allowed(api->cfg, "maa_endpoint", maa, resp))) {
		if (r > 0) {
			ev.reason = "maa_endpoint not allowed by configuration";
			audit(api, &ev, resp->status);
		}
		return r < 0 ? r : 0;
	}
	if ((r = decode_runtime(b64, resp, &runtime, &len, report_data)))
		return r < 0 ? r : 0;
	ev.report_data = report_data;
	r = skr_attest_maa_ex(api->attester, maa, runtime, len, &token, &info, &e);
	/* Whatever the outcome, as far as the call got: the report sent, the token's jti. */
	ev.report_sha256 = info.report_sha256;
	ev.token_jti = info.jti;
	if (r < 0) {
		ev.reason = skr_error_message(&e);
		r = respond_skr_error(resp, r, "attestation failed", &e);
		audit(api, &ev, resp->status);
		return r;
	}
	/* The token is a bearer credential for the caller: its body lives in locked memory. */
	r = respond_secret_string(resp, "token", token, strlen(token));
	if (r == 0)
		audit(api, &ev, 200);
	secure_free(token, strlen(token));
	return r;
}

static int handle_key_release(struct sidecar_api *api, const struct sidecar_api_request *req,
                              struct sidecar_api_response *resp)
{
	_cleanup_json_ json_object *body = NULL;
	_cleanup_secret_ struct secret *jwk = NULL;
	struct sidecar_audit_event ev = {.endpoint = req->path};
	struct skr_release_request rr = {0};
	struct skr_release_info info = {0};
	struct skr_key *key = NULL;
	struct skr_error e = {0};
	json_object *token_obj;
	int r;

	if ((r = parse_body(req, resp, &body)) ||
	    (r = get_field(body, "maa_endpoint", true, resp, &rr.maa_endpoint)) ||
	    (r = get_field(body, "akv_endpoint", true, resp, &rr.akv_endpoint)) ||
	    (r = get_field(body, "kid", true, resp, &rr.kid)) ||
	    (r = get_field(body, "access_token", false, resp, &rr.access_token)))
		goto out;
	ev.maa_endpoint = rr.maa_endpoint;
	ev.akv_endpoint = rr.akv_endpoint;
	ev.kid = rr.kid;
	if ((r = check_allowed(api->cfg, "maa_endpoint", rr.maa_endpoint, resp)) ||
	    (r = check_allowed(api->cfg, "akv_endpoint", rr.akv_endpoint, resp))) {
		if (r > 0) {
			ev.reason = "endpoint not allowed by configuration";
			audit(api, &ev, resp->status);
		}
		goto out;
	}
	r = skr_release_key_ex(api->attester, &rr, &key, &info, &e);
	/* Audited as far as the release got (the token's jti, the report, the released key). */
	ev.token_jti = info.jti;
	ev.report_sha256 = info.report_sha256;
	ev.key_id = info.kid[0] ? info.kid : NULL;
	ev.key_fingerprint = info.key_fingerprint[0] ? info.key_fingerprint : NULL;
	if (r < 0) {
		ev.reason = skr_error_message(&e);
		r = respond_skr_error(resp, r, "secure key release failed", &e);
		audit(api, &ev, resp->status);
		goto out;
	}
	r = skr_key_to_jwk(key, &jwk, &e);
	if (r < 0) {
		ev.reason = skr_error_message(&e);
		r = respond_skr_error(resp, r, "secure key release failed", &e);
		audit(api, &ev, resp->status);
		goto out;
	}
	/* §7.2: {"key": "<the JWK as a JSON string>"}, the Go shape. */
	r = respond_secret_string(resp, "key", (const char *)jwk->data, jwk->len);
	if (r == 0)
		audit(api, &ev, 200);
out:
	skr_key_free(key);
	/* A caller's bearer token: not left behind in json-c's freed heap. */
	if (body && json_object_object_get_ex(body, "access_token", &token_obj) &&
	    json_object_is_type(token_obj, json_type_string))
		secure_erase((char *)json_object_get_string(token_obj),
		             (size_t)json_object_get_string_len(token_obj));
	return r < 0 ? r : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Routing
 * ------------------------------------------------------------------------------------------- */

typedef int (*handler_fn)(struct sidecar_api *api, const struct sidecar_api_request *req,
                          struct sidecar_api_response *resp);

static const struct route {
	const char *path;
	const char *method;
	const char *allow; /* the Allow header of a 405 */
	handler_fn handler;
	bool slow; /* reaches the attester or a remote service */
} routes[] = {
        {"/status", "GET", "GET, HEAD", handle_status, false},
        {"/attest/raw", "POST", "POST", handle_attest_raw, true},
        {"/attest/combined", "POST", "POST", handle_attest_combined, true},
        {"/attest/maa", "POST", "POST", handle_attest_maa, true},
        {"/key/release", "POST", "POST", handle_key_release, true},
};

static const struct route *route_find(const char *path)
{
	for (size_t i = 0; i < ELEMENTSOF(routes); i++)
		if (strcmp(routes[i].path, path) == 0)
			return &routes[i];
	return NULL;
}

static bool method_matches(const struct route *rt, const char *method)
{
	/* HEAD is GET without the body (libmicrohttpd leaves the body out). */
	return strcmp(rt->method, method) == 0 ||
	       (strcmp(rt->method, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

bool sidecar_api_route_is_slow(const char *method, const char *path)
{
	const struct route *rt = route_find(path);

	return rt && rt->slow && method_matches(rt, method);
}

int sidecar_api_handle(struct sidecar_api *api, const struct sidecar_api_request *req,
                       struct sidecar_api_response *resp)
{
	const struct route *rt = route_find(req->path);
	char q[QUOTE_MAX + 4];
	int r;

	memset(resp, 0, sizeof(*resp));
	if (!rt)
		r = respond_error(resp, 404,
		                  "unknown path '%s': the API serves GET /status and POST "
		                  "/attest/raw, /attest/combined, /attest/maa, /key/release",
		                  quote(req->path, q, sizeof(q)));
	else if (!method_matches(rt, req->method)) {
		r = respond_error(resp, 405, "method %s is not allowed on %s: use %s",
		                  quote(req->method, q, sizeof(q)), rt->path, rt->method);
		resp->allow = rt->allow;
	} else if (req->content_length > SIDECAR_API_MAX_BODY ||
	           req->body_len > SIDECAR_API_MAX_BODY)
		r = respond_error(resp, 413, "request body is larger than %d bytes",
		                  SIDECAR_API_MAX_BODY);
	else
		r = rt->handler(api, req, resp);
	if (r < 0) {
		sidecar_api_response_clear(resp);
		return r;
	}
	return 0;
}
