/* SPDX-License-Identifier: MIT */
/*
 * CKM_RSA_AES_KEY_WRAP family and the key_hsm transfer blob (key_wrap.h, protocols.md §5.2–5.3).
 * RSA-OAEP and RFC 5649 are OpenSSL's (EVP_PKEY_encrypt/decrypt, EVP_aes_*_wrap_pad); this file
 * only splits, sizes and checks.
 */
#include "key_wrap.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "b64.h"
#include "cleanup.h"
#include "jwk.h"
#include "json_util.h"
#include "ossl.h"

/* The transfer key skr_key_wrap() generates: AES-256, as Key Vault does. */
#define KEY_WRAP_TRANSFER_KEY_SIZE 32
/* RFC 5649: a 64-bit integrity check register, then the key padded to 64-bit blocks. */
#define KWP_BLOCK 8
#define KWP_MIN_CIPHERTEXT 16

static const struct {
	enum skr_wrap_alg alg;
	const char *name;
	const char *digest;
} wrap_algs[] = {
        {SKR_WRAP_RSA_AES, "CKM_RSA_AES_KEY_WRAP", "SHA1"},
        {SKR_WRAP_RSA_AES_256, "RSA_AES_KEY_WRAP_256", "SHA256"},
        {SKR_WRAP_RSA_AES_384, "RSA_AES_KEY_WRAP_384", "SHA384"},
};

int skr_wrap_alg_from_string(const char *s, enum skr_wrap_alg *out)
{
	if (!s || !*s) {
		*out = SKR_WRAP_RSA_AES;
		return 0;
	}
	for (size_t i = 0; i < ELEMENTSOF(wrap_algs); i++)
		if (strcmp(s, wrap_algs[i].name) == 0) {
			*out = wrap_algs[i].alg;
			return 0;
		}
	return -EINVAL;
}

const char *skr_wrap_alg_name(enum skr_wrap_alg alg)
{
	for (size_t i = 0; i < ELEMENTSOF(wrap_algs); i++)
		if (wrap_algs[i].alg == alg)
			return wrap_algs[i].name;
	return NULL;
}

const char *key_wrap_alg_digest(enum skr_wrap_alg alg)
{
	for (size_t i = 0; i < ELEMENTSOF(wrap_algs); i++)
		if (wrap_algs[i].alg == alg)
			return wrap_algs[i].digest;
	return NULL;
}

static int oaep_ctx(EVP_PKEY *kek, enum skr_wrap_alg alg, bool encrypt, EVP_PKEY_CTX **out,
                    struct skr_error *err)
{
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
	const char *md = key_wrap_alg_digest(alg);

	if (!md)
		return skr_error_set(err, -EINVAL, "key wrap: unknown algorithm %d", (int)alg);
	if (!kek || !EVP_PKEY_is_a(kek, "RSA"))
		return skr_error_set(err, -EINVAL, "key wrap: the wrapping key is not an RSA key");
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, kek, NULL);
	if (!ctx || (encrypt ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md_name(ctx, md, NULL) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md_name(ctx, md, NULL) != 1)
		return ossl_error_set(err, -EINVAL, "key wrap: setting up RSA-OAEP");
	/* The label stays empty (the default), as Key Vault and PKCS#11 CKM_RSA_AES_KEY_WRAP use. */
	*out = TAKE_PTR(ctx);
	return 0;
}

static const EVP_CIPHER *kwp_cipher(size_t key_len)
{
	switch (key_len) {
	case 16:
		return EVP_aes_128_wrap_pad();
	case 24:
		return EVP_aes_192_wrap_pad();
	case 32:
		return EVP_aes_256_wrap_pad();
	}
	return NULL;
}

/*
 * RFC 5649 wrap (@encrypt) or unwrap of @in under @key. @out must hold @in_len + 8 rounded up to
 * 8 when wrapping, @in_len bytes when unwrapping (OpenSSL erases that many on an integrity
 * failure). Returns 0, -EBADMSG for a failed unwrap (the integrity check), -EIO otherwise.
 */
static int kwp(bool encrypt, const uint8_t *key, size_t key_len, const uint8_t *in, size_t in_len,
               uint8_t *out, size_t *out_len)
{
	_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = NULL;
	const EVP_CIPHER *cipher = kwp_cipher(key_len);
	int n = 0, fin = 0;

	if (!cipher || in_len > KEY_HSM_MAX_SIZE)
		return -EIO;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (EVP_CipherInit_ex(ctx, cipher, NULL, key, NULL, encrypt ? 1 : 0) != 1)
		return -EIO;
	if (EVP_CipherUpdate(ctx, out, &n, in, (int)in_len) != 1 || n < 0 ||
	    EVP_CipherFinal_ex(ctx, out + n, &fin) != 1) {
		ERR_clear_error();
		return encrypt ? -EIO : -EBADMSG;
	}
	*out_len = (size_t)n + (size_t)fin;
	return 0;
}

