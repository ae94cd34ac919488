/* SPDX-License-Identifier: MIT */
/*
 * The virtual SEV-SNP platform (dev/test only): a directory with a project-generated ARK, ASK
 * (or ASVK) and VCEK (or VLEK) in AMD's certificate format (protocols.md §3.2), the VCEK's
 * private key and the platform parameters. It signs reports in the real layout (§1.1), so the
 * whole verification path runs unchanged against its ARK; nothing else in the library treats
 * it specially, and it is never chosen automatically in place of hardware.
 *
 * Files: ark.pem, ask.pem, vcek.pem | vlek.pem, vcek-key.pem | vlek-key.pem, platform.json.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "bytes.h"
#include "b64.h"
#include "fileio.h"
#include "json_util.h"
#include "log.h"
#include "ossl.h"
#include "secret.h"
#include "snp_cert_internal.h"

DEFINE_CLEANUP_FUNC(X509_EXTENSION *, X509_EXTENSION_free)
DEFINE_CLEANUP_FUNC(X509_NAME *, X509_NAME_free)

#define PLATFORM_JSON "platform.json"
#define FILE_MAX (1024 * 1024)
/* AMD's ARK/ASK live 25 years, VCEKs about 7 (§3.2). */
#define ROOT_DAYS (25 * 365)
#define LEAF_DAYS (7 * 365)
#define RSA_BITS 4096

struct snp_virtual {
	struct snp_virtual_params params;
	EVP_PKEY *key; /* the virtual chip's VCEK/VLEK private key */
	X509 *leaf, *ask, *ark;
	char *ark_pem, *chain_pem;
};

void snp_virtual_params_default(struct snp_virtual_params *p)
{
	/* The TCB of AMD's published Milan test VCEK: bytes 03 00 00 00 00 00 08 73. */
	*p = (struct snp_virtual_params){
	        .product = SNP_PRODUCT_MILAN,
	        .report_version = 3,
	        .policy = SNP_POLICY_SMT | SNP_POLICY_RESERVED_1,
	        .tcb = {.bootloader = 3, .tee = 0, .snp = 8, .microcode = 115},
	};
}

static const char *leaf_file(bool vlek)
{
	return vlek ? "vlek.pem" : "vcek.pem";
}

static const char *key_file(bool vlek)
{
	return vlek ? "vlek-key.pem" : "vcek-key.pem";
}

static int check_params(const struct snp_virtual_params *p, struct skr_error *err)
{
	if (p->product < SNP_PRODUCT_MILAN || p->product > SNP_PRODUCT_TURIN)
		return skr_error_set(err, -EINVAL,
		                     "virtual platform: product must be Milan, Genoa or Turin");
	if (p->report_version < SNP_REPORT_VERSION_MIN ||
	    p->report_version > SNP_REPORT_VERSION_MAX)
		return skr_error_set(
		        err, -EINVAL, "virtual platform: report_version %" PRIu32 " not in %d..%d",
		        p->report_version, SNP_REPORT_VERSION_MIN, SNP_REPORT_VERSION_MAX);
	if (!(p->policy & SNP_POLICY_RESERVED_1))
		return skr_error_set(err, -EINVAL,
		                     "virtual platform: policy 0x%" PRIx64
		                     " lacks reserved bit 17, which firmware always sets",
		                     p->policy);
	/* Turin's hwID is 8 bytes (§1.1); a longer CHIP_ID could never match its VCEK. */
	if (p->product == SNP_PRODUCT_TURIN && !all_zero(p->chip_id + 8, sizeof(p->chip_id) - 8))
		return skr_error_set(
		        err, -EINVAL,
		        "virtual platform: a Turin CHIP_ID has only 8 significant bytes; "
		        "bytes 8..63 must be zero");
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Certificates in AMD's format */

static int set_name(X509 *cert, const char *cn, bool subject)
{
	_cleanup_(X509_NAME_freep) X509_NAME *name = X509_NAME_new();
	/* AMD's field set (§3.2), with an OU that says plainly this is not AMD hardware. */
	const char *fields[][2] = {
	        {"OU", "Virtual SNP platform (not AMD)"},
	        {"C", "US"},
	        {"L", "Santa Clara"},
	        {"ST", "CA"},
	        {"O", "Advanced Micro Devices"},
	        {"CN", cn},
	};

	if (!name)
		return -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(fields); i++)
		if (!X509_NAME_add_entry_by_txt(name, fields[i][0], MBSTRING_ASC,
		                                (const unsigned char *)fields[i][1], -1, -1, 0))
			return -ENOMEM;
	if (!(subject ? X509_set_subject_name(cert, name) : X509_set_issuer_name(cert, name)))
		return -ENOMEM;
	return 0;
}

