/* SPDX-License-Identifier: MIT */
/*
 * Report verification, certificate chains and the virtual SNP platform: AMD's real roots, and
 * virtual platforms (created once per binary: RSA-4096 generation is slow) for every failure.
 */
#include <dirent.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <json-c/json.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "b64.h"
#include "fileio.h"
#include "ossl.h"
#include "skr.h"
#include "snp_cert_internal.h"

/* ----------------------------------------------------------------------------------------- */
/* Fixture: virtual platforms */

enum platform_id {
	P_MILAN,    /* Milan VCEK, report v3, microcode 211 (an SPL >= 128) */
	P_MILAN_V2, /* copies of P_MILAN with another report version */
	P_MILAN_V4,
	P_MILAN_V5,
	P_MILAN_STALE, /* P_MILAN's certificates, platform.json microcode 212 */
	P_MILAN_OTHER, /* P_MILAN's certificates, another CHIP_ID */
	P_TURIN,       /* Turin VCEK, report v3 */
	P_TURIN_V5,
	P_VLEK, /* Genoa VLEK, report v3 */
	P_VLEK_V2,
	P_COUNT,
};

struct fixture {
	char root[64];
	char dir[P_COUNT][128];
	struct snp_virtual *v[P_COUNT];
};

static struct fixture *fx;

static void fill(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + 7 * i);
}

static char *read_in(const char *dir, const char *name, size_t *len)
{
	_cleanup_free_ char *path = path_join(dir, name);
	char *data = NULL;
	size_t n;

	assert_non_null(path);
	assert_int_equal(read_file(path, 1 << 20, &data, &n), 0);
	if (len)
		*len = n;
	return data;
}

static void copy_file(const char *from_dir, const char *to_dir, const char *name)
{
	_cleanup_free_ char *path = path_join(to_dir, name);
	size_t len;
	_cleanup_free_ char *data = read_in(from_dir, name, &len);

	assert_int_equal(write_file_atomic(path, data, len, 0600), 0);
}

/* A copy of platform @from whose platform.json gets @key = @value (a JSON text). */
static void derive_platform(enum platform_id from, enum platform_id to, const char *key,
                            const char *value, bool vlek)
{
	const char *files[] = {"ark.pem", "ask.pem", vlek ? "vlek.pem" : "vcek.pem",
	                       vlek ? "vlek-key.pem" : "vcek-key.pem"};
	_cleanup_free_ char *text = read_in(fx->dir[from], "platform.json", NULL);
	_cleanup_free_ char *path = path_join(fx->dir[to], "platform.json");
	json_object *o = json_tokener_parse(text), *v = json_tokener_parse(value), *tcb;
	const char *out;

	assert_non_null(o);
	assert_non_null(v);
	assert_int_equal(mkdir(fx->dir[to], 0700), 0);
	for (size_t i = 0; i < ELEMENTSOF(files); i++)
		copy_file(fx->dir[from], fx->dir[to], files[i]);
	if (strncmp(key, "tcb.", 4) == 0) {
		assert_true(json_object_object_get_ex(o, "tcb", &tcb));
		json_object_object_add(tcb, key + 4, v);
	} else {
		json_object_object_add(o, key, v);
	}
	out = json_object_to_json_string(o);
	assert_int_equal(write_file_atomic(path, out, strlen(out), 0600), 0);
	json_object_put(o);
}

static void create_platform(enum platform_id id, const struct snp_virtual_params *p)
{
	struct skr_error err = {0};

	if (snp_virtual_create(fx->dir[id], p, &err) != 0)
		fail_msg("create %s: %s", fx->dir[id], err.msg);
}

