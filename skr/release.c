/* SPDX-License-Identifier: MIT */
/*
 * Secure key release, client side (protocols.md §7.5, §5.2): a fresh wrapping key (KEK) from the
 * attester's pool, its public JWK set as the MAA runtime data, an MAA token, a bearer token, the
 * release call, then the vault's answer is checked (JWS signature by its x5c leaf, chain to the
 * trust store for the vault's host name) and its key_hsm unwrapped with the KEK.
 *
 * Errors name the step: "attest", "identity", "release", "release response", "unwrap". A 403 is
 * explained: the key's release policy is fetched and evaluated against the MAA token's claims,
 * and the first condition the token failed is added to the vault's own reason.
 *
 * Secrets: the KEK is freed (OpenSSL erases RSA private parts) right after the unwrap, on every
 * path; the MAA token, the bearer token and the request body are in locked memory or erased; the
 * released key goes straight from key_hsm_unwrap() into locked memory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "akv.h"
#include "attest_internal.h"
#include "b64.h"
#include "cleanup.h"
#include "http.h"
#include "json_util.h"
#include "jwk.h"
#include "jwt.h"
#include "kek_pool.h"
#include "key_wrap.h"
#include "log.h"
#include "ossl.h"
#include "release_internal.h"
#include "secret.h"
#include "skr.h"

/* A release answer is a JWS of a few KiB (an RSA-16384 key_hsm is the largest case). */
#define RELEASE_MAX_RESPONSE (1024u * 1024)
/* x5c: a leaf and a few intermediates; each a DER certificate of a few KiB. */
#define RELEASE_MAX_X5C 8
#define RELEASE_MAX_X5C_B64 (32u * 1024)

DEFINE_CLEANUP_FUNC(struct skr_key *, skr_key_free)
DEFINE_CLEANUP_FUNC(struct skr_policy *, skr_policy_free)

/* A string that is only a bearer secret: erased before it is freed. */
static inline void token_freep(char **p)
{
	if (*p)
		secure_free(*p, strlen(*p));
}
#define _cleanup_token_ _cleanup_(token_freep)

static double ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* What the request names, parsed once. */
struct release_target {
	char *base; /* https://host[:port] */
	char *host; /* the name the vault's signing certificate must carry */
	char *path; /* keys/name[/version] */
	const char *api_version;
	const char *enc; /* canonical name, NULL = the vault's default (not sent) */
	enum skr_wrap_alg alg;
};

static void release_target_clear(struct release_target *t)
{
	free(t->base);
	free(t->host);
	free(t->path);
	memset(t, 0, sizeof(*t));
}

static int release_target_parse(const struct skr_release_request *req, struct release_target *t,
                                struct skr_error *err)
{
	int r;

	if (!req->maa_endpoint || !*req->maa_endpoint)
		return skr_error_set(err, -EINVAL, "release request: maa_endpoint is empty");
	r = akv_base_url(req->akv_endpoint, &t->base, &t->host, err);
	if (r < 0)
		return skr_error_prefix(err, "release request: ");
	r = akv_api_version(req->api_version, &t->api_version, err);
	if (r < 0)
		return skr_error_prefix(err, "release request: ");
	r = akv_key_path(req->kid, &t->path, err);
	if (r < 0)
		return skr_error_prefix(err, "release request: ");
	t->alg = SKR_WRAP_RSA_AES;
	if (req->enc && *req->enc) {
		r = skr_wrap_alg_from_string(req->enc, &t->alg);
		if (r < 0)
			return skr_error_set(err, -EINVAL,
			                     "release request: enc \"%.64s\" is not one of "
			                     "CKM_RSA_AES_KEY_WRAP, RSA_AES_KEY_WRAP_256, "
			                     "RSA_AES_KEY_WRAP_384",
			                     req->enc);
		t->enc = skr_wrap_alg_name(t->alg);
	}
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The release call (§5.2)
 * ------------------------------------------------------------------------------------------- */

/* {"target": token[, "enc": name]} in locked memory (the MAA token is a bearer credential). */
static int release_body(const char *maa_token, const char *enc, struct secret **out,
                        struct skr_error *err)
{
	struct secret *body;
	int n;

