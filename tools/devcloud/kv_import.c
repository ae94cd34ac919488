/* SPDX-License-Identifier: MIT */
/*
 * The body of a Key Vault import (PUT /keys/{name}, protocols.md §5.1), parsed and validated
 * before anything is stored: untrusted input, fuzzed (tests/fuzz/fuzz_devcloud_kv_import.c).
 *
 * The private key arrives as a JWK in JSON; it leaves this file only as "material" in locked
 * memory (raw bytes for oct, PKCS#8 DER for RSA and EC, built by OpenSSL after OpenSSL checked
 * the key), and the JSON strings that carried it are erased before json-c frees them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include "b64.h"
#include "cleanup.h"
#include "devcloud.h"
#include "json_util.h"
#include "ossl.h"
#include "secret.h"

DEFINE_CLEANUP_FUNC(OSSL_PARAM_BLD *, OSSL_PARAM_BLD_free)
DEFINE_CLEANUP_FUNC(OSSL_PARAM *, OSSL_PARAM_free)
DEFINE_CLEANUP_FUNC(OSSL_ENCODER_CTX *, OSSL_ENCODER_CTX_free)

static void bn_clear_freep(BIGNUM **p)
{
	BN_clear_free(*p);
}

/* The eight RSA JWK members as numbers, erased together. */
struct rsa_numbers {
	BIGNUM *bn[8];
};

static void rsa_numbers_clear(struct rsa_numbers *n)
{
	for (size_t i = 0; i < ELEMENTSOF(n->bn); i++)
		BN_clear_free(n->bn[i]);
}

#define DEFAULT_POLICY_CONTENT_TYPE "application/json; charset=utf-8"
#define TAG_NAME_MAX 512
#define TAG_VALUE_MAX 256

/* Key Vault's JsonWebKeyOperation values. */
static const char *const known_ops[] = {"encrypt", "decrypt",   "sign",   "verify",
                                        "wrapKey", "unwrapKey", "import", "export"};
static const char *const oct_default_ops[] = {"encrypt", "decrypt", "wrapKey", "unwrapKey"};
static const char *const rsa_default_ops[] = {"encrypt", "decrypt", "sign",
                                              "verify",  "wrapKey", "unwrapKey"};
static const char *const ec_default_ops[] = {"sign", "verify"};

/* JWK members that carry private key material: erased in place before json-c frees them. */
static const char *const private_members[] = {"k", "d", "p", "q", "dp", "dq", "qi"};

const char *devcloud_kv_kty_name(enum devcloud_kv_kty kty, bool hsm)
{
	switch (kty) {
	case DEVCLOUD_KTY_OCT:
		return hsm ? "oct-HSM" : "oct";
	case DEVCLOUD_KTY_RSA:
		return hsm ? "RSA-HSM" : "RSA";
	case DEVCLOUD_KTY_EC:
		return hsm ? "EC-HSM" : "EC";
	}
	return "unknown";
}

void devcloud_kv_import_clear(struct devcloud_kv_import *imp)
{
	if (!imp)
		return;
	for (size_t i = 0; i < imp->n_key_ops; i++)
		free(imp->key_ops[i]);
	json_object_put(imp->public_jwk);
	secret_free(imp->material);
	free(imp->policy_json);
	free(imp->policy_content_type);
	json_object_put(imp->tags);
	memset(imp, 0, sizeof(*imp));
}

/*
 * json-c keeps string values in buffers it owns and frees without erasing; the private members
 * are overwritten in place first (the buffer is the object's own, writable memory).
 */
static void erase_private_members(json_object *jwk)
{
	json_object *v;

	if (!jwk || !json_object_is_type(jwk, json_type_object))
		return;
	for (size_t i = 0; i < ELEMENTSOF(private_members); i++) {
		if (json_object_object_get_ex(jwk, private_members[i], &v) &&
		    json_object_is_type(v, json_type_string))
			secure_erase((char *)json_object_get_string(v),
			             (size_t)json_object_get_string_len(v));
	}
}