static int group_setup(void **state)
{
	struct snp_virtual_params p;
	const char *tmp = getenv("TMPDIR");
	char other_chip[200];
	uint8_t chip[64];

	fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	snprintf(fx->root, sizeof(fx->root), "%s/skr-verify-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(fx->root));
	for (int i = 0; i < P_COUNT; i++) {
		char dir[sizeof(fx->dir[i])];

		snprintf(dir, sizeof(dir), "%s/p%d", fx->root, i);
		memcpy(fx->dir[i], dir, sizeof(dir));
	}

	snp_virtual_params_default(&p);
	p.tcb = (struct snp_tcb){.bootloader = 3, .tee = 0, .snp = 8, .microcode = 211};
	fill(p.host_data, sizeof(p.host_data), 0x11);
	create_platform(P_MILAN, &p);

	snp_virtual_params_default(&p);
	p.product = SNP_PRODUCT_TURIN;
	p.tcb = (struct snp_tcb){.fmc = 1, .bootloader = 1, .tee = 1, .snp = 4, .microcode = 82};
	create_platform(P_TURIN, &p);

	snp_virtual_params_default(&p);
	p.product = SNP_PRODUCT_GENOA;
	p.vlek = true;
	p.tcb = (struct snp_tcb){.bootloader = 7, .tee = 0, .snp = 21, .microcode = 84};
	create_platform(P_VLEK, &p);

	derive_platform(P_MILAN, P_MILAN_V2, "report_version", "2", false);
	derive_platform(P_MILAN, P_MILAN_V4, "report_version", "4", false);
	derive_platform(P_MILAN, P_MILAN_V5, "report_version", "5", false);
	derive_platform(P_MILAN, P_MILAN_STALE, "tcb.microcode", "212", false);
	fill(chip, sizeof(chip), 0x42);
	other_chip[0] = '"';
	hex_encode(chip, sizeof(chip), other_chip + 1);
	strcat(other_chip, "\"");
	derive_platform(P_MILAN, P_MILAN_OTHER, "chip_id", other_chip, false);
	derive_platform(P_TURIN, P_TURIN_V5, "report_version", "5", false);
	derive_platform(P_VLEK, P_VLEK_V2, "report_version", "2", true);

	for (int i = 0; i < P_COUNT; i++) {
		struct skr_error err = {0};

		if (snp_virtual_open(fx->dir[i], &fx->v[i], &err) != 0)
			fail_msg("open %s: %s", fx->dir[i], err.msg);
	}
	return 0;
}

static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[512];
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
			remove_tree(path);
		else
			unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static int group_teardown(void **state)
{
	for (int i = 0; i < P_COUNT; i++)
		snp_virtual_free(fx->v[i]);
	remove_tree(fx->root);
	free(fx);
	return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Helpers */

static struct snp_trust_store *store_of(enum platform_id id)
{
	struct snp_trust_store *ts = NULL;
	const char *ark = snp_virtual_ark_pem(fx->v[id]);

	assert_int_equal(snp_trust_store_new(&ts, NULL), 0);
	assert_int_equal(snp_trust_store_add_pem(ts, ark, strlen(ark), NULL), 0);
	assert_int_equal(snp_trust_store_count(ts), 1);
	return ts;
}

static struct snp_cert_chain *chain_of(enum platform_id id)
{
	struct snp_cert_chain *c = NULL;
	const char *pem = snp_virtual_chain_pem(fx->v[id]);
	struct skr_error err = {0};

	if (snp_cert_chain_from_pem(pem, strlen(pem), &c, &err) != 0)
		fail_msg("chain: %s", err.msg);
	assert_true(snp_cert_chain_is_complete(c));
	return c;
}

static void get_report(enum platform_id id, uint8_t report[SNP_REPORT_SIZE])
{
	uint8_t rd[64];
	struct skr_error err = {0};

	fill(rd, sizeof(rd), 0xA5);
	if (snp_virtual_get_report(fx->v[id], rd, 0, report, &err) != 0)
		fail_msg("get_report: %s", err.msg);
}

static int verify(enum platform_id chain_id, enum platform_id trust_id, const uint8_t *report,
                  size_t len, struct skr_error *err)
{
	struct snp_cert_chain *c = chain_of(chain_id);
	struct snp_trust_store *ts = store_of(trust_id);
	int r = snp_report_verify(report, len, c, ts, err);

	snp_cert_chain_free(c);
	snp_trust_store_free(ts);
	return r;
}

/* Re-sign bytes 0x000..0x29F with the platform's VCEK key, as a chip with this key would. */
static void resign_report(enum platform_id id, uint8_t report[SNP_REPORT_SIZE])
{
	_cleanup_free_ char *pem = read_in(fx->dir[id], "vcek-key.pem", NULL);
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[160];
	const unsigned char *p = der;
	size_t der_len = sizeof(der);
	ECDSA_SIG *sig;
	const BIGNUM *r, *s;

	assert_non_null(key);
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, key), 1);
	assert_int_equal(EVP_DigestSign(md, der, &der_len, report, SNP_REPORT_SIGNED_SIZE), 1);
	sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	assert_non_null(sig);
	ECDSA_SIG_get0(sig, &r, &s);
	assert_int_equal(BN_bn2lebinpad(r, report + 0x2A0, 72), 72);
	assert_int_equal(BN_bn2lebinpad(s, report + 0x2E8, 72), 72);
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	BIO_free(bio);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* ----------------------------------------------------------------------------------------- */
/* AMD's real roots */

static void sha256_hex(X509 *cert, char hex[65])
{
	_cleanup_free_ unsigned char *der = NULL;
	unsigned char md[32];
	int len = i2d_X509(cert, &der);

	assert_true(len > 0);
	SHA256(der, (size_t)len, md);
	hex_encode(md, sizeof(md), hex);
}

static void test_amd_roots(void **state)
{
	static const struct {
		const char *file;
		const char *ark_sha256;
		const char *ask_sha256;
	} roots[] = {
	        {"ask_ark_milan.pem",
	         "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
	         "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b"},
	        {"ask_ark_genoa.pem",
	         "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
	         "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521"},
	        {"ask_ark_turin_vcek.pem",
	         "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
	         "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185"},
	};
	const char *testdata = getenv("SKR_TESTDATA");
	struct snp_trust_store *all = NULL;
	X509 *prev_ark = NULL;

	assert_non_null(testdata);
	assert_int_equal(snp_trust_store_new(&all, NULL), 0);
	for (size_t i = 0; i < ELEMENTSOF(roots); i++) {
		char dir[512], hex[65];
		struct snp_trust_store *ts = NULL;
		struct snp_cert_chain *c = NULL;
		struct skr_error err = {0};
		_cleanup_free_ char *pem = NULL;
		size_t len;

		snprintf(dir, sizeof(dir), "%s/amd_roots", testdata);
		pem = read_in(dir, roots[i].file, &len);

		/* One anchor (the ARK) per file; the ASK is an intermediate; duplicates ignored. */
		assert_int_equal(snp_trust_store_new(&ts, NULL), 0);
		snprintf(dir, sizeof(dir), "%s/amd_roots/%s", testdata, roots[i].file);
		if (snp_trust_store_add_file(ts, dir, &err) != 0)
			fail_msg("%s: %s", roots[i].file, err.msg);
		assert_int_equal(snp_trust_store_count(ts), 1);
		assert_int_equal(snp_trust_store_add_pem(ts, pem, len, &err), 0);
		assert_int_equal(snp_trust_store_count(ts), 1);
		assert_int_equal(snp_trust_store_add_pem(all, pem, len, &err), 0);
		snp_trust_store_free(ts);

		/* Classified in the file's order (ASK first) without a leaf. */
		assert_int_equal(snp_cert_chain_from_pem(pem, len, &c, &err), 0);
		assert_false(snp_cert_chain_has_leaf(c));
		assert_false(snp_cert_chain_is_complete(c));
		assert_non_null(c->ask);
		assert_non_null(c->ark);
		sha256_hex(c->ark, hex);
		assert_string_equal(hex, roots[i].ark_sha256);
		sha256_hex(c->ask, hex);
		assert_string_equal(hex, roots[i].ask_sha256);

		/* The ASK verifies under its ARK with AMD's PSS parameters, not under another. */
		if (snp_cert_verify_issued(c->ask, c->ark, "ASK", &err) != 0)
			fail_msg("%s: %s", roots[i].file, err.msg);
		assert_int_equal(snp_cert_verify_issued(c->ark, c->ark, "ARK", &err), 0);
		if (prev_ark) {
			skr_error_clear(&err);
			assert_int_equal(snp_cert_verify_issued(c->ask, prev_ark, "ASK", &err),
			                 -EPERM);
			X509_free(prev_ark);
		}
		prev_ark = c->ark;
		X509_up_ref(prev_ark);
		snp_cert_chain_free(c);
	}
	X509_free(prev_ark);
	assert_int_equal(snp_trust_store_count(all), 3);
	snp_trust_store_free(all);

	/* The copy built into libskr (the fetcher's default anchors) is exactly these files. */
	{
		_cleanup_free_ char *expect = NULL;
		size_t total = 0;
		char dir[512];

		snprintf(dir, sizeof(dir), "%s/amd_roots", testdata);
		expect = calloc(1, 3 * 8192);
		assert_non_null(expect);
		for (size_t i = 0; i < ELEMENTSOF(roots); i++) {
			_cleanup_free_ char *pem = NULL;
			size_t len;

			pem = read_in(dir, roots[i].file, &len);
			assert_true(total + len < 3 * 8192);
			/* The Turin file has CRLF line ends; the built-in copy has plain LF. */
			for (size_t k = 0; k < len; k++)
				if (pem[k] != '\r')
					expect[total++] = pem[k];
		}
		assert_int_equal(strlen(snp_amd_roots_pem), total);
		assert_string_equal(snp_amd_roots_pem, expect);
	}
}

/* The chain half of verification, as the certificate fetcher runs it before caching. */
static void test_chain_verify_trusted(void **state)
{
	struct snp_cert_chain *c = chain_of(P_MILAN), *no_leaf = NULL;
	struct snp_trust_store *own = store_of(P_MILAN), *amd = NULL, *turin = store_of(P_TURIN);
	struct skr_error err = {0};
	const char *pem = snp_virtual_chain_pem(fx->v[P_MILAN]);
	const char *ask = strstr(pem + 1, "-----BEGIN CERTIFICATE-----");

	assert_int_equal(snp_cert_chain_verify_trusted(c, own, &err), 0);
	assert_int_equal(snp_trust_store_new(&amd, NULL), 0);
	assert_int_equal(
	        snp_trust_store_add_pem(amd, snp_amd_roots_pem, strlen(snp_amd_roots_pem), NULL),
	        0);
	assert_int_equal(snp_trust_store_count(amd), 3);
	assert_int_equal(snp_cert_chain_verify_trusted(c, amd, &err), -EPERM);
	assert_non_null(strstr(err.msg, "is not one of the 3 trusted ARKs"));
	skr_error_clear(&err);
	assert_int_equal(snp_cert_chain_verify_trusted(c, turin, &err), -EPERM);
	skr_error_clear(&err);
	/* No leaf: nothing to vouch for. */
	assert_non_null(ask);
	assert_int_equal(snp_cert_chain_from_pem(ask, strlen(ask), &no_leaf, NULL), 0);
	assert_int_equal(snp_cert_chain_verify_trusted(no_leaf, own, &err), -EINVAL);
	assert_int_equal(snp_cert_chain_verify_trusted(NULL, own, NULL), -EINVAL);
	snp_cert_chain_free(no_leaf);
	snp_cert_chain_free(c);
	snp_trust_store_free(own);
	snp_trust_store_free(amd);
	snp_trust_store_free(turin);
}

/* ----------------------------------------------------------------------------------------- */
/* Virtual platforms: reports verify */

static void test_virtual_reports_verify(void **state)
{
	static const struct {
		enum platform_id id;
		enum snp_product product;
		uint32_t version;
		bool vlek;
	} cases[] = {
	        {P_MILAN_V2, SNP_PRODUCT_MILAN, 2, false},
	        {P_MILAN, SNP_PRODUCT_MILAN, 3, false},
	        {P_MILAN_V4, SNP_PRODUCT_MILAN, 4, false},
	        {P_MILAN_V5, SNP_PRODUCT_MILAN, 5, false},
	        {P_TURIN, SNP_PRODUCT_TURIN, 3, false},
	        {P_TURIN_V5, SNP_PRODUCT_TURIN, 5, false},
	        {P_VLEK, SNP_PRODUCT_GENOA, 3, true},
	        {P_VLEK_V2, SNP_PRODUCT_GENOA, 2, true},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		const struct snp_virtual_params *p = snp_virtual_params(fx->v[cases[i].id]);
		uint8_t report[SNP_REPORT_SIZE], report2[SNP_REPORT_SIZE], rd[64];
		struct snp_report r;
		struct snp_cert_table table, back;
		struct snp_cert_chain *c = NULL;
		struct snp_trust_store *ts = store_of(cases[i].id);
		struct skr_error err = {0};
		_cleanup_free_ uint8_t *buf = NULL;
		size_t len;
		int ret;

		get_report(cases[i].id, report);
		fill(rd, sizeof(rd), 0xA5);
		assert_int_equal(snp_report_parse(report, sizeof(report), &r, &err), 0);
		assert_int_equal(r.version, cases[i].version);
		assert_int_equal(r.signature_algo, SNP_SIG_ALGO_ECDSA_P384_SHA384);
		assert_int_equal(snp_report_signing_key(&r),
		                 cases[i].vlek ? SNP_SIGNING_KEY_VLEK : SNP_SIGNING_KEY_VCEK);
		assert_memory_equal(r.report_data, rd, 64);
		assert_memory_equal(r.chip_id, p->chip_id, 64);
		assert_memory_equal(r.host_data, p->host_data, 32);
		assert_memory_equal(r.measurement, p->measurement, 48);
		assert_int_equal(r.reported_tcb, snp_tcb_encode(&p->tcb, cases[i].product));
		assert_int_equal(r.current_tcb, r.reported_tcb);
		assert_int_equal(r.committed_tcb, r.reported_tcb);
		assert_int_equal(r.launch_tcb, r.reported_tcb);
		assert_int_equal(r.report_id_ma[0], 0xFF);
		assert_int_equal(r.report_id_ma[31], 0xFF);
		assert_true(r.platform_info & SNP_PLATFORM_ECC_EN);
		assert_int_equal(snp_report_product(&r, cases[i].product), cases[i].product);
		if (cases[i].version >= 3)
			assert_int_equal(snp_report_product(&r, SNP_PRODUCT_UNKNOWN),
			                 cases[i].product);
		/* A fresh REPORT_ID per call. */
		get_report(cases[i].id, report2);
		assert_memory_not_equal(report + 0x140, report2 + 0x140, 32);

		/* From PEM... */
		c = chain_of(cases[i].id);
		ret = snp_report_verify(report, sizeof(report), c, ts, &err);
		if (ret != 0)
			fail_msg("platform %d: %d %s", cases[i].id, ret, err.msg);
		snp_cert_chain_free(c);

		/* ...and from the extended-report table, through its wire format. */
		assert_int_equal(snp_virtual_cert_table(fx->v[cases[i].id], &table, &err), 0);
		assert_int_equal(table.count, 3);
		assert_non_null(
		        snp_cert_table_find(&table, cases[i].vlek ? SNP_CERT_VLEK : SNP_CERT_VCEK));
		assert_int_equal(snp_cert_table_serialize(&table, &buf, &len, &err), 0);
		assert_int_equal(snp_cert_table_parse(buf, len, &back, &err), 0);
		assert_int_equal(snp_cert_chain_from_table(&back, &c, &err), 0);
		assert_true(snp_cert_chain_is_complete(c));
		ret = snp_report_verify(report, sizeof(report), c, ts, &err);
		if (ret != 0)
			fail_msg("platform %d from table: %d %s", cases[i].id, ret, err.msg);
		snp_cert_chain_free(c);
		snp_cert_table_clear(&table);
		snp_cert_table_clear(&back);
		snp_trust_store_free(ts);
	}
}

/* ----------------------------------------------------------------------------------------- */
/* Every failure of a Milan v3 report, with its errno */

struct mutation {
	const char *name;
	size_t offset;
	uint8_t xor_mask; /* 0: set the byte to @value instead */
	uint8_t value;
	int expect;
};

static void test_report_mutations(void **state)
{
	static const struct mutation cases[] = {
	        {"VERSION 3 -> 2", 0x000, 0x01, 0, -EBADMSG},
	        {"POLICY bit 16 (SMT)", 0x00A, 0x01, 0, -EBADMSG},
	        {"VMPL", 0x030, 0x01, 0, -EBADMSG},
	        {"CURRENT_TCB", 0x038, 0x01, 0, -EBADMSG},
	        {"REPORT_DATA first byte", 0x050, 0x01, 0, -EBADMSG},
	        {"REPORT_DATA last byte", 0x08F, 0x80, 0, -EBADMSG},
	        {"MEASUREMENT", 0x090, 0x10, 0, -EBADMSG},
	        {"HOST_DATA", 0x0C0, 0x01, 0, -EBADMSG},
	        {"REPORT_ID", 0x140, 0x01, 0, -EBADMSG},
	        /* TCB and hwID are checked before the signature (-ESTALE/-EXDEV win). */
	        {"REPORTED_TCB microcode", 0x187, 0x01, 0, -ESTALE},
	        {"REPORTED_TCB bootloader", 0x180, 0x02, 0, -ESTALE},
	        {"CHIP_ID", 0x1A0, 0x01, 0, -EXDEV},
	        {"CHIP_ID last byte", 0x1DF, 0x01, 0, -EXDEV},
	        {"COMMITTED_TCB", 0x1E0, 0x01, 0, -EBADMSG},
	        {"LAUNCH_TCB", 0x1F0, 0x01, 0, -EBADMSG},
	        {"last signed (reserved) byte", 0x29F, 0x01, 0, -EBADMSG},
	        {"signature R low byte", 0x2A0, 0x01, 0, -EBADMSG},
	        {"signature R high byte", 0x2E7, 0x80, 0, -EBADMSG},
	        {"signature S low byte", 0x2E8, 0x01, 0, -EBADMSG},
	        {"signature S middle", 0x300, 0x40, 0, -EBADMSG},
	        {"SIGNATURE_ALGO 2", 0x034, 0, 2, -ENOTSUP},
	        {"SIGNATURE_ALGO 0", 0x034, 0, 0, -ENOTSUP},
	        {"SIGNING_KEY none (7)", 0x048, 0, 7 << 2, -ENOTSUP},
	        {"SIGNING_KEY reserved (2)", 0x048, 0, 2 << 2, -ENOTSUP},
	        {"SIGNING_KEY VLEK with a VCEK chain", 0x048, 0, 1 << 2, -EINVAL},
	        {"POLICY reserved bit 17 clear", 0x00A, 0x02, 0, -EINVAL},
	        {"VERSION 6", 0x000, 0, 6, -EINVAL},
	        /* Outside the signed bytes: the report still verifies. */
	        {"unsigned signature padding", 0x330, 0xFF, 0, 0},
	        {"unsigned last byte", 0x49F, 0x01, 0, 0},
	};
	uint8_t orig[SNP_REPORT_SIZE];
	struct snp_cert_chain *c = chain_of(P_MILAN);
	struct snp_trust_store *ts = store_of(P_MILAN);

	get_report(P_MILAN, orig);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		uint8_t report[SNP_REPORT_SIZE];
		struct skr_error err = {0};
		int r;

		memcpy(report, orig, sizeof(report));
		if (cases[i].xor_mask)
			report[cases[i].offset] ^= cases[i].xor_mask;
		else
			report[cases[i].offset] = cases[i].value;
		r = snp_report_verify(report, sizeof(report), c, ts, &err);
		if (r != cases[i].expect)
			fail_msg("%s: returned %d (%s), expected %d", cases[i].name, r, err.msg,
			         cases[i].expect);
		if (r != 0 && err.msg[0] == '\0')
			fail_msg("%s: no reason given", cases[i].name);
	}
	assert_int_equal(snp_report_verify(orig, sizeof(orig), c, ts, NULL), 0);
	assert_int_equal(snp_report_verify(orig, sizeof(orig) - 1, c, ts, NULL), -EINVAL);
	snp_cert_chain_free(c);
	snp_trust_store_free(ts);
}

