/* SPDX-License-Identifier: MIT */
/*
 * Cleanup helpers for OpenSSL and json-c objects, and a bridge from OpenSSL's error queue to
 * struct skr_error.
 */
#pragma once

#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cleanup.h"
#include "skr_error.h"

DEFINE_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free)
DEFINE_CLEANUP_FUNC(EVP_PKEY_CTX *, EVP_PKEY_CTX_free)
DEFINE_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free)
DEFINE_CLEANUP_FUNC(EVP_CIPHER_CTX *, EVP_CIPHER_CTX_free)
DEFINE_CLEANUP_FUNC(X509 *, X509_free)
DEFINE_CLEANUP_FUNC(X509_STORE *, X509_STORE_free)
DEFINE_CLEANUP_FUNC(X509_STORE_CTX *, X509_STORE_CTX_free)
DEFINE_CLEANUP_FUNC(BIO *, BIO_free_all)
DEFINE_CLEANUP_FUNC(BIGNUM *, BN_free)
DEFINE_CLEANUP_FUNC(ECDSA_SIG *, ECDSA_SIG_free)
DEFINE_CLEANUP_FUNC(ASN1_INTEGER *, ASN1_INTEGER_free)
DEFINE_CLEANUP_FUNC(ASN1_OCTET_STRING *, ASN1_OCTET_STRING_free)
DEFINE_CLEANUP_FUNC(ASN1_IA5STRING *, ASN1_IA5STRING_free)
DEFINE_CLEANUP_FUNC(ASN1_OBJECT *, ASN1_OBJECT_free)

static inline void x509_stack_freep(STACK_OF(X509) * *p)
{
	if (*p)
		sk_X509_pop_free(*p, X509_free);
}
#define _cleanup_x509_stack_ _cleanup_(x509_stack_freep)

static inline void json_object_putp(json_object **p)
{
	if (*p)
		json_object_put(*p);
}
#define _cleanup_json_ _cleanup_(json_object_putp)

/*
 * Fill @err with "@what: <first OpenSSL reason>" and clear OpenSSL's error queue (a stale queue
 * would mislead the next caller). Returns @code.
 */
int ossl_error_set(struct skr_error *err, int code, const char *what);

/*
 * A pem_password_cb that never supplies a password: an encrypted PEM block (in untrusted input
 * or a key file) is refused instead of OpenSSL prompting on the terminal.
 */
int ossl_no_password(char *buf, int size, int rwflag, void *userdata);