	/* A compact JWS is base64url and dots: nothing to escape, and nothing else accepted. */
	if (strspn(maa_token,
	           "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=") !=
	    strlen(maa_token))
		return skr_error_set(err, -EPROTO, "the MAA token is not a compact JWS");
	n = snprintf(NULL, 0, "{\"target\":\"%s\"%s%s%s}", maa_token, enc ? ",\"enc\":\"" : "",
	             enc ? enc : "", enc ? "\"" : "");
	if (n < 0)
		return skr_error_set(err, -EINVAL, "release body");
	body = secret_new((size_t)n + 1);
	if (!body)
		return skr_error_set(err, -ENOMEM, "out of memory");
	snprintf((char *)body->data, (size_t)n + 1, "{\"target\":\"%s\"%s%s%s}", maa_token,
	         enc ? ",\"enc\":\"" : "", enc ? enc : "", enc ? "\"" : "");
	body->len = (size_t)n;
	*out = body;
	return 0;
}

/*
 * Why a 403 happened, in the terms of the key's own policy: the first condition of the policy
 * that the MAA token's claims do not meet. Appended to @out (the caller's message buffer).
 */
static void explain_denial(struct skr_attester *a, const struct release_target *t,
                           const char *bearer, const char *maa_token, char *out, size_t size)
{
	_cleanup_(skr_policy_freep) struct skr_policy *policy = NULL;
	_cleanup_free_ char *policy_json = NULL, *kid = NULL;
	_cleanup_jwt_ struct jwt j = {0};
	struct skr_error e = {0};
	const char *iss;
	int r;

	/* t->path is "keys/<kid>": the policy call wants the kid. */
	kid = strdup(t->path + strlen("keys/"));
	if (!kid) {
		snprintf(out, size, "; the release policy could not be checked: out of memory");
		return;
	}
	r = akv_get_release_policy(a->http, t->base, t->api_version, kid, bearer, &policy_json, &e);
	if (r < 0) {
		snprintf(out, size, "; the key's release policy could not be fetched: %.400s",
		         e.msg);
		return;
	}
	r = skr_policy_parse(policy_json, strlen(policy_json), &policy, &e);
	if (r < 0) {
		snprintf(out, size, "; the key's release policy could not be parsed: %.400s",
		         e.msg);
		return;
	}
	r = jwt_parse(maa_token, strlen(maa_token), &j, &e);
	if (r < 0) {
		snprintf(out, size, "; the MAA token could not be decoded: %.400s", e.msg);
		return;
	}
	iss = jwt_payload_string(&j, "iss");
	r = skr_policy_evaluate(policy, iss ? iss : "", j.payload_json, j.payload_len, NULL, &e);
	if (r == -EACCES)
		snprintf(out, size, "; policy: %.400s", e.msg);
	else if (r == 0)
		snprintf(out, size,
		         "; policy: the key's release policy accepts this token's claims (issuer "
		         "%.128s), so the vault refused for another reason (e.g. the identity's "
		         "release permission or the key's attributes)",
		         iss ? iss : "(none)");
	else
		snprintf(out, size, "; the key's release policy could not be evaluated: %.400s",
		         e.msg);
}

static int release_status_error(struct skr_attester *a, const struct release_target *t,
                                const struct skr_release_request *req,
                                const struct http_response *resp, const char *bearer,
                                const char *maa_token, struct skr_error *err)
{
	char code[96], message[320], reason[448] = "";
	const char *key = t->path + strlen("keys/");

	http_azure_error_fields(resp, code, sizeof(code), message, sizeof(message));
	if (code[0] || message[0])
		snprintf(reason, sizeof(reason), ": %s%s%s", code[0] ? code : "(no code)",
		         message[0] ? ": " : "", message);
	switch (resp->status) {
	case 400:
		return skr_error_set(err, -EINVAL,
		                     "release: the vault %s refused the request as invalid (HTTP "
		                     "400%s); check the key name, api-version and enc",
		                     t->base, reason);
	case 401:
		return skr_error_set(
		        err, -EACCES,
		        "release: the bearer token was refused: check the identity has "
		        "the release permission and the token's audience is %s (HTTP "
		        "401%s)",
		        skr_akv_resource_for(req->akv_endpoint), reason);
	case 403: {
		char why[SKR_ERROR_MSG_MAX] = "";

		explain_denial(a, t, bearer, maa_token, why, sizeof(why));
		/* A vault that already names the failed condition (devcloud does) needs no echo. */
		if (strncmp(why, "; policy: ", 10) == 0 && message[0] && strstr(message, why + 10))
			why[0] = '\0';
		return skr_error_set(err, -EACCES, "release: release denied by the vault: %.160s%s",
		                     message[0] ? message
		                     : code[0]  ? code
		                                : "HTTP 403",
		                     why);
	}
	case 404:
		return skr_error_set(err, -ENOENT,
		                     "release: key \"%s\" not found in %s (HTTP 404%s); check the "
		                     "key name and that it was imported with a release policy",
		                     key, t->base, reason);
	case 429:
		return skr_error_set(
		        err, -EAGAIN,
		        "release: the vault %s is throttling requests (HTTP 429%s) and "
		        "kept doing so after retries",
		        t->base, reason);
	default:
		if (resp->status >= 500 && resp->status <= 599)
			return skr_error_set(err, -EIO,
			                     "release: the vault %s failed with HTTP %ld%s (after "
			                     "retries)",
			                     t->base, resp->status, reason);
		return skr_error_set(err, -EPROTO,
		                     "release: unexpected HTTP %ld from the vault %s%s",
		                     resp->status, t->base, reason);
	}
}

/* POST the release; *resp is the vault's 200 answer (any other status is an error here). */
static int release_call(struct skr_attester *a, const struct release_target *t,
                        const struct skr_release_request *req, const char *bearer,
                        const char *maa_token, struct http_response *resp, struct skr_error *err)
{
	_cleanup_secret_ struct secret *auth = NULL, *body = NULL;
	_cleanup_free_ char *url = NULL;
	int r;

	r = akv_bearer_header(bearer, &auth, err);
	if (r < 0)
		return skr_error_prefix(err, "release: ");
	r = release_body(maa_token, t->enc, &body, err);
	if (r < 0)
		return skr_error_prefix(err, "release: ");
	if (asprintf(&url, "%s/%s/release?api-version=%s", t->base, t->path, t->api_version) < 0) {
		url = NULL;
		return skr_error_set(err, -ENOMEM, "out of memory");
	}

	const char *headers[] = {(const char *)auth->data, "Content-Type: application/json",
	                         "Accept: application/json", NULL};

	/* The attester's client: its timeout, and its retries of 429 (Retry-After) and 5xx. */
	log_debug("release: POST %s/%s/release", t->base, t->path);
	r = http_request(a->http, "POST", url, headers, body->data, body->len, RELEASE_MAX_RESPONSE,
	                 resp, err);
	if (r < 0)
		return skr_error_prefix(err, "release: ");
	if (resp->status != 200) {
		r = release_status_error(a, t, req, resp, bearer, maa_token, err);
		http_response_clear(resp);
		return r;
	}
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The vault's signature (§5.2): RS256 by x5c[0], x5c chained to the trust store for the host
 * ------------------------------------------------------------------------------------------- */

/*
 * The vault's x5c certificates, parsed: every answer carries the same few, and d2i_X509 is the
 * costliest step of reading an answer (OpenSSL 3 decodes the public key through its provider
 * decoders). Keyed by the exact DER bytes, so a hit is the certificate that parsing these bytes
 * gives; nothing is decided here (signature and chain are verified on every answer). Shared by
 * all attesters of the process: X509 objects are reference counted and safe to use from
 * several threads once parsed. At most RELEASE_MAX_X5C public certificates are held for the
 * life of the process (not freed at exit: OpenSSL may be cleaned up before any destructor).
 */
struct x5c_cache_entry {
	uint8_t *der;
	size_t len;
	X509 *cert;
};

static pthread_mutex_t x5c_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct x5c_cache_entry x5c_cache[RELEASE_MAX_X5C];
static size_t x5c_cache_next; /* round robin: a vault rotating its certificates evicts the old */

/* A new reference to the certificate these bytes were parsed into before, or NULL. */
static X509 *x5c_cache_get(const uint8_t *der, size_t len)
{
	X509 *cert = NULL;

	pthread_mutex_lock(&x5c_cache_lock);
	for (size_t i = 0; i < RELEASE_MAX_X5C; i++) {
		struct x5c_cache_entry *e = &x5c_cache[i];

		if (e->cert && e->len == len && memcmp(e->der, der, len) == 0) {
			if (X509_up_ref(e->cert))
				cert = e->cert;
			break;
		}
	}
	pthread_mutex_unlock(&x5c_cache_lock);
	return cert;
}

/* Best effort: without memory the next answer parses the certificate again. */
static void x5c_cache_put(const uint8_t *der, size_t len, X509 *cert)
{
	struct x5c_cache_entry *e;
	uint8_t *copy = malloc(len);

	if (!copy)
		return;
	if (!X509_up_ref(cert)) {
		free(copy);
		return;
	}
	memcpy(copy, der, len);
	pthread_mutex_lock(&x5c_cache_lock);
	e = &x5c_cache[x5c_cache_next];
	x5c_cache_next = (x5c_cache_next + 1) % RELEASE_MAX_X5C;
	free(e->der);
	X509_free(e->cert);
	*e = (struct x5c_cache_entry){.der = copy, .len = len, .cert = cert};
	pthread_mutex_unlock(&x5c_cache_lock);
}

static int x5c_decode(json_object *x5c, STACK_OF(X509) * *out, struct skr_error *err)
{
	_cleanup_x509_stack_ STACK_OF(X509) *certs = NULL;
	size_t n;

	if (!x5c || !json_object_is_type(x5c, json_type_array))
		return skr_error_set(err, -EPROTO, "the JWS header has no x5c certificate array");
	n = json_object_array_length(x5c);
	if (n == 0 || n > RELEASE_MAX_X5C)
		return skr_error_set(err, -EPROTO,
		                     "the JWS header's x5c has %zu certificates "
		                     "(1 to %d expected)",
		                     n, RELEASE_MAX_X5C);
	certs = sk_X509_new_null();
	if (!certs)
		return skr_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(x5c, i);
		_cleanup_free_ uint8_t *der = NULL;
		const unsigned char *p;
		size_t der_len, len;
		X509 *cert;

		if (!json_object_is_type(v, json_type_string))
			return skr_error_set(err, -EPROTO, "x5c[%zu] is not a string", i);
		len = (size_t)json_object_get_string_len(v);
		/* RFC 7515 §4.1.6: standard base64 of DER; tolerate the URL alphabet too. */
		if (len > RELEASE_MAX_X5C_B64 ||
		    b64_decode(json_object_get_string(v), len, B64_ACCEPT_ANY, &der, &der_len) <
		            0 ||
		    der_len == 0)
			return skr_error_set(err, -EPROTO,
			                     "x5c[%zu] is not base64 of a certificate", i);
		cert = x5c_cache_get(der, der_len);
		if (!cert) {
			p = der;
			cert = d2i_X509(NULL, &p, (long)der_len);
			if (!cert || p != der + der_len) {
				X509_free(cert);
				ERR_clear_error();
				return skr_error_set(err, -EPROTO,
				                     "x5c[%zu] is not a DER certificate", i);
			}
			x5c_cache_put(der, der_len, cert);
		}
		if (!sk_X509_push(certs, cert)) {
			X509_free(cert);
			return skr_error_set(err, -ENOMEM, "out of memory");
		}
	}
	*out = TAKE_PTR(certs);
	return 0;
}

static bool is_ip_literal(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* leaf ← intermediates ← an anchor of the trust store, the leaf issued for @host (TLS server). */
static int verify_chain(struct skr_attester *a, STACK_OF(X509) * certs, const char *host,
                        struct skr_error *err)
{
	_cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = NULL;
	_cleanup_x509_stack_ STACK_OF(X509) *untrusted = NULL;
	X509 *leaf = sk_X509_value(certs, 0);
	X509_VERIFY_PARAM *param;
	X509_STORE *store;
	int r, e;

	r = attester_vault_trust(a, &store, err);
	if (r < 0)
		return r;
	untrusted = sk_X509_new_null();
	ctx = X509_STORE_CTX_new();
	if (!untrusted || !ctx)
		return skr_error_set(err, -ENOMEM, "out of memory");
	for (int i = 1; i < sk_X509_num(certs); i++) {
		X509 *c = sk_X509_value(certs, i);

		if (!X509_up_ref(c) || !sk_X509_push(untrusted, c)) {
			X509_free(c);
			return skr_error_set(err, -ENOMEM, "out of memory");
		}
	}
	if (X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1)
		return ossl_error_set(err, -ENOMEM, "certificate verification setup");
	/* What the anchor's Go code asks: a TLS server certificate for the vault's name. */
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
	param = X509_STORE_CTX_get0_param(ctx);
	if ((is_ip_literal(host) ? X509_VERIFY_PARAM_set1_ip_asc(param, host)
	                         : X509_VERIFY_PARAM_set1_host(param, host, 0)) != 1)
		return ossl_error_set(err, -EINVAL, "certificate host name check setup");
	if (X509_verify_cert(ctx) == 1)
		return 0;
	e = X509_STORE_CTX_get_error(ctx);
	ERR_clear_error();
	if (e == X509_V_ERR_HOSTNAME_MISMATCH || e == X509_V_ERR_IP_ADDRESS_MISMATCH) {
		char subject[160] = "";

		X509_NAME_oneline(X509_get_subject_name(leaf), subject, sizeof(subject));
		return skr_error_set(
		        err, -EPERM,
		        "the JWS signing certificate (%s) is not issued for the vault's "
		        "host %s",
		        subject, host);
	}
	return skr_error_set(
	        err, -EPERM, "the JWS certificate chain is not trusted: %s (trust store: %s)",
	        X509_verify_cert_error_string(e), a->ca_bundle ? a->ca_bundle : "system default");
}

/* The answer's JWS is signed by its x5c[0], which chains to the trust store for @host. */
static int verify_answer(struct skr_attester *a, const char *host, const struct release_answer *ans,
                         struct skr_error *err)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *leaf_key = NULL;
	int r;

	leaf_key = X509_get_pubkey(sk_X509_value(ans->x5c, 0));
	if (!leaf_key)
		return ossl_error_set(err, -EPROTO, "x5c[0] has no usable public key");
	r = jwt_verify_rs256(&ans->jwt, ans->jws, leaf_key, err);
	if (r == -EBADMSG)
		return skr_error_reset(err, -EBADMSG,
		                       "the JWS signature does not verify with its x5c[0] "
		                       "certificate");
	if (r < 0)
		return r;
	return verify_chain(a, ans->x5c, host, err);
}

/* ---------------------------------------------------------------------------------------------
 * The released key (§5.2 payload, §5.3)
 * ------------------------------------------------------------------------------------------- */

static int payload_key(struct release_answer *out, struct skr_error *err)
{
	struct skr_error e = {0};
	json_object *resp, *outer, *key;
	int r;

	r = json_get_object(out->jwt.payload, "response", true, &resp, &e);
	if (r == 0)
		r = json_get_object(resp, "key", true, &outer, &e);
	if (r == 0)
		r = json_get_object(outer, "key", true, &key, &e);
	if (r == 0)
		r = json_get_string(key, "kty", true, &out->kty, &e);
	if (r == 0)
		r = json_get_string(key, "kid", false, &out->kid, &e);
	if (r == 0)
		r = json_get_string(key, "key_hsm", true, &out->key_hsm, &e);
	if (r < 0)
		return skr_error_set(err, -EPROTO, "JWS payload response.key.key: %s", e.msg);
	if (json_object_object_get_ex(key, "key_ops", &out->key_ops) &&
	    !json_object_is_type(out->key_ops, json_type_null)) {
		if (!json_object_is_type(out->key_ops, json_type_array))
			return skr_error_set(
			        err, -EPROTO,
			        "JWS payload response.key.key.key_ops is not an array");
		if (json_object_array_length(out->key_ops) > SKR_KEY_OPS_MAX)
			return skr_error_set(err, -EPROTO, "JWS payload: more than %d key_ops",
			                     SKR_KEY_OPS_MAX);
		for (size_t i = 0; i < json_object_array_length(out->key_ops); i++)
			if (!json_object_is_type(json_object_array_get_idx(out->key_ops, i),
			                         json_type_string))
				return skr_error_set(err, -EPROTO,
				                     "JWS payload: key_ops[%zu] is not a string",
				                     i);
	} else {
		out->key_ops = NULL;
	}
	/* Before anything is unwrapped: a key we could not represent is not taken at all. */
	r = jwk_key_type_from_kty(out->kty, &out->type, &e);
	if (r == -ENOTSUP)
		return skr_error_set(err, -ENOTSUP, "released key type %.32s is not supported",
		                     out->kty);
	if (r < 0)
		return skr_error_set(err, r == -ENOMEM ? r : -EPROTO, "%s", e.msg);
	return 0;
}

void release_answer_clear(struct release_answer *a)
{
	if (!a)
		return;
	free(a->jws);
	jwt_clear(&a->jwt);
	if (a->x5c)
		sk_X509_pop_free(a->x5c, X509_free);
	memset(a, 0, sizeof(*a));
}

/*
 * The envelope only: {"value": JWS}, the JWS RS256 with its x5c. What the payload says is read
 * by payload_key() once the signature and chain are verified, so that a forged answer is
 * refused as forged and never judged on what it claims (its key type, its members).
 */
static int answer_decode(const char *body, size_t len, struct release_answer *out,
                         struct skr_error *err)
{
	_cleanup_json_ json_object *root = NULL;
	struct release_answer ans = {0};
	struct skr_error e = {0};
	json_object *x5c = NULL;
	const char *value;
	int r;