static void test_error_messages(void **state)
{
	uint8_t report[SNP_REPORT_SIZE];
	struct skr_error err = {0};
	char expect[64];

	/* The stale platform's VCEK says microcode 211, its reports say 212. */
	get_report(P_MILAN_STALE, report);
	assert_int_equal(verify(P_MILAN_STALE, P_MILAN, report, sizeof(report), &err), -ESTALE);
	snprintf(expect, sizeof(expect), "%016" PRIx64,
	         snp_tcb_encode(&(struct snp_tcb){.bootloader = 3, .snp = 8, .microcode = 211},
	                        SNP_PRODUCT_MILAN));
	assert_non_null(strstr(err.msg, expect));
	assert_non_null(strstr(err.msg, "d408000000000003"));
	assert_non_null(strstr(err.msg, "d308000000000003"));

	skr_error_clear(&err);
	get_report(P_MILAN_OTHER, report);
	assert_int_equal(verify(P_MILAN_OTHER, P_MILAN, report, sizeof(report), &err), -EXDEV);
	assert_non_null(strstr(err.msg, "CHIP_ID"));
	assert_non_null(strstr(err.msg, "4249"));

	skr_error_clear(&err);
	get_report(P_MILAN, report);
	assert_int_equal(verify(P_MILAN, P_TURIN, report, sizeof(report), &err), -EPERM);
	assert_non_null(strstr(err.msg, "not rooted in a trusted AMD root key (ARK)"));
}

