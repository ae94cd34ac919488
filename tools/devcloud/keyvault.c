/* SPDX-License-Identifier: MIT */
/*
 * The key vault (protocols.md §5) on --kv-port: import (PUT /keys/{name}), read
 * (GET /keys/{name}[/{version}]) and secure key release (POST /keys/{name}[/{version}]/release).
 *
 * Every call needs a bearer token devcloud issued (identity.c) for https://vault.azure.net or
 * https://managedhsm.azure.net, and an api-version 7.x. A release is decided in this order, so
 * that nothing is fetched for a token the policy could never accept and nothing is released
 * unless every step passed:
 *   1. the key exists, is enabled, exportable and has a release policy;
 *   2. the token's iss (unverified yet) is one of the policy's authorities;
 *   3. the token verifies against that issuer's JWKS over HTTPS (skr_token_verifier, trusting
 *      devcloud's ca.pem only: the issuers a local vault can meet are devcloud instances, and
 *      a system store would let any public CA vouch for a look-alike issuer);
 *   4. the release policy holds for the token's claims (403 names the failed condition);
 *   5. the key-encryption key is the first RSA key in x-ms-runtime.keys with key_ops
 *      "encrypt" (or use "enc");
 * then the key is wrapped (CKM_RSA_AES_KEY_WRAP family, skr_key_wrap) and the answer is a JWS
 * signed with vault-key.pem, whose certificate (x5c: vault.pem, CA) names the vault's hosts.
 *
 * Status codes follow Key Vault: 400 BadParameter (bad body, enc, token format, no KEK), 401
 * Unauthorized (with WWW-Authenticate), 403 Forbidden (release refused: not exportable,
 * disabled, untrusted or expired token, policy not met — the message names the failed
 * condition), 404 KeyNotFound. Re-importing a key whose latest version has an immutable release
 * policy with a different (or mutable) policy is 409 Conflict: Key Vault documents that an
 * immutable policy cannot be changed but not the exact status of the refusal.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "b64.h"
#include "cleanup.h"
#include "devcloud.h"
#include "fileio.h"
#include "json_util.h"
#include "log.h"
#include "ossl.h"
#include "secret.h"

#define PEM_MAX_SIZE (256u * 1024)
#define RECOVERY_LEVEL "Recoverable+Purgeable"
#define RECOVERABLE_DAYS 90

/* ---------------------------------------------------------------------------------------------
 * State: vault certificate, keystore, verifier
 * ------------------------------------------------------------------------------------------- */

void devcloud_vault_clear(struct devcloud_vault *v)
{
	if (!v)
		return;
	EVP_PKEY_free(v->key);
	free(v->x5c[0]);
	free(v->x5c[1]);
	free(v->thumbprint_hex);
	free(v->x5t);
	free(v->x5t_s256);
	secret_free(v->tls_key_pem);
	free(v->tls_cert_pem);
	devcloud_keystore_free(v->store);
	skr_token_verifier_free(v->verifier);
	memset(v, 0, sizeof(*v));
}

/* vault.pem + vault-key.pem: an RSA TLS server certificate from the local CA. */
static int issue_vault_cert(const char *state_dir, const struct devcloud_settings *s,
                            struct skr_error *err)
{
	_cleanup_free_ char *ca_path = path_join(state_dir, "ca.pem"),
	                    *ca_key_path = path_join(state_dir, "ca-key.pem"),
	                    *cert_path = path_join(state_dir, "vault.pem"),
	                    *key_path = path_join(state_dir, "vault-key.pem"), *pem = NULL;
	_cleanup_(X509_freep) X509 *ca = NULL, *cert = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ca_key = NULL, *key = NULL;
	_cleanup_secret_ struct secret *key_pem = NULL;
	int r;