	memset(out, 0, sizeof(*out));
	r = json_parse(body, len, "release answer", &root, &e);
	if (r == 0)
		r = json_get_string(root, "value", true, &value, &e);
	if (r < 0)
		return skr_error_set(err, r == -ENOMEM ? r : -EPROTO, "%s", e.msg);
	ans.jws = strdup(value);
	if (!ans.jws)
		return skr_error_set(err, -ENOMEM, "out of memory");
	r = jwt_parse(ans.jws, strlen(ans.jws), &ans.jwt, &e);
	if (r < 0) {
		r = skr_error_set(err, r == -ENOMEM ? r : -EPROTO, "malformed JWS: %s", e.msg);
		goto fail;
	}
	r = jwt_check_alg_rs256(&ans.jwt, &e);
	if (r < 0) {
		r = skr_error_set(err, -EPROTO, "%s", e.msg);
		goto fail;
	}
	json_object_object_get_ex(ans.jwt.header, "x5c", &x5c);
	r = x5c_decode(x5c, &ans.x5c, err);
	if (r < 0)
		goto fail;
	*out = ans;
	return 0;
fail:
	release_answer_clear(&ans);
	return r;
}

int release_answer_parse(const char *body, size_t len, struct release_answer *out,
                         struct skr_error *err)
{
	int r = answer_decode(body, len, out, err);

