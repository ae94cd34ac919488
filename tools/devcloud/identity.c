/* SPDX-License-Identifier: MIT */
/*
 * Azure identity, locally: the two ways a sidecar gets a bearer token for the vault
 * (protocols.md §6), served for real so both flows are tested end to end.
 *
 * - IMDS managed identity (§6.1): GET /metadata/identity/oauth2/token on the plain-HTTP
 *   --imds-port (127.0.0.1, as 169.254.169.254 is link-local), `Metadata: true` required.
 * - Workload identity (§6.2): POST /{tenant}/oauth2/v2.0/token on the attest HTTPS port, a
 *   client-credentials grant with a client assertion. In AKS the assertion is a Kubernetes
 *   service-account token and Entra trusts it through a "federated identity credential" (issuer,
 *   subject, audience) registered on the application. devcloud plays both parts:
 *   `devcloud federated-token` signs the assertion (as the cluster's token issuer would; iss =
 *   identity.json oidc_issuer, sub = a service account, aud = api://AzureADTokenExchange), and
 *   the endpoint accepts it only when it verifies with identity-key.pem, is within its
 *   lifetime, has that audience and issuer, and its subject is a federated subject of the
 *   application named by client_id in identity.json.
 *
 * Access tokens are RS256 JWTs signed with identity-key.pem: iss
 * https://sts.devcloud.local/<tenant>/ (Entra's v1 sts.windows.net/<tenant>/ form; never
 * fetched: the vault checks them with devcloud's own key), aud = the resource, appid/oid/sub/tid.
 * identity.json holds only identifiers; edit it (then restart serve) to add identities.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "b64.h"
#include "cleanup.h"
#include "devcloud.h"
#include "fileio.h"
#include "json_util.h"
#include "log.h"
#include "ossl.h"
#include "secret.h"

#define IDENTITY_MAX_SIZE (64u * 1024)
#define TOKEN_ISSUER_FMT "https://sts.devcloud.local/%s/"
#define OIDC_ISSUER_FMT "https://oidc.devcloud.local/%s"
#define BEARER_SKEW 60
#define RESOURCE_MAX 512
#define FORM_FIELDS_MAX 16
#define JWT_BEARER "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

static const char *const vault_audiences[] = {"https://vault.azure.net",
                                              "https://managedhsm.azure.net"};

/* ---------------------------------------------------------------------------------------------
 * identity.json
 * ------------------------------------------------------------------------------------------- */

static void app_clear(struct devcloud_identity_app *a)
{
	free(a->client_id);
	free(a->object_id);
	for (size_t i = 0; i < a->n_subjects; i++)
		free(a->subjects[i]);
	memset(a, 0, sizeof(*a));
}

void devcloud_identity_clear(struct devcloud_identity *id)
{
	if (!id)
		return;
	free(id->tenant_id);
	free(id->oidc_issuer);
	free(id->token_issuer);
	for (size_t i = 0; i < id->n_managed; i++)
		app_clear(&id->managed[i]);
	for (size_t i = 0; i < id->n_apps; i++)
		app_clear(&id->apps[i]);
	memset(id, 0, sizeof(*id));
}

/* A random (version 4) GUID, as Entra's tenant, client and object ids are. */
static int new_guid(char out[37])
{
	uint8_t b[16];
	char hex[33];

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -EIO;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	hex_encode(b, sizeof(b), hex);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
	return 0;
}

static json_object *app_to_json(const struct devcloud_identity_app *a, bool with_subjects)
{
	_cleanup_json_ json_object *o = json_object_new_object();

	if (!o || devcloud_json_add(o, "client_id", json_object_new_string(a->client_id)) < 0 ||
	    devcloud_json_add(o, "object_id", json_object_new_string(a->object_id)) < 0)
		return NULL;
	if (with_subjects) {
		json_object *subs = json_object_new_array();

		if (devcloud_json_add(o, "federated_subjects", subs) < 0)
			return NULL;
		for (size_t i = 0; i < a->n_subjects; i++)
			if (json_object_array_add(subs, json_object_new_string(a->subjects[i])) < 0)
				return NULL;
	}
	return TAKE_PTR(o);
}

json_object *devcloud_identity_to_json(const struct devcloud_identity *id)
{
	_cleanup_json_ json_object *root = json_object_new_object();
	json_object *managed = json_object_new_array(), *apps = json_object_new_array();

	if (!root || devcloud_json_add(root, "managed_identities", managed) < 0) {
		json_object_put(apps);
		return NULL;
	}
	if (devcloud_json_add(root, "applications", apps) < 0 ||
	    devcloud_json_add(root, "version", json_object_new_int(DEVCLOUD_IDENTITY_VERSION)) <
	            0 ||
	    devcloud_json_add(root, "tenant_id", json_object_new_string(id->tenant_id)) < 0 ||
	    devcloud_json_add(root, "oidc_issuer", json_object_new_string(id->oidc_issuer)) < 0 ||
	    devcloud_json_add(root, "token_issuer", json_object_new_string(id->token_issuer)) < 0)
		return NULL;
	for (size_t i = 0; i < id->n_managed; i++)
		if (json_object_array_add(managed, app_to_json(&id->managed[i], false)) < 0)
			return NULL;
	for (size_t i = 0; i < id->n_apps; i++)
		if (json_object_array_add(apps, app_to_json(&id->apps[i], true)) < 0)
			return NULL;
	return TAKE_PTR(root);
}

