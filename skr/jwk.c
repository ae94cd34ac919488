/* SPDX-License-Identifier: MIT */
/*
 * JSON Web Keys of secure key release (jwk.h): runtime data, RFC 7638 thumbprints, RSA public
 * JWK parsing, released key material identification.
 *
 * The runtime data and thumbprint input are printed with fixed formats rather than through
 * json-c: their bytes are hashed (REPORT_DATA, kid), every value is base64url (no escaping can
 * arise) and the member order is part of the contract, which a JSON library does not promise.
 */
#include "jwk.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "b64.h"
#include "cleanup.h"
#include "json_util.h"
#include "ossl.h"

DEFINE_CLEANUP_FUNC(OSSL_PARAM_BLD *, OSSL_PARAM_BLD_free)
DEFINE_CLEANUP_FUNC(OSSL_PARAM *, OSSL_PARAM_free)

/* Base64url characters of a modulus of JWK_RSA_MAX_BITS, with padding and some slack. */
#define JWK_MAX_N_CHARS 4096
/* An exponent of 64 bits is 11 characters; anything longer is not an RSA exponent in use. */
#define JWK_MAX_E_CHARS 16
#define JWK_MAX_E_BITS 64

static int bn_to_b64url(const BIGNUM *bn, char **out)
{
	_cleanup_free_ uint8_t *buf = NULL;
	int n = BN_num_bytes(bn);

	buf = malloc(n > 0 ? (size_t)n : 1);
	if (!buf)
		return -ENOMEM;
	BN_bn2bin(bn, buf);
	return b64_encode(buf, (size_t)n, B64_URL_NOPAD, out);
}

int jwk_rsa_public_members(EVP_PKEY *key, char **n_b64, char **e_b64, struct skr_error *err)
{
	_cleanup_(BN_freep) BIGNUM *n = NULL;
	_cleanup_(BN_freep) BIGNUM *e = NULL;
	_cleanup_free_ char *ns = NULL;
	_cleanup_free_ char *es = NULL;
	int r;

	if (!key || !EVP_PKEY_is_a(key, "RSA"))
		return skr_error_set(err, -EINVAL, "JWK: the key is not an RSA key");
	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
	    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) != 1)
		return ossl_error_set(err, -EINVAL, "JWK: reading the RSA modulus and exponent");
	r = bn_to_b64url(n, &ns);
	if (r == 0)
		r = bn_to_b64url(e, &es);
	if (r < 0)
		return skr_error_set(err, r, "JWK: out of memory");
	*n_b64 = TAKE_PTR(ns);
	*e_b64 = TAKE_PTR(es);
	return 0;
}