/* A base64url member (padding optional), decoded into a plain or secret buffer. */
static int get_b64url(json_object *jwk, const char *name, uint8_t **out, size_t *len,
                      struct skr_error *err)
{
	const char *s;
	int r = json_get_string(jwk, name, true, &s, err);

	if (r < 0)
		return skr_error_prefix(err, "key: ");
	r = b64_decode(s, strlen(s), B64_ACCEPT_URL, out, len);
	if (r == -ENOMEM)
		return skr_error_set(err, r, "out of memory");
	if (r < 0)
		return skr_error_set(err, -EINVAL, "key.%s is not base64url", name);
	if (*len == 0) {
		free(*out);
		*out = NULL;
		return skr_error_set(err, -EINVAL, "key.%s is empty", name);
	}
	return 0;
}

/* A big-endian integer member as a BIGNUM; secret ones in OpenSSL's secure heap. */
static int get_bn(json_object *jwk, const char *name, bool secret, BIGNUM **out,
                  struct skr_error *err)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	int r = get_b64url(jwk, name, &raw, &len, err);

	if (r < 0)
		return r;
	*out = secret ? BN_secure_new() : BN_new();
	if (*out && !BN_bin2bn(raw, (int)len, *out)) {
		BN_clear_free(*out);
		*out = NULL;
	}
	secure_free(raw, len);
	if (!*out)
		return ossl_error_set(err, -ENOMEM, "key member");
	return 0;
}