int devcloud_identity_create(const char *path, struct skr_error *err)
{
	char tenant[37], mi[37], mi_oid[37], app[37], app_oid[37];
	_cleanup_json_ json_object *root = json_object_new_object();
	json_object *managed = json_object_new_array(), *apps = json_object_new_array();
	json_object *m0 = json_object_new_object(), *a0 = json_object_new_object();
	json_object *subs = json_object_new_array();
	_cleanup_free_ char *oidc = NULL;
	const char *text;
	int r;

	if (new_guid(tenant) < 0 || new_guid(mi) < 0 || new_guid(mi_oid) < 0 || new_guid(app) < 0 ||
	    new_guid(app_oid) < 0) {
		json_object_put(managed);
		json_object_put(apps);
		json_object_put(m0);
		json_object_put(a0);
		json_object_put(subs);
		return ossl_error_set(err, -EIO, "identity ids");
	}
	if (asprintf(&oidc, OIDC_ISSUER_FMT, tenant) < 0)
		oidc = NULL;
	/* Every object goes into root first, so one put frees whatever was built. */
	if (!root || devcloud_json_add(root, "managed_identities", managed) < 0 ||
	    devcloud_json_add(root, "applications", apps) < 0 ||
	    json_object_array_add(managed, m0) < 0 || json_object_array_add(apps, a0) < 0 ||
	    devcloud_json_add(a0, "federated_subjects", subs) < 0 || !oidc ||
	    devcloud_json_add(root, "version", json_object_new_int(DEVCLOUD_IDENTITY_VERSION)) <
	            0 ||
	    devcloud_json_add(root, "tenant_id", json_object_new_string(tenant)) < 0 ||
	    devcloud_json_add(root, "oidc_issuer", json_object_new_string(oidc)) < 0 ||
	    devcloud_json_add(m0, "client_id", json_object_new_string(mi)) < 0 ||
	    devcloud_json_add(m0, "object_id", json_object_new_string(mi_oid)) < 0 ||
	    devcloud_json_add(a0, "client_id", json_object_new_string(app)) < 0 ||
	    devcloud_json_add(a0, "object_id", json_object_new_string(app_oid)) < 0 ||
	    json_object_array_add(subs, json_object_new_string(DEVCLOUD_DEFAULT_WORKLOAD_SUBJECT)) <
	            0)
		return skr_error_set(err, -ENOMEM, "identity.json: out of memory");
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
	                                                    JSON_C_TO_STRING_NOSLASHESCAPE);
	r = write_file_atomic(path, text, strlen(text), 0644);
	if (r < 0)
		return skr_error_set(err, r, "cannot write %s: %s", path, strerror(-r));
	return 0;
}

static int load_app(json_object *o, const char *what, size_t idx, bool with_subjects,
                    struct devcloud_identity_app *a, struct skr_error *err)
{
	const char *cid, *oid;
	json_object *subs;
	int r;

	if (!json_object_is_type(o, json_type_object))
		return skr_error_set(err, -EINVAL, "%s[%zu] is not an object", what, idx);
	r = json_get_string(o, "client_id", true, &cid, err);
	if (r == 0)
		r = json_get_string(o, "object_id", true, &oid, err);
	if (r < 0)
		return skr_error_prefix(err, "%s[%zu]: ", what, idx);
	a->client_id = strdup(cid);
	a->object_id = strdup(oid);
	if (!a->client_id || !a->object_id)
		return skr_error_set(err, -ENOMEM, "out of memory");
	if (!with_subjects)
		return 0;
	if (!json_object_object_get_ex(o, "federated_subjects", &subs) ||
	    !json_object_is_type(subs, json_type_array) ||
	    json_object_array_length(subs) > DEVCLOUD_SUBJECTS_MAX)
		return skr_error_set(err, -EINVAL,
		                     "%s[%zu].federated_subjects must be an array of at most %d "
		                     "strings",
		                     what, idx, DEVCLOUD_SUBJECTS_MAX);
	for (size_t i = 0; i < json_object_array_length(subs); i++) {
		json_object *s = json_object_array_get_idx(subs, i);

		if (!json_object_is_type(s, json_type_string))
			return skr_error_set(err, -EINVAL,
			                     "%s[%zu].federated_subjects[%zu] is not "
			                     "a string",
			                     what, idx, i);
		a->subjects[i] = strdup(json_object_get_string(s));
		if (!a->subjects[i])
			return skr_error_set(err, -ENOMEM, "out of memory");
		a->n_subjects++;
	}
	return 0;
}