/* A report whose REPORTED_TCB is changed and then properly re-signed: only -ESTALE remains. */
static void test_tcb_mismatch_resigned(void **state)
{
	uint8_t report[SNP_REPORT_SIZE];
	struct snp_report r;
	struct skr_error err = {0};

	get_report(P_MILAN, report);
	resign_report(P_MILAN, report);
	assert_int_equal(verify(P_MILAN, P_MILAN, report, sizeof(report), &err), 0);

	assert_int_equal(snp_report_parse(report, sizeof(report), &r, NULL), 0);
	put_le64(report + 0x180, r.reported_tcb + 1); /* bootloader 3 -> 4 */
	resign_report(P_MILAN, report);
	assert_int_equal(verify(P_MILAN, P_MILAN, report, sizeof(report), &err), -ESTALE);

	/* The same report with the original TCB restored but not re-signed: bad signature. */
	put_le64(report + 0x180, r.reported_tcb);
	skr_error_clear(&err);
	assert_int_equal(verify(P_MILAN, P_MILAN, report, sizeof(report), &err), -EBADMSG);
}

static void test_turin_hwid_is_8_bytes(void **state)
{
	uint8_t report[SNP_REPORT_SIZE];
	struct skr_error err = {0};
	struct snp_vcek_info info;
	struct snp_cert_chain *c = chain_of(P_TURIN);

	assert_int_equal(snp_cert_chain_leaf_info(c, &info, &err), 0);
	assert_int_equal(info.hwid_len, 8);
	snp_cert_chain_free(c);

	get_report(P_TURIN, report);
	report[0x1A0 + 7] ^= 1;
	assert_int_equal(verify(P_TURIN, P_TURIN, report, sizeof(report), &err), -EXDEV);
	/* Byte 8 is outside Turin's hwID: not -EXDEV, but the signature catches it. */
	get_report(P_TURIN, report);
	report[0x1A0 + 8] ^= 1;
	assert_int_equal(verify(P_TURIN, P_TURIN, report, sizeof(report), &err), -EBADMSG);
}

