/* SPDX-License-Identifier: MIT */
/*
 * SEV-SNP report verification (protocols.md §3.3): the report's own fields, the VCEK/VLEK's
 * AMD extensions against them, the chain leaf <- ASK <- ARK with AMD's RSASSA-PSS parameters,
 * the ARK pinned to a trust anchor, then the report's ECDSA P-384 signature.
 *
 * Order of the checks: SIGNATURE_ALGO, SIGNING_KEY, TCB, hwID, chain, validity, signature. The
 * TCB comes before the signature on purpose: a stale VCEK after a firmware update is the common
 * case, and -ESTALE is what lets the attester fetch a fresh certificate instead of failing.
 * No result is trusted until every check passed, so the order only decides which error wins.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "bytes.h"
#include "b64.h"
#include "fileio.h"
#include "ossl.h"
#include "snp_cert_internal.h"

/* AMD's published bundles are a few KiB; anything near this is not a certificate file. */
#define TRUST_FILE_MAX (1024 * 1024)

struct snp_trust_store {
	STACK_OF(X509) * anchors;       /* self-signed ARKs */
	STACK_OF(X509) * intermediates; /* ASKs/ASVKs usable when a chain lacks them */
};

int snp_trust_store_new(struct snp_trust_store **out, struct skr_error *err)
{
	struct snp_trust_store *ts;

	if (!out)
		return skr_error_set(err, -EINVAL, "trust store: no output given");
	ts = calloc(1, sizeof(*ts));
	if (!ts)
		return skr_error_set(err, -ENOMEM, "trust store: out of memory");
	ts->anchors = sk_X509_new_null();
	ts->intermediates = sk_X509_new_null();
	if (!ts->anchors || !ts->intermediates) {
		snp_trust_store_free(ts);
		return skr_error_set(err, -ENOMEM, "trust store: out of memory");
	}
	*out = ts;
	return 0;
}

void snp_trust_store_free(struct snp_trust_store *ts)
{
	if (!ts)
		return;
	sk_X509_pop_free(ts->anchors, X509_free);
	sk_X509_pop_free(ts->intermediates, X509_free);
	free(ts);
}

static bool stack_has(STACK_OF(X509) * s, X509 *cert)
{
	for (int i = 0; i < sk_X509_num(s); i++)
		if (snp_cert_der_equal(sk_X509_value(s, i), cert))
			return true;
	return false;
}

int snp_trust_store_add_pem(struct snp_trust_store *ts, const char *pem, size_t len,
                            struct skr_error *err)
{
	_cleanup_x509_stack_ STACK_OF(X509) *certs = NULL;
	int r;

	if (!ts)
		return skr_error_set(err, -EINVAL, "trust store: no store given");
	r = snp_cert_read_pem(pem, len, &certs, err);
	if (r < 0) {
		skr_error_prefix(err, "trust store: ");
		return r;
	}

	while (sk_X509_num(certs) > 0) {
		X509 *cert = sk_X509_shift(certs);
		STACK_OF(X509) *dest =
		        snp_cert_is_self_signed(cert) ? ts->anchors : ts->intermediates;

		if (stack_has(dest, cert)) {
			X509_free(cert);
			continue;
		}
		if (!sk_X509_push(dest, cert)) {
			X509_free(cert);
			return skr_error_set(err, -ENOMEM, "trust store: out of memory");
		}
	}
	return 0;
}

int snp_trust_store_add_file(struct snp_trust_store *ts, const char *path, struct skr_error *err)
{
	_cleanup_free_ char *pem = NULL;
	size_t len;
	int r;

	if (!path)
		return skr_error_set(err, -EINVAL, "trust store: no file given");
	r = read_file(path, TRUST_FILE_MAX, &pem, &len);
	if (r < 0)
		return skr_error_set(err, r, "trust store: cannot read '%s': %s", path,
		                     skr_strerror(r));
	r = snp_trust_store_add_pem(ts, pem, len, err);
	if (r < 0) {
		skr_error_prefix(err, "%s: ", path);
		return r;
	}
	return 0;
}

size_t snp_trust_store_count(const struct snp_trust_store *ts)
{
	return ts ? (size_t)sk_X509_num(ts->anchors) : 0;
}

/* ---------------------------------------------------------------------------------------- */

/* The certificate of @candidates that issued @cert under AMD's rules, or NULL. */
static X509 *find_issuer(STACK_OF(X509) * candidates, X509 *cert)
{
	for (int i = 0; i < sk_X509_num(candidates); i++) {
		X509 *c = sk_X509_value(candidates, i);

		if (snp_cert_verify_issued(cert, c, "", NULL) == 0)
			return c;
	}
	return NULL;
}