static int add_std_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -EINVAL;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -ENOMEM;
}

/* A non-critical AMD extension whose extnValue holds @der as it is. */
static int add_amd_ext(X509 *cert, const char *suffix, const unsigned char *der, int len)
{
	char oid[64];
	_cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *obj = NULL;
	_cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	_cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = NULL;

	snprintf(oid, sizeof(oid), "%s%s", SNP_AMD_OID_PREFIX, suffix);
	obj = OBJ_txt2obj(oid, 1);
	if (!obj || !os || !ASN1_OCTET_STRING_set(os, der, len))
		return -ENOMEM;
	ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
	if (!ext || !X509_add_ext(cert, ext, -1))
		return -ENOMEM;
	return 0;
}

/* SPLs are real DER INTEGERs: 211 encodes as 02 02 00 d3. */
static int add_amd_int(X509 *cert, const char *suffix, int64_t v)
{
	_cleanup_(ASN1_INTEGER_freep) ASN1_INTEGER *ai = ASN1_INTEGER_new();
	_cleanup_free_ unsigned char *der = NULL;
	int len;

	if (!ai || !ASN1_INTEGER_set_int64(ai, v))
		return -ENOMEM;
	len = i2d_ASN1_INTEGER(ai, &der);
	if (len <= 0)
		return -ENOMEM;
	return add_amd_ext(cert, suffix, der, len);
}

static int add_amd_ia5(X509 *cert, const char *suffix, const char *text)
{
	_cleanup_(ASN1_IA5STRING_freep) ASN1_IA5STRING *s = ASN1_IA5STRING_new();
	_cleanup_free_ unsigned char *der = NULL;
	int len;

	if (!s || !ASN1_STRING_set(s, text, -1))
		return -ENOMEM;
	len = i2d_ASN1_IA5STRING(s, &der);
	if (len <= 0)
		return -ENOMEM;
	return add_amd_ext(cert, suffix, der, len);
}

/* The VCEK/VLEK extensions of §3.2 for @p. */
static int add_leaf_extensions(X509 *cert, const struct snp_virtual_params *p)
{
	bool turin = p->product == SNP_PRODUCT_TURIN;
	char product_name[32];
	const struct {
		const char *suffix;
		uint8_t value;
		bool present;
	} spls[] = {
	        {"3.1", p->tcb.bootloader, true},
	        {"3.2", p->tcb.tee, true},
	        {"3.3", p->tcb.snp, true},
	        {"3.4", 0, !turin}, /* Turin omits spl_4 */
	        {"3.5", 0, true},
	        {"3.6", 0, true},
	        {"3.7", 0, true},
	        {"3.8", p->tcb.microcode, true},
	        {"3.9", p->tcb.fmc, turin},
	};
	int r;

	snprintf(product_name, sizeof(product_name), "%s-B0", snp_product_name(p->product));
	r = add_amd_int(cert, "1", turin ? 1 : 0);
	if (r == 0)
		r = add_amd_ia5(cert, "2", product_name);
	for (size_t i = 0; r == 0 && i < ELEMENTSOF(spls); i++)
		if (spls[i].present)
			r = add_amd_int(cert, spls[i].suffix, spls[i].value);
	if (r < 0)
		return r;
	if (p->vlek)
		return add_amd_ia5(cert, "5", "virtual");
	/* hwID is the raw CHIP_ID, not DER-wrapped, exactly as in AMD's VCEKs. */
	return add_amd_ext(cert, "4", p->chip_id, turin ? 8 : 64);
}

static int sign_pss(X509 *cert, EVP_PKEY *key)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;

	if (!md || EVP_DigestSignInit(md, &pctx, EVP_sha384(), NULL, key) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, SNP_AMD_PSS_SALT_LEN) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()) <= 0)
		return -EINVAL;
	return X509_sign_ctx(cert, md) > 0 ? 0 : -EINVAL;
}

enum cert_type {
	CERT_ARK,
	CERT_ASK,
	CERT_LEAF,
};

/*
 * One certificate of the virtual chain: @key's public half, issued by @issuer (NULL:
 * self-signed) and signed with @issuer_key using RSASSA-PSS SHA-384 salt 48.
 */
