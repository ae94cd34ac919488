/* SPDX-License-Identifier: MIT */
/*
 * Released keys (skr.h "Released keys"): the JWK text the Go sidecar returns, the 32-byte LUKS
 * key (protocols.md §7.3, §7.6) and a non-secret fingerprint.
 *
 * How the JWK text stays out of ordinary heap memory: json-c would build the whole document,
 * private members included, in heap buffers it reallocates (leaving unerased copies behind).
 * The shapes are fixed, so the text is instead printed straight into a struct secret: every
 * private value goes BIGNUM → big-endian bytes in a secret → base64url written by
 * EVP_EncodeBlock into the output secret. Only non-secret parts pass through json-c (the
 * key_ops array, which needs escaping). BIGNUMs holding private values are freed with
 * BN_clear_free().
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>

#include "b64.h"
#include "cleanup.h"
#include "jwk.h"
#include "ossl.h"
#include "secret.h"
#include "skr.h"

DEFINE_CLEANUP_FUNC(BIGNUM *, BN_clear_free)
DEFINE_CLEANUP_FUNC(EVP_KDF *, EVP_KDF_free)
DEFINE_CLEANUP_FUNC(EVP_KDF_CTX *, EVP_KDF_CTX_free)

#define FINGERPRINT_LABEL "confidential-sidecar key fingerprint v1"
#define FINGERPRINT_BYTES 16
/* PEM text of a private key accepted at most (RSA-16384 PKCS#8 PEM is ~13 KiB). */
#define KEY_PEM_MAX (256u * 1024)

void skr_key_free(struct skr_key *k)
{
	if (!k)
		return;
	free(k->kid);
	for (size_t i = 0; i < k->n_key_ops && i < SKR_KEY_OPS_MAX; i++)
		free(k->key_ops[i]);
	secret_free(k->material);
	free(k);
}

/* ---- JWK text in locked memory ------------------------------------------------------------ */

enum member_kind {
	MEMBER_B64,  /* value: base64url-nopad of data/len */
	MEMBER_STR,  /* value: "text" (fixed identifiers that need no escaping) */
	MEMBER_JSON, /* value: text as is (already JSON) */
};

struct member {
	const char *name;
	enum member_kind kind;
	const uint8_t *data; /* MEMBER_B64 */
	size_t len;
	const char *text; /* MEMBER_STR, MEMBER_JSON */
};