/* leaf <- ASK <- ARK, completing ASK and ARK from @trust and pinning the ARK. */
static int verify_chain(const struct snp_cert_chain *chain, const struct snp_trust_store *trust,
                        X509 **ask_used, struct skr_error *err)
{
	const char *leaf_name = chain->leaf_is_vlek ? "VLEK" : "VCEK";
	const char *ask_name = chain->leaf_is_vlek ? "ASVK" : "ASK";
	X509 *ask = chain->ask, *ark = chain->ark;
	char what[64], subj[256];
	int r;

	if (!ask) {
		ask = find_issuer(trust->intermediates, chain->leaf);
		if (!ask)
			return skr_error_set(
			        err, -EPERM,
			        "certificate chain has no %s, and none in the trust store "
			        "signed the %s '%s'",
			        ask_name, leaf_name,
			        snp_cert_subject(chain->leaf, subj, sizeof(subj)));
	}
	snprintf(what, sizeof(what), "%s signature by the %s", leaf_name, ask_name);
	r = snp_cert_verify_issued(chain->leaf, ask, what, err);
	if (r < 0)
		return r;

	if (ark) {
		/* Pinning by bytes: a look-alike ARK with the same name and key is not enough. */
		if (!stack_has(trust->anchors, ark))
			return skr_error_set(
			        err, -EPERM,
			        "certificate chain is not rooted in a trusted AMD root key "
			        "(ARK): '%s' is not one of the %d trusted ARKs",
			        snp_cert_subject(ark, subj, sizeof(subj)),
			        sk_X509_num(trust->anchors));
	} else {
		ark = find_issuer(trust->anchors, ask);
		if (!ark)
			return skr_error_set(
			        err, -EPERM,
			        "certificate chain is not rooted in a trusted AMD root key "
			        "(ARK): no trusted ARK signed the %s '%s'",
			        ask_name, snp_cert_subject(ask, subj, sizeof(subj)));
	}
	snprintf(what, sizeof(what), "%s signature by the ARK", ask_name);
	r = snp_cert_verify_issued(ask, ark, what, err);
	if (r < 0)
		return r;
	/* A trust anchor is self-signed by construction (snp_trust_store_add_pem). */
	*ask_used = ask;
	return 0;
}

