/* SPDX-License-Identifier: MIT */
/*
 * Private to libskr: the certificate chain's fields and the AMD certificate checks shared by
 * snp_cert_chain.c, snp_verify.c, snp_virtual.c and snp_cert_fetch.c.
 */
#pragma once

#include <stdbool.h>

#include <openssl/x509.h>

#include "cleanup.h"
#include "skr.h"

/* Refuse absurd bundles early: an AMD chain has three certificates. */
#define SNP_CERT_PEM_MAX_CERTS 32

/* The OID arc of AMD's VCEK/VLEK extensions (protocols.md §3.2). */
#define SNP_AMD_OID_PREFIX "1.3.6.1.4.1.3704.1."

/* AMD signs ARK, ASK and VCEK with RSASSA-PSS SHA-384, MGF1-SHA-384 and this salt (§3.2). */
#define SNP_AMD_PSS_SALT_LEN 48

/* ECDSA P-384 r and s fields of the report (§1.1): 72 bytes each, little-endian. */
#define SNP_SIG_FIELD_SIZE 72

/* What every PEM certificate starts with; a quick "is there a certificate in it" test. */
#define SNP_PEM_CERT_MARKER "-----BEGIN CERTIFICATE-----"

/*
 * AMD's published ASK and ARK certificates of Milan, Genoa and Turin (protocols.md §3.2, the
 * files of shared/testdata/amd_roots concatenated): the default trust anchors of the certificate
 * fetcher. NUL-terminated PEM.
 */
extern const char snp_amd_roots_pem[];

struct snp_cert_chain {
	X509 *leaf; /* VCEK or VLEK */
	X509 *ask;  /* ASK (VCEK) or ASVK (VLEK) */
	X509 *ark;
	bool leaf_is_vlek;
};

DEFINE_CLEANUP_FUNC(struct snp_cert_chain *, snp_cert_chain_free)

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

/* AMD extensions of a VCEK/VLEK certificate; messages name it "VCEK" or "VLEK" by @is_vlek. */
int snp_cert_parse_leaf(X509 *leaf, bool is_vlek, struct snp_vcek_info *out, struct skr_error *err);

/*
 * The chain part of snp_report_verify(): leaf <- ASK <- ARK with AMD's PSS parameters, the ASK
 * and ARK completed from @trust when the chain lacks them, the ARK pinned to an anchor of @trust
 * by its DER, and the leaf and ASK inside their validity periods. Errors as snp_report_verify()
 * (-EPERM untrusted, -EBADMSG bad signature, -EKEYEXPIRED, -EINVAL no leaf). Used by the
 * certificate fetcher before anything is written to, or served from, its disk cache.
 */
int snp_cert_chain_verify_trusted(const struct snp_cert_chain *chain,
                                  const struct snp_trust_store *trust, struct skr_error *err);

/* "CN=..., O=..." of @cert's subject into @buf, for messages. */
const char *snp_cert_subject(X509 *cert, char *buf, size_t len);