static int load_apps(json_object *root, const char *key, bool with_subjects,
                     struct devcloud_identity_app *apps, size_t *n, struct skr_error *err)
{
	json_object *arr;

	if (!json_object_object_get_ex(root, key, &arr) ||
	    !json_object_is_type(arr, json_type_array) ||
	    json_object_array_length(arr) > DEVCLOUD_IDENTITIES_MAX)
		return skr_error_set(err, -EINVAL, "'%s' must be an array of at most %d entries",
		                     key, DEVCLOUD_IDENTITIES_MAX);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		int r = load_app(json_object_array_get_idx(arr, i), key, i, with_subjects, &apps[i],
		                 err);

		(*n)++;
		if (r < 0)
			return r;
	}
	return 0;
}

int devcloud_identity_load(const char *path, struct devcloud_identity *out, struct skr_error *err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_json_ json_object *root = NULL;
	struct devcloud_identity id = {0};
	const char *tenant, *oidc;
	json_object *v;
	size_t len;
	int r;

	memset(out, 0, sizeof(*out));
	r = read_file(path, IDENTITY_MAX_SIZE, &text, &len);
	if (r < 0)
		return skr_error_set(err, r, "cannot read %s: %s", path, strerror(-r));
	r = json_parse(text, len, path, &root, err);
	if (r < 0)
		return r;
	if (!json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "version", &v) ||
	    json_object_get_int(v) != DEVCLOUD_IDENTITY_VERSION)
		return skr_error_set(err, -EINVAL, "%s: unsupported version (expected %d)", path,
		                     DEVCLOUD_IDENTITY_VERSION);
	r = json_get_string(root, "tenant_id", true, &tenant, err);
	if (r == 0)
		r = json_get_string(root, "oidc_issuer", true, &oidc, err);
	if (r < 0)
		return skr_error_prefix(err, "%s: ", path);
	id.tenant_id = strdup(tenant);
	id.oidc_issuer = strdup(oidc);
	if (asprintf(&id.token_issuer, TOKEN_ISSUER_FMT, tenant) < 0)
		id.token_issuer = NULL;
	if (!id.tenant_id || !id.oidc_issuer || !id.token_issuer) {
		r = skr_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	r = load_apps(root, "managed_identities", false, id.managed, &id.n_managed, err);
	if (r == 0)
		r = load_apps(root, "applications", true, id.apps, &id.n_apps, err);
	if (r < 0) {
		skr_error_prefix(err, "%s: ", path);
		goto fail;
	}
	*out = id;
	return 0;
fail:
	devcloud_identity_clear(&id);
	return r;
}

/* ---------------------------------------------------------------------------------------------
 * Keys and tokens
 * ------------------------------------------------------------------------------------------- */

/* identity-key.pem, generated when missing (states made before the identity service). */
static int load_or_create_key(const char *state_dir, EVP_PKEY **out, bool create,
                              struct skr_error *err)
{
	_cleanup_free_ char *path = path_join(state_dir, "identity-key.pem");
	_cleanup_secret_ struct secret *pem = NULL;
	EVP_PKEY *key;
	int r;

	if (!path)
		return skr_error_set(err, -ENOMEM, "out of memory");
	if (access(path, F_OK) == 0 || !create)
		return devcloud_pki_load_key(path, out, err);
	key = EVP_RSA_gen(2048);
	if (!key)
		return ossl_error_set(err, -ENOMEM, "identity key generation");
	r = devcloud_pki_key_pem(key, &pem, err);
	if (r == 0) {
		r = write_file_atomic(path, pem->data, pem->len, 0600);
		if (r < 0)
			skr_error_set(err, r, "cannot write %s: %s", path, strerror(-r));
	}
	if (r < 0) {
		EVP_PKEY_free(key);
		return r;
	}
	*out = key;
	return 0;
}