	if (!ca_path || !ca_key_path || !cert_path || !key_path)
		return skr_error_set(err, -ENOMEM, "out of memory");
	r = devcloud_pki_load_cert(ca_path, &ca, err);
	if (r == 0)
		r = devcloud_pki_load_key(ca_key_path, &ca_key, err);
	if (r < 0)
		return r;
	/* RSA: the release JWS is RS256 (what Key Vault signs with), and it is the same key. */
	key = EVP_RSA_gen(2048);
	if (!key)
		return ossl_error_set(err, -ENOMEM, "vault key generation");
	r = devcloud_pki_issue(DEVCLOUD_CERT_TLS_SERVER, "localhost", key, ca, ca_key,
	                       (const char *const *)s->hostnames, s->n_hostnames, 825, &cert, err);
	if (r == 0)
		r = devcloud_pki_key_pem(key, &key_pem, err);
	if (r == 0)
		r = devcloud_pki_cert_pem(cert, &pem, err);
	if (r < 0)
		return r;
	r = write_file_atomic(key_path, key_pem->data, key_pem->len, 0600);
	if (r == 0)
		r = write_file_atomic(cert_path, pem, strlen(pem), 0644);
	if (r < 0)
		return skr_error_set(err, r, "cannot write %s: %s", cert_path, strerror(-r));
	return 0;
}

int devcloud_vault_state_init(const char *state_dir, const struct devcloud_settings *s,
                              struct skr_error *err)
{
	struct devcloud_keystore *ks = NULL;
	int r = issue_vault_cert(state_dir, s, err);

	if (r < 0)
		return r;
	/* Creates keystore.key and keys/. */
	r = devcloud_keystore_open(state_dir, &ks, err);
	devcloud_keystore_free(ks);
	return r;
}

static int digest_b64url(X509 *cert, const EVP_MD *md, char **b64, char **hex)
{
	unsigned char buf[EVP_MAX_MD_SIZE];
	unsigned int len = sizeof(buf);

	if (X509_digest(cert, md, buf, &len) != 1)
		return -EINVAL;
	if (hex) {
		*hex = malloc(2 * len + 1);
		if (!*hex)
			return -ENOMEM;
		hex_encode(buf, len, *hex);
	}
	return b64_encode(buf, len, B64_URL_NOPAD, b64);
}

int devcloud_vault_open(struct devcloud *dc, struct skr_error *err)
{
	struct devcloud_vault *v = &dc->vault;
	_cleanup_free_ char *cert_path = path_join(dc->state_dir, "vault.pem"),
	                    *key_path = path_join(dc->state_dir, "vault-key.pem"),
	                    *ca_path = path_join(dc->state_dir, "ca.pem"), *key_text = NULL;
	_cleanup_(X509_freep) X509 *cert = NULL, *ca = NULL;
	size_t len;
	int r;

	if (!cert_path || !key_path || !ca_path)
		return skr_error_set(err, -ENOMEM, "out of memory");
	if (access(cert_path, F_OK) < 0 || access(key_path, F_OK) < 0) {
		/* A state made before the key vault existed: issue its certificate now. */
		log_info("devcloud: issuing the key vault certificate %s", cert_path);
		r = issue_vault_cert(dc->state_dir, &dc->settings, err);
		if (r < 0)
			return r;
	}
	r = devcloud_pki_load_cert(cert_path, &cert, err);
	if (r == 0)
		r = devcloud_pki_load_key(key_path, &v->key, err);
	if (r == 0)
		r = devcloud_pki_load_cert(ca_path, &ca, err);
	if (r < 0)
		return r;
	if (EVP_PKEY_get_base_id(v->key) != EVP_PKEY_RSA ||
	    X509_check_private_key(cert, v->key) != 1)
		return ossl_error_set(err, -EINVAL,
		                      "vault.pem/vault-key.pem are not a matching RSA pair (remove "
		                      "both; serve issues new ones)");
	if (devcloud_pki_cert_b64(cert, &v->x5c[0], err) < 0 ||
	    devcloud_pki_cert_b64(ca, &v->x5c[1], err) < 0)
		return err ? err->code : -EINVAL;
	if (digest_b64url(cert, EVP_sha1(), &v->x5t, &v->thumbprint_hex) < 0 ||
	    digest_b64url(cert, EVP_sha256(), &v->x5t_s256, NULL) < 0)
		return skr_error_set(err, -ENOMEM, "vault certificate thumbprints");
	/* libmicrohttpd takes PEM text; the key stays in locked memory. */
	r = read_file(cert_path, PEM_MAX_SIZE, &v->tls_cert_pem, &len);
	if (r < 0)
		return skr_error_set(err, r, "cannot read %s: %s", cert_path, strerror(-r));
	r = read_file(key_path, PEM_MAX_SIZE, &key_text, &len);
	if (r < 0)
		return skr_error_set(err, r, "cannot read %s: %s", key_path, strerror(-r));
	v->tls_key_pem = secret_new_copy(key_text, len + 1);
	secure_erase(key_text, len);
	if (!v->tls_key_pem)
		return skr_error_set(err, -ENOMEM, "out of memory");
	r = devcloud_keystore_open(dc->state_dir, &v->store, err);
	if (r < 0)
		return r;
	r = skr_token_verifier_new(ca_path, &v->verifier, err);
	if (r < 0)
		return skr_error_prefix(err, "token verifier: ");
	log_debug("key vault: %zu key versions loaded", devcloud_keystore_count(v->store));
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Request plumbing
 * ------------------------------------------------------------------------------------------- */

/* /keys/NAME[/VERSION][/OP]: segments after /keys/ (a trailing '/' ignored). */
struct kv_path {
	char name[DEVCLOUD_KV_NAME_MAX + 1];
	char version[DEVCLOUD_KV_VERSION_LEN + 1]; /* "" = latest */
	char op[16];                               /* "" or "release" */
};

static int parse_path(const char *path, bool with_op, struct kv_path *out)
{
	const char *seg[4];
	size_t seg_len[4], n = 0;
	const char *p;

	memset(out, 0, sizeof(*out));
	if (strncmp(path, "/keys/", 6) != 0)
		return -ENOENT;
	p = path + 6;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (len == 0)
			return -ENOENT;
		if (n == 3)
			return -ENOENT;
		seg[n] = p;
		seg_len[n++] = len;
		p += len;
		if (*p == '/')
			p++;
	}
	if (n == 0 || seg_len[0] > DEVCLOUD_KV_NAME_MAX)
		return -ENOENT;
	if (with_op) {
		if (n < 2 || seg_len[n - 1] >= sizeof(out->op))
			return -ENOENT;
		memcpy(out->op, seg[n - 1], seg_len[n - 1]);
		n--;
	}
	if (n > 2 || (n == 2 && seg_len[1] != DEVCLOUD_KV_VERSION_LEN))
		return -ENOENT;
	memcpy(out->name, seg[0], seg_len[0]);
	if (n == 2)
		memcpy(out->version, seg[1], seg_len[1]);
	return 0;
}

