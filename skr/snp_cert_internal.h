/* SPDX-License-Identifier: MIT */
/*
 * Private to libskr: the certificate chain's fields and the AMD certificate checks shared by
 * snp_cert_chain.c, snp_verify.c and snp_virtual.c.
 */
#pragma once

#include <stdbool.h>

#include <openssl/x509.h>

#include "skr.h"

/* Refuse absurd bundles early: an AMD chain has three certificates. */
#define SNP_CERT_PEM_MAX_CERTS 32

/* The OID arc of AMD's VCEK/VLEK extensions (protocols.md §3.2). */
#define SNP_AMD_OID_PREFIX "1.3.6.1.4.1.3704.1."

struct snp_cert_chain {
	X509 *leaf; /* VCEK or VLEK */
	X509 *ask;  /* ASK (VCEK) or ASVK (VLEK) */
	X509 *ark;
	bool leaf_is_vlek;
};

/* Every CERTIFICATE block of @pem (other PEM blocks are skipped); at least one required. */
int snp_cert_read_pem(const char *pem, size_t len, STACK_OF(X509) * *out, struct skr_error *err);

/* Issuer name equals subject name and the certificate's own key verifies its signature. */
bool snp_cert_is_self_signed(X509 *cert);

/* DER encodings are byte-identical. */
bool snp_cert_der_equal(X509 *a, X509 *b);

/*
 * @cert was issued by @issuer as AMD signs: issuer name matches, @issuer is a CA, and the
 * signature is RSASSA-PSS with SHA-384, MGF1-SHA-384, salt length 48, verified with @issuer's
 * key. Anything else (PKCS#1 v1.5, another hash or salt) is -EBADMSG. @what names the step.
 */
int snp_cert_verify_issued(X509 *cert, X509 *issuer, const char *what, struct skr_error *err);

/* AMD extensions of a VCEK/VLEK certificate. */
int snp_cert_parse_leaf(X509 *leaf, bool is_vlek, struct snp_vcek_info *out, struct skr_error *err);

/* "CN=..., O=..." of @cert's subject into @buf, for messages. */
const char *snp_cert_subject(X509 *cert, char *buf, size_t len);