static int check_validity(X509 *cert, const char *name, struct skr_error *err)
{
	const ASN1_TIME *nb = X509_get0_notBefore(cert), *na = X509_get0_notAfter(cert);
	int before = X509_cmp_current_time(nb), after = X509_cmp_current_time(na);
	struct tm tm;
	char when[32] = "?";

	if (before == 0 || after == 0)
		return skr_error_set(err, -EINVAL, "%s certificate has a malformed validity period",
		                     name);
	if (before > 0) {
		if (ASN1_TIME_to_tm(nb, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		return skr_error_set(
		        err, -EKEYEXPIRED,
		        "%s certificate is not valid before %s (check the system clock)", name,
		        when);
	}
	if (after < 0) {
		if (ASN1_TIME_to_tm(na, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		return skr_error_set(
		        err, -EKEYEXPIRED,
		        "%s certificate expired at %s; fetch a current one from AMD KDS", name,
		        when);
	}
	return 0;
}

int snp_cert_chain_verify_trusted(const struct snp_cert_chain *chain,
                                  const struct snp_trust_store *trust, struct skr_error *err)
{
	X509 *ask = NULL;
	int r;

	if (!chain || !trust)
		return skr_error_set(err, -EINVAL, "certificate chain: no chain or trust store");
	if (!chain->leaf)
		return skr_error_set(err, -EINVAL, "certificate chain has no VCEK or VLEK");
	r = verify_chain(chain, trust, &ask, err);
	if (r < 0)
		return r;
	r = check_validity(chain->leaf, chain->leaf_is_vlek ? "VLEK" : "VCEK", err);
	if (r < 0)
		return r;
	return check_validity(ask, chain->leaf_is_vlek ? "ASVK" : "ASK", err);
}

/* ECDSA P-384 SHA-384 over bytes 0x000..0x29F, r/s from little-endian fields (§1.1). */
static int verify_report_signature(const uint8_t *report, const struct snp_report *r, X509 *leaf,
                                   const char *leaf_name, struct skr_error *err)
{
	_cleanup_(ECDSA_SIG_freep) ECDSA_SIG *sig = ECDSA_SIG_new();
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
	_cleanup_free_ unsigned char *der = NULL;
	BIGNUM *br = BN_lebin2bn(r->signature_r, SNP_SIG_FIELD_SIZE, NULL);
	BIGNUM *bs = BN_lebin2bn(r->signature_s, SNP_SIG_FIELD_SIZE, NULL);
	EVP_PKEY *key = X509_get0_pubkey(leaf);
	int der_len, ok;

	if (!sig || !md || !br || !bs) {
		BN_free(br);
		BN_free(bs);
		return skr_error_set(err, -ENOMEM, "report signature: out of memory");
	}
	if (!ECDSA_SIG_set0(sig, br, bs)) {
		BN_free(br);
		BN_free(bs);
		return ossl_error_set(err, -ENOMEM, "report signature");
	}
	der_len = i2d_ECDSA_SIG(sig, &der);
	if (der_len <= 0)
		return ossl_error_set(err, -EBADMSG, "report signature: encoding r and s");
	if (!key)
		return skr_error_set(err, -EINVAL, "%s has no usable public key", leaf_name);

	ERR_clear_error();
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, key) != 1)
		return ossl_error_set(err, -EINVAL,
		                      "report signature: setting up ECDSA verification");
	ok = EVP_DigestVerify(md, der, (size_t)der_len, report, SNP_REPORT_SIGNED_SIZE);
	ERR_clear_error();
	if (ok != 1)
		return skr_error_set(err, -EBADMSG,
		                     "report signature does not verify with the %s: the report was "
		                     "altered or signed by another chip",
		                     leaf_name);
	return 0;
}

int snp_report_verify(const uint8_t *report, size_t len, const struct snp_cert_chain *chain,
                      const struct snp_trust_store *trust, struct skr_error *err)
{
	struct snp_report r;
	struct snp_vcek_info info;
	enum snp_signing_key key;
	enum snp_product product;
	const char *leaf_name;
	X509 *ask = NULL;
	int ret;

	if (!chain || !trust)
		return skr_error_set(err, -EINVAL, "report verification: no chain or trust store");
	ret = snp_report_parse(report, len, &r, err);
	if (ret < 0)
		return ret;

	if (r.signature_algo != SNP_SIG_ALGO_ECDSA_P384_SHA384)
		return skr_error_set(err, -ENOTSUP,
		                     "report SIGNATURE_ALGO is %" PRIu32
		                     ", only 1 (ECDSA P-384 with SHA-384) is supported",
		                     r.signature_algo);
	key = snp_report_signing_key(&r);
	if (key != SNP_SIGNING_KEY_VCEK && key != SNP_SIGNING_KEY_VLEK)
		return skr_error_set(
		        err, -ENOTSUP,
		        "report KEY_INFO.SIGNING_KEY is %d (%s); only VCEK (0) and VLEK "
		        "(1) signed reports can be verified",
		        (int)key, key == SNP_SIGNING_KEY_NONE ? "unsigned" : "reserved");
	leaf_name = key == SNP_SIGNING_KEY_VLEK ? "VLEK" : "VCEK";
	if (!chain->leaf)
		return skr_error_set(err, -EINVAL,
		                     "certificate chain has no %s: the report cannot be checked",
		                     leaf_name);
	if (chain->leaf_is_vlek != (key == SNP_SIGNING_KEY_VLEK))
		return skr_error_set(
		        err, -EINVAL,
		        "report is signed by the %s but the certificate chain holds a %s",
		        leaf_name, chain->leaf_is_vlek ? "VLEK" : "VCEK");

	ret = snp_cert_parse_leaf(chain->leaf, chain->leaf_is_vlek, &info, err);
	if (ret < 0)
		return ret;
	product = snp_report_product(&r, info.product);
	if (info.product != SNP_PRODUCT_UNKNOWN && product != SNP_PRODUCT_UNKNOWN &&
	    product != info.product)
		return skr_error_set(err, -EINVAL,
		                     "report comes from a %s processor but the %s is for %s ('%s')",
		                     snp_product_name(product), leaf_name,
		                     snp_product_name(info.product), info.product_name);

	if (info.tcb_raw != r.reported_tcb)
		return skr_error_set(err, -ESTALE,
		                     "%s TCB %016" PRIx64
		                     " does not match the report's REPORTED_TCB "
		                     "%016" PRIx64 ": fetch the %s for the reported TCB",
		                     leaf_name, info.tcb_raw, r.reported_tcb, leaf_name);

	if (key == SNP_SIGNING_KEY_VCEK) {
		/* Turin's hwID is the first 8 bytes of CHIP_ID; the rest of the field is zero. */
		size_t n = product == SNP_PRODUCT_TURIN ? 8 : 64;

		if (info.hwid_len < n || memcmp(info.hwid, r.chip_id, n) != 0) {
			char cert_hex[129] = "", report_hex[129];

			hex_encode(info.hwid, info.hwid_len < n ? info.hwid_len : n, cert_hex);
			hex_encode(r.chip_id, n, report_hex);
			return skr_error_set(
			        err, -EXDEV,
			        "VCEK hwID %.16s... is not the report's CHIP_ID %.16s...%s: "
			        "the VCEK belongs to another chip",
			        cert_hex, report_hex,
			        all_zero(r.chip_id, sizeof(r.chip_id))
			                ? " (CHIP_ID is masked: MASK_CHIP_ID)"
			                : "");
		}
	}

	ret = verify_chain(chain, trust, &ask, err);
	if (ret < 0)
		return ret;
	ret = check_validity(chain->leaf, leaf_name, err);
	if (ret < 0)
		return ret;
	ret = check_validity(ask, chain->leaf_is_vlek ? "ASVK" : "ASK", err);
	if (ret < 0)
		return ret;

	return verify_report_signature(report, &r, chain->leaf, leaf_name, err);
}