	if (r < 0)
		return r;
	r = payload_key(out, err);
	if (r < 0)
		release_answer_clear(out);
	return r;
}

static int key_new(const struct release_answer *rel, struct secret *material, struct skr_key **out,
                   struct skr_error *err)
{
	_cleanup_(skr_key_freep) struct skr_key *k = calloc(1, sizeof(*k));

	if (!k)
		return skr_error_set(err, -ENOMEM, "out of memory");
	k->type = rel->type;
	if (rel->kid) {
		k->kid = strdup(rel->kid);
		if (!k->kid)
			return skr_error_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; rel->key_ops && i < json_object_array_length(rel->key_ops); i++) {
		k->key_ops[i] =
		        strdup(json_object_get_string(json_object_array_get_idx(rel->key_ops, i)));
		if (!k->key_ops[i])
			return skr_error_set(err, -ENOMEM, "out of memory");
		k->n_key_ops = i + 1;
	}
	k->material = material;
	*out = TAKE_PTR(k);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The sequence (§7.5)
 * ------------------------------------------------------------------------------------------- */

int skr_release_key_ex(struct skr_attester *a, const struct skr_release_request *req,
                       struct skr_key **out, struct skr_release_info *info, struct skr_error *err)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *kek = NULL;
	_cleanup_free_ char *runtime = NULL, *kek_kid = NULL;
	_cleanup_token_ char *maa_token = NULL;
	_cleanup_secret_ struct secret *id_token = NULL, *material = NULL;
	struct http_response resp = {0};
	struct release_target t = {0};
	struct release_answer rel = {0};
	struct skr_attest_info ainfo = {0};
	enum skr_wrap_alg alg;
	const char *bearer;
	struct timespec t0;
	size_t runtime_len;
	int r;