static int add_b64url(json_object *obj, const char *name, const uint8_t *data, size_t len)
{
	_cleanup_free_ char *s = NULL;
	json_object *v;

	if (b64_encode(data, len, B64_URL_NOPAD, &s) < 0)
		return -ENOMEM;
	v = json_object_new_string(s);
	if (!v || json_object_object_add(obj, name, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

static int add_bn(json_object *obj, const char *name, EVP_PKEY *key, const char *param)
{
	_cleanup_(BN_freep) BIGNUM *bn = NULL;
	_cleanup_free_ uint8_t *buf = NULL;
	int n;

	if (EVP_PKEY_get_bn_param(key, param, &bn) != 1)
		return -EINVAL;
	n = BN_num_bytes(bn);
	buf = malloc((size_t)n + 1);
	if (!buf)
		return -ENOMEM;
	BN_bn2bin(bn, buf);
	return add_b64url(obj, name, buf, (size_t)n);
}

/* PKCS#8 DER of a private key, into locked memory. */
static int pkcs8_der(EVP_PKEY *key, struct secret **out, struct skr_error *err)
{
	_cleanup_(OSSL_ENCODER_CTX_freep) OSSL_ENCODER_CTX *ctx = NULL;
	unsigned char *data = NULL;
	size_t len = 0;

	ctx = OSSL_ENCODER_CTX_new_for_pkey(key, EVP_PKEY_KEYPAIR, "DER", "PrivateKeyInfo", NULL);
	if (!ctx || OSSL_ENCODER_to_data(ctx, &data, &len) != 1)
		return ossl_error_set(err, -EINVAL, "key: PKCS#8 encoding");
	*out = secret_new_copy(data, len);
	OPENSSL_clear_free(data, len);
	if (!*out)
		return skr_error_set(err, -ENOMEM, "out of memory");
	return 0;
}

/* EVP_PKEY_check: RSA n = p·q, d·e ≡ 1, CRT values; EC point on the curve and d·G = (x, y). */
static int check_key(EVP_PKEY *key, const char *what, struct skr_error *err)
{
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx =
	        EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);

	if (!ctx)
		return skr_error_set(err, -ENOMEM, "out of memory");
	if (EVP_PKEY_check(ctx) != 1) {
		ERR_clear_error();
		return skr_error_set(err, -EINVAL,
		                     "key: the %s members do not form a valid key pair (checked "
		                     "by OpenSSL)",
		                     what);
	}
	return 0;
}

static int parse_oct(json_object *jwk, struct devcloud_kv_import *out, struct skr_error *err)
{
	uint8_t *k = NULL;
	size_t len = 0;
	json_object *ks;
	int r = get_b64url(jwk, "k", &k, &len, err);

	if (r < 0)
		return r;
	out->material = secret_new_copy(k, len);
	secure_free(k, len);
	if (!out->material)
		return skr_error_set(err, -ENOMEM, "out of memory");
	/* AES-128/192/256: what a Managed HSM imports as oct-HSM. */
	if (len != 16 && len != 24 && len != 32)
		return skr_error_set(err, -EINVAL,
		                     "key.k is %zu bytes; oct keys must be 16, 24 or 32 bytes",
		                     len);
	out->bits = (unsigned)len * 8;
	if (json_object_object_get_ex(jwk, "key_size", &ks) &&
	    (!json_object_is_type(ks, json_type_int) || json_object_get_int64(ks) != out->bits))
		return skr_error_set(err, -EINVAL, "key.key_size does not match key.k (%u bits)",
		                     out->bits);
	out->public_jwk = json_object_new_object();
	return out->public_jwk ? 0 : skr_error_set(err, -ENOMEM, "out of memory");
}

static int parse_rsa(json_object *jwk, struct devcloud_kv_import *out, struct skr_error *err)
{
	static const struct {
		const char *member, *param;
		bool secret;
	} parts[] = {
	        {"n", OSSL_PKEY_PARAM_RSA_N, false},
	        {"e", OSSL_PKEY_PARAM_RSA_E, false},
	        {"d", OSSL_PKEY_PARAM_RSA_D, true},
	        {"p", OSSL_PKEY_PARAM_RSA_FACTOR1, true},
	        {"q", OSSL_PKEY_PARAM_RSA_FACTOR2, true},
	        {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1, true},
	        {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2, true},
	        {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1, true},
	};
	_cleanup_(rsa_numbers_clear) struct rsa_numbers nums = {0};
	BIGNUM **bn = nums.bn;
	_cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	_cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	int r, bits;

	if (!bld)
		return skr_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
		r = get_bn(jwk, parts[i].member, parts[i].secret, &bn[i], err);
		if (r < 0)
			return r;
		if (OSSL_PARAM_BLD_push_BN(bld, parts[i].param, bn[i]) != 1)
			return ossl_error_set(err, -ENOMEM, "key");
	}
	bits = BN_num_bits(bn[0]);
	if (bits != 2048 && bits != 3072 && bits != 4096)
		return skr_error_set(err, -EINVAL,
		                     "key.n is %d bits; RSA keys must be 2048, 3072 or 4096 bits",
		                     bits);
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1)
		return ossl_error_set(err, -ENOMEM, "key");
	if (EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params) != 1)
		return ossl_error_set(err, -EINVAL, "key: not an RSA key");
	r = check_key(key, "RSA n, e, d, p, q, dp, dq, qi", err);
	if (r < 0)
		return r;
	out->bits = (unsigned)bits;
	out->public_jwk = json_object_new_object();
	if (!out->public_jwk || add_bn(out->public_jwk, "n", key, OSSL_PKEY_PARAM_RSA_N) < 0 ||
	    add_bn(out->public_jwk, "e", key, OSSL_PKEY_PARAM_RSA_E) < 0)
		return skr_error_set(err, -ENOMEM, "out of memory");
	return pkcs8_der(key, &out->material, err);
}