static int unauthorized(struct devcloud *dc, struct devcloud_response *resp, const char *why)
{
	int r = devcloud_response_error(resp, 401, "Unauthorized", "%s", why);

	resp->www_authenticate = dc->www_authenticate;
	return r;
}

/*
 * Bearer token, api-version 7.x and a Host naming the vault's certificate; on success *base is
 * "https://host[:port]" (the vault URL in kids). 1 = go on, 0 = answered, <0 = error.
 */
static int prelude(struct devcloud *dc, const struct devcloud_request *req,
                   struct devcloud_response *resp, char **base, const char **api_version)
{
	struct skr_error err = {0};
	const char *av;

	if (devcloud_access_token_check(dc, devcloud_request_header(req, "Authorization"),
	                                time(NULL), &err) < 0)
		return unauthorized(dc, resp, skr_error_message(&err));
	av = devcloud_request_query(req, "api-version", NULL);
	if (!av || !*av)
		return devcloud_response_error(resp, 400, "MissingApiVersionParameter",
		                               "The api-version query parameter (?api-version=) is "
		                               "required for all requests");
	if (strncmp(av, "7.", 2) != 0 || av[2] < '0' || av[2] > '9')
		return devcloud_response_error(resp, 400, "BadParameter",
		                               "api-version '%.40s' is not supported; use 7.x (7.4 "
		                               "recommended)",
		                               av);
	if (devcloud_issuer_from_host(&dc->settings, devcloud_request_header(req, "Host"), base,
	                              &err) < 0)
		return devcloud_response_error(resp, 400, "BadParameter", "%s",
		                               skr_error_message(&err));
	*api_version = av;
	return 1;
}

static int key_not_found(struct devcloud_response *resp, const struct kv_path *p)
{
	return devcloud_response_error(
	        resp, 404, "KeyNotFound",
	        "A key with (name/id) %s%s%s was not found in this key vault", p->name,
	        *p->version ? "/" : "", p->version);
}

/* ---------------------------------------------------------------------------------------------
 * Key bundle (Key Vault's KeyBundle)
 * ------------------------------------------------------------------------------------------- */