static int make_cert(enum cert_type type, const char *cn, EVP_PKEY *key, X509 *issuer,
                     EVP_PKEY *issuer_key, const struct snp_virtual_params *p, X509 **out,
                     struct skr_error *err)
{
	_cleanup_(X509_freep) X509 *cert = X509_new();
	_cleanup_(BN_freep) BIGNUM *serial = BN_new();
	int r = -ENOMEM;

	if (!cert || !serial || !X509_set_version(cert, X509_VERSION_3))
		return ossl_error_set(err, -ENOMEM, "virtual platform: certificate");
	/* AMD's VCEKs carry serial 0; the CAs get a random positive 127-bit serial. */
	if (type == CERT_LEAF)
		BN_zero(serial);
	else if (!BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY))
		return ossl_error_set(err, -EIO, "virtual platform: random serial number");
	if (!BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)))
		return ossl_error_set(err, -ENOMEM, "virtual platform: serial number");
	/* An hour of slack for clocks that lag the one that created the platform. */
	if (!X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
	    !X509_time_adj_ex(X509_getm_notAfter(cert), type == CERT_LEAF ? LEAF_DAYS : ROOT_DAYS,
	                      0, NULL))
		return ossl_error_set(err, -EINVAL, "virtual platform: validity");
	if (!X509_set_pubkey(cert, key) || set_name(cert, cn, true) < 0)
		return ossl_error_set(err, -ENOMEM, "virtual platform: subject");
	if (issuer ? !X509_set_issuer_name(cert, X509_get_subject_name(issuer))
	           : set_name(cert, cn, false) < 0)
		return ossl_error_set(err, -ENOMEM, "virtual platform: issuer");

	switch (type) {
	case CERT_ARK:
		r = add_std_ext(cert, issuer, NID_basic_constraints, "critical,CA:TRUE");
		if (r == 0)
			r = add_std_ext(cert, issuer, NID_key_usage,
			                "critical,keyCertSign,cRLSign");
		if (r == 0)
			r = add_std_ext(cert, issuer, NID_subject_key_identifier, "hash");
		break;
	case CERT_ASK:
		r = add_std_ext(cert, issuer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
		if (r == 0)
			r = add_std_ext(cert, issuer, NID_key_usage, "critical,keyCertSign");
		if (r == 0)
			r = add_std_ext(cert, issuer, NID_subject_key_identifier, "hash");
		break;
	case CERT_LEAF:
		r = add_leaf_extensions(cert, p);
		break;
	}
	if (r < 0)
		return ossl_error_set(err, r, "virtual platform: certificate extensions");
	if (sign_pss(cert, issuer_key) < 0)
		return ossl_error_set(err, -EINVAL, "virtual platform: signing with RSASSA-PSS");
	*out = TAKE_PTR(cert);
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Files */

static int write_in(const char *dir, const char *name, const void *data, size_t len,
                    struct skr_error *err)
{
	_cleanup_free_ char *path = path_join(dir, name);
	int r;

	if (!path)
		return skr_error_set(err, -ENOMEM, "virtual platform: out of memory");
	r = write_file_atomic(path, data, len, 0600);
	if (r < 0)
		return skr_error_set(err, r, "virtual platform: writing '%s': %s", path,
		                     skr_strerror(r));
	return 0;
}

static int write_cert(const char *dir, const char *name, X509 *cert, struct skr_error *err)
{
	_cleanup_(BIO_free_allp) BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	long n;

	if (!bio || !PEM_write_bio_X509(bio, cert))
		return ossl_error_set(err, -ENOMEM, "virtual platform: PEM");
	n = BIO_get_mem_data(bio, &data);
	return write_in(dir, name, data, (size_t)n, err);
}

static int write_key(const char *dir, const char *name, EVP_PKEY *key, struct skr_error *err)
{
	/* A secure-memory BIO: the PEM of the private key is erased when it is freed. */
	_cleanup_(BIO_free_allp) BIO *bio = BIO_new(BIO_s_secmem());
	char *data;
	long n;

	if (!bio || !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
		return ossl_error_set(err, -ENOMEM, "virtual platform: private key PEM");
	n = BIO_get_mem_data(bio, &data);
	return write_in(dir, name, data, (size_t)n, err);
}

static int json_add(json_object *o, const char *key, json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

static int json_add_hex(json_object *o, const char *key, const uint8_t *data, size_t len)
{
	char hex[2 * 64 + 1];

	hex_encode(data, len, hex);
	return json_add(o, key, json_object_new_string(hex));
}

static int write_platform_json(const char *dir, const struct snp_virtual_params *p,
                               struct skr_error *err)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	json_object *tcb = json_object_new_object();
	char policy[17];
	const char *text;
	int r;

	if (!o || !tcb) {
		json_object_put(tcb);
		return skr_error_set(err, -ENOMEM, "virtual platform: out of memory");
	}
	snprintf(policy, sizeof(policy), "%016" PRIx64, p->policy);
	r = json_add(o, "comment",
	             json_object_new_string("virtual SEV-SNP platform for development and tests; "
	                                    "not AMD hardware, proves nothing"));
	if (r == 0)
		r = json_add(o, "product", json_object_new_string(snp_product_name(p->product)));
	if (r == 0)
		r = json_add(o, "report_version", json_object_new_int((int)p->report_version));
	if (r == 0)
		r = json_add(o, "policy", json_object_new_string(policy));
	if (r == 0) {
		r = json_add(tcb, "fmc", json_object_new_int(p->tcb.fmc));
		if (r == 0)
			r = json_add(tcb, "bootloader", json_object_new_int(p->tcb.bootloader));
		if (r == 0)
			r = json_add(tcb, "tee", json_object_new_int(p->tcb.tee));
		if (r == 0)
			r = json_add(tcb, "snp", json_object_new_int(p->tcb.snp));
		if (r == 0)
			r = json_add(tcb, "microcode", json_object_new_int(p->tcb.microcode));
		if (r == 0)
			r = json_add(o, "tcb", tcb);
		else
			json_object_put(tcb);
	} else {
		json_object_put(tcb);
	}
	if (r == 0)
		r = json_add_hex(o, "chip_id", p->chip_id, sizeof(p->chip_id));
	if (r == 0)
		r = json_add_hex(o, "host_data", p->host_data, sizeof(p->host_data));
	if (r == 0)
		r = json_add_hex(o, "measurement", p->measurement, sizeof(p->measurement));
	if (r == 0)
		r = json_add(o, "vlek", json_object_new_boolean(p->vlek));
	if (r < 0)
		return skr_error_set(err, -ENOMEM, "virtual platform: out of memory");
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
	                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
	return write_in(dir, PLATFORM_JSON, text, strlen(text), err);
}

/* The platform directory: created 0700, or an existing empty one (e.g. from mkdtemp). */
static int prepare_dir(const char *dir, struct skr_error *err)
{
	DIR *d;
	struct dirent *de;
	bool empty = true;
	int r = mkdir_p(dir, 0700);

	if (r < 0)
		return skr_error_set(err, r, "virtual platform: cannot create '%s': %s", dir,
		                     skr_strerror(r));
	d = opendir(dir);
	if (!d) {
		r = -errno;
		return skr_error_set(err, r, "virtual platform: cannot open '%s': %s", dir,
		                     skr_strerror(r));
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			empty = false;
			break;
		}
	closedir(d);
	if (!empty)
		return skr_error_set(err, -EEXIST,
		                     "virtual platform: '%s' is not empty; refusing to overwrite a "
		                     "platform (choose a new directory or remove this one)",
		                     dir);
	return 0;
}

int snp_virtual_create(const char *dir, const struct snp_virtual_params *params,
                       struct skr_error *err)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ark_key = NULL, *ask_key = NULL, *leaf_key = NULL;
	_cleanup_(X509_freep) X509 *ark = NULL, *ask = NULL, *leaf = NULL;
	struct snp_virtual_params p;
	char ark_cn[32], ask_cn[32];
	const char *product;
	int r;

	if (!dir || !*dir || !params)
		return skr_error_set(err, -EINVAL, "virtual platform: no directory or parameters");
	p = *params;
	r = check_params(&p, err);
	if (r < 0)
		return r;
	if (all_zero(p.chip_id, sizeof(p.chip_id)) &&
	    RAND_bytes(p.chip_id, p.product == SNP_PRODUCT_TURIN ? 8 : 64) != 1)
		return ossl_error_set(err, -EIO, "virtual platform: random CHIP_ID");
	if (all_zero(p.measurement, sizeof(p.measurement)) &&
	    RAND_bytes(p.measurement, sizeof(p.measurement)) != 1)
		return ossl_error_set(err, -EIO, "virtual platform: random MEASUREMENT");
	r = prepare_dir(dir, err);
	if (r < 0)
		return r;

	product = snp_product_name(p.product);
	snprintf(ark_cn, sizeof(ark_cn), "ARK-%s", product);
	/* AMD names the VLEK's intermediate (ASVK) SEV-VLEK-<product>. */
	snprintf(ask_cn, sizeof(ask_cn), p.vlek ? "SEV-VLEK-%s" : "SEV-%s", product);
	ark_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)RSA_BITS);
	ask_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)RSA_BITS);
	leaf_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	if (!ark_key || !ask_key || !leaf_key)
		return ossl_error_set(err, -EIO, "virtual platform: key generation");

	r = make_cert(CERT_ARK, ark_cn, ark_key, NULL, ark_key, &p, &ark, err);
	if (r == 0)
		r = make_cert(CERT_ASK, ask_cn, ask_key, ark, ark_key, &p, &ask, err);
	if (r == 0)
		r = make_cert(CERT_LEAF, p.vlek ? "SEV-VLEK" : "SEV-VCEK", leaf_key, ask, ask_key,
		              &p, &leaf, err);
	if (r < 0)
		return r;

	/* platform.json last: a platform is complete once it exists. */
	r = write_cert(dir, "ark.pem", ark, err);
	if (r == 0)
		r = write_cert(dir, "ask.pem", ask, err);
	if (r == 0)
		r = write_cert(dir, leaf_file(p.vlek), leaf, err);
	if (r == 0)
		r = write_key(dir, key_file(p.vlek), leaf_key, err);
	if (r == 0)
		r = write_platform_json(dir, &p, err);
	if (r < 0)
		return r;
	log_info("virtual SNP platform created in %s (%s, %s, report version %" PRIu32
	         "): dev/test only",
	         dir, product, p.vlek ? "VLEK" : "VCEK", p.report_version);
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Opening */

