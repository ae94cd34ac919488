/* SPDX-License-Identifier: MIT */
/*
 * devcloud's claims (protocols.md §1.4): a report with known field values must yield exactly
 * these claim values — lower-case hex of the raw bytes, integers as numbers, policy bits as
 * booleans, *-svn from REPORTED_TCB in the product's layout (Turin differs; microcode ≥ 128).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cleanup.h"
#include "devcloud.h"

static void fill(uint8_t *p, size_t len, uint8_t start)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(start + i);
}

static void known_report(struct snp_report *r)
{
	memset(r, 0, sizeof(*r));
	r->version = 3;
	r->guest_svn = 7;
	r->policy = 0x30000; /* SMT + reserved bit 17 */
	fill(r->family_id, sizeof(r->family_id), 0xA0);
	fill(r->image_id, sizeof(r->image_id), 0x10);
	r->vmpl = 0;
	r->signature_algo = 1;
	fill(r->report_data, sizeof(r->report_data), 0x00);
	fill(r->measurement, sizeof(r->measurement), 0xC0);
	fill(r->host_data, sizeof(r->host_data), 0xE0);
	fill(r->id_key_digest, sizeof(r->id_key_digest), 0x30);
	memset(r->author_key_digest, 0, sizeof(r->author_key_digest));
	fill(r->report_id, sizeof(r->report_id), 0x5A);
	/* Milan layout: bl=3 tee=0 snp=8 ucode=0xD3 (211 ≥ 128) */
	r->reported_tcb = 0xD308000000000003ull;
	r->current_tcb = 0x0101000000000101ull; /* different: must not be used */
	r->cpuid_fam_id = 0x19;
}

static const char *str_claim(json_object *c, const char *key)
{
	json_object *v = NULL;

	assert_true(json_object_object_get_ex(c, key, &v));
	assert_true(json_object_is_type(v, json_type_string));
	return json_object_get_string(v);
}

static int64_t int_claim(json_object *c, const char *key)
{
	json_object *v = NULL;

	assert_true(json_object_object_get_ex(c, key, &v));
	assert_true(json_object_is_type(v, json_type_int));
	return json_object_get_int64(v);
}

static bool bool_claim(json_object *c, const char *key)
{
	json_object *v = NULL;

	assert_true(json_object_object_get_ex(c, key, &v));
	assert_true(json_object_is_type(v, json_type_boolean));
	return json_object_get_boolean(v);
}