/* b64url-nopad(SHA-256(SubjectPublicKeyInfo DER)). */
static int key_id(EVP_PKEY *key, char **out)
{
	unsigned char *der = NULL, md[32];
	int len = i2d_PUBKEY(key, &der);
	int r;

	if (len <= 0)
		return -EINVAL;
	r = EVP_Digest(der, (size_t)len, md, NULL, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
	OPENSSL_free(der);
	if (r < 0)
		return r;
	return b64_encode(md, sizeof(md), B64_URL_NOPAD, out);
}

static int load_identity(const char *state_dir, bool create, struct devcloud_identity *id,
                         EVP_PKEY **key, struct skr_error *err)
{
	_cleanup_free_ char *path = path_join(state_dir, "identity.json");
	int r;

	if (!path)
		return skr_error_set(err, -ENOMEM, "out of memory");
	if (create && access(path, F_OK) < 0) {
		r = devcloud_identity_create(path, err);
		if (r < 0)
			return r;
	}
	r = devcloud_identity_load(path, id, err);
	if (r < 0)
		return r;
	return load_or_create_key(state_dir, key, create, err);
}

int devcloud_identity_state_init(const char *state_dir, json_object *summary, struct skr_error *err)
{
	struct devcloud_identity id = {0};
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	int r = load_identity(state_dir, true, &id, &key, err);

	if (r == 0 && summary &&
	    devcloud_json_add(summary, "identity", devcloud_identity_to_json(&id)) < 0)
		r = skr_error_set(err, -ENOMEM, "out of memory");
	devcloud_identity_clear(&id);
	return r;
}

int devcloud_identity_open(struct devcloud *dc, struct skr_error *err)
{
	int r = load_identity(dc->state_dir, true, &dc->identity, &dc->identity_key, err);
	size_t len;

	if (r < 0)
		return r;
	if (key_id(dc->identity_key, &dc->identity_kid) < 0)
		return skr_error_set(err, -ENOMEM, "identity key id");
	/* Key Vault's 401 challenge names the authority and the resource to ask for. */
	len = strlen(dc->identity.token_issuer);
	if (asprintf(&dc->www_authenticate,
	             "Bearer authorization=\"%.*s\", resource=\"https://vault.azure.net\"",
	             (int)(len - 1), dc->identity.token_issuer) < 0) {
		dc->www_authenticate = NULL;
		return skr_error_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

static int random_id(char **out)
{
	uint8_t b[16];

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -EIO;
	return b64_encode(b, sizeof(b), B64_URL_NOPAD, out);
}

static int sign_token(EVP_PKEY *key, const char *kid, json_object *payload, char **out,
                      struct skr_error *err)
{
	_cleanup_json_ json_object *header = json_object_new_object();

	if (!header || devcloud_json_add(header, "alg", json_object_new_string("RS256")) < 0 ||
	    devcloud_json_add(header, "typ", json_object_new_string("JWT")) < 0 ||
	    devcloud_json_add(header, "kid", json_object_new_string(kid)) < 0)
		return skr_error_set(err, -ENOMEM, "token: out of memory");
	return devcloud_jws_sign(key, header, payload, out, err);
}

int devcloud_access_token_issue(const struct devcloud *dc, const struct devcloud_identity_app *who,
                                const char *resource, long lifetime, time_t now, char **token,
                                struct skr_error *err)
{
	_cleanup_json_ json_object *p = json_object_new_object();
	_cleanup_free_ char *uti = NULL;

	if (!p || random_id(&uti) < 0 ||
	    devcloud_json_add(p, "aud", json_object_new_string(resource)) < 0 ||
	    devcloud_json_add(p, "iss", json_object_new_string(dc->identity.token_issuer)) < 0 ||
	    devcloud_json_add(p, "iat", json_object_new_int64(now)) < 0 ||
	    devcloud_json_add(p, "nbf", json_object_new_int64(now)) < 0 ||
	    devcloud_json_add(p, "exp", json_object_new_int64(now + lifetime)) < 0 ||
	    devcloud_json_add(p, "appid", json_object_new_string(who->client_id)) < 0 ||
	    devcloud_json_add(p, "oid", json_object_new_string(who->object_id)) < 0 ||
	    devcloud_json_add(p, "sub", json_object_new_string(who->object_id)) < 0 ||
	    devcloud_json_add(p, "tid", json_object_new_string(dc->identity.tenant_id)) < 0 ||
	    devcloud_json_add(p, "idtyp", json_object_new_string("app")) < 0 ||
	    devcloud_json_add(p, "uti", json_object_new_string(uti)) < 0 ||
	    devcloud_json_add(p, "ver", json_object_new_string("1.0")) < 0)
		return skr_error_set(err, -ENOMEM, "token: out of memory");
	return sign_token(dc->identity_key, dc->identity_kid, p, token, err);
}

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

/* exp required, nbf optional, both with @skew; -ESTALE expired, -EAGAIN not yet valid. */
static int check_time(json_object *payload, time_t now, long skew, struct skr_error *err)
{
	json_object *exp, *nbf;

	if (!json_object_object_get_ex(payload, "exp", &exp) ||
	    !json_object_is_type(exp, json_type_int))
		return skr_error_set(err, -EINVAL, "token has no numeric exp");
	if (json_object_get_int64(exp) + skew < (int64_t)now)
		return skr_error_set(err, -ESTALE, "token expired %lld s ago",
		                     (long long)((int64_t)now - json_object_get_int64(exp)));
	if (json_object_object_get_ex(payload, "nbf", &nbf)) {
		if (!json_object_is_type(nbf, json_type_int))
			return skr_error_set(err, -EINVAL, "token nbf is not a number");
		if (json_object_get_int64(nbf) - skew > (int64_t)now)
			return skr_error_set(err, -EAGAIN, "token is not valid yet (nbf)");
	}
	return 0;
}

int devcloud_access_token_check(const struct devcloud *dc, const char *authorization, time_t now,
                                struct skr_error *err)
{
	_cleanup_json_ json_object *payload = NULL;
	struct skr_error verr = {0};
	const char *iss, *aud;
	bool aud_ok = false;

	if (!authorization || !*authorization)
		return skr_error_set(
		        err, -EACCES,
		        "no Authorization header; send 'Authorization: Bearer <token>' "
		        "with a token for https://vault.azure.net");
	if (strncasecmp(authorization, "Bearer ", 7) != 0)
		return skr_error_set(err, -EACCES,
		                     "the Authorization header is not a Bearer token");
	authorization += 7;
	while (*authorization == ' ')
		authorization++;
	if (devcloud_jws_verify(dc->identity_key, authorization, NULL, &payload, &verr) < 0)
		/* Never echo the token; the reason alone says what to fix. */
		return skr_error_set(err, -EACCES, "bearer token rejected: %s",
		                     skr_error_message(&verr));
	iss = json_object_get_string(json_object_object_get(payload, "iss"));
	if (!iss ||
	    !json_object_is_type(json_object_object_get(payload, "iss"), json_type_string) ||
	    strcmp(iss, dc->identity.token_issuer) != 0)
		return skr_error_set(err, -EACCES, "bearer token issuer is not %s",
		                     dc->identity.token_issuer);
	aud = json_object_get_string(json_object_object_get(payload, "aud"));
	for (size_t i = 0; aud && i < ELEMENTSOF(vault_audiences); i++)
		aud_ok = aud_ok || same_url(aud, vault_audiences[i]);
	if (!aud_ok)
		return skr_error_set(
		        err, -EACCES,
		        "bearer token audience '%.100s' is not https://vault.azure.net "
		        "or https://managedhsm.azure.net",
		        aud ? aud : "(none)");
	if (check_time(payload, now, BEARER_SKEW, &verr) < 0)
		return skr_error_set(err, -EACCES, "bearer token rejected: %s",
		                     skr_error_message(&verr));
	return 0;
}

int devcloud_federated_token(const char *state_dir, const char *subject, const char *audience,
                             long lifetime, char **jwt, struct skr_error *err)
{
	struct devcloud_identity id = {0};
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	_cleanup_json_ json_object *p = NULL;
	_cleanup_free_ char *kid = NULL, *jti = NULL;
	time_t now = time(NULL);
	int r;

	if (lifetime <= 0)
		return skr_error_set(err, -EINVAL, "--lifetime must be positive");
	r = load_identity(state_dir, false, &id, &key, err);
	if (r < 0) {
		devcloud_identity_clear(&id);
		return r;
	}
	if (!subject && id.n_apps > 0 && id.apps[0].n_subjects > 0)
		subject = id.apps[0].subjects[0];
	if (!subject)
		subject = DEVCLOUD_DEFAULT_WORKLOAD_SUBJECT;
	p = json_object_new_object();
	if (!p || key_id(key, &kid) < 0 || random_id(&jti) < 0 ||
	    devcloud_json_add(p, "iss", json_object_new_string(id.oidc_issuer)) < 0 ||
	    devcloud_json_add(p, "sub", json_object_new_string(subject)) < 0 ||
	    devcloud_json_add(p, "aud",
	                      json_object_new_string(audience ? audience
	                                                      : DEVCLOUD_FEDERATED_AUDIENCE)) < 0 ||
	    devcloud_json_add(p, "iat", json_object_new_int64(now)) < 0 ||
	    devcloud_json_add(p, "nbf", json_object_new_int64(now)) < 0 ||
	    devcloud_json_add(p, "exp", json_object_new_int64(now + lifetime)) < 0 ||
	    devcloud_json_add(p, "jti", json_object_new_string(jti)) < 0)
		r = skr_error_set(err, -ENOMEM, "out of memory");
	else
		r = sign_token(key, kid, p, jwt, err);
	devcloud_identity_clear(&id);
	return r;
}

/* ---------------------------------------------------------------------------------------------
 * IMDS: GET /metadata/identity/oauth2/token (§6.1)
 * ------------------------------------------------------------------------------------------- */

/* IMDS's error shape: {"error": ..., "error_description": ...}. */
static int oauth_error(struct devcloud_response *resp, unsigned status, const char *error, int code,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int oauth_error(struct devcloud_response *resp, unsigned status, const char *error, int code,
                       const char *fmt, ...)
{
	_cleanup_json_ json_object *root = json_object_new_object();
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!root || devcloud_json_add(root, "error", json_object_new_string(error)) < 0 ||
	    devcloud_json_add(root, "error_description", json_object_new_string(msg)) < 0)
		return -ENOMEM;
	if (code) {
		json_object *codes = json_object_new_array();

		if (devcloud_json_add(root, "error_codes", codes) < 0 ||
		    json_object_array_add(codes, json_object_new_int(code)) < 0)
			return -ENOMEM;
	}
	return devcloud_response_json(resp, status, root);
}

static bool resource_valid(const char *r)
{
	size_t len = strlen(r);

	if (len == 0 || len > RESOURCE_MAX)
		return false;
	for (const char *p = r; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '"' || *p == '\\' ||
		    (unsigned char)*p >= 0x7f)
			return false;
	return true;
}

/*
 * Answer @root (which holds an access token) and erase the copies json-c keeps: the token
 * string and the serialization buffer.
 */
static int token_response(struct devcloud_response *resp, json_object *root)
{
	json_object *tok = json_object_object_get(root, "access_token");
	int r = devcloud_response_json(resp, 200, root);
	const char *text = json_compact(root);

	resp->secret_body = true;
	resp->cache_control = "no-store";
	if (text)
		secure_erase((char *)text, strlen(text));
	secure_erase((char *)json_object_get_string(tok), (size_t)json_object_get_string_len(tok));
	return r;
}

int devcloud_handle_imds_token(struct devcloud *dc, const struct devcloud_request *req,
                               struct devcloud_response *resp)
{
	const char *md = devcloud_request_header(req, "Metadata");
	const char *resource, *client_id, *object_id, *msi_res_id;
	const struct devcloud_identity_app *who = NULL;
	_cleanup_json_ json_object *root = NULL;
	char *token = NULL;
	char num[4][24];
	struct skr_error err = {0};
	time_t now = time(NULL);
	int r, selectors;

	if (!md || strcasecmp(md, "true") != 0)
		return oauth_error(resp, 400, "invalid_request", 0,
		                   "Required metadata header not specified (Metadata: true)");
	/* IMDS refuses proxied requests: a forwarded request may come from outside the VM. */
	if (devcloud_request_header(req, "X-Forwarded-For"))
		return oauth_error(resp, 400, "invalid_request", 0,
		                   "Request with X-Forwarded-For header is not allowed");
	if (!devcloud_request_query(req, "api-version", NULL))
		return oauth_error(resp, 400, "invalid_request", 0,
		                   "Required query variable 'api-version' is missing");
	resource = devcloud_request_query(req, "resource", NULL);
	if (!resource || !*resource)
		return oauth_error(resp, 400, "invalid_request", 0,
		                   "Required query variable 'resource' is missing");
	if (!resource_valid(resource))
		return oauth_error(resp, 400, "invalid_resource", 0,
		                   "'resource' is not a valid resource URI");
	client_id = devcloud_request_query(req, "client_id", NULL);
	object_id = devcloud_request_query(req, "object_id", NULL);
	msi_res_id = devcloud_request_query(req, "msi_res_id", NULL);
	selectors = !!client_id + !!object_id + !!msi_res_id;
	if (selectors > 1)
		return oauth_error(resp, 400, "invalid_request", 0,
		                   "client_id, object_id and msi_res_id are mutually exclusive");
	for (size_t i = 0; i < dc->identity.n_managed; i++) {
		const struct devcloud_identity_app *a = &dc->identity.managed[i];

		if ((!selectors && i == 0) ||
		    (client_id && strcasecmp(client_id, a->client_id) == 0) ||
		    (object_id && strcasecmp(object_id, a->object_id) == 0)) {
			who = a;
			break;
		}
	}
	if (!who)
		return oauth_error(
		        resp, 400, "invalid_request", 0,
		        "Identity not found (devcloud's managed identities are listed in "
		        "identity.json; msi_res_id is not supported)");
	r = devcloud_access_token_issue(dc, who, resource, DEVCLOUD_IMDS_TOKEN_LIFETIME, now,
	                                &token, &err);
	if (r < 0) {
		log_error("imds: %s", skr_error_message(&err));
		return r;
	}
	snprintf(num[0], sizeof(num[0]), "%ld", DEVCLOUD_IMDS_TOKEN_LIFETIME);
	snprintf(num[1], sizeof(num[1]), "%lld", (long long)now + DEVCLOUD_IMDS_TOKEN_LIFETIME);
	snprintf(num[2], sizeof(num[2]), "%ld", DEVCLOUD_IMDS_TOKEN_LIFETIME);
	snprintf(num[3], sizeof(num[3]), "%lld", (long long)now);
	/* Numbers as strings: IMDS's documented (and quirky) shape. */
	root = json_object_new_object();
	if (!root || devcloud_json_add(root, "access_token", json_object_new_string(token)) < 0 ||
	    devcloud_json_add(root, "client_id", json_object_new_string(who->client_id)) < 0 ||
	    devcloud_json_add(root, "expires_in", json_object_new_string(num[0])) < 0 ||
	    devcloud_json_add(root, "expires_on", json_object_new_string(num[1])) < 0 ||
	    devcloud_json_add(root, "ext_expires_in", json_object_new_string(num[2])) < 0 ||
	    devcloud_json_add(root, "not_before", json_object_new_string(num[3])) < 0 ||
	    devcloud_json_add(root, "resource", json_object_new_string(resource)) < 0 ||
	    devcloud_json_add(root, "token_type", json_object_new_string("Bearer")) < 0) {
		secure_free(token, strlen(token));
		return -ENOMEM;
	}
	secure_free(token, strlen(token));
	return token_response(resp, root);
}

/* ---------------------------------------------------------------------------------------------
 * Entra: POST /{tenant}/oauth2/v2.0/token (§6.2)
 * ------------------------------------------------------------------------------------------- */

struct form {
	char *buf; /* decoded in place; erased on clear (it holds the assertion) */
	size_t buf_len;
	struct devcloud_kv fields[FORM_FIELDS_MAX];
	size_t n;
};

static void form_clear(struct form *f)
{
	if (f->buf)
		secure_free(f->buf, f->buf_len);
	memset(f, 0, sizeof(*f));
}

/* application/x-www-form-urlencoded: '&'-separated name=value, '+' and %XX decoded. */
static int form_parse(const char *body, size_t len, struct form *f, struct skr_error *err)
{
	char *p, *save = NULL, *tok;

	memset(f, 0, sizeof(*f));
	if (memchr(body, '\0', len))
		return skr_error_set(err, -EINVAL, "the form contains a NUL byte");
	f->buf = malloc(len + 1);
	if (!f->buf)
		return skr_error_set(err, -ENOMEM, "out of memory");
	f->buf_len = len + 1;
	memcpy(f->buf, body, len);
	f->buf[len] = '\0';
	for (p = f->buf; (tok = strtok_r(p, "&", &save)); p = NULL) {
		char *eq = strchr(tok, '=');

		if (f->n == FORM_FIELDS_MAX)
			return skr_error_set(err, -EINVAL, "the form has more than %d fields",
			                     FORM_FIELDS_MAX);
		if (eq)
			*eq = '\0';
		for (char *c = tok; *c; c++)
			if (*c == '+')
				*c = ' ';
		MHD_http_unescape(tok);
		if (eq) {
			for (char *c = eq + 1; *c; c++)
				if (*c == '+')
					*c = ' ';
			MHD_http_unescape(eq + 1);
		}
		for (size_t i = 0; i < f->n; i++)
			if (strcmp(f->fields[i].key, tok) == 0)
				return skr_error_set(err, -EINVAL,
				                     "form field '%.40s' appears twice", tok);
		f->fields[f->n].key = tok;
		f->fields[f->n].value = eq ? eq + 1 : "";
		f->n++;
	}
	return 0;
}

static const char *form_get(const struct form *f, const char *key)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->fields[i].key, key) == 0)
			return f->fields[i].value;
	return NULL;
}