static int read_in(const char *dir, const char *name, char **out, size_t *len,
                   struct skr_error *err)
{
	_cleanup_free_ char *path = path_join(dir, name);
	int r;

	if (!path)
		return skr_error_set(err, -ENOMEM, "virtual platform: out of memory");
	r = read_file(path, FILE_MAX, out, len);
	if (r < 0)
		return skr_error_set(err, r, "virtual platform: cannot read '%s': %s", path,
		                     skr_strerror(r));
	return 0;
}

static int read_cert(const char *dir, const char *name, X509 **out, struct skr_error *err)
{
	_cleanup_free_ char *pem = NULL;
	_cleanup_x509_stack_ STACK_OF(X509) *certs = NULL;
	size_t len;
	int r = read_in(dir, name, &pem, &len, err);

	if (r < 0)
		return r;
	r = snp_cert_read_pem(pem, len, &certs, err);
	if (r < 0) {
		skr_error_prefix(err, "virtual platform %s: ", name);
		return r;
	}
	if (sk_X509_num(certs) != 1)
		return skr_error_set(err, -EINVAL,
		                     "virtual platform: %s holds %d certificates, not 1", name,
		                     sk_X509_num(certs));
	*out = sk_X509_shift(certs);
	return 0;
}

static int read_key(const char *dir, const char *name, EVP_PKEY **out, struct skr_error *err)
{
	_cleanup_free_ char *path = path_join(dir, name);
	_cleanup_secret_ struct secret *pem = NULL;
	BIO *bio;
	struct stat st;
	int r;

	if (!path)
		return skr_error_set(err, -ENOMEM, "virtual platform: out of memory");
	if (stat(path, &st) == 0 && (st.st_mode & 077))
		log_warn("virtual platform: %s is readable by group or others (mode %03o)", path,
		         (unsigned)(st.st_mode & 0777));
	/* The PEM is key material: read into locked memory that is erased when freed. */
	r = read_file_secret(path, FILE_MAX, &pem);
	if (r < 0)
		return skr_error_set(err, r, "virtual platform: cannot read '%s': %s", path,
		                     skr_strerror(r));
	/* A read-only memory BIO reads @pem in place: it must be gone before @pem is. */
	bio = BIO_new_mem_buf(pem->data, (int)pem->len);
	*out = bio ? PEM_read_bio_PrivateKey(bio, NULL, ossl_no_password, NULL) : NULL;
	BIO_free(bio);
	if (!*out)
		return ossl_error_set(err, -EINVAL,
		                      "virtual platform: private key file unreadable");
	return 0;
}