static void test_wrong_trust(void **state)
{
	static const struct {
		const char *name;
		enum platform_id report, chain, trust;
		bool drop_ark, drop_ask;
		int expect;
	} cases[] = {
	        {"ARK of another platform", P_MILAN, P_MILAN, P_TURIN, false, false, -EPERM},
	        {"no ARK, another platform's store", P_MILAN, P_MILAN, P_VLEK, true, false, -EPERM},
	        {"no ASK/ARK, another platform's store", P_MILAN, P_MILAN, P_TURIN, true, true,
	         -EPERM},
	        /* The chain is for another product line than the report. */
	        {"Milan report, Turin chain", P_MILAN, P_TURIN, P_TURIN, false, false, -EINVAL},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		uint8_t report[SNP_REPORT_SIZE];
		struct snp_cert_chain *c = chain_of(cases[i].chain);
		struct snp_trust_store *ts = store_of(cases[i].trust);
		struct skr_error err = {0};
		int r;

		if (cases[i].drop_ark) {
			X509_free(c->ark);
			c->ark = NULL;
		}
		if (cases[i].drop_ask) {
			X509_free(c->ask);
			c->ask = NULL;
		}
		get_report(cases[i].report, report);
		r = snp_report_verify(report, sizeof(report), c, ts, &err);
		if (r != cases[i].expect)
			fail_msg("%s: %d (%s), expected %d", cases[i].name, r, err.msg,
			         cases[i].expect);
		snp_cert_chain_free(c);
		snp_trust_store_free(ts);
	}
}

static void test_chain_shuffled_and_completed(void **state)
{
	_cleanup_free_ char *ark = read_in(fx->dir[P_MILAN], "ark.pem", NULL);
	_cleanup_free_ char *ask = read_in(fx->dir[P_MILAN], "ask.pem", NULL);
	_cleanup_free_ char *vcek = read_in(fx->dir[P_MILAN], "vcek.pem", NULL);
	_cleanup_free_ char *out = NULL;
	char shuffled[16384];
	uint8_t report[SNP_REPORT_SIZE];
	struct snp_cert_chain *c = NULL;
	struct snp_trust_store *ts = store_of(P_MILAN);
	struct skr_error err = {0};

	get_report(P_MILAN, report);

	/* ARK, VCEK, ASK: classified by content; to_pem restores leaf, ASK, ARK. */
	snprintf(shuffled, sizeof(shuffled), "%s%s%s", ark, vcek, ask);
	assert_int_equal(snp_cert_chain_from_pem(shuffled, strlen(shuffled), &c, &err), 0);
	assert_int_equal(snp_report_verify(report, sizeof(report), c, ts, &err), 0);
	assert_int_equal(snp_cert_chain_to_pem(c, &out, &err), 0);
	assert_string_equal(out, snp_virtual_chain_pem(fx->v[P_MILAN]));
	snp_cert_chain_free(c);

	/* Only the VCEK; ASK and ARK come from the trust store. */
	assert_int_equal(snp_cert_chain_from_pem(vcek, strlen(vcek), &c, &err), 0);
	assert_true(snp_cert_chain_has_leaf(c));
	assert_false(snp_cert_chain_is_complete(c));
	assert_int_equal(snp_report_verify(report, sizeof(report), c, ts, &err), -EPERM);
	assert_int_equal(snp_trust_store_add_pem(ts, ask, strlen(ask), &err), 0);
	assert_int_equal(snp_trust_store_count(ts), 1); /* the ASK is no anchor */
	skr_error_clear(&err);
	if (snp_report_verify(report, sizeof(report), c, ts, &err) != 0)
		fail_msg("VCEK only: %s", err.msg);

	/* add_pem fills in ASK and ARK (the KDS cert_chain: ASK then ARK); repeats are fine. */
	snprintf(shuffled, sizeof(shuffled), "%s%s", ask, ark);
	assert_int_equal(snp_cert_chain_add_pem(c, shuffled, strlen(shuffled), &err), 0);
	assert_true(snp_cert_chain_is_complete(c));
	assert_int_equal(snp_cert_chain_add_pem(c, shuffled, strlen(shuffled), &err), 0);
	assert_int_equal(snp_report_verify(report, sizeof(report), c, ts, &err), 0);

	/* A different ASK for a filled slot is refused, and leaves the chain unchanged. */
	{
		_cleanup_free_ char *other = read_in(fx->dir[P_TURIN], "ask.pem", NULL);

		skr_error_clear(&err);
		assert_int_equal(snp_cert_chain_add_pem(c, other, strlen(other), &err), -EINVAL);
		assert_non_null(strstr(err.msg, "second"));
		assert_int_equal(snp_report_verify(report, sizeof(report), c, ts, &err), 0);
	}
	snp_cert_chain_free(c);
	snp_trust_store_free(ts);
}

static void test_vlek(void **state)
{
	uint8_t report[SNP_REPORT_SIZE];
	struct snp_cert_chain *c = chain_of(P_VLEK);
	struct snp_vcek_info info;
	struct skr_error err = {0};

	assert_int_equal(snp_cert_chain_leaf_info(c, &info, &err), 0);
	assert_true(info.is_vlek);
	assert_int_equal(info.hwid_len, 0);
	assert_string_equal(info.csp_id, "virtual");
	assert_int_equal(info.product, SNP_PRODUCT_GENOA);
	assert_string_equal(info.product_name, "Genoa-B0");
	assert_int_equal(info.tcb.snp, 21);
	snp_cert_chain_free(c);

	/* A VLEK report with a VCEK chain, and a VCEK report with the VLEK chain. */
	get_report(P_VLEK, report);
	assert_int_equal(verify(P_MILAN, P_MILAN, report, sizeof(report), &err), -EINVAL);
	get_report(P_MILAN, report);
	assert_int_equal(verify(P_VLEK, P_VLEK, report, sizeof(report), &err), -EINVAL);
	/* hwID is not checked for a VLEK, but CHIP_ID is still signed. */
	get_report(P_VLEK, report);
	report[0x1A0] ^= 1;
	assert_int_equal(verify(P_VLEK, P_VLEK, report, sizeof(report), &err), -EBADMSG);
}

/* ----------------------------------------------------------------------------------------- */
/* AMD extensions */

