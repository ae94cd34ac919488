/* SPDX-License-Identifier: MIT */
/*
 * VCEK/VLEK certificate chains (protocols.md §3.2): loading from PEM or the extended-report
 * table in any order, classifying each certificate by what it is rather than where it came
 * from, and reading AMD's extensions (TCB, hwID) of the report-signing certificate.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "ossl.h"
#include "snp_cert_internal.h"

DEFINE_CLEANUP_FUNC(RSA_PSS_PARAMS *, RSA_PSS_PARAMS_free)
DEFINE_CLEANUP_FUNC(X509_ALGOR *, X509_ALGOR_free)

int snp_cert_read_pem(const char *pem, size_t len, STACK_OF(X509) * *out, struct skr_error *err)
{
	_cleanup_x509_stack_ STACK_OF(X509) *certs = NULL;
	_cleanup_(BIO_free_allp) BIO *bio = NULL;

	if (!pem && len > 0)
		return skr_error_set(err, -EINVAL, "PEM certificates: no text given");
	if (len > INT_MAX)
		return skr_error_set(err, -EFBIG, "PEM certificates: %zu bytes is too large", len);
	certs = sk_X509_new_null();
	bio = BIO_new_mem_buf(pem ? pem : "", (int)len);
	if (!certs || !bio)
		return skr_error_set(err, -ENOMEM, "PEM certificates: out of memory");

	ERR_clear_error();
	for (;;) {
		X509 *c = PEM_read_bio_X509(bio, NULL, ossl_no_password, NULL);
		unsigned long e;

		if (!c) {
			e = ERR_peek_last_error();
			/* The normal end: no further "-----BEGIN CERTIFICATE-----". */
			if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
			    ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
				ERR_clear_error();
				break;
			}
			return ossl_error_set(err, -EINVAL,
			                      "PEM certificates: a CERTIFICATE block is malformed");
		}
		if (sk_X509_num(certs) >= SNP_CERT_PEM_MAX_CERTS) {
			X509_free(c);
			return skr_error_set(err, -EINVAL,
			                     "PEM certificates: more than %d certificates",
			                     SNP_CERT_PEM_MAX_CERTS);
		}
		if (!sk_X509_push(certs, c)) {
			X509_free(c);
			return skr_error_set(err, -ENOMEM, "PEM certificates: out of memory");
		}
	}
	if (sk_X509_num(certs) == 0)
		return skr_error_set(
		        err, -EINVAL,
		        "PEM certificates: no \"-----BEGIN CERTIFICATE-----\" block found");
	*out = TAKE_PTR(certs);
	return 0;
}

bool snp_cert_is_self_signed(X509 *cert)
{
	EVP_PKEY *key = X509_get0_pubkey(cert);
	bool ok;

	if (!key || X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(cert)) != 0)
		return false;
	ok = X509_verify(cert, key) == 1;
	ERR_clear_error();
	return ok;
}

bool snp_cert_der_equal(X509 *a, X509 *b)
{
	_cleanup_free_ unsigned char *da = NULL, *db = NULL;
	int la = i2d_X509(a, &da), lb = i2d_X509(b, &db);

	return la > 0 && la == lb && memcmp(da, db, (size_t)la) == 0;
}

const char *snp_cert_subject(X509 *cert, char *buf, size_t len)
{
	if (!X509_NAME_oneline(X509_get_subject_name(cert), buf,
	                       len > INT_MAX ? INT_MAX : (int)len))
		snprintf(buf, len, "(unprintable subject)");
	return buf;
}

/* SHA-384 AlgorithmIdentifier (parameters absent or NULL). */
static bool algor_is_sha384(const X509_ALGOR *a)
{
	const ASN1_OBJECT *obj;
	int ptype;
	const void *pval;

	if (!a)
		return false;
	X509_ALGOR_get0(&obj, &ptype, &pval, a);
	return OBJ_obj2nid(obj) == NID_sha384 && (ptype == V_ASN1_UNDEF || ptype == V_ASN1_NULL);
}