static int parse_ec(json_object *jwk, struct devcloud_kv_import *out, struct skr_error *err)
{
	static const struct {
		const char *crv;
		size_t len;
		unsigned bits;
	} curves[] = {{"P-256", 32, 256}, {"P-384", 48, 384}, {"P-521", 66, 521}};
	_cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	_cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	_cleanup_(bn_clear_freep) BIGNUM *d = NULL;
	_cleanup_free_ uint8_t *x = NULL, *y = NULL, *point = NULL;
	uint8_t *draw = NULL;
	size_t xlen = 0, ylen = 0, dlen = 0, ci;
	const char *crv;
	int r;

	if (!bld)
		return skr_error_set(err, -ENOMEM, "out of memory");
	r = json_get_string(jwk, "crv", true, &crv, err);
	if (r < 0)
		return skr_error_prefix(err, "key: ");
	for (ci = 0; ci < ELEMENTSOF(curves); ci++)
		if (strcmp(crv, curves[ci].crv) == 0)
			break;
	if (ci == ELEMENTSOF(curves))
		return skr_error_set(err, -EINVAL,
		                     "key.crv '%s' is not supported (P-256, P-384 or P-521)", crv);
	if ((r = get_b64url(jwk, "x", &x, &xlen, err)) < 0 ||
	    (r = get_b64url(jwk, "y", &y, &ylen, err)) < 0)
		return r;
	/* RFC 7518 §6.2.1: coordinates and d are exactly the field size, leading zeros kept. */
	if (xlen != curves[ci].len || ylen != curves[ci].len)
		return skr_error_set(err, -EINVAL, "key.x/key.y must be %zu bytes for %s",
		                     curves[ci].len, crv);
	r = get_b64url(jwk, "d", &draw, &dlen, err);
	if (r < 0)
		return r;
	if (dlen == curves[ci].len) {
		d = BN_secure_new();
		if (d && !BN_bin2bn(draw, (int)dlen, d)) {
			BN_clear_free(d);
			d = NULL;
		}
	}
	secure_free(draw, dlen);
	if (dlen != curves[ci].len)
		return skr_error_set(err, -EINVAL, "key.d must be %zu bytes for %s", curves[ci].len,
		                     crv);
	if (!d)
		return ossl_error_set(err, -ENOMEM, "key.d");
	point = malloc(1 + 2 * xlen);
	if (!point)
		return skr_error_set(err, -ENOMEM, "out of memory");
	point[0] = 0x04; /* uncompressed */
	memcpy(point + 1, x, xlen);
	memcpy(point + 1 + xlen, y, ylen);
	if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, crv, 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * xlen) !=
	            1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) != 1)
		return ossl_error_set(err, -ENOMEM, "key");
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1)
		return ossl_error_set(err, -ENOMEM, "key");
	if (EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params) != 1)
		return ossl_error_set(err, -EINVAL, "key: x/y is not a point of the curve");
	r = check_key(key, "EC x, y, d", err);
	if (r < 0)
		return r;
	out->bits = curves[ci].bits;
	out->public_jwk = json_object_new_object();
	if (!out->public_jwk ||
	    json_object_object_add(out->public_jwk, "crv", json_object_new_string(crv)) < 0 ||
	    add_b64url(out->public_jwk, "x", x, xlen) < 0 ||
	    add_b64url(out->public_jwk, "y", y, ylen) < 0)
		return skr_error_set(err, -ENOMEM, "out of memory");
	return pkcs8_der(key, &out->material, err);
}

static int parse_key_ops(json_object *jwk, struct devcloud_kv_import *out, struct skr_error *err)
{
	const char *const *defaults;
	size_t n_defaults;
	json_object *ops;

	if (json_object_object_get_ex(jwk, "key_ops", &ops) &&
	    !json_object_is_type(ops, json_type_null)) {
		size_t n;

		if (!json_object_is_type(ops, json_type_array))
			return skr_error_set(err, -EINVAL,
			                     "key.key_ops must be an array of strings");
		n = json_object_array_length(ops);
		if (n > SKR_KEY_OPS_MAX)
			return skr_error_set(err, -EINVAL, "key.key_ops has more than %d entries",
			                     SKR_KEY_OPS_MAX);
		for (size_t i = 0; i < n; i++) {
			json_object *o = json_object_array_get_idx(ops, i);
			const char *s = json_object_get_string(o);
			bool known = false;

			if (!json_object_is_type(o, json_type_string))
				return skr_error_set(err, -EINVAL,
				                     "key.key_ops[%zu] is not a string", i);
			for (size_t k = 0; k < ELEMENTSOF(known_ops); k++)
				known = known || strcmp(s, known_ops[k]) == 0;
			if (!known)
				return skr_error_set(
				        err, -EINVAL,
				        "key.key_ops[%zu] '%.40s' is not a key operation "
				        "(encrypt, decrypt, sign, verify, wrapKey, "
				        "unwrapKey, import, export)",
				        i, s);
			for (size_t k = 0; k < out->n_key_ops; k++)
				if (strcmp(out->key_ops[k], s) == 0)
					return skr_error_set(err, -EINVAL,
					                     "key.key_ops lists '%s' twice", s);
			out->key_ops[out->n_key_ops] = strdup(s);
			if (!out->key_ops[out->n_key_ops])
				return skr_error_set(err, -ENOMEM, "out of memory");
			out->n_key_ops++;
		}
		if (n > 0)
			return 0;
	}
	/* Absent (or empty, as the anchor's importkey omits it): the type's operations. */
	switch (out->kty) {
	case DEVCLOUD_KTY_OCT:
		defaults = oct_default_ops;
		n_defaults = ELEMENTSOF(oct_default_ops);
		break;
	case DEVCLOUD_KTY_RSA:
		defaults = rsa_default_ops;
		n_defaults = ELEMENTSOF(rsa_default_ops);
		break;
	default:
		defaults = ec_default_ops;
		n_defaults = ELEMENTSOF(ec_default_ops);
		break;
	}
	for (size_t i = 0; i < n_defaults; i++) {
		out->key_ops[i] = strdup(defaults[i]);
		if (!out->key_ops[i])
			return skr_error_set(err, -ENOMEM, "out of memory");
		out->n_key_ops++;
	}
	return 0;
}