static void test_leaf_info(void **state)
{
	static const struct {
		enum platform_id id;
		enum snp_product product;
		unsigned struct_version;
		const char *name;
		size_t hwid_len;
		struct snp_tcb tcb;
	} cases[] = {
	        {P_MILAN,
	         SNP_PRODUCT_MILAN,
	         0,
	         "Milan-B0",
	         64,
	         {.bootloader = 3, .snp = 8, .microcode = 211}},
	        {P_TURIN,
	         SNP_PRODUCT_TURIN,
	         1,
	         "Turin-B0",
	         8,
	         {.fmc = 1, .bootloader = 1, .tee = 1, .snp = 4, .microcode = 82}},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct snp_cert_chain *c = chain_of(cases[i].id);
		const struct snp_virtual_params *p = snp_virtual_params(fx->v[cases[i].id]);
		struct snp_vcek_info info;
		struct skr_error err = {0};

		assert_int_equal(snp_cert_chain_leaf_info(c, &info, &err), 0);
		assert_false(info.is_vlek);
		assert_int_equal(info.product, cases[i].product);
		assert_int_equal(info.struct_version, cases[i].struct_version);
		assert_string_equal(info.product_name, cases[i].name);
		assert_int_equal(info.hwid_len, cases[i].hwid_len);
		assert_memory_equal(info.hwid, p->chip_id, cases[i].hwid_len);
		assert_memory_equal(&info.tcb, &cases[i].tcb, sizeof(info.tcb));
		assert_int_equal(info.tcb_raw, snp_tcb_encode(&cases[i].tcb, cases[i].product));
		snp_cert_chain_free(c);
	}
}

/* ucodeSPL 211 is encoded 02 02 00 d3, parses back as 211 and the report verifies. */
static void test_spl_above_127(void **state)
{
	struct snp_cert_chain *c = chain_of(P_MILAN);
	ASN1_OBJECT *obj = OBJ_txt2obj("1.3.6.1.4.1.3704.1.3.8", 1);
	int idx = X509_get_ext_by_OBJ(c->leaf, obj, -1);
	const ASN1_OCTET_STRING *v;
	static const uint8_t der[] = {0x02, 0x02, 0x00, 0xd3};
	struct snp_vcek_info info;
	uint8_t report[SNP_REPORT_SIZE];

	assert_true(idx >= 0);
	v = X509_EXTENSION_get_data(X509_get_ext(c->leaf, idx));
	assert_int_equal(ASN1_STRING_length(v), 4);
	assert_memory_equal(ASN1_STRING_get0_data(v), der, 4);
	assert_int_equal(snp_cert_chain_leaf_info(c, &info, NULL), 0);
	assert_int_equal(info.tcb.microcode, 211);
	assert_int_equal(info.tcb_raw >> 56, 211);
	get_report(P_MILAN, report);
	assert_int_equal(verify(P_MILAN, P_MILAN, report, sizeof(report), NULL), 0);
	ASN1_OBJECT_free(obj);
	snp_cert_chain_free(c);
}

/* Replace the productName extension of @leaf with an IA5String of @text (@len bytes). */
static void set_product_name(X509 *leaf, const char *text, int len)
{
	ASN1_OBJECT *obj = OBJ_txt2obj("1.3.6.1.4.1.3704.1.2", 1);
	int idx = X509_get_ext_by_OBJ(leaf, obj, -1);
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	unsigned char *der = NULL;
	int der_len;

	assert_true(idx >= 0);
	assert_true(ASN1_STRING_set(s, text, len));
	der_len = i2d_ASN1_IA5STRING(s, &der);
	assert_true(der_len > 0);
	assert_true(ASN1_OCTET_STRING_set(os, der, der_len));
	assert_true(X509_EXTENSION_set_data(X509_get_ext(leaf, idx), os));
	OPENSSL_free(der);
	ASN1_OCTET_STRING_free(os);
	ASN1_IA5STRING_free(s);
	ASN1_OBJECT_free(obj);
}

/*
 * productName is read before the chain is verified and printed in messages: only printable
 * ASCII passes, so a host cannot forge log lines or send terminal escapes through it. Messages
 * name the leaf as what it is (VCEK or VLEK).
 */
static void test_leaf_text_printable_only(void **state)
{
	static const struct {
		const char *text;
		int len;
		int expect;
		const char *msg;
	} cases[] = {
	        {"Milan-B0", 8, 0, NULL},
	        {"Milan-B0 ~", 10, 0, NULL},
	        {"Milan\nB0", 8, -EINVAL, "non-printable byte 0x0a at offset 5"},
	        {"Milan\r", 6, -EINVAL, "0x0d"},
	        {"\x1b[31mMilan", 10, -EINVAL, "0x1b at offset 0"},
	        {"Milan\x7f", 6, -EINVAL, "0x7f"},
	        {"Mi\0an", 5, -EINVAL, "0x00 at offset 2"},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		for (int vlek = 0; vlek <= 1; vlek++) {
			struct snp_cert_chain *c = chain_of(P_MILAN);
			struct snp_vcek_info info;
			struct skr_error err = {0};
			int r;

			set_product_name(c->leaf, cases[i].text, cases[i].len);
			r = snp_cert_parse_leaf(c->leaf, vlek, &info, &err);
			if (r != cases[i].expect)
				fail_msg("case %zu: %d '%s'", i, r, err.msg);
			if (r == 0) {
				assert_int_equal(strlen(info.product_name), cases[i].len);
			} else {
				assert_non_null(strstr(err.msg, cases[i].msg));
				assert_non_null(
				        strstr(err.msg, vlek ? "VLEK extension productName"
				                             : "VCEK extension productName"));
				assert_null(strchr(err.msg, '\n'));
				assert_null(strchr(err.msg, '\x1b'));
			}
			snp_cert_chain_free(c);
		}
	}
}

/* ----------------------------------------------------------------------------------------- */
/* Signature algorithms and validity of the chain: a test CA re-signs P_MILAN's VCEK */

enum sig_mode {
	SIG_PSS_48,
	SIG_PSS_32,
	SIG_PSS_SHA256,
	SIG_PKCS1,
};

static void sign_as(X509 *cert, EVP_PKEY *key, enum sig_mode mode)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	const EVP_MD *hash = mode == SIG_PSS_SHA256 ? EVP_sha256() : EVP_sha384();

	assert_int_equal(EVP_DigestSignInit(md, &pctx, hash, NULL, key), 1);
	if (mode != SIG_PKCS1) {
		assert_true(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0);
		assert_true(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, mode == SIG_PSS_32 ? 32 : 48) >
		            0);
		assert_true(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, hash) > 0);
	}
	assert_true(X509_sign_ctx(cert, md) > 0);
	EVP_MD_CTX_free(md);
}

static X509 *make_ca(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                     enum sig_mode mode)
{
	X509 *c = X509_new();
	X509_NAME *name = X509_NAME_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	assert_non_null(c);
	X509_set_version(c, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(c), 7);
	X509_gmtime_adj(X509_getm_notBefore(c), -3600);
	X509_gmtime_adj(X509_getm_notAfter(c), 86400);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(c, name);
	X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name);
	X509_set_pubkey(c, key);
	X509V3_set_ctx(&ctx, issuer ? issuer : c, c, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
	X509_add_ext(c, ext, -1);
	X509_EXTENSION_free(ext);
	sign_as(c, issuer_key, mode);
	X509_NAME_free(name);
	return c;
}

