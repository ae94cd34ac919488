/* SPDX-License-Identifier: MIT */
/*
 * Certificates and signed tokens for tests, made in memory with OpenSSL: a CA, intermediates,
 * TLS server leaves for a host name or IP address, and compact RS256 JWS/JWT (what MAA tokens and
 * Key Vault release answers are). Everything aborts on failure: it is a test fixture.
 *
 *	struct test_pki_cert ca, leaf;
 *	test_pki_ca("test vault CA", &ca);
 *	test_pki_leaf(&ca, "localhost", NULL, &leaf);           // RSA-2048 leaf for localhost
 *	char *jws = test_jws_sign(leaf.key, header_json, payload_json);
 */
#pragma once

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

struct test_pki_cert {
	EVP_PKEY *key; /* private key */
	X509 *cert;
};

/* A self-signed CA (EC P-256; basicConstraints CA:TRUE, keyUsage keyCertSign/cRLSign). */
void test_pki_ca(const char *cn, struct test_pki_cert *out);
/* An intermediate CA (EC P-256) issued by @issuer. */
void test_pki_intermediate(const struct test_pki_cert *issuer, const char *cn,
                           struct test_pki_cert *out);
/*
 * A TLS server certificate (EKU serverAuth, CA:FALSE) for @host — a DNS name, or an IP address
 * when it parses as one — issued by @issuer (NULL = self-signed). @key: the leaf's key (a
 * reference is taken), or NULL for a fresh RSA-2048 key.
 */
void test_pki_leaf(const struct test_pki_cert *issuer, const char *host, EVP_PKEY *key,
                   struct test_pki_cert *out);
void test_pki_cert_clear(struct test_pki_cert *c);

/* PEM text of @cert (malloc'ed). */
char *test_pki_pem(X509 *cert);
/* Standard base64 (padded) of @cert's DER, as x5c carries it (malloc'ed). */
char *test_pki_der_b64(X509 *cert);
/* base64url without padding (malloc'ed). */
char *test_b64url(const void *data, size_t len);

/* Append @pem to the file @path (created 0600 if absent). */
void test_pki_append_file(const char *path, const char *pem);

/* b64url(@header_json) "." b64url(@payload_json) "." b64url(RS256 signature with @key). */
char *test_jws_sign(EVP_PKEY *key, const char *header_json, const char *payload_json);