static int thumbprint_of(const char *n_b64, const char *e_b64, char **kid, struct skr_error *err)
{
	_cleanup_free_ char *input = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	int len, r;

	/* RFC 7638 §3.2: the required members only, lexicographic order, no whitespace. */
	len = asprintf(&input, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", e_b64, n_b64);
	if (len < 0) {
		input = NULL;
		return skr_error_set(err, -ENOMEM, "JWK thumbprint: out of memory");
	}
	if (EVP_Digest(input, (size_t)len, md, &md_len, EVP_sha256(), NULL) != 1)
		return ossl_error_set(err, -EIO, "JWK thumbprint: SHA-256");
	r = b64_encode(md, md_len, B64_URL_NOPAD, kid);
	if (r < 0)
		return skr_error_set(err, r, "JWK thumbprint: out of memory");
	return 0;
}

int jwk_rsa_thumbprint(EVP_PKEY *key, char **kid, struct skr_error *err)
{
	_cleanup_free_ char *n = NULL;
	_cleanup_free_ char *e = NULL;
	int r;

	r = jwk_rsa_public_members(key, &n, &e, err);
	if (r < 0)
		return r;
	return thumbprint_of(n, e, kid, err);
}

int jwk_runtime_data(EVP_PKEY *kek, char **json, size_t *json_len, char **kid,
                     struct skr_error *err)
{
	_cleanup_free_ char *n = NULL;
	_cleanup_free_ char *e = NULL;
	_cleanup_free_ char *thumb = NULL;
	_cleanup_free_ char *text = NULL;
	int len, r;

	r = jwk_rsa_public_members(kek, &n, &e, err);
	if (r < 0)
		return r;
	r = thumbprint_of(n, e, &thumb, err);
	if (r < 0)
		return r;
	/* Member order as lestrrat-go/jwx marshals it (protocols.md §4.3). */
	len = asprintf(&text,
	               "{\"keys\":[{\"e\":\"%s\",\"key_ops\":[\"encrypt\"],\"kid\":\"%s\","
	               "\"kty\":\"RSA\",\"n\":\"%s\"}]}",
	               e, thumb, n);
	if (len < 0) {
		text = NULL;
		return skr_error_set(err, -ENOMEM, "runtime data: out of memory");
	}
	*json = TAKE_PTR(text);
	if (json_len)
		*json_len = (size_t)len;
	if (kid)
		*kid = TAKE_PTR(thumb);
	return 0;
}

/* A base64url member of at most @max_chars characters as a BIGNUM. */
static int member_bn(json_object *jwk, const char *name, size_t max_chars, BIGNUM **out,
                     struct skr_error *err)
{
	_cleanup_free_ uint8_t *raw = NULL;
	struct skr_error jerr = {0};
	const char *s;
	size_t len, raw_len;
	int r;

	r = json_get_string(jwk, name, true, &s, &jerr);
	if (r < 0)
		return skr_error_set(err, -EINVAL, "RSA JWK: %s", jerr.msg);
	len = strlen(s);
	if (len == 0)
		return skr_error_set(err, -EINVAL, "RSA JWK member \"%s\" is empty", name);
	if (len > max_chars)
		return skr_error_set(err, -EINVAL,
		                     "RSA JWK member \"%s\" is too long (%zu characters)", name,
		                     len);
	r = b64_decode(s, len, B64_ACCEPT_URL, &raw, &raw_len);
	if (r == -ENOMEM)
		return skr_error_set(err, r, "RSA JWK: out of memory");
	if (r < 0 || raw_len == 0)
		return skr_error_set(err, -EINVAL, "RSA JWK member \"%s\" is not base64url", name);
	*out = BN_bin2bn(raw, (int)raw_len, NULL);
	if (!*out)
		return skr_error_set(err, -ENOMEM, "RSA JWK: out of memory");
	return 0;
}

int jwk_rsa_public_from_object(json_object *jwk, EVP_PKEY **out, struct skr_error *err)
{
	_cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = NULL;
	_cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
	_cleanup_(BN_freep) BIGNUM *n = NULL;
	_cleanup_(BN_freep) BIGNUM *e = NULL;
	struct skr_error jerr = {0};
	EVP_PKEY *key = NULL;
	const char *kty;
	int bits, r;

	if (!jwk || !json_object_is_type(jwk, json_type_object))
		return skr_error_set(err, -EINVAL, "RSA JWK is not a JSON object");
	r = json_get_string(jwk, "kty", true, &kty, &jerr);
	if (r < 0)
		return skr_error_set(err, -EINVAL, "RSA JWK: %s", jerr.msg);
	if (strcmp(kty, "RSA") != 0)
		return skr_error_set(err, -EINVAL,
		                     "JWK \"kty\" is \"%.32s\"; an RSA key is required", kty);
	r = member_bn(jwk, "n", JWK_MAX_N_CHARS, &n, err);
	if (r < 0)
		return r;
	r = member_bn(jwk, "e", JWK_MAX_E_CHARS, &e, err);
	if (r < 0)
		return r;

	bits = BN_num_bits(n);
	if (bits < JWK_RSA_MIN_BITS)
		return skr_error_set(err, -EINVAL,
		                     "RSA JWK: RSA key is %d bits; at least %d required (use an "
		                     "RSA-2048 or larger wrapping key)",
		                     bits, JWK_RSA_MIN_BITS);
	if (bits > JWK_RSA_MAX_BITS)
		return skr_error_set(err, -EINVAL,
		                     "RSA JWK: RSA key is %d bits; at most %d supported", bits,
		                     JWK_RSA_MAX_BITS);
	if (!BN_is_odd(n))
		return skr_error_set(err, -EINVAL,
		                     "RSA JWK member \"n\" is even: not an RSA modulus");
	if (!BN_is_odd(e) || BN_is_one(e) || BN_num_bits(e) > JWK_MAX_E_BITS)
		return skr_error_set(err, -EINVAL,
		                     "RSA JWK member \"e\" is not a usable public exponent (odd, "
		                     "3 or more, at most %d bits)",
		                     JWK_MAX_E_BITS);

	bld = OSSL_PARAM_BLD_new();
	if (!bld || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1)
		return ossl_error_set(err, -ENOMEM, "RSA JWK: building key parameters");
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
		return ossl_error_set(err, -EINVAL, "RSA JWK: importing n and e");
	*out = key;
	return 0;
}

int jwk_rsa_public_parse(const char *json, size_t len, EVP_PKEY **out, struct skr_error *err)
{
	_cleanup_json_ json_object *obj = NULL;
	struct skr_error jerr = {0};

	if (!json || len == 0)
		return skr_error_set(err, -EINVAL, "RSA JWK is empty");
	if (len > JWK_MAX_SIZE)
		return skr_error_set(err, -EINVAL, "RSA JWK is larger than %u bytes", JWK_MAX_SIZE);
	if (json_parse(json, len, "RSA JWK", &obj, &jerr) < 0)
		return skr_error_set(err, -EINVAL, "%s", jerr.msg);
	return jwk_rsa_public_from_object(obj, out, err);
}

int jwk_key_type_from_kty(const char *kty, enum skr_key_type *out, struct skr_error *err)
{
	static const struct {
		const char *kty;
		enum skr_key_type type;
	} map[] = {
	        {"oct", SKR_KEY_OCT},     {"oct-HSM", SKR_KEY_OCT}, {"RSA", SKR_KEY_RSA},
	        {"RSA-HSM", SKR_KEY_RSA}, {"EC", SKR_KEY_EC},       {"EC-HSM", SKR_KEY_EC},
	};

	if (!kty)
		return skr_error_set(err, -EPROTO, "released key has no \"kty\"");
	for (size_t i = 0; i < ELEMENTSOF(map); i++)
		if (strcmp(kty, map[i].kty) == 0) {
			*out = map[i].type;
			return 0;
		}
	return skr_error_set(err, -ENOTSUP,
	                     "released key type \"%.32s\" is not supported (oct, RSA or EC, "
	                     "optionally -HSM)",
	                     kty);
}

static const char *key_type_name(enum skr_key_type t)
{
	switch (t) {
	case SKR_KEY_OCT:
		return "oct";
	case SKR_KEY_RSA:
		return "RSA";
	case SKR_KEY_EC:
		return "EC";
	}
	return "unknown";
}

int jwk_private_key_from_der(const uint8_t *der, size_t len, EVP_PKEY **out,
                             enum skr_key_type *type, struct skr_error *err)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	const unsigned char *p = der;
	enum skr_key_type t;

	if (!der || len == 0 || len > LONG_MAX)
		return skr_error_set(err, -EINVAL, "released private key is empty");
	key = d2i_AutoPrivateKey(NULL, &p, (long)len);
	if (!key) {
		ERR_clear_error();
		return skr_error_set(err, -EINVAL,
		                     "released key material is not a DER (PKCS#8) private key");
	}
	if (p != der + len)
		return skr_error_set(err, -EINVAL,
		                     "released private key has %zu bytes after its DER encoding",
		                     (size_t)(der + len - p));
	if (EVP_PKEY_is_a(key, "RSA"))
		t = SKR_KEY_RSA;
	else if (EVP_PKEY_is_a(key, "EC"))
		t = SKR_KEY_EC;
	else
		return skr_error_set(err, -ENOTSUP,
		                     "released private key is %s; only RSA and EC are supported",
		                     EVP_PKEY_get0_type_name(key) ?: "of an unknown type");
	if (type)
		*type = t;
	if (out)
		*out = TAKE_PTR(key);
	return 0;
}

int jwk_check_material(const char *kty, const struct secret *material, enum skr_key_type *type,
                       struct skr_error *err)
{
	enum skr_key_type announced, actual;
	int r;

	r = jwk_key_type_from_kty(kty, &announced, err);
	if (r < 0)
		return r;
	if (!material || material->len == 0)
		return skr_error_set(err, -EPROTO, "released %s key is empty", kty);
	if (announced != SKR_KEY_OCT) {
		struct skr_error derr = {0};

		r = jwk_private_key_from_der(material->data, material->len, NULL, &actual, &derr);
		if (r == -EINVAL)
			return skr_error_set(err, -EPROTO, "released key says kty %s: %s", kty,
			                     derr.msg);
		if (r < 0)
			return skr_error_set(err, r, "%s", derr.msg);
		if (actual != announced)
			return skr_error_set(
			        err, -EPROTO,
			        "released key says kty %s but the material is an %s key", kty,
			        key_type_name(actual));
	}
	if (type)
		*type = announced;
	return 0;
}