static void test_chain_signature_rules(void **state)
{
	static const struct {
		const char *name;
		enum sig_mode leaf_mode, ask_mode;
		long not_before_days, not_after_days; /* leaf validity relative to now */
		int expect;
		const char *msg; /* part of the reason */
	} cases[] = {
	        {"PSS SHA-384 salt 48 (AMD)", SIG_PSS_48, SIG_PSS_48, -1, 30, 0, NULL},
	        {"VCEK PKCS#1 v1.5", SIG_PKCS1, SIG_PSS_48, -1, 30, -EBADMSG, "sha384WithRSA"},
	        {"VCEK PSS salt 32", SIG_PSS_32, SIG_PSS_48, -1, 30, -EBADMSG, "salt length is 32"},
	        {"VCEK PSS SHA-256", SIG_PSS_SHA256, SIG_PSS_48, -1, 30, -EBADMSG, "not SHA-384"},
	        {"ASK PKCS#1 v1.5", SIG_PSS_48, SIG_PKCS1, -1, 30, -EBADMSG, "ASK signature by"},
	        {"ASK PSS salt 32", SIG_PSS_48, SIG_PSS_32, -1, 30, -EBADMSG, "salt length is 32"},
	        {"VCEK expired", SIG_PSS_48, SIG_PSS_48, -30, -1, -EKEYEXPIRED, "expired"},
	        {"VCEK not yet valid", SIG_PSS_48, SIG_PSS_48, 1, 30, -EKEYEXPIRED,
	         "not valid before"},
	};
	/* RSA-2048 keeps the test fast; the verifier does not depend on the key size. */
	EVP_PKEY *ark_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	EVP_PKEY *ask_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	X509 *ark = make_ca("Test ARK", ark_key, NULL, ark_key, SIG_PSS_48);
	struct snp_cert_chain *orig = chain_of(P_MILAN);
	uint8_t report[SNP_REPORT_SIZE];

	assert_non_null(ark_key);
	assert_non_null(ask_key);
	get_report(P_MILAN, report);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		X509 *ask = make_ca("Test ASK", ask_key, ark, ark_key, cases[i].ask_mode);
		X509 *leaf = X509_dup(orig->leaf);
		struct snp_cert_chain c = {.leaf = leaf, .ask = ask, .ark = ark};
		struct snp_trust_store *ts = NULL;
		struct skr_error err = {0};
		_cleanup_free_ char *pem = NULL;
		int r;

		X509_set_issuer_name(leaf, X509_get_subject_name(ask));
		X509_gmtime_adj(X509_getm_notBefore(leaf), cases[i].not_before_days * 86400);
		X509_gmtime_adj(X509_getm_notAfter(leaf), cases[i].not_after_days * 86400);
		sign_as(leaf, ask_key, cases[i].leaf_mode);

		assert_int_equal(snp_trust_store_new(&ts, NULL), 0);
		c.ask = NULL;
		c.leaf = NULL;
		assert_int_equal(snp_cert_chain_to_pem(&c, &pem, NULL), 0); /* the ARK alone */
		assert_int_equal(snp_trust_store_add_pem(ts, pem, strlen(pem), NULL), 0);
		assert_int_equal(snp_trust_store_count(ts), 1);
		c.ask = ask;
		c.leaf = leaf;
		r = snp_report_verify(report, sizeof(report), &c, ts, &err);
		if (r != cases[i].expect)
			fail_msg("%s: %d (%s), expected %d", cases[i].name, r, err.msg,
			         cases[i].expect);
		if (cases[i].msg && !strstr(err.msg, cases[i].msg))
			fail_msg("%s: reason '%s' lacks '%s'", cases[i].name, err.msg,
			         cases[i].msg);
		X509_free(leaf);
		X509_free(ask);
		snp_trust_store_free(ts);
	}
	snp_cert_chain_free(orig);
	X509_free(ark);
	EVP_PKEY_free(ark_key);
	EVP_PKEY_free(ask_key);
}

/* ----------------------------------------------------------------------------------------- */
/* Chain parsing errors */

static void test_chain_pem_errors(void **state)
{
	_cleanup_free_ char *milan = read_in(fx->dir[P_MILAN], "vcek.pem", NULL);
	_cleanup_free_ char *turin = read_in(fx->dir[P_TURIN], "vcek.pem", NULL);
	char two[8192];
	static const char garbage[] =
	        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
	static const char key_only[] =
	        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
	const struct {
		const char *name;
		const char *pem;
		int expect;
	} cases[] = {
	        {"empty", "", -EINVAL},
	        {"text without PEM", "hello", -EINVAL},
	        {"not a certificate block", key_only, -EINVAL},
	        {"malformed certificate", garbage, -EINVAL},
	        {"two different VCEKs", two, -EINVAL},
	        {"one VCEK twice", NULL, 0},
	};
	struct snp_cert_chain *c = NULL;
	struct snp_vcek_info info;

	snprintf(two, sizeof(two), "%s%s", milan, turin);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct skr_error err = {0};
		char buf[8192];
		const char *pem = cases[i].pem;
		int r;

		if (!pem) {
			snprintf(buf, sizeof(buf), "%s%s", milan, milan);
			pem = buf;
		}
		c = NULL;
		r = snp_cert_chain_from_pem(pem, strlen(pem), &c, &err);
		if (r != cases[i].expect)
			fail_msg("%s: %d (%s)", cases[i].name, r, err.msg);
		if (r < 0) {
			assert_null(c);
			assert_true(err.msg[0] != '\0');
		}
		snp_cert_chain_free(c);
	}

	/* A chain without a leaf has no leaf info; an ASK/ARK-only chain cannot verify. */
	{
		_cleanup_free_ char *ark = read_in(fx->dir[P_MILAN], "ark.pem", NULL);
		struct skr_error err = {0};
		uint8_t report[SNP_REPORT_SIZE];
		struct snp_trust_store *ts = store_of(P_MILAN);

		assert_int_equal(snp_cert_chain_from_pem(ark, strlen(ark), &c, &err), 0);
		assert_int_equal(snp_cert_chain_leaf_info(c, &info, &err), -ENOENT);
		get_report(P_MILAN, report);
		assert_int_equal(snp_report_verify(report, sizeof(report), c, ts, &err), -EINVAL);
		snp_cert_chain_free(c);
		snp_trust_store_free(ts);
	}

	/* Parsers with no error struct still fail (never 0 with nothing done). */
	{
		struct snp_trust_store *ts = NULL;
		struct snp_cert_table t = {0};
		static const uint8_t junk[] = {1, 2, 3};

		assert_int_equal(snp_trust_store_new(&ts, NULL), 0);
		assert_true(snp_trust_store_add_pem(ts, "garbage", 7, NULL) < 0);
		assert_int_equal(snp_trust_store_count(ts), 0);
		assert_true(snp_trust_store_add_file(ts, "/nonexistent/ark.pem", NULL) < 0);
		snp_trust_store_free(ts);
		assert_true(snp_cert_chain_from_pem("garbage", 7, &c, NULL) < 0);
		assert_true(snp_cert_table_add(&t, SNP_CERT_VCEK, junk, sizeof(junk), NULL) == 0);
		assert_true(snp_cert_chain_from_table(&t, &c, NULL) < 0);
		snp_cert_table_clear(&t);
	}

	/* An empty table has no chain. */
	{
		struct snp_cert_table t = {0};

		assert_int_equal(snp_cert_chain_from_table(&t, &c, NULL), -ENOENT);
	}
}