static size_t b64url_nopad_len(size_t n)
{
	return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

/*
 * Print {"name":value,...} into @buf (NULL: only count). EVP_EncodeBlock writes the padded form
 * and a NUL, so @buf needs 4 spare bytes beyond the returned length.
 */
static size_t members_print(const struct member *m, size_t n, char *buf)
{
	size_t pos = 0;

#define PUT(s, l)                                                                                  \
	do {                                                                                       \
		if (buf)                                                                           \
			memcpy(buf + pos, (s), (l));                                               \
		pos += (l);                                                                        \
	} while (0)

	PUT("{", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			PUT(",", 1);
		PUT("\"", 1);
		PUT(m[i].name, strlen(m[i].name));
		PUT("\":", 2);
		switch (m[i].kind) {
		case MEMBER_B64: {
			size_t out = b64url_nopad_len(m[i].len);

			PUT("\"", 1);
			if (buf) {
				char *p = buf + pos;

				EVP_EncodeBlock((unsigned char *)p, m[i].data, (int)m[i].len);
				for (size_t j = 0; j < out; j++)
					p[j] = p[j] == '+' ? '-' : p[j] == '/' ? '_' : p[j];
			}
			pos += out;
			PUT("\"", 1);
			break;
		}
		case MEMBER_STR:
			PUT("\"", 1);
			PUT(m[i].text, strlen(m[i].text));
			PUT("\"", 1);
			break;
		case MEMBER_JSON:
			PUT(m[i].text, strlen(m[i].text));
			break;
		}
	}
	PUT("}", 1);
#undef PUT
	return pos;
}

static int members_to_secret(const struct member *m, size_t n, struct secret **out,
                             struct skr_error *err)
{
	struct secret *s;
	size_t len = members_print(m, n, NULL);

	/* Room for EVP_EncodeBlock's padding and NUL after the last value, and a final NUL. */
	s = secret_new(len + 5);
	if (!s)
		return skr_error_set(err, -ENOMEM, "key JWK: out of memory");
	members_print(m, n, (char *)s->data);
	s->data[len] = '\0';
	s->len = len; /* secret_free() erases the whole mapping, spare bytes included */
	*out = s;
	return 0;
}

/* key_ops as a compact JSON array (not secret: json-c may build it on the heap). NULL if none. */
static int key_ops_json(const struct skr_key *k, char **out, struct skr_error *err)
{
	_cleanup_json_ json_object *arr = NULL;
	const char *text;

	*out = NULL;
	if (k->n_key_ops == 0)
		return 0;
	if (k->n_key_ops > SKR_KEY_OPS_MAX)
		return skr_error_set(err, -EINVAL, "key JWK: %zu key_ops (at most %d)",
		                     k->n_key_ops, SKR_KEY_OPS_MAX);
	arr = json_object_new_array();
	if (!arr)
		return skr_error_set(err, -ENOMEM, "key JWK: out of memory");
	for (size_t i = 0; i < k->n_key_ops; i++) {
		if (!k->key_ops[i])
			return skr_error_set(err, -EINVAL, "key JWK: key_ops[%zu] is NULL", i);
		if (json_object_array_add(arr, json_object_new_string(k->key_ops[i])) < 0)
			return skr_error_set(err, -ENOMEM, "key JWK: out of memory");
	}
	text = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN |
	                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
	*out = text ? strdup(text) : NULL;
	if (!*out)
		return skr_error_set(err, -ENOMEM, "key JWK: out of memory");
	return 0;
}

/* A BIGNUM parameter of @key as big-endian bytes in locked memory (@pad: fixed width, or 0). */
static int param_secret(EVP_PKEY *key, const char *param, size_t pad, struct secret **out,
                        struct skr_error *err)
{
	_cleanup_(BN_clear_freep) BIGNUM *bn = NULL;
	struct secret *s;
	size_t n;

	if (EVP_PKEY_get_bn_param(key, param, &bn) != 1)
		return ossl_error_set(err, -EINVAL, "key JWK: reading a key parameter");
	n = (size_t)BN_num_bytes(bn);
	if (pad) {
		if (n > pad)
			return skr_error_set(err, -EINVAL, "key JWK: parameter %s is too long",
			                     param);
		n = pad;
	}
	s = secret_new(n);
	if (!s)
		return skr_error_set(err, -ENOMEM, "key JWK: out of memory");
	if (BN_bn2binpad(bn, s->data, (int)n) != (int)n) {
		secret_free(s);
		return ossl_error_set(err, -EIO, "key JWK: encoding a key parameter");
	}
	*out = s;
	return 0;
}

static int rsa_jwk(EVP_PKEY *key, const char *ops, struct secret **out, struct skr_error *err)
{
	/* JWK member name, OpenSSL parameter; alphabetical with e, key_ops, kty slotted in below. */
	static const char *const params[] = {
	        OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_EXPONENT1,
	        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_E,
	        OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_FACTOR1,
	        OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
	};
	static const char *const names[] = {"d", "dp", "dq", "e", "n", "p", "q", "qi"};
	struct secret *v[ELEMENTSOF(params)] = {0};
	_cleanup_(BN_clear_freep) BIGNUM *third = NULL;
	struct member m[ELEMENTSOF(params) + 2];
	size_t n = 0;
	int r = 0;

	/* A multi-prime key needs the "oth" member, which neither Go nor Key Vault produce. */
	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_FACTOR3, &third) == 1)
		return skr_error_set(err, -ENOTSUP,
		                     "key JWK: multi-prime RSA keys are not supported");
	ERR_clear_error();

	for (size_t i = 0; i < ELEMENTSOF(params) && r == 0; i++)
		r = param_secret(key, params[i], 0, &v[i], err);
	if (r == 0) {
		for (size_t i = 0; i < ELEMENTSOF(params); i++) {
			if (strcmp(names[i], "n") == 0) {
				if (ops)
					m[n++] = (struct member){.name = "key_ops",
					                         .kind = MEMBER_JSON,
					                         .text = ops};
				m[n++] = (struct member){
				        .name = "kty", .kind = MEMBER_STR, .text = "RSA"};
			}
			m[n++] = (struct member){.name = names[i],
			                         .kind = MEMBER_B64,
			                         .data = v[i]->data,
			                         .len = v[i]->len};
		}
		r = members_to_secret(m, n, out, err);
	}
	for (size_t i = 0; i < ELEMENTSOF(params); i++)
		secret_free(v[i]);
	return r;
}

