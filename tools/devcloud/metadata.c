/* SPDX-License-Identifier: MIT */
/*
 * MAA's token-verification metadata (protocols.md §4.2): GET /.well-known/openid-configuration
 * and the JWKS at GET /certs. Like MAA, the JWKS key carries x5c (signing certificate, then
 * devcloud's CA) and, unlike some MAA instances, also n/e so any JOSE library can use it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>

#include "b64.h"
#include "cleanup.h"
#include "devcloud.h"
#include "ossl.h"

/* What devcloud's tokens may carry, for claims_supported. */
static const char *const claims_supported[] = {
        "iss",
        "iat",
        "nbf",
        "exp",
        "jti",
        "nonce",
        "x-ms-ver",
        "x-ms-attestation-type",
        "x-ms-compliance-status",
        "x-ms-policy-hash",
        "x-ms-runtime",
        "x-ms-sevsnpvm-authorkeydigest",
        "x-ms-sevsnpvm-bootloader-svn",
        "x-ms-sevsnpvm-familyId",
        "x-ms-sevsnpvm-guestsvn",
        "x-ms-sevsnpvm-hostdata",
        "x-ms-sevsnpvm-idkeydigest",
        "x-ms-sevsnpvm-imageId",
        "x-ms-sevsnpvm-is-debuggable",
        "x-ms-sevsnpvm-launchmeasurement",
        "x-ms-sevsnpvm-microcode-svn",
        "x-ms-sevsnpvm-migration-allowed",
        "x-ms-sevsnpvm-reportdata",
        "x-ms-sevsnpvm-reportid",
        "x-ms-sevsnpvm-smt-allowed",
        "x-ms-sevsnpvm-snpfw-svn",
        "x-ms-sevsnpvm-tee-svn",
        "x-ms-sevsnpvm-vmpl",
};

static json_object *string_array(const char *const *items, size_t n)
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

static int add_url(json_object *obj, const char *key, const char *issuer, const char *suffix)
{
	_cleanup_free_ char *url = NULL;

	if (asprintf(&url, "%s%s", issuer, suffix) < 0)
		return -ENOMEM;
	return devcloud_json_add(obj, key, json_object_new_string(url));
}

int devcloud_handle_openid_configuration(struct devcloud *dc, const struct devcloud_request *req,
                                         struct devcloud_response *resp)
{
	static const char *const algs[] = {"RS256"};
	static const char *const response_types[] = {"token", "none"};
	_cleanup_json_ json_object *root = json_object_new_object();
	_cleanup_free_ char *issuer = NULL;
	struct skr_error err = {0};

	if (!root)
		return -ENOMEM;
	if (devcloud_issuer_from_host(&dc->settings, devcloud_request_header(req, "Host"), &issuer,
	                              &err) < 0)
		return devcloud_response_error(resp, 400, "InvalidParameter", "%s",
		                               skr_error_message(&err));
	/* revocation_endpoint is listed as MAA lists it; devcloud does not serve it (404). */
	if (devcloud_json_add(root, "issuer", json_object_new_string(issuer)) < 0 ||
	    add_url(root, "jwks_uri", issuer, "/certs") < 0 ||
	    devcloud_json_add(root, "id_token_signing_alg_values_supported",
	                      string_array(algs, 1)) < 0 ||
	    devcloud_json_add(root, "response_types_supported", string_array(response_types, 2)) <
	            0 ||
	    devcloud_json_add(root, "claims_supported",
	                      string_array(claims_supported, sizeof(claims_supported) /
	                                                             sizeof(claims_supported[0]))) <
	            0 ||
	    add_url(root, "revocation_endpoint", issuer, "/revoke") < 0)
		return -ENOMEM;
	return devcloud_response_json(resp, 200, root);
}

static int bn_param_b64url(EVP_PKEY *key, const char *name, char **out)
{
	_cleanup_(BN_freep) BIGNUM *bn = NULL;
	_cleanup_free_ uint8_t *buf = NULL;
	int len;

	if (EVP_PKEY_get_bn_param(key, name, &bn) != 1)
		return -EINVAL;
	len = BN_num_bytes(bn);
	buf = malloc((size_t)len + 1);
	if (!buf)
		return -ENOMEM;
	BN_bn2bin(bn, buf);
	return b64_encode(buf, (size_t)len, B64_URL_NOPAD, out);
}

int devcloud_handle_jwks(struct devcloud *dc, const struct devcloud_request *req,
                         struct devcloud_response *resp)
{
	_cleanup_json_ json_object *root = json_object_new_object();
	_cleanup_free_ char *n = NULL, *e = NULL;
	json_object *keys = json_object_new_array(), *key = json_object_new_object();

	(void)req;
	if (!root) {
		json_object_put(keys);
		json_object_put(key);
		return -ENOMEM;
	}
	if (devcloud_json_add(root, "keys", keys) < 0) {
		json_object_put(key);
		return -ENOMEM;
	}
	if (!key || json_object_array_add(keys, key) < 0) {
		json_object_put(key);
		return -ENOMEM;
	}
	if (bn_param_b64url(dc->signing_key, OSSL_PKEY_PARAM_RSA_N, &n) < 0 ||
	    bn_param_b64url(dc->signing_key, OSSL_PKEY_PARAM_RSA_E, &e) < 0)
		return -ENOMEM;
	if (devcloud_json_add(key, "kid", json_object_new_string(dc->kid)) < 0 ||
	    devcloud_json_add(key, "kty", json_object_new_string("RSA")) < 0 ||
	    devcloud_json_add(key, "alg", json_object_new_string("RS256")) < 0 ||
	    devcloud_json_add(key, "use", json_object_new_string("sig")) < 0 ||
	    devcloud_json_add(key, "n", json_object_new_string(n)) < 0 ||
	    devcloud_json_add(key, "e", json_object_new_string(e)) < 0 ||
	    devcloud_json_add(key, "x5c", string_array((const char *const *)dc->x5c, 2)) < 0)
		return -ENOMEM;
	return devcloud_response_json(resp, 200, root);
}