/* ----------------------------------------------------------------------------------------- */
/* Virtual platform files and refusals */

static void test_virtual_files(void **state)
{
	static const char *const files[] = {"ark.pem", "ask.pem", "vcek.pem", "vcek-key.pem",
	                                    "platform.json"};
	struct stat st;
	_cleanup_free_ char *json = read_in(fx->dir[P_MILAN], "platform.json", NULL);
	json_object *o = json_tokener_parse(json), *v;

	assert_int_equal(stat(fx->dir[P_MILAN], &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		_cleanup_free_ char *path = path_join(fx->dir[P_MILAN], files[i]);

		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "product", &v));
	assert_string_equal(json_object_get_string(v), "Milan");
	assert_true(json_object_object_get_ex(o, "policy", &v));
	assert_string_equal(json_object_get_string(v), "0000000000030000");
	assert_true(json_object_object_get_ex(o, "vlek", &v));
	assert_false(json_object_get_boolean(v));
	json_object_put(o);

	/* The certificates say what they are. */
	{
		struct snp_cert_chain *c = chain_of(P_MILAN);
		char subj[256];

		assert_non_null(
		        strstr(snp_cert_subject(c->leaf, subj, sizeof(subj)), "CN=SEV-VCEK"));
		assert_non_null(strstr(subj, "not AMD"));
		assert_non_null(
		        strstr(snp_cert_subject(c->ask, subj, sizeof(subj)), "CN=SEV-Milan"));
		assert_non_null(
		        strstr(snp_cert_subject(c->ark, subj, sizeof(subj)), "CN=ARK-Milan"));
		assert_int_equal(ASN1_INTEGER_get(X509_get0_serialNumber(c->leaf)), 0);
		assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(c->ark)), 4096);
		snp_cert_chain_free(c);
	}
}

static void test_virtual_refusals(void **state)
{
	struct snp_virtual_params p;
	struct skr_error err = {0};
	struct snp_virtual *v = NULL;
	uint8_t report[SNP_REPORT_SIZE], rd[64] = {0};
	_cleanup_free_ char *before = read_in(fx->dir[P_MILAN], "vcek.pem", NULL);
	_cleanup_free_ char *after = NULL;
	char dir[256];

	/* Never overwrite a platform. */
	snp_virtual_params_default(&p);
	assert_int_equal(snp_virtual_create(fx->dir[P_MILAN], &p, &err), -EEXIST);
	after = read_in(fx->dir[P_MILAN], "vcek.pem", NULL);
	assert_string_equal(before, after);

	/* Bad parameters are refused before any key is generated. */
	snprintf(dir, sizeof(dir), "%s/bad", fx->root);
	p.report_version = 6;
	assert_int_equal(snp_virtual_create(dir, &p, &err), -EINVAL);
	snp_virtual_params_default(&p);
	p.policy = 0x10000;
	assert_int_equal(snp_virtual_create(dir, &p, &err), -EINVAL);
	snp_virtual_params_default(&p);
	p.product = SNP_PRODUCT_TURIN;
	p.chip_id[20] = 1;
	assert_int_equal(snp_virtual_create(dir, &p, &err), -EINVAL);
	snp_virtual_params_default(&p);
	p.product = SNP_PRODUCT_UNKNOWN;
	assert_int_equal(snp_virtual_create(dir, &p, &err), -EINVAL);

	/* Opening: a missing directory, a key that is not the VCEK's. */
	assert_true(snp_virtual_open(dir, &v, &err) < 0);
	assert_null(v);
	snprintf(dir, sizeof(dir), "%s/mixed", fx->root);
	assert_int_equal(mkdir(dir, 0700), 0);
	copy_file(fx->dir[P_MILAN], dir, "platform.json");
	copy_file(fx->dir[P_MILAN], dir, "ark.pem");
	copy_file(fx->dir[P_MILAN], dir, "ask.pem");
	copy_file(fx->dir[P_MILAN], dir, "vcek.pem");
	{
		_cleanup_free_ char *path = path_join(dir, "vcek-key.pem");
		size_t len;
		_cleanup_free_ char *key = read_in(fx->dir[P_TURIN], "vcek-key.pem", &len);

		assert_int_equal(write_file_atomic(path, key, len, 0600), 0);
	}
	skr_error_clear(&err);
	assert_int_equal(snp_virtual_open(dir, &v, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "does not belong"));

	/* The same mixed-up platform, and a corrupt ark.pem, with no error struct: no crash. */
	assert_int_equal(snp_virtual_open(dir, &v, NULL), -EINVAL);
	assert_null(v);
	{
		_cleanup_free_ char *path = path_join(dir, "ark.pem");

		assert_int_equal(write_file_atomic(path, "garbage", 7, 0600), 0);
		assert_true(snp_virtual_open(dir, &v, NULL) < 0);
		assert_null(v);
		skr_error_clear(&err);
		assert_true(snp_virtual_open(dir, &v, &err) < 0);
		assert_non_null(strstr(err.msg, "ark.pem"));
	}

	/* An empty directory name is not "the current directory" nor "/". */
	skr_error_clear(&err);
	snp_virtual_params_default(&p);
	assert_int_equal(snp_virtual_create("", &p, &err), -EINVAL);
	assert_int_equal(snp_virtual_open("", &v, NULL), -EINVAL);

	/* VMPL is 0..3. */
	assert_int_equal(snp_virtual_get_report(fx->v[P_MILAN], rd, 4, report, &err), -EINVAL);
	assert_int_equal(snp_virtual_get_report(fx->v[P_MILAN], rd, 3, report, &err), 0);
	assert_int_equal(report[0x30], 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_leaf_text_printable_only),
	        cmocka_unit_test(test_amd_roots),
	        cmocka_unit_test(test_chain_verify_trusted),
	        cmocka_unit_test(test_virtual_reports_verify),
	        cmocka_unit_test(test_report_mutations),
	        cmocka_unit_test(test_error_messages),
	        cmocka_unit_test(test_tcb_mismatch_resigned),
	        cmocka_unit_test(test_turin_hwid_is_8_bytes),
	        cmocka_unit_test(test_wrong_trust),
	        cmocka_unit_test(test_chain_shuffled_and_completed),
	        cmocka_unit_test(test_vlek),
	        cmocka_unit_test(test_leaf_info),
	        cmocka_unit_test(test_spl_above_127),
	        cmocka_unit_test(test_chain_signature_rules),
	        cmocka_unit_test(test_chain_pem_errors),
	        cmocka_unit_test(test_virtual_files),
	        cmocka_unit_test(test_virtual_refusals),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