/* The tenant of "/{tenant}/oauth2/v2.0/token" into @out, or false. */
static bool path_tenant(const char *path, char *out, size_t size)
{
	static const char suffix[] = "/oauth2/v2.0/token";
	size_t len = strlen(path), sl = sizeof(suffix) - 1, tl;

	if (len <= sl + 1 || path[0] != '/' || strcmp(path + len - sl, suffix) != 0)
		return false;
	tl = len - sl - 1;
	if (tl == 0 || tl >= size || memchr(path + 1, '/', tl))
		return false;
	memcpy(out, path + 1, tl);
	out[tl] = '\0';
	return true;
}

static bool has_subject(const struct devcloud_identity_app *a, const char *sub)
{
	for (size_t i = 0; i < a->n_subjects; i++)
		if (strcmp(a->subjects[i], sub) == 0)
			return true;
	return false;
}

/* The checks Entra applies to a federated client assertion; 0 or an oauth error response. */
static int check_assertion(struct devcloud *dc, const struct devcloud_identity_app *app,
                           const char *assertion, time_t now, struct devcloud_response *resp)
{
	_cleanup_json_ json_object *payload = NULL;
	struct skr_error err = {0};
	const char *iss, *sub, *aud;
	int r;

	r = devcloud_jws_verify(dc->identity_key, assertion, NULL, &payload, &err);
	if (r < 0)
		return oauth_error(resp, 400, "invalid_client", 700027,
		                   "AADSTS700027: Client assertion failed signature validation: %s",
		                   skr_error_message(&err));
	r = check_time(payload, now, BEARER_SKEW, &err);
	if (r < 0)
		return oauth_error(resp, 400, "invalid_client", 700024,
		                   "AADSTS700024: Client assertion is not within its valid time "
		                   "range: %s",
		                   skr_error_message(&err));
	iss = json_object_get_string(json_object_object_get(payload, "iss"));
	sub = json_object_get_string(json_object_object_get(payload, "sub"));
	aud = json_object_get_string(json_object_object_get(payload, "aud"));
	if (!aud || strcmp(aud, DEVCLOUD_FEDERATED_AUDIENCE) != 0)
		return oauth_error(resp, 400, "invalid_client", 700212,
		                   "AADSTS700212: No matching federated identity record found for "
		                   "presented assertion audience '%.100s' (expected %s)",
		                   aud ? aud : "(none)", DEVCLOUD_FEDERATED_AUDIENCE);
	if (!iss || strcmp(iss, dc->identity.oidc_issuer) != 0 || !sub || !has_subject(app, sub))
		return oauth_error(
		        resp, 400, "invalid_client", 70021,
		        "AADSTS70021: No matching federated identity record found for "
		        "presented assertion. Assertion Issuer: '%.100s'. Assertion "
		        "Subject: '%.100s'. Application %s accepts subjects of issuer %s "
		        "listed in identity.json",
		        iss ? iss : "(none)", sub ? sub : "(none)", app->client_id,
		        dc->identity.oidc_issuer);
	return 1;
}

