/* SPDX-License-Identifier: MIT */
/*
 * The service loaded from a state directory: settings, token signing key and its published
 * form (kid, x5c), the trusted AMD roots, the virtual platform whose certificates the KDS and
 * THIM endpoints serve, the TLS key/certificate for the HTTPS listener, the identity service
 * (identity.c) and the key vault with its sealed store (keyvault.c, keystore.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "devcloud.h"
#include "fileio.h"
#include "log.h"
#include "ossl.h"

#define PEM_MAX_SIZE (256u * 1024)

void devcloud_serve_options_default(struct devcloud_serve_options *o)
{
	memset(o, 0, sizeof(*o));
	o->max_body = DEVCLOUD_DEFAULT_MAX_BODY;
	o->token_lifetime = DEVCLOUD_DEFAULT_TOKEN_LIFETIME;
}

void devcloud_free(struct devcloud *dc)
{
	if (!dc)
		return;
	free(dc->state_dir);
	devcloud_settings_clear(&dc->settings);
	EVP_PKEY_free(dc->signing_key);
	free(dc->kid);
	free(dc->x5c[0]);
	free(dc->x5c[1]);
	free(dc->policy_hash);
	snp_trust_store_free(dc->trust);
	snp_virtual_free(dc->platform);
	devcloud_platform_certs_clear(&dc->certs);
	secret_free(dc->tls_key_pem);
	free(dc->tls_cert_pem);
	devcloud_identity_clear(&dc->identity);
	EVP_PKEY_free(dc->identity_key);
	free(dc->identity_kid);
	free(dc->www_authenticate);
	devcloud_vault_clear(&dc->vault);
	free(dc);
}

static char *state_path(const struct devcloud *dc, const char *name)
{
	return path_join(dc->state_dir, name);
}

static int load_signing(struct devcloud *dc, struct skr_error *err)
{
	_cleanup_free_ char *key_path = state_path(dc, "signing-key.pem");
	_cleanup_free_ char *cert_path = state_path(dc, "signing.pem");
	_cleanup_free_ char *ca_path = state_path(dc, "ca.pem");
	_cleanup_(X509_freep) X509 *cert = NULL, *ca = NULL;
	int r;

	if (!key_path || !cert_path || !ca_path)
		return skr_error_set(err, -ENOMEM, "out of memory");
	r = devcloud_pki_load_key(key_path, &dc->signing_key, err);
	if (r < 0)
		return r;
	if (EVP_PKEY_get_base_id(dc->signing_key) != EVP_PKEY_RSA)
		return skr_error_set(err, -EINVAL, "%s: RS256 needs an RSA key", key_path);
	r = devcloud_pki_load_cert(cert_path, &cert, err);
	if (r == 0)
		r = devcloud_pki_load_cert(ca_path, &ca, err);
	if (r < 0)
		return r;
	if (X509_check_private_key(cert, dc->signing_key) != 1)
		return ossl_error_set(
		        err, -EINVAL,
		        "signing.pem does not match signing-key.pem (re-run 'devcloud "
		        "init --force')");
	r = devcloud_pki_thumbprint(cert, &dc->kid, err);
	if (r == 0)
		r = devcloud_pki_cert_b64(cert, &dc->x5c[0], err);
	if (r == 0)
		r = devcloud_pki_cert_b64(ca, &dc->x5c[1], err);
	return r;
}

static int load_tls(struct devcloud *dc, struct skr_error *err)
{
	_cleanup_free_ char *key_path = state_path(dc, "server-key.pem");
	_cleanup_free_ char *cert_path = state_path(dc, "server.pem");
	char *key = NULL;
	size_t len;
	int r;

	if (!key_path || !cert_path)
		return skr_error_set(err, -ENOMEM, "out of memory");
	r = read_file(cert_path, PEM_MAX_SIZE, &dc->tls_cert_pem, &len);
	if (r < 0)
		return skr_error_set(err, r, "cannot read %s: %s", cert_path, strerror(-r));
	r = read_file(key_path, PEM_MAX_SIZE, &key, &len);
	if (r < 0)
		return skr_error_set(err, r, "cannot read %s: %s", key_path, strerror(-r));
	/* libmicrohttpd wants the PEM text; keep it in locked memory, NUL-terminated. */
	dc->tls_key_pem = secret_new_copy(key, len + 1);
	secure_free(key, len);
	if (!dc->tls_key_pem)
		return skr_error_set(err, -ENOMEM, "out of memory");
	return 0;
}