static json_object *string_array(char *const *items, size_t n)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; a && i < n; i++) {
		json_object *s = json_object_new_string(items[i]);

		if (!s || json_object_array_add(a, s) < 0) {
			json_object_put(s);
			json_object_put(a);
			return NULL;
		}
	}
	return a;
}

/* {"key": {...public JWK...}, "attributes", "tags"?, "release_policy"?}; *jwk borrowed. */
static json_object *key_bundle(const struct devcloud_kv_key *k, const char *base, bool always_tags,
                               json_object **jwk_out)
{
	_cleanup_json_ json_object *root = json_object_new_object();
	_cleanup_free_ char *kid = NULL;
	json_object *jwk = json_object_new_object(), *attrs = json_object_new_object();
	const struct devcloud_kv_import *imp = &k->imp;

	if (!root || devcloud_json_add(root, "key", jwk) < 0) {
		json_object_put(attrs);
		return NULL;
	}
	if (devcloud_json_add(root, "attributes", attrs) < 0 ||
	    asprintf(&kid, "%s/keys/%s/%s", base, k->name, k->version) < 0) {
		kid = NULL;
		return NULL;
	}
	if (devcloud_json_add(jwk, "kid", json_object_new_string(kid)) < 0 ||
	    devcloud_json_add(jwk, "kty",
	                      json_object_new_string(devcloud_kv_kty_name(imp->kty, imp->hsm))) <
	            0 ||
	    devcloud_json_add(jwk, "key_ops", string_array(imp->key_ops, imp->n_key_ops)) < 0)
		return NULL;
	json_object_object_foreach(imp->public_jwk, name, value)
	{
		if (devcloud_json_add(jwk, name, json_object_get(value)) < 0)
			return NULL;
	}
	if (imp->kty == DEVCLOUD_KTY_OCT &&
	    devcloud_json_add(jwk, "key_size", json_object_new_int((int)imp->bits)) < 0)
		return NULL;
	if (devcloud_json_add(attrs, "enabled", json_object_new_boolean(imp->enabled)) < 0 ||
	    devcloud_json_add(attrs, "exportable", json_object_new_boolean(imp->exportable)) < 0 ||
	    devcloud_json_add(attrs, "created", json_object_new_int64(k->created)) < 0 ||
	    devcloud_json_add(attrs, "updated", json_object_new_int64(k->updated)) < 0 ||
	    devcloud_json_add(attrs, "recoveryLevel", json_object_new_string(RECOVERY_LEVEL)) < 0 ||
	    devcloud_json_add(attrs, "recoverableDays", json_object_new_int(RECOVERABLE_DAYS)) < 0)
		return NULL;
	if (imp->tags
	            ? devcloud_json_add(root, "tags", json_object_get(imp->tags)) < 0
	            : always_tags && devcloud_json_add(root, "tags", json_object_new_object()) < 0)
		return NULL;
	if (imp->has_policy) {
		_cleanup_free_ char *data = NULL;
		json_object *rp = json_object_new_object();

		if (devcloud_json_add(root, "release_policy", rp) < 0 ||
		    b64_encode(imp->policy_json, imp->policy_len, B64_URL_NOPAD, &data) < 0 ||
		    devcloud_json_add(rp, "contentType",
		                      json_object_new_string(imp->policy_content_type)) < 0 ||
		    devcloud_json_add(rp, "data", json_object_new_string(data)) < 0 ||
		    devcloud_json_add(rp, "immutable", json_object_new_boolean(imp->immutable)) < 0)
			return NULL;
	}
	if (jwk_out)
		*jwk_out = jwk;
	return TAKE_PTR(root);
}

/* ---------------------------------------------------------------------------------------------
 * PUT /keys/{name}: import
 * ------------------------------------------------------------------------------------------- */

int devcloud_handle_kv_put(struct devcloud *dc, const struct devcloud_request *req,
                           struct devcloud_response *resp)
{
	_cleanup_(devcloud_kv_import_clear) struct devcloud_kv_import imp = {0};
	_cleanup_json_ json_object *bundle = NULL;
	_cleanup_free_ char *base = NULL;
	const struct devcloud_kv_key *k = NULL;
	struct skr_error err = {0};
	const char *av = NULL;
	struct kv_path p;
	int r;

