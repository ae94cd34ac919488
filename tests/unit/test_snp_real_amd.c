/* SPDX-License-Identifier: MIT */
/*
 * Real AMD data: a Milan VCEK issued by AMD's KDS (tests/data/thim_milan_real.json) against
 * AMD's published Milan root. Proves the extension parser and the RSA-PSS chain check on
 * certificates our own generator did not make.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "skr.h"

struct real {
	struct snp_thim thim;
	struct snp_cert_chain *chain;
};

static char *data_path(const char *env, const char *rel)
{
	const char *base = getenv(env);
	char *p;

	assert_non_null(base);
	assert_true(asprintf(&p, "%s/%s", base, rel) > 0);
	return p;
}

static int setup(void **state)
{
	_cleanup_free_ char *path = data_path("SKR_SOURCE_ROOT", "tests/data/thim_milan_real.json");
	_cleanup_free_ char *json = NULL, *pem = NULL;
	struct skr_error err = {0};
	struct real *r = calloc(1, sizeof(*r));
	size_t len;

	assert_non_null(r);
	assert_int_equal(read_file(path, 1 << 20, &json, &len), 0);
	assert_int_equal(snp_thim_parse(json, len, &r->thim, &err), 0);
	assert_true(asprintf(&pem, "%s%s", r->thim.vcek_pem, r->thim.chain_pem) > 0);
	assert_int_equal(snp_cert_chain_from_pem(pem, strlen(pem), &r->chain, &err), 0);
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	struct real *r = *state;

	snp_cert_chain_free(r->chain);
	snp_thim_clear(&r->thim);
	free(r);
	return 0;
}

static void test_real_vcek_extensions(void **state)
{
	struct real *r = *state;
	struct snp_vcek_info info;
	struct skr_error err = {0};
	static const uint8_t hwid_prefix[] = {0xb1, 0x21, 0x64, 0xb4, 0x5a, 0x2a, 0x27, 0x42};

	assert_true(snp_cert_chain_is_complete(r->chain));
	assert_int_equal(snp_cert_chain_leaf_info(r->chain, &info, &err), 0);
	assert_false(info.is_vlek);
	assert_int_equal(info.struct_version, 0);
	assert_string_equal(info.product_name, "Milan-B0");
	assert_int_equal(info.product, SNP_PRODUCT_MILAN);
	assert_int_equal(info.tcb.bootloader, 3);
	assert_int_equal(info.tcb.tee, 0);
	assert_int_equal(info.tcb.snp, 8);
	assert_int_equal(info.tcb.microcode, 0x73);
	/* The extensions and THIM's tcbm must describe the same TCB (§3.4). */
	assert_int_equal(info.tcb_raw, UINT64_C(0x7308000000000003));
	assert_int_equal(info.tcb_raw, r->thim.tcbm);
	assert_int_equal(info.hwid_len, 64);
	assert_memory_equal(info.hwid, hwid_prefix, sizeof(hwid_prefix));
}

/*
 * A report that matches the real VCEK's TCB and hwID but carries no valid signature. The
 * verifier checks TCB, hwID and the chain before the ECDSA signature, so the outcome tells which
 * stage stopped it: -EBADMSG on the report signature means the AMD chain was accepted.
 */
static void make_report(const struct snp_vcek_info *info, uint8_t out[SNP_REPORT_SIZE])
{
	struct snp_report rep = {0};

	rep.version = 2;
	rep.policy = UINT64_C(0x30000);
	rep.signature_algo = SNP_SIG_ALGO_ECDSA_P384_SHA384;
	rep.reported_tcb = info->tcb_raw;
	rep.current_tcb = info->tcb_raw;
	memcpy(rep.chip_id, info->hwid, 64);
	rep.signature_r[0] = 1;
	rep.signature_s[0] = 1;
	snp_report_serialize(&rep, out);
}

static void test_real_chain_roots_in_amd_milan(void **state)
{
	struct real *r = *state;
	_cleanup_free_ char *milan = data_path("SKR_TESTDATA", "amd_roots/ask_ark_milan.pem");
	struct snp_trust_store *ts = NULL;
	struct snp_vcek_info info;
	struct skr_error err = {0};
	uint8_t report[SNP_REPORT_SIZE];

	assert_int_equal(snp_cert_chain_leaf_info(r->chain, &info, &err), 0);
	make_report(&info, report);
	assert_int_equal(snp_trust_store_new(&ts, &err), 0);
	assert_int_equal(snp_trust_store_add_file(ts, milan, &err), 0);
	assert_int_equal(snp_report_verify(report, sizeof(report), r->chain, ts, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "report signature"));
	snp_trust_store_free(ts);
}

static void test_real_chain_refused_by_other_roots(void **state)
{
	static const char *const others[] = {"amd_roots/ask_ark_genoa.pem",
	                                     "amd_roots/ask_ark_turin_vcek.pem"};
	struct real *r = *state;
	struct snp_vcek_info info;
	uint8_t report[SNP_REPORT_SIZE];

	assert_int_equal(snp_cert_chain_leaf_info(r->chain, &info, NULL), 0);
	make_report(&info, report);
	for (size_t i = 0; i < ELEMENTSOF(others); i++) {
		_cleanup_free_ char *path = data_path("SKR_TESTDATA", others[i]);
		struct snp_trust_store *ts = NULL;
		struct skr_error err = {0};

		assert_int_equal(snp_trust_store_new(&ts, &err), 0);
		assert_int_equal(snp_trust_store_add_file(ts, path, &err), 0);
		assert_int_equal(snp_report_verify(report, sizeof(report), r->chain, ts, &err),
		                 -EPERM);
		snp_trust_store_free(ts);
	}
}

static void test_real_tcb_mismatch_is_stale(void **state)
{
	struct real *r = *state;
	_cleanup_free_ char *milan = data_path("SKR_TESTDATA", "amd_roots/ask_ark_milan.pem");
	struct snp_trust_store *ts = NULL;
	struct snp_vcek_info info;
	struct skr_error err = {0};
	uint8_t report[SNP_REPORT_SIZE];
	struct snp_report rep;

	assert_int_equal(snp_cert_chain_leaf_info(r->chain, &info, &err), 0);
	make_report(&info, report);
	assert_int_equal(snp_report_parse(report, sizeof(report), &rep, &err), 0);
	rep.reported_tcb = UINT64_C(0xd315000000000004); /* microcode 211, snp 21 */
	snp_report_serialize(&rep, report);
	assert_int_equal(snp_trust_store_new(&ts, &err), 0);
	assert_int_equal(snp_trust_store_add_file(ts, milan, &err), 0);
	assert_int_equal(snp_report_verify(report, sizeof(report), r->chain, ts, &err), -ESTALE);
	assert_non_null(strstr(err.msg, "7308000000000003"));
	assert_non_null(strstr(err.msg, "d315000000000004"));
	snp_trust_store_free(ts);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_real_vcek_extensions),
	        cmocka_unit_test(test_real_chain_roots_in_amd_milan),
	        cmocka_unit_test(test_real_chain_refused_by_other_roots),
	        cmocka_unit_test(test_real_tcb_mismatch_is_stale),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