static int load_trust(struct devcloud *dc, const struct devcloud_serve_options *o,
                      struct skr_error *err)
{
	const char *ark;
	int r;

	r = snp_trust_store_new(&dc->trust, err);
	if (r < 0)
		return r;
	/* The virtual platform's own ARK is always trusted: it is what devcloud is for. */
	ark = snp_virtual_ark_pem(dc->platform);
	if (!ark)
		return skr_error_set(err, -EINVAL, "virtual platform has no ARK");
	r = snp_trust_store_add_pem(dc->trust, ark, strlen(ark), err);
	if (r < 0)
		return skr_error_prefix(err, "virtual platform ARK: ");
	for (size_t i = 0; i < o->n_trust_roots; i++) {
		r = snp_trust_store_add_file(dc->trust, o->trust_roots[i], err);
		if (r < 0)
			return skr_error_prefix(err, "--trust-root %s: ", o->trust_roots[i]);
	}
	return 0;
}

int devcloud_open(const struct devcloud_serve_options *o, struct devcloud **out,
                  struct skr_error *err)
{
	struct devcloud *dc;
	_cleanup_free_ char *settings_path = NULL, *platform_dir = NULL;
	int r;

	if (!o->state_dir || !*o->state_dir)
		return skr_error_set(err, -EINVAL, "--state DIR is required");
	if (o->max_body == 0 || o->max_body > DEVCLOUD_MAX_BODY_LIMIT)
		return skr_error_set(err, -EINVAL,
		                     "--max-body must be 1..%u bytes (the largest attest request "
		                     "the MAA request parser accepts)",
		                     DEVCLOUD_MAX_BODY_LIMIT);
	if (o->token_lifetime <= 0)
		return skr_error_set(err, -EINVAL, "--token-lifetime must be positive");
	dc = calloc(1, sizeof(*dc));
	if (!dc)
		return skr_error_set(err, -ENOMEM, "out of memory");
	dc->max_body = o->max_body;
	dc->token_lifetime = o->token_lifetime;
	dc->state_dir = strdup(o->state_dir);
	if (!dc->state_dir) {
		r = skr_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	settings_path = state_path(dc, "devcloud.json");
	platform_dir = state_path(dc, "platform");
	if (!settings_path || !platform_dir) {
		r = skr_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	r = devcloud_settings_load(settings_path, &dc->settings, err);
	if (r < 0)
		goto fail;
	r = load_signing(dc, err);
	if (r < 0)
		goto fail;
	r = load_tls(dc, err);
	if (r < 0)
		goto fail;
	r = devcloud_identity_open(dc, err);
	if (r < 0)
		goto fail;
	r = devcloud_vault_open(dc, err);
	if (r < 0)
		goto fail;
	r = snp_virtual_open(platform_dir, &dc->platform, err);
	if (r < 0) {
		skr_error_prefix(err, "virtual platform %s: ", platform_dir);
		goto fail;
	}
	r = devcloud_platform_certs_load(dc, err);
	if (r < 0)
		goto fail;
	r = load_trust(dc, o, err);
	if (r < 0)
		goto fail;
	r = devcloud_policy_hash(DEVCLOUD_POLICY_TEXT, &dc->policy_hash);
	if (r < 0) {
		r = skr_error_set(err, r, "policy hash: out of memory");
		goto fail;
	}
	*out = dc;
	return 0;
fail:
	devcloud_free(dc);
	return r;
}