	if (parse_path(req->path, false, &p) < 0 || *p.version)
		return devcloud_response_error(resp, 404, "NotFound",
		                               "import is PUT /keys/{name}; no such path: %s",
		                               req->path);
	r = prelude(dc, req, resp, &base, &av);
	if (r <= 0)
		return r;
	if (!devcloud_kv_name_valid(p.name))
		return devcloud_response_error(
		        resp, 400, "BadParameter",
		        "key name '%.60s' is invalid: 1-%d characters of 0-9, "
		        "a-z, A-Z and '-'",
		        p.name, DEVCLOUD_KV_NAME_MAX);
	if (req->content_length > req->body_len)
		return devcloud_response_error(
		        resp, 413, "RequestTooLarge",
		        "the request body is more than the limit of %zu bytes", dc->max_body);
	r = devcloud_kv_import_parse(req->body, req->body_len, &imp, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return devcloud_response_error(resp, 400, "BadParameter", "%s",
		                               skr_error_message(&err));
	r = devcloud_keystore_add(dc->vault.store, p.name, &imp, time(NULL), &k, &err);
	if (r == -EINVAL)
		return devcloud_response_error(resp, 400, "BadParameter", "%s",
		                               skr_error_message(&err));
	if (r == -EPERM)
		return devcloud_response_error(resp, 409, "Conflict", "%s",
		                               skr_error_message(&err));
	if (r < 0) {
		log_error("key vault: import of %s: %s", p.name, skr_error_message(&err));
		return r;
	}
	log_info("key vault: imported %s/%s (%s, %u bits%s)", k->name, k->version,
	         devcloud_kv_kty_name(k->imp.kty, k->imp.hsm), k->imp.bits,
	         k->imp.exportable ? ", exportable" : "");
	bundle = key_bundle(k, base, false, NULL);
	if (!bundle)
		return -ENOMEM;
	return devcloud_response_json(resp, 200, bundle);
}

/* ---------------------------------------------------------------------------------------------
 * GET /keys/{name}[/{version}]
 * ------------------------------------------------------------------------------------------- */

int devcloud_handle_kv_get(struct devcloud *dc, const struct devcloud_request *req,
                           struct devcloud_response *resp)
{
	_cleanup_json_ json_object *bundle = NULL;
	_cleanup_free_ char *base = NULL;
	const struct devcloud_kv_key *k;
	const char *av = NULL;
	struct kv_path p;
	int r;

	if (parse_path(req->path, false, &p) < 0)
		return devcloud_response_error(resp, 404, "NotFound", "no such path: %s",
		                               req->path);
	r = prelude(dc, req, resp, &base, &av);
	if (r <= 0)
		return r;
	k = devcloud_keystore_find(dc->vault.store, p.name, *p.version ? p.version : NULL);
	if (!k)
		return key_not_found(resp, &p);
	bundle = key_bundle(k, base, false, NULL);
	if (!bundle)
		return -ENOMEM;
	return devcloud_response_json(resp, 200, bundle);
}

/* ---------------------------------------------------------------------------------------------
 * POST /keys/{name}[/{version}]/release
 * ------------------------------------------------------------------------------------------- */

/* @a equals @b, one trailing '/' on either side tolerated. */
static bool same_url(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la && a[la - 1] == '/')
		la--;
	if (lb && b[lb - 1] == '/')
		lb--;
	return la == lb && strncmp(a, b, la) == 0;
}