static const char *ec_jwk_curve(const char *group)
{
	static const struct {
		const char *group, *crv;
	} curves[] = {
	        {"prime256v1", "P-256"}, {"P-256", "P-256"},     {"secp384r1", "P-384"},
	        {"P-384", "P-384"},      {"secp521r1", "P-521"}, {"P-521", "P-521"},
	        {"secp256k1", "P-256K"},
	};

	for (size_t i = 0; i < ELEMENTSOF(curves); i++)
		if (strcmp(group, curves[i].group) == 0)
			return curves[i].crv;
	return NULL;
}

static int ec_jwk(EVP_PKEY *key, const char *ops, struct secret **out, struct skr_error *err)
{
	_cleanup_secret_ struct secret *d = NULL;
	_cleanup_secret_ struct secret *x = NULL;
	_cleanup_secret_ struct secret *y = NULL;
	char group[64];
	struct member m[6];
	const char *crv;
	size_t n = 0, width;
	int bits, r;

	if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
	                                   NULL) != 1)
		return ossl_error_set(err, -ENOTSUP, "key JWK: EC key without a named curve");
	crv = ec_jwk_curve(group);
	if (!crv)
		return skr_error_set(err, -ENOTSUP,
		                     "key JWK: EC curve %s has no JWK name (P-256, P-384, P-521, "
		                     "P-256K)",
		                     group);
	bits = EVP_PKEY_get_bits(key);
	if (bits <= 0)
		return ossl_error_set(err, -EINVAL, "key JWK: EC key size");
	/* RFC 7518 §6.2: x, y and d are the full field width, leading zeros kept. */
	width = ((size_t)bits + 7) / 8;
	r = param_secret(key, OSSL_PKEY_PARAM_PRIV_KEY, width, &d, err);
	if (r == 0)
		r = param_secret(key, OSSL_PKEY_PARAM_EC_PUB_X, width, &x, err);
	if (r == 0)
		r = param_secret(key, OSSL_PKEY_PARAM_EC_PUB_Y, width, &y, err);
	if (r < 0)
		return r;
	m[n++] = (struct member){.name = "crv", .kind = MEMBER_STR, .text = crv};
	m[n++] = (struct member){.name = "d", .kind = MEMBER_B64, .data = d->data, .len = d->len};
	if (ops)
		m[n++] = (struct member){.name = "key_ops", .kind = MEMBER_JSON, .text = ops};
	m[n++] = (struct member){.name = "kty", .kind = MEMBER_STR, .text = "EC"};
	m[n++] = (struct member){.name = "x", .kind = MEMBER_B64, .data = x->data, .len = x->len};
	m[n++] = (struct member){.name = "y", .kind = MEMBER_B64, .data = y->data, .len = y->len};
	return members_to_secret(m, n, out, err);
}