static int parse_jwk(json_object *jwk, struct devcloud_kv_import *out, struct skr_error *err)
{
	static const struct {
		const char *name;
		enum devcloud_kv_kty kty;
		bool hsm;
	} types[] = {
	        {"oct", DEVCLOUD_KTY_OCT, false}, {"oct-HSM", DEVCLOUD_KTY_OCT, true},
	        {"RSA", DEVCLOUD_KTY_RSA, false}, {"RSA-HSM", DEVCLOUD_KTY_RSA, true},
	        {"EC", DEVCLOUD_KTY_EC, false},   {"EC-HSM", DEVCLOUD_KTY_EC, true},
	};
	const char *kty;
	size_t i;
	int r = json_get_string(jwk, "kty", true, &kty, err);

	if (r < 0)
		return skr_error_prefix(err, "key: ");
	for (i = 0; i < ELEMENTSOF(types); i++)
		if (strcmp(kty, types[i].name) == 0)
			break;
	if (i == ELEMENTSOF(types))
		return skr_error_set(
		        err, -EINVAL,
		        "key.kty '%.40s' is not supported (oct, oct-HSM, RSA, RSA-HSM, "
		        "EC, EC-HSM)",
		        kty);
	out->kty = types[i].kty;
	out->hsm = out->hsm || types[i].hsm;
	r = parse_key_ops(jwk, out, err);
	if (r < 0)
		return r;
	switch (out->kty) {
	case DEVCLOUD_KTY_OCT:
		return parse_oct(jwk, out, err);
	case DEVCLOUD_KTY_RSA:
		return parse_rsa(jwk, out, err);
	case DEVCLOUD_KTY_EC:
		return parse_ec(jwk, out, err);
	}
	return -EINVAL;
}

static int parse_policy(json_object *rp, struct devcloud_kv_import *out, struct skr_error *err)
{
	struct skr_policy *policy = NULL;
	const char *data, *ct;
	uint8_t *raw = NULL;
	size_t len = 0;
	int r;

	if (!json_object_is_type(rp, json_type_object))
		return skr_error_set(err, -EINVAL, "release_policy must be an object");
	r = json_get_string(rp, "data", true, &data, err);
	if (r == 0)
		r = json_get_string(rp, "contentType", false, &ct, err);
	if (r == 0)
		r = json_get_bool(rp, "immutable", false, &out->immutable, err);
	if (r < 0)
		return skr_error_prefix(err, "release_policy: ");
	if (ct && strncasecmp(ct, "application/json", 16) != 0)
		return skr_error_set(err, -EINVAL,
		                     "release_policy.contentType '%.60s' is not supported "
		                     "(application/json; charset=utf-8)",
		                     ct);
	/* Go's importkey sends unpadded b64url, Python samples standard base64: both work. */
	r = b64_decode(data, strlen(data), B64_ACCEPT_ANY, &raw, &len);
	if (r == -ENOMEM)
		return skr_error_set(err, r, "out of memory");
	if (r == 0 && len == 0)
		free(raw);
	if (r < 0 || len == 0)
		return skr_error_set(err, -EINVAL,
		                     "release_policy.data is not base64url of a policy document");
	out->policy_json = (char *)raw;
	out->policy_len = len;
	out->has_policy = true;
	out->policy_content_type = strdup(ct ? ct : DEFAULT_POLICY_CONTENT_TYPE);
	if (!out->policy_content_type)
		return skr_error_set(err, -ENOMEM, "out of memory");
	r = skr_policy_parse(out->policy_json, out->policy_len, &policy, err);
	skr_policy_free(policy);
	if (r < 0)
		return skr_error_prefix(err, "release_policy.data: ");
	return 0;
}