/* Is @iss one of the policy's top-level authorities? *list names them for the error. */
static bool issuer_is_authority(const struct devcloud_kv_key *k, const char *iss, char *list,
                                size_t list_size)
{
	_cleanup_json_ json_object *policy = NULL;
	json_object *any;
	bool found = false;
	size_t used = 0;

	list[0] = '\0';
	if (json_parse(k->imp.policy_json, k->imp.policy_len, "policy", &policy, NULL) < 0 ||
	    !json_object_object_get_ex(policy, "anyOf", &any) ||
	    !json_object_is_type(any, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(any); i++) {
		json_object *a =
		        json_object_object_get(json_object_array_get_idx(any, i), "authority");
		const char *s = json_object_get_string(a);

		if (!a || !json_object_is_type(a, json_type_string))
			continue;
		found = found || same_url(s, iss);
		if (used < list_size) {
			int n = snprintf(list + used, list_size - used, "%s%s", used ? ", " : "",
			                 s);

			if (n > 0)
				used += (size_t)n;
		}
	}
	return found;
}

/* The first RSA key of x-ms-runtime.keys that may encrypt (Key Vault's KEK choice, §5.2). */
static json_object *find_kek(json_object *claims)
{
	json_object *runtime, *keys;

	if (!json_object_object_get_ex(claims, "x-ms-runtime", &runtime) ||
	    !json_object_object_get_ex(runtime, "keys", &keys) ||
	    !json_object_is_type(keys, json_type_array))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(keys); i++) {
		json_object *k = json_object_array_get_idx(keys, i), *ops, *use;
		const char *kty = json_object_get_string(json_object_object_get(k, "kty"));
		bool enc = false;

		if (!json_object_is_type(k, json_type_object) || !kty || strcmp(kty, "RSA") != 0)
			continue;
		if (json_object_object_get_ex(k, "key_ops", &ops) &&
		    json_object_is_type(ops, json_type_array))
			for (size_t j = 0; j < json_object_array_length(ops); j++) {
				const char *op =
				        json_object_get_string(json_object_array_get_idx(ops, j));

				enc = enc || (op && strcmp(op, "encrypt") == 0);
			}
		if ((json_object_object_get_ex(k, "key_use", &use) ||
		     json_object_object_get_ex(k, "use", &use)) &&
		    json_object_is_type(use, json_type_string) &&
		    strcmp(json_object_get_string(use), "enc") == 0)
			enc = true;
		if (enc)
			return k;
	}
	return NULL;
}

static int b64url_json(json_object *obj, char **out)
{
	const char *text = json_compact(obj);

	if (!text)
		return -ENOMEM;
	return b64_encode(text, strlen(text), B64_URL_NOPAD, out);
}

/* key_hsm = b64url({"schema_version":"1.0","header":{kid,alg dir,enc},"ciphertext"}). */
static int key_hsm(const char *kek_kid, enum skr_wrap_alg alg, const uint8_t *ct, size_t ct_len,
                   char **out)
{
	_cleanup_json_ json_object *root = json_object_new_object();
	_cleanup_free_ char *ct64 = NULL;
	json_object *header = json_object_new_object();

	if (!root || devcloud_json_add(root, "schema_version", json_object_new_string("1.0")) < 0 ||
	    devcloud_json_add(root, "header", header) < 0 ||
	    devcloud_json_add(header, "kid", json_object_new_string(kek_kid ? kek_kid : "")) < 0 ||
	    devcloud_json_add(header, "alg", json_object_new_string("dir")) < 0 ||
	    devcloud_json_add(header, "enc", json_object_new_string(skr_wrap_alg_name(alg))) < 0 ||
	    b64_encode(ct, ct_len, B64_URL_NOPAD, &ct64) < 0 ||
	    devcloud_json_add(root, "ciphertext", json_object_new_string(ct64)) < 0)
		return -ENOMEM;
	return b64url_json(root, out);
}