/* RSASSA-PSS-params of @alg are exactly SHA-384, MGF1-SHA-384, salt 48, trailer 1. */
static int check_amd_pss(const X509_ALGOR *alg, const char *what, struct skr_error *err)
{
	_cleanup_(RSA_PSS_PARAMS_freep) RSA_PSS_PARAMS *pss = NULL;
	_cleanup_(X509_ALGOR_freep) X509_ALGOR *mgf_hash = NULL;
	const ASN1_OBJECT *obj;
	const void *pval;
	const unsigned char *p;
	int ptype;
	int64_t salt = -1, trailer = 1;
	char name[80];

	X509_ALGOR_get0(&obj, &ptype, &pval, alg);
	if (OBJ_obj2nid(obj) != NID_rsassaPss) {
		OBJ_obj2txt(name, sizeof(name), obj, 0);
		return skr_error_set(err, -EBADMSG,
		                     "%s: signed with %s; AMD certificates are signed with "
		                     "RSASSA-PSS (SHA-384, salt 48)",
		                     what, name);
	}
	if (ptype != V_ASN1_SEQUENCE)
		return skr_error_set(err, -EBADMSG, "%s: RSASSA-PSS without parameters", what);
	p = ASN1_STRING_get0_data(pval);
	pss = d2i_RSA_PSS_PARAMS(NULL, &p, ASN1_STRING_length(pval));
	if (!pss) {
		ERR_clear_error();
		return skr_error_set(err, -EBADMSG, "%s: malformed RSASSA-PSS parameters", what);
	}
	if (!algor_is_sha384(pss->hashAlgorithm))
		return skr_error_set(err, -EBADMSG, "%s: RSASSA-PSS hash is not SHA-384", what);
	if (pss->maskGenAlgorithm) {
		X509_ALGOR_get0(&obj, &ptype, &pval, pss->maskGenAlgorithm);
		if (OBJ_obj2nid(obj) == NID_mgf1 && ptype == V_ASN1_SEQUENCE) {
			p = ASN1_STRING_get0_data(pval);
			mgf_hash = d2i_X509_ALGOR(NULL, &p, ASN1_STRING_length(pval));
			ERR_clear_error();
		}
	}
	if (!algor_is_sha384(mgf_hash))
		return skr_error_set(err, -EBADMSG,
		                     "%s: RSASSA-PSS mask generation is not MGF1-SHA-384", what);
	if (!pss->saltLength || !ASN1_INTEGER_get_int64(&salt, pss->saltLength) ||
	    salt != SNP_AMD_PSS_SALT_LEN) {
		ERR_clear_error();
		return skr_error_set(err, -EBADMSG,
		                     "%s: RSASSA-PSS salt length is %" PRId64 ", not %d", what,
		                     salt < 0 ? (int64_t)20 : salt, SNP_AMD_PSS_SALT_LEN);
	}
	if (pss->trailerField &&
	    (!ASN1_INTEGER_get_int64(&trailer, pss->trailerField) || trailer != 1)) {
		ERR_clear_error();
		return skr_error_set(err, -EBADMSG, "%s: RSASSA-PSS trailer field is not 1", what);
	}
	return 0;
}

int snp_cert_verify_issued(X509 *cert, X509 *issuer, const char *what, struct skr_error *err)
{
	const ASN1_BIT_STRING *sig;
	const X509_ALGOR *alg;
	EVP_PKEY *key = X509_get0_pubkey(issuer);
	char subj[256], iss[256];
	int r;

	if (X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(issuer)) != 0) {
		char cert_issuer[256];

		if (!X509_NAME_oneline(X509_get_issuer_name(cert), cert_issuer,
		                       sizeof(cert_issuer)))
			snprintf(cert_issuer, sizeof(cert_issuer), "(unprintable)");
		return skr_error_set(err, -EPERM, "%s: '%s' was issued by '%s', not by '%s'", what,
		                     snp_cert_subject(cert, subj, sizeof(subj)), cert_issuer,
		                     snp_cert_subject(issuer, iss, sizeof(iss)));
	}
	if (X509_check_ca(issuer) == 0)
		return skr_error_set(err, -EPERM, "%s: issuer '%s' is not a CA certificate", what,
		                     snp_cert_subject(issuer, iss, sizeof(iss)));
	if (!key || !(EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_is_a(key, "RSA-PSS")))
		return skr_error_set(err, -EBADMSG, "%s: issuer '%s' has no RSA key", what,
		                     snp_cert_subject(issuer, iss, sizeof(iss)));

	X509_get0_signature(&sig, &alg, cert);
	r = check_amd_pss(alg, what, err);
	if (r < 0)
		return r;
	/* X509_verify also refuses a TBS signature algorithm that differs from the outer one. */
	ERR_clear_error();
	if (X509_verify(cert, key) != 1)
		return ossl_error_set(err, -EBADMSG, what);
	return 0;
}