int skr_key_to_jwk(const struct skr_key *k, struct secret **json, struct skr_error *err)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	_cleanup_free_ char *ops = NULL;
	enum skr_key_type actual;
	int r;

	if (!k || !k->material || k->material->len == 0)
		return skr_error_set(err, -EINVAL, "key JWK: no key material");
	if (k->material->len > INT32_MAX / 2)
		return skr_error_set(err, -EINVAL, "key JWK: key material too large");
	r = key_ops_json(k, &ops, err);
	if (r < 0)
		return r;

	switch (k->type) {
	case SKR_KEY_OCT: {
		struct member m[3];
		size_t n = 0;

		m[n++] = (struct member){.name = "k",
		                         .kind = MEMBER_B64,
		                         .data = k->material->data,
		                         .len = k->material->len};
		if (ops)
			m[n++] = (struct member){
			        .name = "key_ops", .kind = MEMBER_JSON, .text = ops};
		m[n++] = (struct member){.name = "kty", .kind = MEMBER_STR, .text = "oct"};
		return members_to_secret(m, n, json, err);
	}
	case SKR_KEY_RSA:
	case SKR_KEY_EC:
		r = jwk_private_key_from_der(k->material->data, k->material->len, &key, &actual,
		                             err);
		if (r < 0)
			return skr_error_prefix(err, "key JWK: ");
		if (actual != k->type)
			return skr_error_set(err, -EINVAL,
			                     "key JWK: the key is typed %s but its material is %s",
			                     k->type == SKR_KEY_RSA ? "RSA" : "EC",
			                     actual == SKR_KEY_RSA ? "RSA" : "EC");
		return k->type == SKR_KEY_RSA ? rsa_jwk(key, ops, json, err)
		                              : ec_jwk(key, ops, json, err);
	}
	return skr_error_set(err, -EINVAL, "key JWK: unknown key type %d", (int)k->type);
}

/* ---- LUKS key derivation (§7.6) ----------------------------------------------------------- */

static int hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                       const char *info, struct secret **out, struct skr_error *err)
{
	_cleanup_(EVP_KDF_freep) EVP_KDF *kdf = NULL;
	_cleanup_(EVP_KDF_CTX_freep) EVP_KDF_CTX *ctx = NULL;
	_cleanup_secret_ struct secret *key = NULL;
	OSSL_PARAM params[5];
	size_t n = 0;

	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	key = secret_new(SKR_DERIVED_KEY_SIZE);
	if (!ctx || !key)
		return ossl_error_set(err, -ENOMEM, "key derivation: HKDF setup");
	params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	/* No salt parameter = RFC 5869's default, HashLen zero bytes. */
	if (salt_len)
		params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt,
		                                                salt_len);
	params[n++] =
	        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
	params[n] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, key->data, key->len, params) != 1)
		return ossl_error_set(err, -EIO, "key derivation: HKDF-SHA256");
	*out = TAKE_PTR(key);
	return 0;
}

static int rsa_derive(EVP_PKEY *key, const char *salt_hex, const char *label, struct secret **out,
                      struct skr_error *err)
{
	_cleanup_secret_ struct secret *d = NULL;
	_cleanup_free_ uint8_t *salt = NULL;
	size_t salt_len = 0;
	int r;

	if (salt_hex && *salt_hex) {
		r = hex_decode_alloc(salt_hex, strlen(salt_hex), &salt, &salt_len);
		if (r == -ENOMEM)
			return skr_error_set(err, r, "key derivation: out of memory");
		if (r < 0)
			return skr_error_set(
			        err, -EINVAL,
			        "key_derivation.salt is not an even-length hex string");
	}
	/* IKM = D big-endian without leading zeros, as Go's big.Int.Bytes() (protocols.md §7.6). */
	r = param_secret(key, OSSL_PKEY_PARAM_RSA_D, 0, &d, err);
	if (r < 0)
		return skr_error_prefix(err, "key derivation: ");
	if (d->len == 0)
		return skr_error_set(err, -EINVAL, "key derivation: RSA private exponent is zero");
	return hkdf_sha256(d->data, d->len, salt, salt_len,
	                   label && *label ? label : SKR_DEFAULT_KDF_LABEL, out, err);
}