static int get_uint(json_object *o, const char *key, unsigned max, unsigned *out,
                    struct skr_error *err)
{
	json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(o, key, &v))
		return skr_error_set(err, -ENOENT, "virtual platform %s: field '%s' is missing",
		                     PLATFORM_JSON, key);
	if (!json_object_is_type(v, json_type_int))
		return skr_error_set(err, -EINVAL,
		                     "virtual platform %s: field '%s' is not an integer",
		                     PLATFORM_JSON, key);
	n = json_object_get_int64(v);
	if (n < 0 || n > (int64_t)max)
		return skr_error_set(err, -EINVAL,
		                     "virtual platform %s: field '%s' is not in 0..%u",
		                     PLATFORM_JSON, key, max);
	*out = (unsigned)n;
	return 0;
}

static int get_hex(json_object *o, const char *key, uint8_t *out, size_t len, struct skr_error *err)
{
	const char *s;
	int r = json_get_string(o, key, true, &s, err);

	if (r < 0) {
		skr_error_prefix(err, "virtual platform %s: ", PLATFORM_JSON);
		return r;
	}
	if (hex_decode(s, strlen(s), out, len) < 0)
		return skr_error_set(err, -EINVAL,
		                     "virtual platform %s: field '%s' must be %zu hex digits",
		                     PLATFORM_JSON, key, 2 * len);
	return 0;
}