static int parse_tags(json_object *tags, struct devcloud_kv_import *out, struct skr_error *err)
{
	size_t n = 0;

	if (json_object_is_type(tags, json_type_null))
		return 0;
	if (!json_object_is_type(tags, json_type_object))
		return skr_error_set(err, -EINVAL, "tags must be an object of strings");
	json_object_object_foreach(tags, name, value)
	{
		if (++n > DEVCLOUD_KV_TAGS_MAX)
			return skr_error_set(err, -EINVAL, "tags: at most %d tags",
			                     DEVCLOUD_KV_TAGS_MAX);
		if (!json_object_is_type(value, json_type_string))
			return skr_error_set(err, -EINVAL, "tags.%.40s is not a string", name);
		if (strlen(name) > TAG_NAME_MAX ||
		    (size_t)json_object_get_string_len(value) > TAG_VALUE_MAX)
			return skr_error_set(err, -EINVAL,
			                     "tags: names are at most %d and values %d characters",
			                     TAG_NAME_MAX, TAG_VALUE_MAX);
	}
	out->tags = json_object_get(tags);
	return 0;
}

static int parse_root(json_object *root, struct devcloud_kv_import *out, struct skr_error *err)
{
	json_object *jwk = NULL, *attrs = NULL, *rp = NULL, *tags = NULL;
	int r;

	if (!json_object_is_type(root, json_type_object))
		return skr_error_set(err, -EINVAL, "request body must be a JSON object");
	out->enabled = true;
	r = json_get_bool(root, "hsm", false, &out->hsm, err);
	if (r == 0)
		r = json_get_object(root, "key", true, &jwk, err);
	if (r == 0)
		r = json_get_object(root, "attributes", false, &attrs, err);
	if (r < 0)
		return r;
	if (attrs) {
		r = json_get_bool(attrs, "exportable", false, &out->exportable, err);
		if (r == 0)
			r = json_get_bool(attrs, "enabled", false, &out->enabled, err);
		if (r < 0)
			return skr_error_prefix(err, "attributes: ");
	}
	r = parse_jwk(jwk, out, err);
	if (r < 0)
		return r;
	if (json_object_object_get_ex(root, "release_policy", &rp) &&
	    !json_object_is_type(rp, json_type_null)) {
		r = parse_policy(rp, out, err);
		if (r < 0)
			return r;
	}
	if (json_object_object_get_ex(root, "tags", &tags)) {
		r = parse_tags(tags, out, err);
		if (r < 0)
			return r;
	}
	/* As Key Vault: an exportable key without a policy could never be released safely. */
	if (out->exportable && !out->has_policy)
		return skr_error_set(
		        err, -EINVAL,
		        "attributes.exportable is true but there is no release_policy; "
		        "exportable keys require one");
	return 0;
}

int devcloud_kv_import_parse(const char *body, size_t len, struct devcloud_kv_import *out,
                             struct skr_error *err)
{
	json_object *root = NULL, *jwk = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	r = json_parse(body, len, "request body", &root, err);
	if (r < 0)
		return r;
	r = parse_root(root, out, err);
	if (json_object_is_type(root, json_type_object) &&
	    json_object_object_get_ex(root, "key", &jwk))
		erase_private_members(jwk);
	json_object_put(root);
	if (r < 0)
		devcloud_kv_import_clear(out);
	return r;
}