int key_wrap(EVP_PKEY *kek, enum skr_wrap_alg alg, const uint8_t *key, size_t key_len,
             uint8_t **out, size_t *out_len, struct skr_error *err)
{
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
	_cleanup_secret_ struct secret *tk = NULL;
	_cleanup_free_ uint8_t *buf = NULL;
	size_t rsa_len, wrapped_len, total, n;
	int size, r;

	if (!key || key_len == 0)
		return skr_error_set(err, -EINVAL, "key wrap: the key to wrap is empty");
	if (key_len > KEY_WRAP_MAX_KEY_SIZE)
		return skr_error_set(err, -EINVAL,
		                     "key wrap: a %zu-byte key is larger than %u bytes", key_len,
		                     KEY_WRAP_MAX_KEY_SIZE);
	r = oaep_ctx(kek, alg, true, &ctx, err);
	if (r < 0)
		return r;
	size = EVP_PKEY_get_size(kek);
	if (size <= 0)
		return skr_error_set(err, -EINVAL, "key wrap: the wrapping key has no size");
	rsa_len = (size_t)size;
	wrapped_len = KWP_BLOCK + (key_len + KWP_BLOCK - 1) / KWP_BLOCK * KWP_BLOCK;
	total = rsa_len + wrapped_len;

	tk = secret_new(KEY_WRAP_TRANSFER_KEY_SIZE);
	buf = malloc(total);
	if (!tk || !buf)
		return skr_error_set(err, -ENOMEM, "key wrap: out of memory");
	if (RAND_priv_bytes(tk->data, (int)tk->len) != 1)
		return ossl_error_set(err, -EIO, "key wrap: random transfer key");

	n = rsa_len;
	if (EVP_PKEY_encrypt(ctx, buf, &n, tk->data, tk->len) != 1 || n != rsa_len)
		return ossl_error_set(err, -EINVAL,
		                      "key wrap: RSA-OAEP encryption of the transfer key");
	r = kwp(true, tk->data, tk->len, key, key_len, buf + rsa_len, &n);
	if (r < 0 || n != wrapped_len)
		return skr_error_set(err, r < 0 ? r : -EIO,
		                     "key wrap: AES key wrap with padding failed");
	*out = TAKE_PTR(buf);
	*out_len = total;
	return 0;
}

int skr_key_wrap(const char *kek_jwk_json, size_t kek_jwk_len, enum skr_wrap_alg alg,
                 const uint8_t *key, size_t key_len, uint8_t **out, size_t *out_len,
                 struct skr_error *err)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *kek = NULL;
	int r;

	if (!out || !out_len)
		return skr_error_set(err, -EINVAL, "key wrap: no output given");
	if (!key_wrap_alg_digest(alg))
		return skr_error_set(err, -EINVAL, "key wrap: unknown algorithm %d", (int)alg);
	r = jwk_rsa_public_parse(kek_jwk_json, kek_jwk_len, &kek, err);
	if (r < 0)
		return skr_error_prefix(err, "key wrap: wrapping key: ");
	return key_wrap(kek, alg, key, key_len, out, out_len, err);
}

int key_unwrap(EVP_PKEY *kek, enum skr_wrap_alg alg, const uint8_t *ct, size_t len,
               struct secret **out, struct skr_error *err)
{
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
	_cleanup_secret_ struct secret *tk = NULL;
	_cleanup_secret_ struct secret *material = NULL;
	size_t rsa_len, rest, n;
	int size, r;

	if (!out)
		return skr_error_set(err, -EINVAL, "key unwrap: no output given");
	r = oaep_ctx(kek, alg, false, &ctx, err);
	if (r < 0)
		return skr_error_prefix(err, "key unwrap: ");
	size = EVP_PKEY_get_size(kek);
	if (size <= 0)
		return skr_error_set(err, -EINVAL, "key unwrap: the wrapping key has no size");
	rsa_len = (size_t)size;
	if (!ct || len < rsa_len + KWP_MIN_CIPHERTEXT)
		return skr_error_set(
		        err, -EINVAL,
		        "key unwrap failed: ciphertext is %zu bytes; a %zu-bit wrapping "
		        "key needs %zu bytes of RSA block and at least %d of AES key wrap",
		        len, rsa_len * 8, rsa_len, KWP_MIN_CIPHERTEXT);
	rest = len - rsa_len;
	if (rest % KWP_BLOCK)
		return skr_error_set(err, -EINVAL,
		                     "key unwrap failed: the AES key wrap part is %zu bytes, not a "
		                     "multiple of 8 (truncated ciphertext?)",
		                     rest);
	if (rest > KEY_WRAP_MAX_KEY_SIZE + 2 * KWP_BLOCK)
		return skr_error_set(err, -EINVAL,
		                     "key unwrap failed: ciphertext of %zu bytes is too "
		                     "large for a key",
		                     len);

	tk = secret_new(rsa_len);
	if (!tk)
		return skr_error_set(err, -ENOMEM, "key unwrap: out of memory");
	n = tk->len;
	if (EVP_PKEY_decrypt(ctx, tk->data, &n, ct, rsa_len) != 1) {
		ERR_clear_error();
		return skr_error_set(
		        err, -EBADMSG,
		        "key unwrap failed: RSA-OAEP (%s) decryption of the transfer key "
		        "did not succeed: the key was not wrapped for this wrapping key "
		        "or not with %s",
		        key_wrap_alg_digest(alg), skr_wrap_alg_name(alg));
	}
	tk->len = n; /* secret_free() erases the whole mapping regardless */
	if (!kwp_cipher(tk->len))
		return skr_error_set(
		        err, -EBADMSG,
		        "key unwrap failed: the transfer key is %zu bytes; AES key wrap "
		        "needs 16, 24 or 32",
		        tk->len);

