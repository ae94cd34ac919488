/* SPDX-License-Identifier: MIT */
#include "model_crypto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "b64.h"
#include "cleanup.h"
#include "ossl.h"

DEFINE_CLEANUP_FUNC(EVP_KDF *, EVP_KDF_free)
DEFINE_CLEANUP_FUNC(EVP_KDF_CTX *, EVP_KDF_CTX_free)

void model_header_write(const struct model_header *h, uint8_t out[MODEL_HEADER_SIZE])
{
	memcpy(out, MODEL_MAGIC, MODEL_MAGIC_SIZE);
	out[8] = h->version;
	out[9] = out[10] = out[11] = 0;
	memcpy(out + 12, h->nonce, MODEL_NONCE_SIZE);
}

int model_header_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct model_header *h,
                       uint64_t *ciphertext_len, struct skr_error *err)
{
	if (len < MODEL_MAGIC_SIZE || file_size < MODEL_MAGIC_SIZE ||
	    memcmp(buf, MODEL_MAGIC, MODEL_MAGIC_SIZE) != 0)
		return skr_error_set(err, -EINVAL,
		                     "not an encrypted model (no \"CSMODEL\" magic): encrypt it "
		                     "with encrypt-model");
	if (len < MODEL_HEADER_SIZE || file_size < MODEL_HEADER_SIZE)
		return skr_error_set(err, -EINVAL, "encrypted model truncated in its header");
	if (buf[8] != MODEL_VERSION)
		return skr_error_set(err, -EINVAL,
		                     "encrypted model version %u: this build reads version %u",
		                     buf[8], MODEL_VERSION);
	if (buf[9] || buf[10] || buf[11])
		return skr_error_set(err, -EINVAL,
		                     "encrypted model header: reserved bytes not zero");
	if (file_size < (uint64_t)MODEL_HEADER_SIZE + MODEL_TAG_SIZE + 1)
		return skr_error_set(
		        err, -EINVAL, "encrypted model truncated: %llu bytes, at least %d expected",
		        (unsigned long long)file_size, MODEL_HEADER_SIZE + MODEL_TAG_SIZE + 1);
	h->version = buf[8];
	memcpy(h->nonce, buf + 12, MODEL_NONCE_SIZE);
	*ciphertext_len = file_size - MODEL_HEADER_SIZE - MODEL_TAG_SIZE;
	return 0;
}

int model_key_derive(const uint8_t *d, size_t d_len, const char *salt_hex, const char *label,
                     struct secret **out, struct skr_error *err)
{
	_cleanup_(EVP_KDF_freep) EVP_KDF *kdf = NULL;
	_cleanup_(EVP_KDF_CTX_freep) EVP_KDF_CTX *ctx = NULL;
	_cleanup_free_ uint8_t *salt = NULL;
	_cleanup_secret_ struct secret *key = NULL;
	OSSL_PARAM params[5], *p = params;
	size_t salt_len = 0;

	/* Go's big.Int.Bytes(): the anchor hashes D without leading zeros (protocols.md 7.6). */
	while (d_len > 0 && d[0] == 0) {
		d++;
		d_len--;
	}
	if (d_len == 0)
		return skr_error_set(err, -EINVAL, "RSA key: private exponent is zero");
	if (salt_hex && *salt_hex &&
	    hex_decode_alloc(salt_hex, strlen(salt_hex), &salt, &salt_len) < 0)
		return skr_error_set(err, -EINVAL, "key derivation salt is not hex: '%.80s'",
		                     salt_hex);
	if (!label)
		label = MODEL_DEFAULT_LABEL;

	key = secret_new(MODEL_KEY_SIZE);
	kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
	ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	if (!key || !ctx)
		return ossl_error_set(err, -ENOMEM, "HKDF");
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)d, d_len);
	/* No salt parameter = RFC 5869's HashLen zeros, as Go's hkdf.New with a nil salt. */
	if (salt_len)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, salt_len);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)label, strlen(label));
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, key->data, key->len, params) != 1)
		return ossl_error_set(err, -EIO, "HKDF");
	*out = TAKE_PTR(key);
	return 0;
}

void model_key_fingerprint(const struct secret *key, char out[MODEL_FINGERPRINT_SIZE])
{
	static const char domain[] = "confidential-sidecar key fingerprint v1";
	uint8_t digest[32];
	unsigned int len = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, domain, sizeof(domain)) != 1 || /* with its NUL: the 0x00 */
	    EVP_DigestUpdate(md, key->data, key->len) != 1 ||
	    EVP_DigestFinal_ex(md, digest, &len) != 1) {
		snprintf(out, MODEL_FINGERPRINT_SIZE, "sha256:unavailable");
		EVP_MD_CTX_free(md);
		return;
	}
	EVP_MD_CTX_free(md);
	memcpy(out, "sha256:", 7);
	hex_encode(digest, 16, out + 7);
}
