/* SPDX-License-Identifier: MIT */
/*
 * The local PKI of a devcloud state: one CA that issues the TLS server certificate and the
 * token signing certificate, so clients trust a single ca.pem (as they trust a public CA in
 * Azure). Everything is OpenSSL 3 X509/EVP; no deprecated calls.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "b64.h"
#include "cleanup.h"
#include "devcloud.h"
#include "fileio.h"
#include "ossl.h"

#define PEM_MAX_SIZE (256u * 1024)

DEFINE_CLEANUP_FUNC(X509_NAME *, X509_NAME_free)
DEFINE_CLEANUP_FUNC(X509_EXTENSION *, X509_EXTENSION_free)

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value, struct skr_error *err)
{
	_cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = NULL;
	X509V3_CTX ctx;

	X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	if (!ext || X509_add_ext(cert, ext, -1) != 1)
		return ossl_error_set(err, -EINVAL, "certificate extension");
	return 0;
}

/* "DNS:a,IP:127.0.0.1,…" from host names and addresses. */
static int san_value(const char *const *names, size_t n, char **out)
{
	_cleanup_free_ char *s = strdup("");

	for (size_t i = 0; s && i < n; i++) {
		uint8_t addr[16];
		bool ip = inet_pton(AF_INET, names[i], addr) == 1 ||
		          inet_pton(AF_INET6, names[i], addr) == 1;
		char *next;

		if (asprintf(&next, "%s%s%s:%s", s, i ? "," : "", ip ? "IP" : "DNS", names[i]) < 0)
			return -ENOMEM;
		free(s);
		s = next;
	}
	if (!s)
		return -ENOMEM;
	*out = TAKE_PTR(s);
	return 0;
}

int devcloud_pki_issue(enum devcloud_cert_kind kind, const char *common_name, EVP_PKEY *key,
                       X509 *issuer, EVP_PKEY *issuer_key, const char *const *names, size_t n_names,
                       int validity_days, X509 **out, struct skr_error *err)
{
	_cleanup_(X509_freep) X509 *cert = X509_new();
	_cleanup_(X509_NAME_freep) X509_NAME *name = X509_NAME_new();
	_cleanup_(ASN1_INTEGER_freep) ASN1_INTEGER *serial = NULL;
	_cleanup_(BN_freep) BIGNUM *bn = NULL;
	uint8_t serial_bytes[16];
	int r;

	if (!cert || !name)
		return skr_error_set(err, -ENOMEM, "certificate: out of memory");
	if (!issuer != !issuer_key)
		return skr_error_set(err, -EINVAL, "certificate: issuer without its key");

	/* 127-bit random serial: unique without a counter, positive as RFC 5280 requires. */
	if (RAND_bytes(serial_bytes, sizeof(serial_bytes)) != 1)
		return ossl_error_set(err, -EIO, "certificate serial");
	serial_bytes[0] &= 0x7f;
	bn = BN_bin2bn(serial_bytes, sizeof(serial_bytes), NULL);
	serial = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	if (!serial)
		return ossl_error_set(err, -ENOMEM, "certificate serial");

	if (X509_set_version(cert, X509_VERSION_3) != 1 ||
	    X509_set_serialNumber(cert, serial) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
	                               (const unsigned char *)"devcloud (local development only)",
	                               -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	                               (const unsigned char *)common_name, -1, -1, 0) != 1 ||
	    X509_set_subject_name(cert, name) != 1 ||
	    X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name) != 1 ||
	    X509_set_pubkey(cert, key) != 1)
		return ossl_error_set(err, -EINVAL, "certificate fields");
	/* Backdated a minute so a client clock slightly behind still accepts it. */
	if (!X509_gmtime_adj(X509_getm_notBefore(cert), -60) ||
	    !X509_gmtime_adj(X509_getm_notAfter(cert), (long)validity_days * 24 * 3600))
		return ossl_error_set(err, -EINVAL, "certificate validity");

	r = add_ext(cert, issuer, NID_subject_key_identifier, "hash", err);
	if (r == 0 && issuer)
		r = add_ext(cert, issuer, NID_authority_key_identifier, "keyid:always", err);
	if (r < 0)
		return r;

	switch (kind) {
	case DEVCLOUD_CERT_CA:
		r = add_ext(cert, issuer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", err);
		if (r == 0)
			r = add_ext(cert, issuer, NID_key_usage, "critical,keyCertSign,cRLSign",
			            err);
		break;
	case DEVCLOUD_CERT_TLS_SERVER: {
		_cleanup_free_ char *san = NULL;

		if (san_value(names, n_names, &san) < 0)
			return skr_error_set(err, -ENOMEM, "certificate: out of memory");
		r = add_ext(cert, issuer, NID_basic_constraints, "critical,CA:FALSE", err);
		if (r == 0)
			r = add_ext(cert, issuer, NID_key_usage, "critical,digitalSignature", err);
		if (r == 0)
			r = add_ext(cert, issuer, NID_ext_key_usage, "serverAuth", err);
		if (r == 0 && n_names > 0)
			r = add_ext(cert, issuer, NID_subject_alt_name, san, err);
		break;
	}
	case DEVCLOUD_CERT_TOKEN_SIGNING:
		r = add_ext(cert, issuer, NID_basic_constraints, "critical,CA:FALSE", err);
		if (r == 0)
			r = add_ext(cert, issuer, NID_key_usage, "critical,digitalSignature", err);
		break;
	}
	if (r < 0)
		return r;

	if (X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256()) <= 0)
		return ossl_error_set(err, -EINVAL, "certificate signature");
	*out = TAKE_PTR(cert);
	return 0;
}