int skr_key_derive(const struct skr_key *k, const char *salt_hex, const char *label,
                   struct secret **out, struct skr_error *err)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	enum skr_key_type actual;
	int r;

	if (!k || !k->material || !out)
		return skr_error_set(err, -EINVAL, "key derivation: no key");
	switch (k->type) {
	case SKR_KEY_OCT:
		if (k->material->len != SKR_DERIVED_KEY_SIZE)
			return skr_error_set(err, -EINVAL,
			                     "released oct key is %zu bytes; a LUKS key needs %d",
			                     k->material->len, SKR_DERIVED_KEY_SIZE);
		*out = secret_new_copy(k->material->data, k->material->len);
		if (!*out)
			return skr_error_set(err, -ENOMEM, "key derivation: out of memory");
		return 0;
	case SKR_KEY_RSA:
		r = jwk_private_key_from_der(k->material->data, k->material->len, &key, &actual,
		                             err);
		if (r < 0)
			return skr_error_prefix(err, "key derivation: ");
		if (actual != SKR_KEY_RSA)
			return skr_error_set(
			        err, -EINVAL,
			        "key derivation: the key is typed RSA but is not an RSA key");
		return rsa_derive(key, salt_hex, label, out, err);
	case SKR_KEY_EC:
		return skr_error_set(
		        err, -ENOTSUP,
		        "released key is an EC key; a LUKS key comes from an oct key (32 "
		        "bytes) or an RSA key (HKDF)");
	}
	return skr_error_set(err, -EINVAL, "key derivation: unknown key type %d", (int)k->type);
}

/* Never prompt on a terminal for an encrypted PEM: a library must not read stdin. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

int skr_rsa_derive_key(const uint8_t *pkcs8, size_t len, const char *salt_hex, const char *label,
                       struct secret **out, struct skr_error *err)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	enum skr_key_type type;
	int r;

	if (!pkcs8 || len == 0 || !out)
		return skr_error_set(err, -EINVAL, "RSA key derivation: no key given");
	if (len > KEY_PEM_MAX)
		return skr_error_set(err, -EINVAL,
		                     "RSA key derivation: key of %zu bytes is too large", len);
	if (memmem(pkcs8, len, "-----BEGIN", 10)) {
		_cleanup_(BIO_free_allp) BIO *bio = BIO_new_mem_buf(pkcs8, (int)len);

		if (!bio)
			return skr_error_set(err, -ENOMEM, "RSA key derivation: out of memory");
		key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
		if (!key)
			return ossl_error_set(
			        err, -EINVAL,
			        "RSA key derivation: the PEM is not an unencrypted private "
			        "key");
		if (!EVP_PKEY_is_a(key, "RSA"))
			return skr_error_set(err, -EINVAL,
			                     "RSA key derivation: the key is %s, not RSA",
			                     EVP_PKEY_get0_type_name(key) ?: "not RSA");
	} else {
		r = jwk_private_key_from_der(pkcs8, len, &key, &type, err);
		if (r < 0)
			return skr_error_prefix(err, "RSA key derivation: ");
		if (type != SKR_KEY_RSA)
			return skr_error_set(err, -EINVAL,
			                     "RSA key derivation: the key is EC, not RSA");
	}
	return rsa_derive(key, salt_hex, label, out, err);
}

/* ---- fingerprint ---------------------------------------------------------------------------- */

void skr_key_fingerprint(const uint8_t *key, size_t len, char out[SKR_FINGERPRINT_STR_SIZE])
{
	static const char label[] = FINGERPRINT_LABEL; /* hashed with its NUL: the 0x00 separator */
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, label, sizeof(label)) != 1 ||
	    (len && EVP_DigestUpdate(ctx, key, len) != 1) ||
	    EVP_DigestFinal_ex(ctx, md, &md_len) != 1 || md_len < FINGERPRINT_BYTES) {
		ERR_clear_error();
		snprintf(out, SKR_FINGERPRINT_STR_SIZE, "sha256:unavailable");
		return;
	}
	memcpy(out, "sha256:", 7);
	hex_encode(md, FINGERPRINT_BYTES, out + 7);
}
