/* SPDX-License-Identifier: MIT */
/*
 * Test certificates and JWS (test_pki.h).
 */
#include "test_pki.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

static void die(const char *what)
{
	fprintf(stderr, "test_pki: %s failed\n", what);
	abort();
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext || !X509_add_ext(cert, ext, -1))
		die("X509 extension");
	X509_EXTENSION_free(ext);
}

static X509 *cert_new(const char *cn, EVP_PKEY *key)
{
	X509 *c = X509_new();
	unsigned char serial[8];
	BIGNUM *bn;

	if (!c || RAND_bytes(serial, sizeof(serial)) != 1)
		die("X509_new");
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c)))
		die("serial");
	BN_free(bn);
	X509_set_version(c, 2);
	X509_gmtime_adj(X509_getm_notBefore(c), -3600);
	X509_gmtime_adj(X509_getm_notAfter(c), 24 * 3600);
	if (!X509_set_pubkey(c, key) ||
	    !X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "CN", MBSTRING_UTF8,
	                                (const unsigned char *)cn, -1, -1, 0))
		die("subject");
	return c;
}

static void cert_sign(X509 *c, const struct test_pki_cert *issuer, EVP_PKEY *self_key)
{
	X509 *icert = issuer ? issuer->cert : c;
	EVP_PKEY *ikey = issuer ? issuer->key : self_key;

	if (!X509_set_issuer_name(c, X509_get_subject_name(icert)))
		die("issuer name");
	add_ext(c, icert, NID_subject_key_identifier, "hash");
	add_ext(c, icert, NID_authority_key_identifier, "keyid:always");
	if (X509_sign(c, ikey, EVP_sha256()) <= 0)
		die("X509_sign");
}

static EVP_PKEY *ec_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	if (!k)
		die("EVP_EC_gen");
	return k;
}

static void make_ca(const struct test_pki_cert *issuer, const char *cn, struct test_pki_cert *out)
{
	out->key = ec_key();
	out->cert = cert_new(cn, out->key);
	add_ext(out->cert, issuer ? issuer->cert : out->cert, NID_basic_constraints,
	        "critical,CA:TRUE");
	add_ext(out->cert, issuer ? issuer->cert : out->cert, NID_key_usage,
	        "critical,keyCertSign,cRLSign");
	cert_sign(out->cert, issuer, out->key);
}

void test_pki_ca(const char *cn, struct test_pki_cert *out)
{
	make_ca(NULL, cn, out);
}

void test_pki_intermediate(const struct test_pki_cert *issuer, const char *cn,
                           struct test_pki_cert *out)
{
	make_ca(issuer, cn, out);
}

void test_pki_leaf(const struct test_pki_cert *issuer, const char *host, EVP_PKEY *key,
                   struct test_pki_cert *out)
{
	unsigned char ip[16];
	char san[300];
	X509 *icert;

	if (key) {
		if (!EVP_PKEY_up_ref(key))
			die("EVP_PKEY_up_ref");
		out->key = key;
	} else {
		out->key = EVP_RSA_gen(2048);
		if (!out->key)
			die("EVP_RSA_gen");
	}
	out->cert = cert_new(host, out->key);
	icert = issuer ? issuer->cert : out->cert;
	if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1)
		snprintf(san, sizeof(san), "IP:%s", host);
	else
		snprintf(san, sizeof(san), "DNS:%s", host);
	add_ext(out->cert, icert, NID_subject_alt_name, san);
	add_ext(out->cert, icert, NID_basic_constraints, "critical,CA:FALSE");
	add_ext(out->cert, icert, NID_key_usage, "critical,digitalSignature,keyEncipherment");
	add_ext(out->cert, icert, NID_ext_key_usage, "serverAuth");
	cert_sign(out->cert, issuer, out->key);
}

void test_pki_cert_clear(struct test_pki_cert *c)
{
	EVP_PKEY_free(c->key);
	X509_free(c->cert);
	c->key = NULL;
	c->cert = NULL;
}

char *test_pki_pem(X509 *cert)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long len;

	if (!b || PEM_write_bio_X509(b, cert) != 1)
		die("PEM_write_bio_X509");
	len = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)len);
	if (!out)
		die("strndup");
	BIO_free(b);
	return out;
}

static char *b64(const unsigned char *in, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (!out)
		die("malloc");
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}

char *test_pki_der_b64(X509 *cert)
{
	unsigned char *der = NULL;
	int len = i2d_X509(cert, &der);
	char *out;

	if (len <= 0)
		die("i2d_X509");
	out = b64(der, (size_t)len);
	OPENSSL_free(der);
	return out;
}

char *test_b64url(const void *data, size_t len)
{
	char *s = b64(data, len);
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+')
			s[i] = '-';
		else if (s[i] == '/')
			s[i] = '_';
	}
	while (n > 0 && s[n - 1] == '=')
		s[--n] = '\0';
	return s;
}

void test_pki_append_file(const char *path, const char *pem)
{
	FILE *f = fopen(path, "a");

	if (!f || fputs(pem, f) < 0 || fclose(f) != 0)
		die("append PEM file");
}

char *test_jws_sign(EVP_PKEY *key, const char *header_json, const char *payload_json)
{
	char *h = test_b64url(header_json, strlen(header_json));
	char *p = test_b64url(payload_json, strlen(payload_json));
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char sig[2048];
	size_t sig_len = sizeof(sig);
	char *input = NULL, *s, *out = NULL;

	if (!ctx || asprintf(&input, "%s.%s", h, p) < 0)
		die("JWS input");
	if (EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, key, NULL) != 1 ||
	    EVP_DigestSign(ctx, sig, &sig_len, (unsigned char *)input, strlen(input)) != 1)
		die("RS256 sign");
	s = test_b64url(sig, sig_len);
	if (asprintf(&out, "%s.%s", input, s) < 0)
		die("JWS");
	EVP_MD_CTX_free(ctx);
	free(h);
	free(p);
	free(input);
	free(s);
	return out;
}