static int load_params(const char *dir, struct snp_virtual_params *p, struct skr_error *err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_json_ json_object *o = NULL;
	json_object *tcb;
	const char *s;
	char *end;
	unsigned v;
	size_t len;
	int r;

	r = read_in(dir, PLATFORM_JSON, &text, &len, err);
	if (r < 0)
		return r;
	r = json_parse(text, len, PLATFORM_JSON, &o, err);
	if (r < 0)
		return r;
	*p = (struct snp_virtual_params){0};

	r = json_get_string(o, "product", true, &s, err);
	if (r < 0) {
		skr_error_prefix(err, "virtual platform %s: ", PLATFORM_JSON);
		return r;
	}
	if (snp_product_from_string(s, &p->product) < 0)
		return skr_error_set(
		        err, -EINVAL,
		        "virtual platform %s: product '%s' is not Milan, Genoa or Turin",
		        PLATFORM_JSON, s);
	r = get_uint(o, "report_version", SNP_REPORT_VERSION_MAX, &v, err);
	if (r < 0)
		return r;
	p->report_version = v;

	r = json_get_string(o, "policy", true, &s, err);
	if (r < 0) {
		skr_error_prefix(err, "virtual platform %s: ", PLATFORM_JSON);
		return r;
	}
	errno = 0;
	p->policy = strtoull(s, &end, 16);
	if (!*s || *end || errno || strlen(s) > 16 ||
	    strspn(s, "0123456789abcdefABCDEF") != strlen(s))
		return skr_error_set(err, -EINVAL,
		                     "virtual platform %s: policy '%s' is not a 64-bit hex number",
		                     PLATFORM_JSON, s);

	r = json_get_object(o, "tcb", true, &tcb, err);
	if (r < 0) {
		skr_error_prefix(err, "virtual platform %s: ", PLATFORM_JSON);
		return r;
	}
	{
		const struct {
			const char *key;
			uint8_t *dst;
		} fields[] = {
		        {"fmc", &p->tcb.fmc},
		        {"bootloader", &p->tcb.bootloader},
		        {"tee", &p->tcb.tee},
		        {"snp", &p->tcb.snp},
		        {"microcode", &p->tcb.microcode},
		};

		for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
			r = get_uint(tcb, fields[i].key, 255, &v, err);
			if (r < 0)
				return r;
			*fields[i].dst = (uint8_t)v;
		}
	}
	r = get_hex(o, "chip_id", p->chip_id, sizeof(p->chip_id), err);
	if (r == 0)
		r = get_hex(o, "host_data", p->host_data, sizeof(p->host_data), err);
	if (r == 0)
		r = get_hex(o, "measurement", p->measurement, sizeof(p->measurement), err);
	if (r < 0)
		return r;
	r = json_get_bool(o, "vlek", true, &p->vlek, err);
	if (r < 0) {
		skr_error_prefix(err, "virtual platform %s: ", PLATFORM_JSON);
		return r;
	}
	return check_params(p, err);
}

void snp_virtual_free(struct snp_virtual *v)
{
	if (!v)
		return;
	EVP_PKEY_free(v->key); /* OpenSSL clears the private scalar */
	X509_free(v->leaf);
	X509_free(v->ask);
	X509_free(v->ark);
	free(v->ark_pem);
	free(v->chain_pem);
	free(v);
}