static int release_jws(struct devcloud *dc, const struct devcloud_kv_key *k, const char *base,
                       const struct kv_path *p, const char *api_version, enum skr_wrap_alg alg,
                       const char *hsm_blob, char **out, struct skr_error *err)
{
	_cleanup_json_ json_object *header = json_object_new_object();
	_cleanup_json_ json_object *payload = json_object_new_object();
	_cleanup_free_ char *req_kid = NULL;
	json_object *request = json_object_new_object(), *response = json_object_new_object();
	json_object *bundle, *jwk = NULL, *x5c;

	if (!header || !payload || devcloud_json_add(payload, "request", request) < 0) {
		json_object_put(response);
		return skr_error_set(err, -ENOMEM, "out of memory");
	}
	if (devcloud_json_add(payload, "response", response) < 0)
		return skr_error_set(err, -ENOMEM, "out of memory");
	/* The kid as the caller asked for it: with the version only if one was given. */
	if (asprintf(&req_kid, "%s/keys/%s%s%s", base, k->name, *p->version ? "/" : "",
	             p->version) < 0) {
		req_kid = NULL;
		return skr_error_set(err, -ENOMEM, "out of memory");
	}
	bundle = key_bundle(k, base, true, &jwk);
	if (devcloud_json_add(response, "key", bundle) < 0 ||
	    devcloud_json_add(jwk, "key_hsm", json_object_new_string(hsm_blob)) < 0 ||
	    devcloud_json_add(request, "api-version", json_object_new_string(api_version)) < 0 ||
	    devcloud_json_add(request, "enc", json_object_new_string(skr_wrap_alg_name(alg))) < 0 ||
	    devcloud_json_add(request, "kid", json_object_new_string(req_kid)) < 0)
		return skr_error_set(err, -ENOMEM, "out of memory");
	/* Key Vault's header: kid is the signing certificate's SHA-1 thumbprint in hex; x5c is
	 * the chain to the CA clients trust, the leaf issued for the vault's host names. */
	x5c = json_object_new_array();
	if (devcloud_json_add(header, "alg", json_object_new_string("RS256")) < 0 ||
	    devcloud_json_add(header, "kid", json_object_new_string(dc->vault.thumbprint_hex)) <
	            0 ||
	    devcloud_json_add(header, "x5t", json_object_new_string(dc->vault.x5t)) < 0 ||
	    devcloud_json_add(header, "typ", json_object_new_string("JWT")) < 0 ||
	    devcloud_json_add(header, "x5t#S256", json_object_new_string(dc->vault.x5t_s256)) < 0 ||
	    devcloud_json_add(header, "x5c", x5c) < 0 ||
	    json_object_array_add(x5c, json_object_new_string(dc->vault.x5c[0])) < 0 ||
	    json_object_array_add(x5c, json_object_new_string(dc->vault.x5c[1])) < 0)
		return skr_error_set(err, -ENOMEM, "out of memory");
	return devcloud_jws_sign(dc->vault.key, header, payload, out, err);
}

/* Key Vault's 403 for a refused release; the reason (no secret in it) is also logged. */
static int forbidden(struct devcloud_response *resp, const struct kv_path *p, const char *detail)
{
	log_info("key vault: release of %s%s%s denied: %s", p->name, *p->version ? "/" : "",
	         p->version, detail);
	return devcloud_response_error(resp, 403, "Forbidden", "%s", detail);
}

/* The release once the key and the request are known; material is only touched at the end. */
static int release(struct devcloud *dc, const struct devcloud_kv_key *k, const char *base,
                   const struct kv_path *p, const char *api_version, const char *target,
                   enum skr_wrap_alg alg, struct devcloud_response *resp)
{
	_cleanup_free_ char *iss = NULL, *claims_json = NULL, *hsm_blob = NULL, *jws = NULL;
	_cleanup_free_ uint8_t *ct = NULL;
	_cleanup_json_ json_object *claims = NULL, *root = NULL;
	struct skr_error err = {0};
	json_object *kek;
	char authorities[512];
	const char *kek_text;
	size_t ct_len = 0, ilen;
	int r;