int devcloud_handle_entra_token(struct devcloud *dc, const struct devcloud_request *req,
                                struct devcloud_response *resp)
{
	_cleanup_(form_clear) struct form f = {0};
	_cleanup_json_ json_object *root = NULL;
	const struct devcloud_identity_app *app = NULL;
	const char *ct = devcloud_request_header(req, "Content-Type");
	const char *grant, *client_id, *scope, *atype, *assertion;
	_cleanup_free_ char *resource = NULL;
	char tenant[128], *token = NULL;
	struct skr_error err = {0};
	time_t now = time(NULL);
	size_t slen;
	int r;

	if (!path_tenant(req->path, tenant, sizeof(tenant)))
		return oauth_error(resp, 404, "invalid_request", 90002,
		                   "AADSTS90002: no tenant in the path (POST "
		                   "/{tenant}/oauth2/v2.0/token)");
	if (strcasecmp(tenant, dc->identity.tenant_id) != 0)
		return oauth_error(resp, 400, "invalid_request", 90002,
		                   "AADSTS90002: Tenant '%.60s' not found; devcloud's tenant is %s "
		                   "(identity.json)",
		                   tenant, dc->identity.tenant_id);
	if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0)
		return oauth_error(resp, 400, "invalid_request", 900144,
		                   "the body must be application/x-www-form-urlencoded");
	if (req->content_length > req->body_len)
		return oauth_error(resp, 413, "invalid_request", 0,
		                   "the request body is larger than the limit");
	r = form_parse(req->body, req->body_len, &f, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return oauth_error(resp, 400, "invalid_request", 900144, "%s",
		                   skr_error_message(&err));
	grant = form_get(&f, "grant_type");
	client_id = form_get(&f, "client_id");
	scope = form_get(&f, "scope");
	atype = form_get(&f, "client_assertion_type");
	assertion = form_get(&f, "client_assertion");
	if (!grant || strcmp(grant, "client_credentials") != 0)
		return oauth_error(resp, 400, "unsupported_grant_type", 70003,
		                   "AADSTS70003: grant_type must be client_credentials");
	if (!client_id || !*client_id)
		return oauth_error(resp, 400, "invalid_request", 900144,
		                   "AADSTS900144: The request body must contain the following "
		                   "parameter: 'client_id'");
	for (size_t i = 0; i < dc->identity.n_apps; i++)
		if (strcasecmp(client_id, dc->identity.apps[i].client_id) == 0)
			app = &dc->identity.apps[i];
	if (!app)
		return oauth_error(
		        resp, 400, "unauthorized_client", 700016,
		        "AADSTS700016: Application with identifier '%.60s' was not found "
		        "in the directory '%s' (identity.json applications)",
		        client_id, dc->identity.tenant_id);
	slen = scope ? strlen(scope) : 0;
	if (slen <= 9 || strcmp(scope + slen - 9, "/.default") != 0)
		return oauth_error(
		        resp, 400, "invalid_scope", 1002012,
		        "AADSTS1002012: The provided value for scope is not valid. Client "
		        "credential flows must have a scope value with /.default suffixed "
		        "to the resource identifier");
	resource = strndup(scope, slen - 9);
	if (!resource)
		return -ENOMEM;
	if (!resource_valid(resource))
		return oauth_error(resp, 400, "invalid_scope", 1002012,
		                   "AADSTS1002012: the scope's resource is not a valid URI");
	if (!atype || strcmp(atype, JWT_BEARER) != 0)
		return oauth_error(resp, 400, "invalid_request", 900144,
		                   "client_assertion_type must be " JWT_BEARER);
	if (!assertion || !*assertion)
		return oauth_error(resp, 400, "invalid_request", 900144,
		                   "AADSTS900144: The request body must contain the following "
		                   "parameter: 'client_assertion'");
	r = check_assertion(dc, app, assertion, now, resp);
	if (r <= 0)
		return r;
	r = devcloud_access_token_issue(dc, app, resource, DEVCLOUD_ENTRA_TOKEN_LIFETIME, now,
	                                &token, &err);
	if (r < 0) {
		log_error("entra: %s", skr_error_message(&err));
		return r;
	}
	/* Numbers as numbers here (unlike IMDS). */
	root = json_object_new_object();
	if (!root || devcloud_json_add(root, "token_type", json_object_new_string("Bearer")) < 0 ||
	    devcloud_json_add(root, "expires_in",
	                      json_object_new_int64(DEVCLOUD_ENTRA_TOKEN_LIFETIME)) < 0 ||
	    devcloud_json_add(root, "ext_expires_in",
	                      json_object_new_int64(DEVCLOUD_ENTRA_TOKEN_LIFETIME)) < 0 ||
	    devcloud_json_add(root, "access_token", json_object_new_string(token)) < 0) {
		secure_free(token, strlen(token));
		return -ENOMEM;
	}
	secure_free(token, strlen(token));
	return token_response(resp, root);
}