DEFINE_CLEANUP_FUNC(struct snp_virtual *, snp_virtual_free)

static int cert_pem(X509 *cert, char **out)
{
	struct snp_cert_chain c = {.ark = cert};

	return snp_cert_chain_to_pem(&c, out, NULL);
}

int snp_virtual_open(const char *dir, struct snp_virtual **out, struct skr_error *err)
{
	_cleanup_(snp_virtual_freep) struct snp_virtual *v = NULL;
	struct snp_cert_chain chain;
	int r;

	if (!dir || !*dir || !out)
		return skr_error_set(err, -EINVAL, "virtual platform: no directory given");
	v = calloc(1, sizeof(*v));
	if (!v)
		return skr_error_set(err, -ENOMEM, "virtual platform: out of memory");
	r = load_params(dir, &v->params, err);
	if (r == 0)
		r = read_cert(dir, "ark.pem", &v->ark, err);
	if (r == 0)
		r = read_cert(dir, "ask.pem", &v->ask, err);
	if (r == 0)
		r = read_cert(dir, leaf_file(v->params.vlek), &v->leaf, err);
	if (r == 0)
		r = read_key(dir, key_file(v->params.vlek), &v->key, err);
	if (r < 0)
		return r;

	/*
	 * A mixed-up directory would only show up later as a baffling signature failure. A TCB
	 * or CHIP_ID in platform.json that differs from the VCEK is allowed on purpose: editing
	 * them simulates a firmware update (stale VCEK, -ESTALE) or a foreign VCEK (-EXDEV).
	 */
	if (EVP_PKEY_eq(X509_get0_pubkey(v->leaf), v->key) != 1) {
		ERR_clear_error();
		return skr_error_set(err, -EINVAL, "virtual platform %s: %s does not belong to %s",
		                     dir, key_file(v->params.vlek), leaf_file(v->params.vlek));
	}
	r = snp_cert_verify_issued(v->leaf, v->ask, "virtual platform: leaf by ASK", err);
	if (r == 0)
		r = snp_cert_verify_issued(v->ask, v->ark, "virtual platform: ASK by ARK", err);
	if (r < 0)
		return r;

	chain = (struct snp_cert_chain){
	        .leaf = v->leaf, .ask = v->ask, .ark = v->ark, .leaf_is_vlek = v->params.vlek};
	if (snp_cert_chain_to_pem(&chain, &v->chain_pem, err) < 0 ||
	    cert_pem(v->ark, &v->ark_pem) < 0)
		return skr_error_set(err, -ENOMEM, "virtual platform: out of memory");
	log_debug("virtual SNP platform %s opened (%s)", dir, snp_product_name(v->params.product));
	*out = TAKE_PTR(v);
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Reports */

/* CPUID family/model/stepping of a representative part of each line (§1.1 ranges). */
static void cpuid_of(enum snp_product p, struct snp_report *r)
{
	switch (p) {
	case SNP_PRODUCT_GENOA:
		r->cpuid_fam_id = 0x19, r->cpuid_mod_id = 0x11, r->cpuid_step = 0x01;
		break;
	case SNP_PRODUCT_TURIN:
		r->cpuid_fam_id = 0x1A, r->cpuid_mod_id = 0x02, r->cpuid_step = 0x00;
		break;
	default:
		r->cpuid_fam_id = 0x19, r->cpuid_mod_id = 0x01, r->cpuid_step = 0x01;
		break;
	}
}

/* ECDSA P-384 SHA-384 over the signed bytes; r and s stored little-endian (§1.1). */
static int sign_report(EVP_PKEY *key, const uint8_t *buf, struct snp_report *r,
                       struct skr_error *err)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
	_cleanup_(ECDSA_SIG_freep) ECDSA_SIG *sig = NULL;
	unsigned char der[160];
	const unsigned char *p = der;
	size_t der_len = sizeof(der);
	const BIGNUM *br, *bs;

	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, key) != 1 ||
	    EVP_DigestSign(md, der, &der_len, buf, SNP_REPORT_SIGNED_SIZE) != 1)
		return ossl_error_set(err, -EIO, "virtual platform: signing the report");
	sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	if (!sig)
		return ossl_error_set(err, -EIO, "virtual platform: decoding the report signature");
	ECDSA_SIG_get0(sig, &br, &bs);
	if (BN_bn2lebinpad(br, r->signature_r, SNP_SIG_FIELD_SIZE) != SNP_SIG_FIELD_SIZE ||
	    BN_bn2lebinpad(bs, r->signature_s, SNP_SIG_FIELD_SIZE) != SNP_SIG_FIELD_SIZE)
		return skr_error_set(err, -EIO,
		                     "virtual platform: signature does not fit 72 bytes");
	return 0;
}

