/* SPDX-License-Identifier: MIT */
/*
 * Compact JWS/JWT: parsing, RS256 verification and issuer key discovery (jwt.h).
 */
#include "jwt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "b64.h"
#include "cleanup.h"
#include "http.h"
#include "json_util.h"
#include "ossl.h"

/* Discovery documents and key sets are small; refuse a server that sends megabytes. */
#define JWT_MAX_METADATA (256u * 1024)
/* One x5c certificate (DER, base64): MAA's are ~1.5 KiB. */
#define JWT_MAX_X5C (32u * 1024)
/* Below this an RSA signature is not worth checking (NIST SP 800-131A). */
#define JWT_MIN_RSA_BITS 2048

DEFINE_CLEANUP_FUNC(OSSL_PARAM_BLD *, OSSL_PARAM_BLD_free)
DEFINE_CLEANUP_FUNC(OSSL_PARAM *, OSSL_PARAM_free)
DEFINE_CLEANUP_FUNC(CURLU *, curl_url_cleanup)

static inline void curl_freep(char **p)
{
	if (*p)
		curl_free(*p);
}
#define _cleanup_curl_free_ _cleanup_(curl_freep)

void jwt_clear(struct jwt *j)
{
	if (!j)
		return;
	json_object_put(j->header);
	json_object_put(j->payload);
	free(j->payload_json);
	free(j->signature);
	free(j->signing_input);
	memset(j, 0, sizeof(*j));
}

static int decode_segment(const char *seg, size_t len, const char *what, uint8_t **out,
                          size_t *out_len, struct skr_error *err)
{
	int r = b64_decode(seg, len, B64_ACCEPT_URL, out, out_len);

	if (r == -ENOMEM)
		return skr_error_set(err, r, "JWT: out of memory");
	if (r < 0)
		return skr_error_set(err, -EINVAL, "JWT %s is not base64url", what);
	return 0;
}

static int decode_json_segment(const char *seg, size_t len, const char *what, json_object **obj,
                               char **text, size_t *text_len, struct skr_error *err)
{
	_cleanup_free_ uint8_t *raw = NULL;
	struct skr_error jerr = {0};
	size_t raw_len;
	int r;

	r = decode_segment(seg, len, what, &raw, &raw_len, err);
	if (r < 0)
		return r;
	r = json_parse((const char *)raw, raw_len, what, obj, &jerr);
	if (r < 0)
		return skr_error_set(err, -EINVAL, "JWT %s is not JSON: %s", what, jerr.msg);
	if (!json_object_is_type(*obj, json_type_object)) {
		json_object_put(*obj);
		*obj = NULL;
		return skr_error_set(err, -EINVAL, "JWT %s is not a JSON object", what);
	}
	if (text) {
		*text = (char *)TAKE_PTR(raw);
		*text_len = raw_len;
	}
	return 0;
}