	if (out)
		*out = NULL;
	if (info)
		memset(info, 0, sizeof(*info));
	if (!a || !req || !out)
		return skr_error_set(err, -EINVAL, "release: no attester, request or result");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = release_target_parse(req, &t, err);
	if (r < 0)
		goto out;

	/* 1. A wrapping key never used before, and the runtime data that names it. */
	r = kek_pool_take(a->kek_pool, &kek, err);
	if (r < 0) {
		skr_error_prefix(err, "release: wrapping key: ");
		goto out;
	}
	r = jwk_runtime_data(kek, &runtime, &runtime_len, &kek_kid, err);
	if (r < 0) {
		skr_error_prefix(err, "release: wrapping key: ");
		goto out;
	}
	log_debug("release: wrapping key %s ready after %.1f ms", kek_kid, ms_since(&t0));

	/* 2–3. Report bound to the runtime data, MAA token. */
	r = skr_attest_maa_ex(a, req->maa_endpoint, (const uint8_t *)runtime, runtime_len,
	                      &maa_token, &ainfo, err);
	if (info) {
		memcpy(info->jti, ainfo.jti, sizeof(info->jti));
		memcpy(info->report_sha256, ainfo.report_sha256, sizeof(info->report_sha256));
	}
	if (r < 0) {
		skr_error_prefix(err, "attest: ");
		goto out;
	}
	log_debug("release: MAA token after %.1f ms", ms_since(&t0));