int snp_virtual_get_report(struct snp_virtual *v, const uint8_t report_data[64], uint32_t vmpl,
                           uint8_t out[SNP_REPORT_SIZE], struct skr_error *err)
{
	const struct snp_virtual_params *p;
	struct snp_report r = {0};
	uint64_t tcb;
	int ret;

	if (!v || !report_data || !out)
		return skr_error_set(err, -EINVAL, "virtual platform: no platform or buffer given");
	/* VMPLs 0..3 exist (SNP ABI); the firmware refuses other values. */
	if (vmpl > 3)
		return skr_error_set(err, -EINVAL, "virtual platform: VMPL %" PRIu32 " not in 0..3",
		                     vmpl);
	p = &v->params;
	tcb = snp_tcb_encode(&p->tcb, p->product);

	r.version = p->report_version;
	r.policy = p->policy;
	r.vmpl = vmpl;
	r.signature_algo = SNP_SIG_ALGO_ECDSA_P384_SHA384;
	r.current_tcb = r.reported_tcb = r.committed_tcb = r.launch_tcb = tcb;
	r.platform_info = SNP_PLATFORM_SMT_EN | SNP_PLATFORM_TSME_EN | SNP_PLATFORM_ECC_EN;
	r.key_info = (uint32_t)(p->vlek ? SNP_SIGNING_KEY_VLEK : SNP_SIGNING_KEY_VCEK) << 2;
	memcpy(r.report_data, report_data, sizeof(r.report_data));
	memcpy(r.measurement, p->measurement, sizeof(r.measurement));
	memcpy(r.host_data, p->host_data, sizeof(r.host_data));
	if (RAND_bytes(r.report_id, sizeof(r.report_id)) != 1)
		return ossl_error_set(err, -EIO, "virtual platform: random REPORT_ID");
	memset(r.report_id_ma, 0xFF, sizeof(r.report_id_ma)); /* no migration agent */
	if (r.version >= 3)
		cpuid_of(p->product, &r);
	memcpy(r.chip_id, p->chip_id, sizeof(r.chip_id));
	/* A plausible SNP firmware version, 1.55 build 21. */
	r.current_major = r.committed_major = 1;
	r.current_minor = r.committed_minor = 55;
	r.current_build = r.committed_build = 21;

	snp_report_serialize(&r, out);
	ret = sign_report(v->key, out, &r, err);
	if (ret < 0)
		return ret;
	snp_report_serialize(&r, out);
	return 0;
}

static int table_add_cert(struct snp_cert_table *t, enum snp_cert_kind kind, X509 *cert,
                          struct skr_error *err)
{
	_cleanup_free_ unsigned char *der = NULL;
	int len = i2d_X509(cert, &der);

	if (len <= 0)
		return ossl_error_set(err, -ENOMEM, "virtual platform: DER");
	return snp_cert_table_add(t, kind, der, (size_t)len, err);
}

int snp_virtual_cert_table(const struct snp_virtual *v, struct snp_cert_table *out,
                           struct skr_error *err)
{
	int r;

	if (!v || !out)
		return skr_error_set(err, -EINVAL, "virtual platform: no platform or table given");
	memset(out, 0, sizeof(*out));
	r = table_add_cert(out, v->params.vlek ? SNP_CERT_VLEK : SNP_CERT_VCEK, v->leaf, err);
	if (r == 0)
		r = table_add_cert(out, SNP_CERT_ASK, v->ask, err);
	if (r == 0)
		r = table_add_cert(out, SNP_CERT_ARK, v->ark, err);
	if (r < 0)
		snp_cert_table_clear(out);
	return r;
}

const char *snp_virtual_ark_pem(const struct snp_virtual *v)
{
	return v ? v->ark_pem : NULL;
}

const char *snp_virtual_chain_pem(const struct snp_virtual *v)
{
	return v ? v->chain_pem : NULL;
}

const struct snp_virtual_params *snp_virtual_params(const struct snp_virtual *v)
{
	return v ? &v->params : NULL;
}