int jwt_parse(const char *token, size_t len, struct jwt *out, struct skr_error *err)
{
	struct jwt j = {0};
	const char *dot1, *dot2, *end;
	int r;

	memset(out, 0, sizeof(*out));
	if (!token || len == 0)
		return skr_error_set(err, -EINVAL, "JWT is empty");
	if (len > JWT_MAX_SIZE)
		return skr_error_set(err, -EFBIG, "JWT is larger than %u bytes", JWT_MAX_SIZE);
	if (memchr(token, '\0', len))
		return skr_error_set(err, -EINVAL, "JWT contains a NUL byte");
	end = token + len;
	dot1 = memchr(token, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
	if (!dot1 || !dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
		return skr_error_set(err, -EINVAL,
		                     "JWT is not a compact JWS (expected 3 segments separated by "
		                     "'.')");
	if (dot1 == token || dot2 == dot1 + 1)
		return skr_error_set(err, -EINVAL, "JWT header or payload segment is empty");

	r = decode_json_segment(token, (size_t)(dot1 - token), "header", &j.header, NULL, NULL,
	                        err);
	if (r < 0)
		goto fail;
	r = decode_json_segment(dot1 + 1, (size_t)(dot2 - dot1 - 1), "payload", &j.payload,
	                        &j.payload_json, &j.payload_len, err);
	if (r < 0)
		goto fail;
	r = decode_segment(dot2 + 1, (size_t)(end - dot2 - 1), "signature", &j.signature,
	                   &j.signature_len, err);
	if (r < 0)
		goto fail;
	j.signing_input_len = (size_t)(dot2 - token);
	/* Keep the exact signed text: verification must cover the bytes the claims came from. */
	j.signing_input = strndup(token, j.signing_input_len);
	if (!j.signing_input) {
		r = skr_error_set(err, -ENOMEM, "JWT: out of memory");
		goto fail;
	}
	*out = j;
	return 0;
fail:
	jwt_clear(&j);
	return r;
}

static const char *object_string(json_object *obj, const char *name)
{
	json_object *v;

	if (!obj || !json_object_object_get_ex(obj, name, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

const char *jwt_header_string(const struct jwt *j, const char *name)
{
	return object_string(j->header, name);
}

const char *jwt_payload_string(const struct jwt *j, const char *name)
{
	return object_string(j->payload, name);
}

int jwt_check_alg_rs256(const struct jwt *j, struct skr_error *err)
{
	const char *alg = jwt_header_string(j, "alg");

	if (!alg)
		return skr_error_set(err, -EINVAL, "JWT header has no \"alg\"");
	if (strcmp(alg, "RS256") != 0)
		return skr_error_set(err, -ENOTSUP,
		                     "JWT algorithm \"%.32s\" refused: only RS256 is accepted",
		                     alg);
	return 0;
}

int jwt_verify_rs256(const struct jwt *j, const char *token, EVP_PKEY *key, struct skr_error *err)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
	int r;

	/* Decided from the header alone, before any key or signature is looked at. */
	r = jwt_check_alg_rs256(j, err);
	if (r < 0)
		return r;
	if (!key || !EVP_PKEY_is_a(key, "RSA"))
		return skr_error_set(err, -EINVAL, "JWT verification key is not an RSA key");
	if (EVP_PKEY_get_bits(key) < JWT_MIN_RSA_BITS)
		return skr_error_set(err, -EINVAL,
		                     "JWT verification key has %d bits (at least %d required)",
		                     EVP_PKEY_get_bits(key), JWT_MIN_RSA_BITS);
	/*
	 * The signature is checked over the text jwt_parse() decoded the claims from, so a caller
	 * can never verify one token's signature while trusting another token's claims. @token, when
	 * given, must be that same token.
	 */
	if (!j->signing_input ||
	    (token && (strncmp(token, j->signing_input, j->signing_input_len) != 0 ||
	               token[j->signing_input_len] != '.')))
		return skr_error_set(err, -EINVAL, "JWT text does not match the parsed token");

	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return skr_error_set(err, -ENOMEM, "JWT: out of memory");
	/* RS256 = RSASSA-PKCS1-v1_5 with SHA-256, the RSA default padding. */
	if (EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, key, NULL) != 1)
		return ossl_error_set(err, -EINVAL, "JWT: cannot set up RS256 verification");
	r = EVP_DigestVerify(ctx, j->signature, j->signature_len,
	                     (const unsigned char *)j->signing_input, j->signing_input_len);
	if (r != 1) {
		ERR_clear_error();
		return skr_error_set(err, -EBADMSG, "JWT signature is not valid (RS256)");
	}
	return 0;
}

/* A NumericDate claim (seconds since the epoch). */
static int get_numeric_date(const struct jwt *j, const char *name, bool *present, double *out,
                            struct skr_error *err)
{
	json_object *v;

	*present = false;
	if (!json_object_object_get_ex(j->payload, name, &v))
		return 0;
	if (json_object_is_type(v, json_type_int))
		*out = (double)json_object_get_int64(v);
	else if (json_object_is_type(v, json_type_double) && isfinite(json_object_get_double(v)))
		*out = json_object_get_double(v);
	else
		return skr_error_set(err, -EINVAL, "JWT claim \"%s\" is not a number", name);
	*present = true;
	return 0;
}

int jwt_check_time(const struct jwt *j, time_t now, long skew, bool require_exp,
                   struct skr_error *err)
{
	bool has_exp, has_nbf;
	double exp, nbf;
	int r;

	r = get_numeric_date(j, "exp", &has_exp, &exp, err);
	if (r < 0)
		return r;
	r = get_numeric_date(j, "nbf", &has_nbf, &nbf, err);
	if (r < 0)
		return r;
	if (!has_exp && require_exp)
		return skr_error_set(err, -EINVAL, "JWT has no \"exp\" claim");
	if (has_exp && (double)now - (double)skew >= exp)
		return skr_error_set(err, -ESTALE,
		                     "JWT expired at %.0f (now %lld, %ld s skew allowed)", exp,
		                     (long long)now, skew);
	if (has_nbf && (double)now + (double)skew < nbf)
		return skr_error_set(err, -EAGAIN,
		                     "JWT not valid before %.0f (now %lld, %ld s skew allowed)",
		                     nbf, (long long)now, skew);
	return 0;
}

static size_t trim_slash(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && s[n - 1] == '/' ? n - 1 : n;
}

/* Bytes of "scheme://authority" at the start of @url (0 without "://"). */
static size_t origin_len(const char *url, size_t len)
{
	const char *sep = memmem(url, len, "://", 3);
	const char *slash;

	if (!sep)
		return 0;
	slash = memchr(sep + 3, '/', len - (size_t)(sep + 3 - url));
	return slash ? (size_t)(slash - url) : len;
}

int jwt_check_issuer(const struct jwt *j, const char *issuer, struct skr_error *err)
{
	const char *iss = jwt_payload_string(j, "iss");
	size_t a, b, o;

	if (!iss)
		return skr_error_set(err, -EACCES, "JWT has no \"iss\" claim");
	a = trim_slash(iss);
	b = trim_slash(issuer);
	/* Scheme and host name are case-insensitive (RFC 3986 §6.2.2.1); a path is not. */
	o = origin_len(issuer, b);
	if (a != b || o != origin_len(iss, a) || strncasecmp(iss, issuer, o) != 0 ||
	    memcmp(iss + o, issuer + o, a - o) != 0)
		return skr_error_set(err, -EACCES, "JWT issuer \"%.128s\" is not \"%.128s\"", iss,
		                     issuer);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * JWKS
 * ------------------------------------------------------------------------------------------- */

static int key_from_x5c(json_object *x5c, const char *kid, EVP_PKEY **out, struct skr_error *err)
{
	_cleanup_free_ uint8_t *der = NULL;
	_cleanup_(X509_freep) X509 *cert = NULL;
	json_object *first;
	const unsigned char *p;
	size_t der_len, slen;
	const char *s;

	if (!json_object_is_type(x5c, json_type_array) || json_object_array_length(x5c) == 0)
		return skr_error_set(err, -EINVAL,
		                     "JWKS key \"%.64s\": x5c is not a non-empty array", kid);
	first = json_object_array_get_idx(x5c, 0);
	if (!json_object_is_type(first, json_type_string))
		return skr_error_set(err, -EINVAL, "JWKS key \"%.64s\": x5c[0] is not a string",
		                     kid);
	s = json_object_get_string(first);
	slen = (size_t)json_object_get_string_len(first);
	if (slen > JWT_MAX_X5C)
		return skr_error_set(err, -EFBIG, "JWKS key \"%.64s\": x5c[0] is too large", kid);
	/* RFC 7517 §4.7: standard base64 (not URL), but tolerate either spelling. */
	if (b64_decode(s, slen, B64_ACCEPT_ANY, &der, &der_len) < 0 || der_len == 0)
		return skr_error_set(err, -EINVAL, "JWKS key \"%.64s\": x5c[0] is not base64", kid);
	p = der;
	cert = d2i_X509(NULL, &p, (long)der_len);
	if (!cert || p != der + der_len) {
		ERR_clear_error();
		return skr_error_set(err, -EINVAL,
		                     "JWKS key \"%.64s\": x5c[0] is not a DER certificate", kid);
	}
	*out = X509_get_pubkey(cert);
	if (!*out)
		return ossl_error_set(err, -EINVAL, "JWKS x5c[0]: unusable public key");
	return 0;
}

static int bn_from_b64url(json_object *key, const char *name, const char *kid, BIGNUM **out,
                          struct skr_error *err)
{
	_cleanup_free_ uint8_t *raw = NULL;
	const char *s = object_string(key, name);
	size_t raw_len;

	if (!s)
		return skr_error_set(err, -EINVAL, "JWKS key \"%.64s\" has neither x5c nor \"%s\"",
		                     kid, name);
	if (strlen(s) > 2048 || b64_decode(s, strlen(s), B64_ACCEPT_URL, &raw, &raw_len) < 0 ||
	    raw_len == 0)
		return skr_error_set(err, -EINVAL, "JWKS key \"%.64s\": \"%s\" is not base64url",
		                     kid, name);
	*out = BN_bin2bn(raw, (int)raw_len, NULL);
	if (!*out)
		return skr_error_set(err, -ENOMEM, "JWKS: out of memory");
	return 0;
}

static int key_from_n_e(json_object *key, const char *kid, EVP_PKEY **out, struct skr_error *err)
{
	_cleanup_(BN_freep) BIGNUM *n = NULL, *e = NULL;
	_cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = NULL;
	_cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
	const char *kty = object_string(key, "kty");
	int r;

	if (!kty || strcmp(kty, "RSA") != 0)
		return skr_error_set(err, -ENOTSUP, "JWKS key \"%.64s\" is not an RSA key (kty)",
		                     kid);
	r = bn_from_b64url(key, "n", kid, &n, err);
	if (r < 0)
		return r;
	r = bn_from_b64url(key, "e", kid, &e, err);
	if (r < 0)
		return r;
	bld = OSSL_PARAM_BLD_new();
	if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
		return skr_error_set(err, -ENOMEM, "JWKS: out of memory");
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (!params || !ctx)
		return skr_error_set(err, -ENOMEM, "JWKS: out of memory");
	if (EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1)
		return ossl_error_set(err, -EINVAL, "JWKS key: invalid RSA n/e");
	return 0;
}

int jwks_find_key(const char *jwks, size_t len, const char *kid, EVP_PKEY **out,
                  struct skr_error *err)
{
	_cleanup_json_ json_object *root = NULL;
	struct skr_error jerr = {0};
	json_object *keys, *x5c;
	size_t n;
	int r;

	*out = NULL;
	if (!kid)
		return skr_error_set(err, -EINVAL, "JWT header has no \"kid\"");
	if (len > JWT_MAX_METADATA)
		return skr_error_set(err, -EFBIG, "JWKS is larger than %u bytes", JWT_MAX_METADATA);
	r = json_parse(jwks, len, "JWKS", &root, &jerr);
	if (r < 0)
		return skr_error_set(err, -EPROTO, "%s", jerr.msg);
	if (!json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "keys", &keys) ||
	    !json_object_is_type(keys, json_type_array))
		return skr_error_set(err, -EPROTO, "JWKS has no \"keys\" array");
	n = json_object_array_length(keys);
	for (size_t i = 0; i < n; i++) {
		json_object *key = json_object_array_get_idx(keys, i);
		const char *k = object_string(key, "kid");

		if (!k || strcmp(k, kid) != 0)
			continue;
		if (json_object_object_get_ex(key, "x5c", &x5c) &&
		    !json_object_is_type(x5c, json_type_null))
			return key_from_x5c(x5c, kid, out, err);
		return key_from_n_e(key, kid, out, err);
	}
	return skr_error_set(err, -ENOENT, "JWKS has no key with kid \"%.64s\"", kid);
}

/* Scheme, host and port of an https URL (port defaulted), for the same-origin check. */
struct url_origin {
	char *host;
	char *port;
};

static void url_origin_clear(struct url_origin *o)
{
	if (o->host)
		curl_free(o->host);
	if (o->port)
		curl_free(o->port);
	o->host = o->port = NULL;
}

static int url_origin_get(const char *url, const char *what, int code, struct url_origin *out,
                          struct skr_error *err)
{
	_cleanup_(curl_url_cleanupp) CURLU *u = curl_url();
	_cleanup_curl_free_ char *scheme = NULL;

	if (!u)
		return skr_error_set(err, -ENOMEM, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK)
		return skr_error_set(err, code, "%s \"%.128s\" is not a URL", what, url);
	if (strcasecmp(scheme, "https") != 0)
		return skr_error_set(err, code, "%s \"%.128s\" is not an https URL", what, url);
	if (curl_url_get(u, CURLUPART_HOST, &out->host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &out->port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		url_origin_clear(out);
		return skr_error_set(err, code, "%s \"%.128s\" has no host", what, url);
	}
	return 0;
}

static int fetch_json(struct http_client *c, const char *url, const char *what,
                      struct http_response *resp, struct skr_error *err)
{
	static const char *const headers[] = {"Accept: application/json", NULL};
	int r;

	r = http_request(c, "GET", url, headers, NULL, 0, JWT_MAX_METADATA, resp, err);
	if (r < 0)
		return skr_error_prefix(err, "fetching %s: ", what);
	if (resp->status != 200) {
		_cleanup_free_ char *safe = http_url_redact(url);

		return skr_error_set(err, -EPROTO, "fetching %s: %s answered HTTP %ld", what,
		                     safe ? safe : "server", resp->status);
	}
	return 0;
}

int jwks_fetch(struct http_client *c, const char *issuer, char **jwks, size_t *jwks_len,
               struct skr_error *err)
{
	struct http_response resp = {0};
	struct url_origin iss = {0}, jw = {0};
	_cleanup_json_ json_object *meta = NULL;
	_cleanup_free_ char *meta_url = NULL;
	struct skr_error jerr = {0};
	const char *jwks_uri;
	int r;

	r = url_origin_get(issuer, "issuer", -EINVAL, &iss, err);
	if (r < 0)
		return r;
	if (asprintf(&meta_url, "%.*s/.well-known/openid-configuration", (int)trim_slash(issuer),
	             issuer) < 0) {
		meta_url = NULL;
		r = skr_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = fetch_json(c, meta_url, "OpenID configuration", &resp, err);
	if (r < 0)
		goto out;
	r = json_parse(resp.body, resp.body_len, "OpenID configuration", &meta, &jerr);
	if (r < 0) {
		r = skr_error_set(err, -EPROTO, "%s", jerr.msg);
		goto out;
	}
	r = json_get_string(meta, "jwks_uri", true, &jwks_uri, &jerr);
	if (r < 0) {
		r = skr_error_set(err, -EPROTO, "OpenID configuration: %s", jerr.msg);
		goto out;
	}
	/*
	 * The token is trusted because its key came over TLS from the issuer's own host — the
	 * identity the relying party (e.g. a Key Vault release policy's "authority") names.
	 * A jwks_uri elsewhere would hand the choice of signing keys to a server holding a
	 * different TLS identity (a hijacked metadata path, a proxy, a misconfiguration), so it
	 * is refused; MAA always serves its keys at https://{instance}/certs. For the same reason
	 * the token's own "jku"/"x5u" headers are never followed.
	 */
	r = url_origin_get(jwks_uri, "OpenID configuration jwks_uri", -EPROTO, &jw, err);
	if (r < 0)
		goto out;
	if (strcasecmp(iss.host, jw.host) != 0 || strcmp(iss.port, jw.port) != 0) {
		r = skr_error_set(err, -EPERM,
		                  "OpenID configuration jwks_uri \"%.128s\" is not on the issuer's "
		                  "host %s:%s; refusing keys from another origin",
		                  jwks_uri, iss.host, iss.port);
		goto out;
	}
	http_response_clear(&resp);
	r = fetch_json(c, jwks_uri, "JWKS", &resp, err);
	if (r < 0)
		goto out;
	*jwks = TAKE_PTR(resp.body);
	*jwks_len = resp.body_len;
	r = 0;
out:
	http_response_clear(&resp);
	url_origin_clear(&iss);
	url_origin_clear(&jw);
	return r;
}

char *jwt_redact(const char *token)
{
	const char *dot1 = token ? strchr(token, '.') : NULL;
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	char *out = NULL;

	if (!dot2)
		return strdup("<redacted>");
	if (asprintf(&out, "%.*s.<redacted>", (int)(dot2 - token), token) < 0)
		return NULL;
	return out;
}