	/* 4. Bearer token for the vault. */
	if (req->access_token && *req->access_token) {
		bearer = req->access_token;
	} else {
		r = skr_identity_get_token(a->identity, skr_akv_resource_for(req->akv_endpoint),
		                           &id_token, err);
		if (r < 0) {
			skr_error_prefix(err, "identity: ");
			goto out;
		}
		bearer = (const char *)id_token->data;
	}

	/* 5. Release; the vault's signature and chain before anything its payload says. */
	r = release_call(a, &t, req, bearer, maa_token, &resp, err);
	if (r < 0)
		goto out;
	log_debug("release: vault answered after %.1f ms", ms_since(&t0));
	r = answer_decode(resp.body, resp.body_len, &rel, err);
	http_response_clear(&resp);
	if (r == 0)
		r = verify_answer(a, t.host, &rel, err);
	if (r == 0)
		r = payload_key(&rel, err);
	if (r < 0) {
		skr_error_prefix(err, "release response: ");
		goto out;
	}
	if (info && rel.kid)
		snprintf(info->kid, sizeof(info->kid), "%s", rel.kid);

	/* 6. Unwrap with the KEK, which is erased right after, whatever the outcome. */
	r = key_hsm_unwrap(kek, kek_kid, rel.key_hsm, strlen(rel.key_hsm), &alg, &material, err);
	EVP_PKEY_free(TAKE_PTR(kek));
	if (r < 0) {
		skr_error_prefix(err, "unwrap: ");
		goto out;
	}
	if (t.enc && alg != t.alg) {
		r = skr_error_set(err, -EPROTO,
		                  "unwrap: the vault wrapped with %s but %s was asked",
		                  skr_wrap_alg_name(alg), t.enc);
		goto out;
	}
	r = jwk_check_material(rel.kty, material, &rel.type, err);
	if (r < 0) {
		skr_error_prefix(err, "unwrap: ");
		goto out;
	}
	if (info)
		skr_key_fingerprint(material->data, material->len, info->key_fingerprint);
	r = key_new(&rel, material, out, err);
	if (r < 0)
		goto out;
	material = NULL;
	log_info("release: key %s released (kty %s, wrapped with %s) in %.1f ms",
	         rel.kid ? rel.kid : t.path, rel.kty, skr_wrap_alg_name(alg), ms_since(&t0));
	r = 0;
out:
	release_answer_clear(&rel);
	release_target_clear(&t);
	return r;
}

int skr_release_key(struct skr_attester *a, const struct skr_release_request *req,
                    struct skr_key **out, struct skr_error *err)
{
	return skr_release_key_ex(a, req, out, NULL, err);
}