/* ---------------------------------------------------------------------------------------- */

static bool has_amd_extension(X509 *cert)
{
	char oid[80];

	for (int i = 0; i < X509_get_ext_count(cert); i++) {
		X509_EXTENSION *ext = X509_get_ext(cert, i);

		if (OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(ext), 1) > 0 &&
		    strncmp(oid, SNP_AMD_OID_PREFIX, strlen(SNP_AMD_OID_PREFIX)) == 0)
			return true;
	}
	return false;
}

static bool common_name_is(X509 *cert, const char *cn)
{
	char buf[64];
	int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf,
	                                  sizeof(buf));

	return n >= 0 && (size_t)n == strlen(cn) && strcmp(buf, cn) == 0;
}

enum cert_role {
	ROLE_LEAF,
	ROLE_ASK,
	ROLE_ARK,
};

static const char *const role_names[] = {
        [ROLE_LEAF] = "VCEK/VLEK",
        [ROLE_ASK] = "ASK",
        [ROLE_ARK] = "ARK",
};

/*
 * Leaf: an EC P-384 key named SEV-VCEK/SEV-VLEK or carrying AMD extensions. ARK: self-signed.
 * ASK/ASVK: any other RSA certificate. Whether it is trusted is snp_report_verify()'s business.
 */
static int classify(X509 *cert, enum cert_role *role, bool *is_vlek, struct skr_error *err)
{
	EVP_PKEY *key = X509_get0_pubkey(cert);
	char subj[256], group[32] = "";

	ERR_clear_error();
	if (!key)
		return skr_error_set(err, -EINVAL, "certificate '%s': unsupported public key",
		                     snp_cert_subject(cert, subj, sizeof(subj)));
	if (EVP_PKEY_is_a(key, "EC")) {
		bool vlek = common_name_is(cert, "SEV-VLEK");

		if (!vlek && !common_name_is(cert, "SEV-VCEK") && !has_amd_extension(cert))
			return skr_error_set(err, -EINVAL,
			                     "certificate '%s': an EC key but neither a VCEK nor a "
			                     "VLEK (no CN SEV-VCEK/SEV-VLEK, no AMD extensions)",
			                     snp_cert_subject(cert, subj, sizeof(subj)));
		if (!EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) ||
		    strcmp(group, "secp384r1") != 0) {
			ERR_clear_error();
			return skr_error_set(
			        err, -EINVAL,
			        "certificate '%s': VCEK/VLEK key is on curve '%s', not "
			        "P-384",
			        snp_cert_subject(cert, subj, sizeof(subj)), group);
		}
		if (!vlek) {
			/* A VLEK names itself by CN; failing that, by its CSP_ID extension. */
			ASN1_OBJECT *csp = OBJ_txt2obj(SNP_AMD_OID_PREFIX "5", 1);

			vlek = csp && X509_get_ext_by_OBJ(cert, csp, -1) >= 0;
			ASN1_OBJECT_free(csp);
		}
		*role = ROLE_LEAF;
		*is_vlek = vlek;
		return 0;
	}
	if (snp_cert_is_self_signed(cert)) {
		*role = ROLE_ARK;
		return 0;
	}
	if (EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_is_a(key, "RSA-PSS")) {
		*role = ROLE_ASK;
		return 0;
	}
	return skr_error_set(err, -EINVAL,
	                     "certificate '%s' is neither a VCEK/VLEK (EC P-384), an ASK (RSA) nor "
	                     "a self-signed ARK",
	                     snp_cert_subject(cert, subj, sizeof(subj)));
}