static void test_report_claims_milan(void **state)
{
	struct snp_report r;
	json_object *c = json_object_new_object();

	(void)state;
	known_report(&r);
	assert_int_equal(devcloud_claims_add_report(c, &r, SNP_PRODUCT_MILAN), 0);

	assert_string_equal(str_claim(c, "x-ms-sevsnpvm-familyId"),
	                    "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
	assert_string_equal(str_claim(c, "x-ms-sevsnpvm-imageId"),
	                    "101112131415161718191a1b1c1d1e1f");
	assert_string_equal(str_claim(c, "x-ms-sevsnpvm-launchmeasurement"),
	                    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
	                    "e0e1e2e3e4e5e6e7e8e9eaebecedeeef");
	assert_string_equal(str_claim(c, "x-ms-sevsnpvm-hostdata"),
	                    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
	assert_string_equal(str_claim(c, "x-ms-sevsnpvm-idkeydigest"),
	                    "303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f"
	                    "505152535455565758595a5b5c5d5e5f");
	assert_string_equal(str_claim(c, "x-ms-sevsnpvm-authorkeydigest"),
	                    "000000000000000000000000000000000000000000000000000000000000000000"
	                    "000000000000000000000000000000");
	assert_string_equal(str_claim(c, "x-ms-sevsnpvm-reportid"),
	                    "5a5b5c5d5e5f606162636465666768696a6b6c6d6e6f70717273747576777879");
	assert_string_equal(str_claim(c, "x-ms-sevsnpvm-reportdata"),
	                    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	                    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f");

	assert_int_equal(int_claim(c, "x-ms-sevsnpvm-guestsvn"), 7);
	assert_int_equal(int_claim(c, "x-ms-sevsnpvm-vmpl"), 0);
	/* From REPORTED_TCB, not CURRENT_TCB; microcode 211 stays 211. */
	assert_int_equal(int_claim(c, "x-ms-sevsnpvm-bootloader-svn"), 3);
	assert_int_equal(int_claim(c, "x-ms-sevsnpvm-tee-svn"), 0);
	assert_int_equal(int_claim(c, "x-ms-sevsnpvm-snpfw-svn"), 8);
	assert_int_equal(int_claim(c, "x-ms-sevsnpvm-microcode-svn"), 211);

	assert_false(bool_claim(c, "x-ms-sevsnpvm-is-debuggable"));
	assert_false(bool_claim(c, "x-ms-sevsnpvm-migration-allowed"));
	assert_true(bool_claim(c, "x-ms-sevsnpvm-smt-allowed"));
	json_object_put(c);
}

/* Each policy bit maps to its own boolean and nothing else. */
static void test_policy_bits(void **state)
{
	static const struct {
		uint64_t policy;
		bool debug, migrate, smt;
	} cases[] = {
	        {0x20000, false, false, false},
	        {0x20000 | SNP_POLICY_DEBUG, true, false, false},
	        {0x20000 | SNP_POLICY_MIGRATE_MA, false, true, false},
	        {0x20000 | SNP_POLICY_SMT, false, false, true},
	        {0x20000 | SNP_POLICY_DEBUG | SNP_POLICY_MIGRATE_MA | SNP_POLICY_SMT, true, true,
	         true},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct snp_report r;
		json_object *c = json_object_new_object();

		known_report(&r);
		r.policy = cases[i].policy;
		assert_int_equal(devcloud_claims_add_report(c, &r, SNP_PRODUCT_MILAN), 0);
		assert_int_equal(bool_claim(c, "x-ms-sevsnpvm-is-debuggable"), cases[i].debug);
		assert_int_equal(bool_claim(c, "x-ms-sevsnpvm-migration-allowed"),
		                 cases[i].migrate);
		assert_int_equal(bool_claim(c, "x-ms-sevsnpvm-smt-allowed"), cases[i].smt);
		json_object_put(c);
	}
}

/* The same REPORTED_TCB bytes mean different SVNs per product layout (§1.2). */
static void test_svn_per_product(void **state)
{
	static const struct {
		enum snp_product product;
		uint64_t tcb;
		int bl, tee, snp, ucode;
	} cases[] = {
	        /* Milan/Genoa: bl byte0, tee byte1, snp byte6, ucode byte7 */
	        {SNP_PRODUCT_MILAN, 0x7308000000000003ull, 3, 0, 8, 0x73},
	        {SNP_PRODUCT_GENOA, 0xD316000000000209ull, 9, 2, 0x16, 211},
	        {SNP_PRODUCT_MILAN, 0xFF800000000081FEull, 0xFE, 0x81, 0x80, 255},
	        /* Turin: fmc byte0, bl byte1, tee byte2, snp byte3, ucode byte7 */
	        {SNP_PRODUCT_TURIN, 0x5200000004010201ull, 2, 1, 4, 0x52},
	        {SNP_PRODUCT_TURIN, 0x90000000A0B0C0D0ull, 0xC0, 0xB0, 0xA0, 144},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct snp_report r;
		json_object *c = json_object_new_object();

		known_report(&r);
		r.reported_tcb = cases[i].tcb;
		assert_int_equal(devcloud_claims_add_report(c, &r, cases[i].product), 0);
		assert_int_equal(int_claim(c, "x-ms-sevsnpvm-bootloader-svn"), cases[i].bl);
		assert_int_equal(int_claim(c, "x-ms-sevsnpvm-tee-svn"), cases[i].tee);
		assert_int_equal(int_claim(c, "x-ms-sevsnpvm-snpfw-svn"), cases[i].snp);
		assert_int_equal(int_claim(c, "x-ms-sevsnpvm-microcode-svn"), cases[i].ucode);
		json_object_put(c);
	}
}

static void test_vmpl_and_guest_svn_large(void **state)
{
	struct snp_report r;
	json_object *c = json_object_new_object();

	(void)state;
	known_report(&r);
	r.vmpl = 3;
	r.guest_svn = 0xFFFFFFFFu; /* a u32: must not turn negative */
	assert_int_equal(devcloud_claims_add_report(c, &r, SNP_PRODUCT_MILAN), 0);
	assert_int_equal(int_claim(c, "x-ms-sevsnpvm-vmpl"), 3);
	assert_int_equal(int_claim(c, "x-ms-sevsnpvm-guestsvn"), 4294967295LL);
	json_object_put(c);
}

/* The envelope claims of one attestation, and the documented policy hash. */
static void test_claims_build(void **state)
{
	struct devcloud_evidence ev = {0};
	json_object *c = NULL, *rt = NULL;
	_cleanup_free_ char *hash = NULL;

	(void)state;
	known_report(&ev.report);
	ev.product = SNP_PRODUCT_MILAN;
	ev.runtime = json_tokener_parse("{\"keys\":[{\"kty\":\"RSA\"}],\"n\":1}");
	assert_non_null(ev.runtime);

	/* printf 'version= 1.0;authorizationrules{=> permit();};issuancerules{};' |
	 * openssl dgst -sha256 -binary | basenc --base64url | tr -d = */
	assert_int_equal(devcloud_policy_hash(DEVCLOUD_POLICY_TEXT, &hash), 0);
	assert_string_equal(hash, "t16n5Z6hZNuxek-KIba0dXJkVKf9ci8N52Cxdm5w_9E");

	assert_int_equal(devcloud_claims_build(&ev, "azure-compliant-uvm", hash, "12345", &c), 0);
	assert_string_equal(str_claim(c, "x-ms-ver"), "1.0");
	assert_string_equal(str_claim(c, "x-ms-attestation-type"), "sevsnpvm");
	assert_string_equal(str_claim(c, "x-ms-compliance-status"), "azure-compliant-uvm");
	assert_string_equal(str_claim(c, "x-ms-policy-hash"), hash);
	assert_string_equal(str_claim(c, "nonce"), "12345");
	assert_true(json_object_object_get_ex(c, "x-ms-runtime", &rt));
	assert_true(json_object_equal(rt, ev.runtime));
	assert_int_equal(int_claim(c, "x-ms-sevsnpvm-microcode-svn"), 211);
	json_object_put(c);

	/* No nonce, no runtime: no such claims. */
	devcloud_evidence_clear(&ev);
	known_report(&ev.report);
	ev.product = SNP_PRODUCT_MILAN;
	assert_int_equal(devcloud_claims_build(&ev, "azure-signed-katacc-uvm", hash, NULL, &c), 0);
	assert_false(json_object_object_get_ex(c, "nonce", NULL));
	assert_false(json_object_object_get_ex(c, "x-ms-runtime", NULL));
	assert_string_equal(str_claim(c, "x-ms-compliance-status"), "azure-signed-katacc-uvm");
	json_object_put(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_report_claims_milan),
	        cmocka_unit_test(test_policy_bits),
	        cmocka_unit_test(test_svn_per_product),
	        cmocka_unit_test(test_vmpl_and_guest_svn_large),
	        cmocka_unit_test(test_claims_build),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
