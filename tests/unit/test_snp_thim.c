/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cleanup.h"
#include "fileio.h"
#include "skr.h"

#define PEM_A "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n"

static void test_real_milan_document(void **state)
{
	_cleanup_free_ char *path = NULL, *json = NULL;
	struct snp_thim t;
	struct skr_error err = {0};
	size_t len;

	(void)state;
	assert_true(asprintf(&path, "%s/tests/data/thim_milan_real.json",
	                     getenv("SKR_SOURCE_ROOT")) > 0);
	assert_int_equal(read_file(path, 1 << 20, &json, &len), 0);
	assert_int_equal(snp_thim_parse(json, len, &t, &err), 0);
	assert_int_equal(t.tcbm, UINT64_C(0x7308000000000003));
	assert_string_equal(t.tcbm_str, "7308000000000003");
	assert_int_equal(t.cache_control, 86400);
	assert_int_equal(strncmp(t.vcek_pem, "-----BEGIN CERTIFICATE-----", 27), 0);
	/* ASK then ARK */
	assert_non_null(strstr(strstr(t.chain_pem, "BEGIN CERTIFICATE") + 1, "BEGIN CERTIFICATE"));
	snp_thim_clear(&t);
	assert_null(t.vcek_pem);
	snp_thim_clear(&t); /* idempotent */
}

static void test_valid_variants(void **state)
{
	static const struct {
		const char *json;
		uint64_t tcbm;
		long cache_control;
	} cases[] = {
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":\"DB18000000000004\",\"certificateChain\":\"" PEM_A
	         "\",\"cacheControl\":3600}",
	         UINT64_C(0xdb18000000000004), 3600},
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":\"0000000000000000\",\"certificateChain\":\"" PEM_A "\"}",
	         0, 0},
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":\"ffffffffffffffff\",\"certificateChain\":\"" PEM_A
	         "\",\"cacheControl\":\"0\",\"extra\":[1,2]}\n",
	         UINT64_MAX, 0},
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":\"0123456789abcdef\",\"certificateChain\":\"" PEM_A
	         "\",\"cacheControl\":null}",
	         UINT64_C(0x0123456789abcdef), 0},
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct snp_thim t;
		struct skr_error err = {0};

		assert_int_equal(snp_thim_parse(cases[i].json, strlen(cases[i].json), &t, &err), 0);
		assert_int_equal(t.tcbm, cases[i].tcbm);
		assert_int_equal(t.cache_control, cases[i].cache_control);
		assert_int_equal(strlen(t.tcbm_str), 16);
		snp_thim_clear(&t);
	}
}

static void test_invalid_documents(void **state)
{
	static const struct {
		const char *json;
		int code;
		const char *mention; /* the error must name this */
	} cases[] = {
	        {"", -EINVAL, "JSON"},
	        {"[]", -EINVAL, "object"},
	        {"{\"tcbm\":\"7308000000000003\",\"certificateChain\":\"" PEM_A "\"}", -ENOENT,
	         "vcekCert"},
	        {"{\"vcekCert\":7,\"tcbm\":\"7308000000000003\",\"certificateChain\":\"" PEM_A
	         "\"}",
	         -EINVAL, "vcekCert"},
	        {"{\"vcekCert\":\"not "
	         "pem\",\"tcbm\":\"7308000000000003\",\"certificateChain\":\"" PEM_A "\"}",
	         -EINVAL, "vcekCert"},
	        {"{\"vcekCert\":\"" PEM_A "\",\"certificateChain\":\"" PEM_A "\"}", -ENOENT,
	         "tcbm"},
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":7308000000000003,\"certificateChain\":\"" PEM_A "\"}",
	         -EINVAL, "tcbm"},
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":\"730800000000003\",\"certificateChain\":\"" PEM_A "\"}",
	         -EINVAL, "tcbm"},
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":\"73080000000000031\",\"certificateChain\":\"" PEM_A "\"}",
	         -EINVAL, "tcbm"},
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":\"730800000000000g\",\"certificateChain\":\"" PEM_A "\"}",
	         -EINVAL, "tcbm"},
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":\"+308000000000003\",\"certificateChain\":\"" PEM_A "\"}",
	         -EINVAL, "tcbm"},
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":\" 308000000000003\",\"certificateChain\":\"" PEM_A "\"}",
	         -EINVAL, "tcbm"},
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":\"0x08000000000003\",\"certificateChain\":\"" PEM_A "\"}",
	         -EINVAL, "tcbm"},
	        {"{\"vcekCert\":\"" PEM_A "\",\"tcbm\":\"7308000000000003\"}", -ENOENT,
	         "certificateChain"},
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":\"7308000000000003\",\"certificateChain\":\"\"}",
	         -EINVAL, "certificateChain"},
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":\"7308000000000003\",\"certificateChain\":\"" PEM_A
	         "\",\"cacheControl\":\"-1\"}",
	         -EINVAL, "cacheControl"},
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":\"7308000000000003\",\"certificateChain\":\"" PEM_A
	         "\",\"cacheControl\":\"12abc\"}",
	         -EINVAL, "cacheControl"},
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":\"7308000000000003\",\"certificateChain\":\"" PEM_A
	         "\",\"cacheControl\":-5}",
	         -EINVAL, "cacheControl"},
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":\"7308000000000003\",\"certificateChain\":\"" PEM_A
	         "\",\"cacheControl\":1.5}",
	         -EINVAL, "cacheControl"},
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":\"7308000000000003\",\"certificateChain\":\"" PEM_A
	         "\",\"cacheControl\":\"99999999999999999999999\"}",
	         -EINVAL, "cacheControl"},
	        {"{\"vcekCert\":\"" PEM_A
	         "\",\"tcbm\":\"7308000000000003\",\"certificateChain\":\"" PEM_A "\"} {}",
	         -EINVAL, "JSON"},
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct snp_thim t;
		struct skr_error err = {0};
		int r = snp_thim_parse(cases[i].json, strlen(cases[i].json), &t, &err);

		if (r != cases[i].code || !strstr(err.msg, cases[i].mention))
			fail_msg("case %zu: got %d '%s', want %d naming '%s'", i, r, err.msg,
			         cases[i].code, cases[i].mention);
		assert_null(t.vcek_pem);
		assert_null(t.chain_pem);
		/* The same failure, the same code, with no error struct to fill. */
		assert_int_equal(snp_thim_parse(cases[i].json, strlen(cases[i].json), &t, NULL),
		                 cases[i].code);
		assert_null(t.vcek_pem);
		assert_null(t.chain_pem);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_real_milan_document),
	        cmocka_unit_test(test_valid_variants),
	        cmocka_unit_test(test_invalid_documents),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