/* Take @cert (owned by the caller on failure) into its slot; a duplicate is dropped. */
static int chain_add_cert(struct snp_cert_chain *c, X509 *cert, bool *taken, struct skr_error *err)
{
	enum cert_role role;
	bool is_vlek = false;
	X509 **slot;
	char subj[256];
	int r;

	*taken = false;
	r = classify(cert, &role, &is_vlek, err);
	if (r < 0)
		return r;
	slot = role == ROLE_LEAF ? &c->leaf : role == ROLE_ASK ? &c->ask : &c->ark;
	if (*slot) {
		if (snp_cert_der_equal(*slot, cert))
			return 0;
		return skr_error_set(err, -EINVAL,
		                     "certificate chain: a second, different %s certificate '%s'",
		                     role_names[role], snp_cert_subject(cert, subj, sizeof(subj)));
	}
	*slot = cert;
	if (role == ROLE_LEAF)
		c->leaf_is_vlek = is_vlek;
	*taken = true;
	return 0;
}

void snp_cert_chain_free(struct snp_cert_chain *c)
{
	if (!c)
		return;
	X509_free(c->leaf);
	X509_free(c->ask);
	X509_free(c->ark);
	free(c);
}

int snp_cert_chain_add_pem(struct snp_cert_chain *c, const char *pem, size_t len,
                           struct skr_error *err)
{
	_cleanup_x509_stack_ STACK_OF(X509) *certs = NULL;
	struct snp_cert_chain next;
	int r;

	if (!c)
		return skr_error_set(err, -EINVAL, "certificate chain: no chain given");
	r = snp_cert_read_pem(pem, len, &certs, err);
	if (r < 0)
		return r;

	/* All or nothing: work on a copy of the slots so a bad bundle leaves @c unchanged. */
	next = *c;
	for (int i = 0; i < sk_X509_num(certs); i++) {
		bool taken;

		r = chain_add_cert(&next, sk_X509_value(certs, i), &taken, err);
		if (r < 0)
			return r; /* @certs still owns every certificate */
	}
	/* Success: the newly filled slots share the certificates with @certs. */
	if (next.leaf != c->leaf)
		X509_up_ref(next.leaf);
	if (next.ask != c->ask)
		X509_up_ref(next.ask);
	if (next.ark != c->ark)
		X509_up_ref(next.ark);
	*c = next;
	return 0;
}

int snp_cert_chain_from_pem(const char *pem, size_t len, struct snp_cert_chain **out,
                            struct skr_error *err)
{
	_cleanup_(snp_cert_chain_freep) struct snp_cert_chain *c = calloc(1, sizeof(*c));
	int r;

	if (!out)
		return skr_error_set(err, -EINVAL, "certificate chain: no output given");
	if (!c)
		return skr_error_set(err, -ENOMEM, "certificate chain: out of memory");
	r = snp_cert_chain_add_pem(c, pem, len, err);
	if (r < 0)
		return r;
	*out = TAKE_PTR(c);
	return 0;
}

int snp_cert_chain_from_table(const struct snp_cert_table *t, struct snp_cert_chain **out,
                              struct skr_error *err)
{
	_cleanup_(snp_cert_chain_freep) struct snp_cert_chain *c = calloc(1, sizeof(*c));
	int r;

	if (!t || !out)
		return skr_error_set(err, -EINVAL, "certificate chain: no table given");
	if (!c)
		return skr_error_set(err, -ENOMEM, "certificate chain: out of memory");
	for (size_t i = 0; i < t->count && i < SNP_CERT_TABLE_MAX; i++) {
		const struct snp_cert_table_entry *e = &t->entries[i];
		const unsigned char *p = e->data;
		_cleanup_(X509_freep) X509 *cert = NULL;
		bool taken;

		if (e->kind != SNP_CERT_ARK && e->kind != SNP_CERT_ASK &&
		    e->kind != SNP_CERT_VCEK && e->kind != SNP_CERT_VLEK)
			continue; /* CRLs and vendor extras are not certificates of the chain */
		if (e->len > LONG_MAX)
			return skr_error_set(err, -EINVAL, "certificate table entry %zu too large",
			                     i);
		cert = d2i_X509(NULL, &p, (long)e->len);
		if (!cert || p != e->data + e->len) {
			ERR_clear_error();
			return skr_error_set(
			        err, -EINVAL,
			        "certificate table entry %zu is not one DER certificate", i);
		}
		r = chain_add_cert(c, cert, &taken, err);
		if (r < 0)
			return r;
		if (taken)
			cert = NULL;
	}
	if (!c->leaf && !c->ask && !c->ark)
		return skr_error_set(
		        err, -ENOENT,
		        "certificate table holds no VCEK, VLEK, ASK or ARK certificate");
	*out = TAKE_PTR(c);
	return 0;
}