	/* OpenSSL writes (and on failure erases) up to @rest bytes. */
	material = secret_new(rest);
	if (!material)
		return skr_error_set(err, -ENOMEM, "key unwrap: out of memory");
	r = kwp(false, tk->data, tk->len, ct + rsa_len, rest, material->data, &n);
	if (r == -EBADMSG)
		return skr_error_set(
		        err, r, "key unwrap failed: integrity check (RFC 5649 AIV) did not pass");
	if (r < 0 || n == 0 || n > rest - KWP_BLOCK)
		return skr_error_set(err, r < 0 ? r : -EBADMSG,
		                     "key unwrap failed: AES key wrap with padding");
	material->len = n;
	*out = TAKE_PTR(material);
	return 0;
}

int key_hsm_unwrap(EVP_PKEY *kek, const char *expected_kek_kid, const char *key_hsm_b64url,
                   size_t len, enum skr_wrap_alg *alg_out, struct secret **material,
                   struct skr_error *err)
{
	_cleanup_free_ uint8_t *blob = NULL;
	_cleanup_free_ uint8_t *ct = NULL;
	_cleanup_json_ json_object *obj = NULL;
	struct skr_error jerr = {0};
	json_object *header;
	const char *schema, *kid, *alg, *enc, *ciphertext;
	enum skr_wrap_alg wa;
	size_t blob_len, ct_len;
	int r;

	if (!key_hsm_b64url || len == 0)
		return skr_error_set(err, -EPROTO, "key_hsm is empty");
	if (len > KEY_HSM_MAX_SIZE)
		return skr_error_set(err, -EFBIG, "key_hsm is larger than %u bytes",
		                     KEY_HSM_MAX_SIZE);
	r = b64_decode(key_hsm_b64url, len, B64_ACCEPT_URL, &blob, &blob_len);
	if (r == -ENOMEM)
		return skr_error_set(err, r, "key_hsm: out of memory");
	if (r < 0)
		return skr_error_set(err, -EPROTO, "key_hsm is not base64url");
	if (json_parse((const char *)blob, blob_len, "key_hsm", &obj, &jerr) < 0)
		return skr_error_set(err, -EPROTO, "%s", jerr.msg);
	if (!json_object_is_type(obj, json_type_object))
		return skr_error_set(err, -EPROTO, "key_hsm is not a JSON object");

	if (json_get_string(obj, "schema_version", true, &schema, &jerr) < 0 ||
	    json_get_object(obj, "header", true, &header, &jerr) < 0 ||
	    json_get_string(header, "kid", true, &kid, &jerr) < 0 ||
	    json_get_string(header, "alg", true, &alg, &jerr) < 0 ||
	    json_get_string(header, "enc", true, &enc, &jerr) < 0 ||
	    json_get_string(obj, "ciphertext", true, &ciphertext, &jerr) < 0)
		return skr_error_set(err, -EPROTO, "key_hsm: %s", jerr.msg);
	/* "1.0" is what a release returns, "1.0.0" the BYOK transfer blob (protocols.md §5.2). */
	if (strcmp(schema, "1.0") != 0 && strcmp(schema, "1.0.0") != 0)
		return skr_error_set(
		        err, -EPROTO,
		        "key_hsm schema_version \"%.32s\" is not supported (1.0 or 1.0.0)", schema);
	if (strcmp(alg, "dir") != 0)
		return skr_error_set(err, -EPROTO,
		                     "key_hsm header.alg is \"%.32s\"; expected \"dir\"", alg);
	if (!*enc || skr_wrap_alg_from_string(enc, &wa) < 0)
		return skr_error_set(
		        err, -EPROTO,
		        "key_hsm header.enc \"%.48s\" is not supported (CKM_RSA_AES_KEY_WRAP, "
		        "RSA_AES_KEY_WRAP_256 or RSA_AES_KEY_WRAP_384)",
		        enc);
	if (expected_kek_kid && strcmp(kid, expected_kek_kid) != 0)
		return skr_error_set(
		        err, -EPROTO,
		        "key_hsm header.kid \"%.64s\" is not the wrapping key \"%s\": the "
		        "vault wrapped the key for another runtime key",
		        kid, expected_kek_kid);
	r = b64_decode(ciphertext, strlen(ciphertext), B64_ACCEPT_URL, &ct, &ct_len);
	if (r == -ENOMEM)
		return skr_error_set(err, r, "key_hsm: out of memory");
	if (r < 0 || ct_len == 0)
		return skr_error_set(err, -EPROTO, "key_hsm ciphertext is not base64url");
	r = key_unwrap(kek, wa, ct, ct_len, material, err);
	if (r < 0)
		return r;
	if (alg_out)
		*alg_out = wa;
	return 0;
}