int devcloud_pki_key_pem(EVP_PKEY *key, struct secret **out, struct skr_error *err)
{
	/* A secure-memory BIO is erased when freed, so no plain copy of the key stays behind. */
	_cleanup_(BIO_free_allp) BIO *bio = BIO_new(BIO_s_secmem());
	struct secret *s;
	char *data;
	long len;

	if (!bio || PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1)
		return ossl_error_set(err, -ENOMEM, "private key PEM");
	len = BIO_get_mem_data(bio, &data);
	s = secret_new((size_t)len + 1);
	if (!s)
		return skr_error_set(err, -ENOMEM, "private key PEM: out of memory");
	memcpy(s->data, data, (size_t)len);
	s->data[len] = '\0';
	s->len = (size_t)len;
	*out = s;
	return 0;
}

int devcloud_pki_cert_pem(X509 *cert, char **out, struct skr_error *err)
{
	_cleanup_(BIO_free_allp) BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	long len;

	if (!bio || PEM_write_bio_X509(bio, cert) != 1)
		return ossl_error_set(err, -ENOMEM, "certificate PEM");
	len = BIO_get_mem_data(bio, &data);
	*out = strndup(data, (size_t)len);
	if (!*out)
		return skr_error_set(err, -ENOMEM, "certificate PEM: out of memory");
	return 0;
}

int devcloud_pki_load_cert(const char *path, X509 **out, struct skr_error *err)
{
	_cleanup_free_ char *pem = NULL;
	_cleanup_(BIO_free_allp) BIO *bio = NULL;
	size_t len;
	int r = read_file(path, PEM_MAX_SIZE, &pem, &len);

	if (r < 0)
		return skr_error_set(err, r, "cannot read %s: %s", path, strerror(-r));
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return skr_error_set(err, -ENOMEM, "%s: out of memory", path);
	*out = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (!*out)
		return ossl_error_set(err, -EINVAL, path);
	return 0;
}

int devcloud_pki_load_key(const char *path, EVP_PKEY **out, struct skr_error *err)
{
	_cleanup_(BIO_free_allp) BIO *bio = NULL;
	char *pem = NULL;
	size_t len;
	int r = read_file(path, PEM_MAX_SIZE, &pem, &len);

	if (r < 0)
		return skr_error_set(err, r, "cannot read %s: %s", path, strerror(-r));
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio)
		*out = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	secure_free(pem, len);
	if (!bio)
		return skr_error_set(err, -ENOMEM, "%s: out of memory", path);
	if (!*out)
		return ossl_error_set(err, -EINVAL, path);
	return 0;
}

static int cert_der(X509 *cert, uint8_t **der, size_t *len, struct skr_error *err)
{
	unsigned char *buf = NULL;
	int n = i2d_X509(cert, &buf);

	if (n <= 0)
		return ossl_error_set(err, -EINVAL, "certificate DER");
	*der = buf;
	*len = (size_t)n;
	return 0;
}

int devcloud_pki_thumbprint(X509 *cert, char **out, struct skr_error *err)
{
	unsigned char md[32];
	unsigned int mdlen = sizeof(md);

	if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1)
		return ossl_error_set(err, -EINVAL, "certificate thumbprint");
	if (b64_encode(md, mdlen, B64_URL_NOPAD, out) < 0)
		return skr_error_set(err, -ENOMEM, "certificate thumbprint: out of memory");
	return 0;
}

int devcloud_pki_cert_b64(X509 *cert, char **out, struct skr_error *err)
{
	uint8_t *der = NULL;
	size_t len = 0;
	int r = cert_der(cert, &der, &len, err);

	if (r < 0)
		return r;
	r = b64_encode(der, len, B64_STD, out);
	OPENSSL_free(der);
	if (r < 0)
		return skr_error_set(err, -ENOMEM, "certificate base64: out of memory");
	return 0;
}