bool snp_cert_chain_has_leaf(const struct snp_cert_chain *c)
{
	return c && c->leaf;
}

bool snp_cert_chain_is_complete(const struct snp_cert_chain *c)
{
	return c && c->leaf && c->ask && c->ark;
}

int snp_cert_chain_to_pem(const struct snp_cert_chain *c, char **out, struct skr_error *err)
{
	_cleanup_(BIO_free_allp) BIO *bio = NULL;
	X509 *order[3];
	char *data, *s;
	long n;

	if (!c || !out)
		return skr_error_set(err, -EINVAL, "certificate chain: no chain given");
	if (!c->leaf && !c->ask && !c->ark)
		return skr_error_set(err, -ENOENT, "certificate chain is empty");
	order[0] = c->leaf;
	order[1] = c->ask;
	order[2] = c->ark;
	bio = BIO_new(BIO_s_mem());
	if (!bio)
		return skr_error_set(err, -ENOMEM, "certificate chain: out of memory");
	for (size_t i = 0; i < ELEMENTSOF(order); i++)
		if (order[i] && !PEM_write_bio_X509(bio, order[i]))
			return ossl_error_set(err, -ENOMEM, "certificate chain: writing PEM");
	n = BIO_get_mem_data(bio, &data);
	s = malloc((size_t)n + 1);
	if (!s)
		return skr_error_set(err, -ENOMEM, "certificate chain: out of memory");
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	*out = s;
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* AMD extensions (§3.2) */

enum amd_ext {
	EXT_STRUCT_VERSION,
	EXT_PRODUCT_NAME,
	EXT_BL_SPL,
	EXT_TEE_SPL,
	EXT_SNP_SPL,
	EXT_SPL_4,
	EXT_SPL_5,
	EXT_SPL_6,
	EXT_SPL_7,
	EXT_UCODE_SPL,
	EXT_FMC_SPL,
	EXT_HWID,
	EXT_CSP_ID,
	EXT_COUNT,
};

static const struct {
	const char *suffix; /* after SNP_AMD_OID_PREFIX */
	const char *name;
} amd_exts[EXT_COUNT] = {
        [EXT_STRUCT_VERSION] = {"1", "structVersion"},
        [EXT_PRODUCT_NAME] = {"2", "productName"},
        [EXT_BL_SPL] = {"3.1", "blSPL"},
        [EXT_TEE_SPL] = {"3.2", "teeSPL"},
        [EXT_SNP_SPL] = {"3.3", "snpSPL"},
        [EXT_SPL_4] = {"3.4", "spl_4"},
        [EXT_SPL_5] = {"3.5", "spl_5"},
        [EXT_SPL_6] = {"3.6", "spl_6"},
        [EXT_SPL_7] = {"3.7", "spl_7"},
        [EXT_UCODE_SPL] = {"3.8", "ucodeSPL"},
        [EXT_FMC_SPL] = {"3.9", "fmcSPL"},
        [EXT_HWID] = {"4", "hwID"},
        [EXT_CSP_ID] = {"5", "csp_id"},
};

/*
 * A DER INTEGER in 0..255. Values >= 128 are encoded `02 02 00 xx`; reading a fixed byte (as
 * the Go anchor does) would get them wrong. @leaf names the certificate ("VCEK"/"VLEK").
 */
static int ext_u8(const ASN1_OCTET_STRING *v, const char *leaf, const char *name, uint8_t *out,
                  struct skr_error *err)
{
	const unsigned char *data = ASN1_STRING_get0_data(v), *p = data;
	long n = ASN1_STRING_length(v);
	_cleanup_(ASN1_INTEGER_freep) ASN1_INTEGER *ai = d2i_ASN1_INTEGER(NULL, &p, n);
	int64_t value;

	if (!ai || p != data + n || !ASN1_INTEGER_get_int64(&value, ai)) {
		ERR_clear_error();
		return skr_error_set(err, -EINVAL, "%s extension %s is not a DER INTEGER", leaf,
		                     name);
	}
	if (value < 0 || value > 255)
		return skr_error_set(err, -EINVAL, "%s extension %s is %" PRId64 ", not in 0..255",
		                     leaf, name, value);
	*out = (uint8_t)value;
	return 0;
}

/*
 * A DER IA5String of printable ASCII (0x20..0x7E) that fits @size with its terminator. These
 * texts are read before the chain is verified and end up in messages and logs: a control
 * character (a newline forging a log line, an escape sequence) is refused, not copied.
 */
static int ext_ia5(const ASN1_OCTET_STRING *v, const char *leaf, const char *name, char *out,
                   size_t size, struct skr_error *err)
{
	const unsigned char *data = ASN1_STRING_get0_data(v), *p = data;
	long n = ASN1_STRING_length(v);
	_cleanup_(ASN1_IA5STRING_freep) ASN1_IA5STRING *s = d2i_ASN1_IA5STRING(NULL, &p, n);
	const unsigned char *text;
	int len;

	if (!s || p != data + n) {
		ERR_clear_error();
		return skr_error_set(err, -EINVAL, "%s extension %s is not a DER IA5String", leaf,
		                     name);
	}
	len = ASN1_STRING_length(s);
	text = ASN1_STRING_get0_data(s);
	if (len < 0 || (size_t)len >= size)
		return skr_error_set(err, -EINVAL,
		                     "%s extension %s is not a text of at most %zu characters",
		                     leaf, name, size - 1);
	for (int i = 0; i < len; i++)
		if (text[i] < 0x20 || text[i] > 0x7E)
			return skr_error_set(
			        err, -EINVAL,
			        "%s extension %s holds the non-printable byte 0x%02x at "
			        "offset %d; only printable ASCII is accepted",
			        leaf, name, text[i], i);
	memcpy(out, text, (size_t)len);
	out[len] = '\0';
	return 0;
}

/* AMD stores the raw CHIP_ID (64 bytes; Turin 8); go-sev-guest also accepts an OCTET STRING. */
static int ext_hwid(const ASN1_OCTET_STRING *v, const char *leaf, uint8_t out[64], size_t *out_len,
                    struct skr_error *err)
{
	const unsigned char *data = ASN1_STRING_get0_data(v), *p = data;
	long n = ASN1_STRING_length(v);
	_cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *inner = NULL;

	if (n == 64 || n == 8) {
		memcpy(out, data, (size_t)n);
		*out_len = (size_t)n;
		return 0;
	}
	inner = d2i_ASN1_OCTET_STRING(NULL, &p, n);
	ERR_clear_error();
	if (inner && p == data + n &&
	    (ASN1_STRING_length(inner) == 64 || ASN1_STRING_length(inner) == 8)) {
		*out_len = (size_t)ASN1_STRING_length(inner);
		memcpy(out, ASN1_STRING_get0_data(inner), *out_len);
		return 0;
	}
	return skr_error_set(err, -EINVAL,
	                     "%s extension hwID is %ld bytes; expected the 64-byte (Turin: 8) "
	                     "CHIP_ID",
	                     leaf, n);
}

int snp_cert_parse_leaf(X509 *leaf, bool is_vlek, struct snp_vcek_info *out, struct skr_error *err)
{
	struct snp_vcek_info info = {.is_vlek = is_vlek};
	const ASN1_OCTET_STRING *val[EXT_COUNT] = {0};
	const char *lname = is_vlek ? "VLEK" : "VCEK";
	enum snp_product layout;
	uint8_t struct_version = 0;
	char oid[80];
	int r;

	for (int i = 0; i < X509_get_ext_count(leaf); i++) {
		X509_EXTENSION *ext = X509_get_ext(leaf, i);
		const char *suffix;

		if (OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(ext), 1) <= 0 ||
		    strncmp(oid, SNP_AMD_OID_PREFIX, strlen(SNP_AMD_OID_PREFIX)) != 0)
			continue;
		suffix = oid + strlen(SNP_AMD_OID_PREFIX);
		for (size_t k = 0; k < EXT_COUNT; k++) {
			if (strcmp(suffix, amd_exts[k].suffix) != 0)
				continue;
			/* Two values for one field would make the TCB ambiguous. */
			if (val[k])
				return skr_error_set(err, -EINVAL, "%s extension %s appears twice",
				                     lname, amd_exts[k].name);
			val[k] = X509_EXTENSION_get_data(ext);
		}
	}
	ERR_clear_error();

	if (val[EXT_STRUCT_VERSION]) {
		r = ext_u8(val[EXT_STRUCT_VERSION], lname, "structVersion", &struct_version, err);
		if (r < 0)
			return r;
	}
	info.struct_version = struct_version;
	if (!val[EXT_PRODUCT_NAME])
		return skr_error_set(
		        err, -EINVAL,
		        "%s has no productName extension (1.3.6.1.4.1.3704.1.2): not an "
		        "AMD VCEK/VLEK",
		        lname);
	r = ext_ia5(val[EXT_PRODUCT_NAME], lname, "productName", info.product_name,
	            sizeof(info.product_name), err);
	if (r < 0)
		return r;
	if (snp_product_from_string(info.product_name, &info.product) < 0)
		info.product =
		        SNP_PRODUCT_UNKNOWN; /* a newer line: its layout follows structVersion */

	const struct {
		enum amd_ext ext;
		bool required;
		uint8_t *dst;
	} spls[] = {
	        {EXT_BL_SPL, true, &info.tcb.bootloader},
	        {EXT_TEE_SPL, true, &info.tcb.tee},
	        {EXT_SNP_SPL, true, &info.tcb.snp},
	        {EXT_UCODE_SPL, true, &info.tcb.microcode},
	        {EXT_FMC_SPL, false, &info.tcb.fmc},
	        {EXT_SPL_4, false, &info.spl[4]},
	        {EXT_SPL_5, false, &info.spl[5]},
	        {EXT_SPL_6, false, &info.spl[6]},
	        {EXT_SPL_7, false, &info.spl[7]},
	};
	for (size_t i = 0; i < ELEMENTSOF(spls); i++) {
		const char *name = amd_exts[spls[i].ext].name;

		if (!val[spls[i].ext]) {
			if (spls[i].required)
				return skr_error_set(err, -EINVAL, "%s has no %s extension", lname,
				                     name);
			continue;
		}
		r = ext_u8(val[spls[i].ext], lname, name, spls[i].dst, err);
		if (r < 0)
			return r;
	}

	layout = info.product != SNP_PRODUCT_UNKNOWN ? info.product
	         : struct_version >= 1               ? SNP_PRODUCT_TURIN
	                                             : SNP_PRODUCT_MILAN;
	if (layout == SNP_PRODUCT_TURIN && !val[EXT_FMC_SPL])
		return skr_error_set(err, -EINVAL,
		                     "%s %s has no fmcSPL extension (1.3.6.1.4.1.3704.1.3.9)",
		                     info.product_name, lname);
	info.tcb_raw = snp_tcb_encode(&info.tcb, layout);
	/* Milan/Genoa TCB_VERSION bytes 2..5 are the reserved spl_4..spl_7 (§1.2). */
	if (layout != SNP_PRODUCT_TURIN)
		for (int k = 4; k <= 7; k++)
			info.tcb_raw |= (uint64_t)info.spl[k] << (8 * (k - 2));

	if (val[EXT_HWID]) {
		r = ext_hwid(val[EXT_HWID], lname, info.hwid, &info.hwid_len, err);
		if (r < 0)
			return r;
	} else if (!is_vlek) {
		return skr_error_set(err, -EINVAL,
		                     "VCEK has no hwID extension (1.3.6.1.4.1.3704.1.4)");
	}
	if (val[EXT_CSP_ID]) {
		r = ext_ia5(val[EXT_CSP_ID], lname, "csp_id", info.csp_id, sizeof(info.csp_id),
		            err);
		if (r < 0)
			return r;
	}
	*out = info;
	return 0;
}

int snp_cert_chain_leaf_info(const struct snp_cert_chain *c, struct snp_vcek_info *out,
                             struct skr_error *err)
{
	if (!c || !out)
		return skr_error_set(err, -EINVAL, "certificate chain: no chain given");
	if (!c->leaf)
		return skr_error_set(err, -ENOENT, "certificate chain has no VCEK or VLEK");
	return snp_cert_parse_leaf(c->leaf, c->leaf_is_vlek, out, err);
}