	r = skr_token_peek_issuer(target, &iss, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return devcloud_response_error(resp, 400, "BadParameter",
		                               "target is not an attestation token: %s",
		                               skr_error_message(&err));
	/* Before any network access: an issuer the policy does not name is refused as is. */
	if (!issuer_is_authority(k, iss, authorities, sizeof(authorities))) {
		char detail[900];

		snprintf(detail, sizeof(detail),
		         "the token issuer %.200s is not an authority of the release policy (%s)",
		         iss, authorities);
		return forbidden(resp, p, detail);
	}
	ilen = strlen(iss);
	if (ilen && iss[ilen - 1] == '/')
		iss[ilen - 1] = '\0';
	r = skr_token_verifier_verify(dc->vault.verifier, iss, target, &claims_json, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		char detail[700];

		snprintf(detail, sizeof(detail), "the target token was not accepted: %s",
		         skr_error_message(&err));
		return forbidden(resp, p, detail);
	}
	r = skr_policy_evaluate(k->policy, iss, claims_json, strlen(claims_json), NULL, &err);
	if (r == -ENOMEM)
		return r;
	if (r == -EACCES) {
		char detail[700];

		snprintf(detail, sizeof(detail), "the release policy is not satisfied: %s",
		         skr_error_message(&err));
		return forbidden(resp, p, detail);
	}
	if (r < 0)
		return devcloud_response_error(resp, 400, "BadParameter",
		                               "the token's claims cannot be evaluated: %s",
		                               skr_error_message(&err));
	r = json_parse(claims_json, strlen(claims_json), "token claims", &claims, &err);
	if (r < 0)
		return devcloud_response_error(resp, 400, "BadParameter", "%s",
		                               skr_error_message(&err));
	kek = find_kek(claims);
	if (!kek)
		return devcloud_response_error(
		        resp, 400, "BadParameter",
		        "the token's x-ms-runtime.keys has no RSA key with "
		        "key_ops 'encrypt' (or use 'enc') to wrap the key for");
	kek_text = json_compact(kek);
	r = skr_key_wrap(kek_text, strlen(kek_text), alg, k->imp.material->data,
	                 k->imp.material->len, &ct, &ct_len, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return devcloud_response_error(resp, 400, "BadParameter",
		                               "cannot wrap the key for the token's key: %s",
		                               skr_error_message(&err));
	r = key_hsm(json_object_get_string(json_object_object_get(kek, "kid")), alg, ct, ct_len,
	            &hsm_blob);
	if (r < 0)
		return r;
	r = release_jws(dc, k, base, p, api_version, alg, hsm_blob, &jws, &err);
	if (r < 0) {
		log_error("key vault: release response: %s", skr_error_message(&err));
		return r;
	}
	root = json_object_new_object();
	if (!root || devcloud_json_add(root, "value", json_object_new_string(jws)) < 0)
		return -ENOMEM;
	log_info("key vault: released %s/%s wrapped with %s", k->name, k->version,
	         skr_wrap_alg_name(alg));
	r = devcloud_response_json(resp, 200, root);
	resp->secret_body = true;
	return r;
}

int devcloud_handle_kv_post(struct devcloud *dc, const struct devcloud_request *req,
                            struct devcloud_response *resp)
{
	_cleanup_json_ json_object *body = NULL;
	_cleanup_free_ char *base = NULL;
	const struct devcloud_kv_key *k;
	const char *av = NULL, *target, *enc, *nonce;
	struct skr_error err = {0};
	enum skr_wrap_alg alg;
	struct kv_path p;
	int r;

	if (parse_path(req->path, true, &p) < 0 || strcmp(p.op, "release") != 0)
		return devcloud_response_error(resp, 404, "NotFound",
		                               "no such operation: POST %s (devcloud's vault "
		                               "implements /keys/{name}[/{version}]/release)",
		                               req->path);
	r = prelude(dc, req, resp, &base, &av);
	if (r <= 0)
		return r;
	if (req->content_length > req->body_len)
		return devcloud_response_error(
		        resp, 413, "RequestTooLarge",
		        "the request body is more than the limit of %zu bytes", dc->max_body);
	r = json_parse(req->body, req->body_len, "request body", &body, &err);
	if (r == 0 && !json_object_is_type(body, json_type_object))
		r = skr_error_set(&err, -EINVAL, "request body must be a JSON object");
	if (r == 0)
		r = json_get_string(body, "target", true, &target, &err);
	if (r == 0)
		r = json_get_string(body, "enc", false, &enc, &err);
	if (r == 0)
		r = json_get_string(body, "nonce", false, &nonce, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return devcloud_response_error(resp, 400, "BadParameter", "%s",
		                               skr_error_message(&err));
	(void)nonce; /* accepted as Key Vault does; MAA tokens carry their own nonce */
	if (skr_wrap_alg_from_string(enc, &alg) < 0)
		return devcloud_response_error(
		        resp, 400, "BadParameter",
		        "enc '%.60s' is not supported (CKM_RSA_AES_KEY_WRAP, "
		        "RSA_AES_KEY_WRAP_256, RSA_AES_KEY_WRAP_384)",
		        enc);
	k = devcloud_keystore_find(dc->vault.store, p.name, *p.version ? p.version : NULL);
	if (!k)
		return key_not_found(resp, &p);
	if (!k->imp.enabled)
		return forbidden(resp, &p, "Operation release is not allowed on a disabled key");
	if (!k->imp.exportable || !k->imp.has_policy || !k->policy)
		return forbidden(resp, &p,
		                 "the key is not exportable (import it with attributes.exportable "
		                 "true and a release_policy)");
	return release(dc, k, base, &p, av, target, alg, resp);
}
