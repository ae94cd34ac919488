/* SPDX-License-Identifier: MIT */
/*
 * MAA attest request (protocols.md §4.1): the body we build must be byte-identical to the Go
 * anchor's, and the service-side parser must accept every spelling MAA accepts while naming the
 * field in each refusal.
 */
#include <errno.h>
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
#include "skr.h"

/*
 * The anchor's body for: report = 00 01 02 03 fb ff bf, a one-line PEM "chain", reference info
 * (standard base64 "0oRZ+/8=", as in the security context), runtime data {"keys":[]} and nonce
 * 1234567890123456789. Written out by hand from Go's encoding rules: base64.URLEncoding (URL
 * alphabet WITH padding) at every level, json.Marshal field order report, runtimeData,
 * initTimeData, nonce (a number). Decoded, "report" is
 * {"SnpReport":"AAECA_v_vw==","VcekCertChain":"LS0t…Qo=","Endorsements":"eyJVdm0iOlsiMG9SWi1fOD0iXX0="}
 * and Endorsements is {"Uvm":["0oRZ-_8="]}.
 */
static const uint8_t fixture_report[] = {0x00, 0x01, 0x02, 0x03, 0xfb, 0xff, 0xbf};
static const char fixture_chain[] =
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
static const char fixture_reference_info[] = "0oRZ+/8=";
static const char fixture_runtime[] = "{\"keys\":[]}";
static const uint64_t fixture_nonce = UINT64_C(1234567890123456789);
static const char fixture_body[] =
        "{\"report\":\"eyJTbnBSZXBvcnQiOiJBQUVDQV92X3Z3PT0iLCJWY2VrQ2VydENoYWluIjoiTFMwdExTMUNSVW"
        "RKVGlCRFJWSlVTVVpKUTBGVVJTMHRMUzB0Q2sxSlNVSUtMUzB0TFMxRlRrUWdRMFZTVkVsR1NVTkJWRVV0TFMw"
        "dExRbz0iLCJFbmRvcnNlbWVudHMiOiJleUpWZG0waU9sc2lNRzlTV2kxZk9EMGlYWDA9In0=\","
        "\"runtimeData\":{\"data\":\"eyJrZXlzIjpbXX0=\",\"dataType\":\"JSON\"},"
        "\"initTimeData\":{\"data\":\"\",\"dataType\":\"\"},"
        "\"nonce\":1234567890123456789}";

static void test_build_matches_anchor(void **state)
{
	_cleanup_free_ char *body = NULL;
	struct skr_error err = {0};

	assert_int_equal(maa_request_build(fixture_report, sizeof(fixture_report), fixture_chain,
	                                   fixture_reference_info, (const uint8_t *)fixture_runtime,
	                                   strlen(fixture_runtime), fixture_nonce, &body, &err),
	                 0);
	assert_string_equal(body, fixture_body);
}

static void test_parse_anchor_fixture(void **state)
{
	struct maa_request req;
	struct skr_error err = {0};

	assert_int_equal(maa_request_parse(fixture_body, strlen(fixture_body), &req, &err), 0);
	assert_int_equal(req.report_len, sizeof(fixture_report));
	assert_memory_equal(req.report, fixture_report, sizeof(fixture_report));
	assert_int_equal(req.vcek_cert_chain_len, strlen(fixture_chain));
	assert_string_equal(req.vcek_cert_chain, fixture_chain);
	assert_string_equal(req.endorsements, "{\"Uvm\":[\"0oRZ-_8=\"]}");
	assert_int_equal(req.runtime_data_len, strlen(fixture_runtime));
	assert_memory_equal(req.runtime_data, fixture_runtime, strlen(fixture_runtime));
	assert_string_equal(req.runtime_data_type, "JSON");
	assert_int_equal(req.init_data_len, 0);
	assert_string_equal(req.init_data_type, "");
	assert_string_equal(req.nonce, "1234567890123456789");
	maa_request_clear(&req);
	assert_null(req.report);
}

static void test_round_trip(void **state)
{
	static const uint64_t nonces[] = {0, 1, UINT64_C(9223372036854775807),
	                                  UINT64_C(9223372036854775808), UINT64_MAX - 1};
	static const char runtime[] =
	        "{\"keys\":[{\"e\":\"AQAB\",\"key_ops\":[\"encrypt\"],\"kid\":\"x/y+z\","
	        "\"kty\":\"RSA\",\"n\":\"<>&\\u00e9\"}]}";
	uint8_t report[SNP_REPORT_SIZE];
	_cleanup_free_ char *chain = NULL;

	for (size_t i = 0; i < sizeof(report); i++)
		report[i] = (uint8_t)(i * 7 + 3);
	/* A chain of realistic size with every byte value PEM can hold. */
	chain = malloc(6001);
	assert_non_null(chain);
	for (size_t i = 0; i < 6000; i++)
		chain[i] = (char)(32 + i % 95);
	chain[6000] = '\0';

	for (size_t i = 0; i < ELEMENTSOF(nonces); i++) {
		_cleanup_free_ char *body = NULL, *expect_nonce = NULL;
		struct maa_request req;
		struct skr_error err = {0};

		assert_int_equal(
		        maa_request_build(report, sizeof(report), chain,
		                          i % 2 ? NULL : "0oRZ+/8=", (const uint8_t *)runtime,
		                          strlen(runtime), nonces[i], &body, &err),
		        0);
		assert_int_equal(maa_request_parse(body, strlen(body), &req, &err), 0);
		assert_int_equal(req.report_len, sizeof(report));
		assert_memory_equal(req.report, report, sizeof(report));
		assert_string_equal(req.vcek_cert_chain, chain);
		if (i % 2)
			assert_null(req.endorsements);
		else
			assert_string_equal(req.endorsements, "{\"Uvm\":[\"0oRZ-_8=\"]}");
		assert_int_equal(req.runtime_data_len, strlen(runtime));
		assert_memory_equal(req.runtime_data, runtime, strlen(runtime));
		assert_string_equal(req.runtime_data_type, "JSON");
		assert_true(asprintf(&expect_nonce, "%llu", (unsigned long long)nonces[i]) > 0);
		assert_string_equal(req.nonce, expect_nonce);
		maa_request_clear(&req);
	}
}

static void test_build_rejects(void **state)
{
	uint8_t report[4] = {1, 2, 3, 4};
	_cleanup_free_ char *body = NULL;
	struct skr_error err = {0};

	assert_int_equal(
	        maa_request_build(report, sizeof(report), "", NULL, NULL, 0, 1, &body, &err),
	        -EINVAL);
	assert_non_null(strstr(err.msg, "certificate chain"));
	skr_error_clear(&err);
	assert_int_equal(maa_request_build(report, sizeof(report), fixture_chain, "not base64!",
	                                   NULL, 0, 1, &body, &err),
	                 -EINVAL);
	assert_non_null(strstr(err.msg, "reference-info-base64"));
	skr_error_clear(&err);
	assert_int_equal(maa_request_build(NULL, 0, fixture_chain, NULL, NULL, 0, 1, &body, &err),
	                 -EINVAL);
	assert_null(body);
}

/* ---------------------------------------------------------------------------------------------
 * Bodies spelled by hand
 * ------------------------------------------------------------------------------------------- */

static char *enc(const void *data, size_t len, enum b64_variant v)
{
	char *out = NULL;

	assert_int_equal(b64_encode(data, len, v, &out), 0);
	return out;
}

static char *encs(const char *s, enum b64_variant v)
{
	return enc(s, strlen(s), v);
}

/* {"report":"<@v of @inner>"<@tail>} */
static char *body_with(const char *inner, enum b64_variant v, const char *tail)
{
	_cleanup_free_ char *r = encs(inner, v);
	char *body = NULL;

	assert_true(asprintf(&body, "{\"report\":\"%s\"%s}", r, tail) > 0);
	return body;
}

/* An inner report with SnpReport = "report!" and a chain, each in spelling @v. */
static char *inner_with(enum b64_variant v, const char *extra)
{
	_cleanup_free_ char *rep = encs("report!?>", v), *chain = encs(fixture_chain, v);
	char *inner = NULL;

	assert_true(asprintf(&inner, "{\"SnpReport\":\"%s\",\"VcekCertChain\":\"%s\"%s}", rep,
	                     chain, extra) > 0);
	return inner;
}

struct variant_case {
	const char *name;
	enum b64_variant spelling;
	const char *inner_extra;
	const char *tail;
	const char *nonce;        /* expected, NULL = absent */
	const char *runtime;      /* expected decoded runtime data, NULL = none */
	const char *runtime_type; /* expected */
	bool endorsements;
};

static void test_parse_variants(void **state)
{
	/* {"a":1} in the three spellings: eyJhIjoxfQ== / eyJhIjoxfQ */
	static const struct variant_case cases[] = {
	        {"padded b64url, number nonce", B64_URL, "",
	         ",\"runtimeData\":{\"data\":\"eyJhIjoxfQ==\",\"dataType\":\"JSON\"},\"nonce\":42",
	         "42", "{\"a\":1}", "JSON", false},
	        {"unpadded b64url, string nonce", B64_URL_NOPAD, "",
	         ",\"runtimeData\":{\"data\":\"eyJhIjoxfQ\",\"dataType\":\"JSON\"},"
	         "\"nonce\":\"abc-123\"",
	         "abc-123", "{\"a\":1}", "JSON", false},
	        {"standard alphabet, no nonce", B64_STD, "",
	         ",\"runtimeData\":{\"data\":\"eyJhIjoxfQ==\",\"dataType\":\"JSON\"}", NULL,
	         "{\"a\":1}", "JSON", false},
	        {"Binary runtime data", B64_URL, "",
	         ",\"runtimeData\":{\"data\":\"_-8A\",\"dataType\":\"Binary\"},\"nonce\":null",
	         NULL, "\xff\xef\x00", "Binary", false},
	        {"report only", B64_URL_NOPAD, "", "", NULL, NULL, "", false},
	        {"with Endorsements and init-time data", B64_STD,
	         ",\"Endorsements\":\"eyJVdm0iOltdfQ==\"",
	         ",\"initTimeData\":{\"data\":\"eyJhIjoxfQ\",\"dataType\":\"JSON\"},"
	         "\"draftPolicyForAttestation\":\"x\"",
	         NULL, NULL, "", true},
	        {"empty string nonce and empty Binary runtime data", B64_URL, "",
	         ",\"runtimeData\":{\"data\":\"\",\"dataType\":\"Binary\"},\"nonce\":\"\"", "", "",
	         "Binary", false},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		const struct variant_case *c = &cases[i];
		_cleanup_free_ char *inner = inner_with(c->spelling, c->inner_extra);
		_cleanup_free_ char *body = body_with(inner, c->spelling, c->tail);
		struct maa_request req;
		struct skr_error err = {0};
		int r = maa_request_parse(body, strlen(body), &req, &err);

		if (r != 0)
			fail_msg("%s: %s", c->name, err.msg);
		assert_int_equal(req.report_len, strlen("report!?>"));
		assert_memory_equal(req.report, "report!?>", req.report_len);
		assert_string_equal(req.vcek_cert_chain, fixture_chain);
		if (c->nonce)
			assert_string_equal(req.nonce, c->nonce);
		else
			assert_null(req.nonce);
		if (c->runtime) {
			size_t n = c->runtime[0] == '\xff' ? 3 : strlen(c->runtime);

			assert_int_equal(req.runtime_data_len, n);
			assert_memory_equal(req.runtime_data, c->runtime, n);
		} else {
			assert_int_equal(req.runtime_data_len, 0);
		}
		assert_string_equal(req.runtime_data_type, c->runtime_type);
		assert_int_equal(req.endorsements != NULL, c->endorsements);
		maa_request_clear(&req);
	}
}

struct reject_case {
	const char *name;
	const char *body;  /* literal body, or NULL to build from inner + tail */
	const char *inner; /* encoded as padded b64url */
	const char *tail;
	int code;
	const char *msg; /* substring of the error */
};

#define GOOD_INNER "{\"SnpReport\":\"AAECAw==\",\"VcekCertChain\":\"LS0tLS1CRUdJTg==\"}"

static void check_reject(const struct reject_case *c)
{
	_cleanup_free_ char *built = NULL;
	const char *body = c->body;
	struct maa_request req;
	struct skr_error err = {0};
	int r;

	if (!body)
		body = built = body_with(c->inner, B64_URL, c->tail ? c->tail : "");
	r = maa_request_parse(body, strlen(body), &req, &err);
	if (r != c->code || !strstr(err.msg, c->msg))
		fail_msg("%s: got %d \"%s\", expected %d with \"%s\"", c->name, r, err.msg, c->code,
		         c->msg);
	/* Nothing is handed out on failure. */
	assert_null(req.report);
	assert_null(req.vcek_cert_chain);
	assert_null(req.runtime_data);
	assert_null(req.nonce);
}

static void test_parse_rejects(void **state)
{
	static const struct reject_case cases[] = {
	        {"not JSON", "report=abc", NULL, NULL, -EINVAL, "body is not valid JSON"},
	        {"trailing garbage", "{\"report\":\"e30=\"} {}", NULL, NULL, -EINVAL,
	         "body is not valid JSON"},
	        {"not an object", "[\"report\"]", NULL, NULL, -EINVAL, "body is not a JSON object"},
	        {"no report", "{\"nonce\":1}", NULL, NULL, -EINVAL, "report is missing"},
	        {"report not a string", "{\"report\":7}", NULL, NULL, -EINVAL,
	         "report is not a string"},
	        {"report not base64", "{\"report\":\"e30*\"}", NULL, NULL, -EINVAL,
	         "report is not base64url"},
	        {"report mixes alphabets", "{\"report\":\"ab+_\"}", NULL, NULL, -EINVAL,
	         "report is not base64url"},
	        {"inner JSON malformed", NULL, "{\"SnpReport\":", NULL, -EINVAL,
	         "report (decoded) is not JSON"},
	        {"inner not an object", NULL, "[1,2]", NULL, -EINVAL,
	         "report (decoded) is not a JSON object"},
	        {"missing SnpReport", NULL, "{\"VcekCertChain\":\"LS0t\"}", NULL, -EINVAL,
	         "report.SnpReport is missing"},
	        {"SnpReport not a string", NULL, "{\"SnpReport\":[1],\"VcekCertChain\":\"LS0t\"}",
	         NULL, -EINVAL, "report.SnpReport is not a string"},
	        {"SnpReport not base64", NULL,
	         "{\"SnpReport\":\"A$==\",\"VcekCertChain\":\"LS0t\"}", NULL, -EINVAL,
	         "report.SnpReport is not base64url"},
	        {"SnpReport empty", NULL, "{\"SnpReport\":\"\",\"VcekCertChain\":\"LS0t\"}", NULL,
	         -EINVAL, "report.SnpReport is empty"},
	        {"missing VcekCertChain", NULL, "{\"SnpReport\":\"AAECAw==\"}", NULL, -EINVAL,
	         "report.VcekCertChain is missing"},
	        {"VcekCertChain with NUL", NULL,
	         "{\"SnpReport\":\"AAECAw==\",\"VcekCertChain\":\"LQAt\"}", NULL, -EINVAL,
	         "report.VcekCertChain is not PEM text"},
	        {"Endorsements not JSON", NULL,
	         "{\"SnpReport\":\"AAECAw==\",\"VcekCertChain\":\"LS0t\",\"Endorsements\":\"e3s="
	         "\"}",
	         NULL, -EINVAL, "report.Endorsements"},
	        {"Endorsements not a string", NULL,
	         "{\"SnpReport\":\"AAECAw==\",\"VcekCertChain\":\"LS0t\",\"Endorsements\":{}}",
	         NULL, -EINVAL, "report.Endorsements is not a string"},
	        {"runtimeData not an object", NULL, GOOD_INNER, ",\"runtimeData\":\"eyJhIjoxfQ==\"",
	         -EINVAL, "runtimeData is not a JSON object"},
	        {"runtimeData.data missing", NULL, GOOD_INNER,
	         ",\"runtimeData\":{\"dataType\":\"JSON\"}", -EINVAL,
	         "runtimeData.data is missing"},
	        {"runtimeData.data not base64", NULL, GOOD_INNER,
	         ",\"runtimeData\":{\"data\":\"%%%\",\"dataType\":\"JSON\"}", -EINVAL,
	         "runtimeData.data is not base64url"},
	        {"dataType XML", NULL, GOOD_INNER,
	         ",\"runtimeData\":{\"data\":\"PGEvPg==\",\"dataType\":\"XML\"}", -EINVAL,
	         "runtimeData.dataType must be \"JSON\" or \"Binary\", not \"XML\""},
	        {"dataType missing", NULL, GOOD_INNER, ",\"runtimeData\":{\"data\":\"\"}", -EINVAL,
	         "runtimeData.dataType is missing"},
	        {"empty dataType on runtime data", NULL, GOOD_INNER,
	         ",\"runtimeData\":{\"data\":\"\",\"dataType\":\"\"}", -EINVAL,
	         "runtimeData.dataType must be"},
	        /* nothing is not a JSON document: MAA refuses it, so does devcloud */
	        {"empty JSON runtime data", NULL, GOOD_INNER,
	         ",\"runtimeData\":{\"data\":\"\",\"dataType\":\"JSON\"}", -EINVAL,
	         "runtimeData.data is empty although runtimeData.dataType is \"JSON\""},
	        {"JSON runtime data that is not JSON", NULL, GOOD_INNER,
	         ",\"runtimeData\":{\"data\":\"PGEvPg==\",\"dataType\":\"JSON\"}", -EINVAL,
	         "runtimeData.data is not JSON"},
	        {"initTimeData data without a type", NULL, GOOD_INNER,
	         ",\"initTimeData\":{\"data\":\"eyJhIjoxfQ==\",\"dataType\":\"\"}", -EINVAL,
	         "initTimeData.dataType is empty"},
	        {"negative nonce", NULL, GOOD_INNER, ",\"nonce\":-5", -EINVAL, "nonce is negative"},
	        {"fractional nonce", NULL, GOOD_INNER, ",\"nonce\":1.5", -EINVAL,
	         "nonce must be an integer or a string"},
	        {"exponent nonce", NULL, GOOD_INNER, ",\"nonce\":1e3", -EINVAL,
	         "nonce must be an integer or a string"},
	        {"boolean nonce", NULL, GOOD_INNER, ",\"nonce\":true", -EINVAL,
	         "nonce must be an integer or a string, not boolean"},
	        {"nonce beyond 64 bits", NULL, GOOD_INNER, ",\"nonce\":18446744073709551616",
	         -ERANGE, "nonce is out of range"},
	        {"draft policy not a string", NULL, GOOD_INNER, ",\"draftPolicyForAttestation\":1",
	         -EINVAL, "draftPolicyForAttestation is not a string"},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++)
		check_reject(&cases[i]);
}

static void test_parse_rejects_oversized(void **state)
{
	_cleanup_free_ uint8_t *big = calloc(1, 64 * 1024 + 1);
	_cleanup_free_ char *b = NULL, *inner = NULL, *body = NULL, *nonce = NULL;
	_cleanup_free_ char *huge = NULL;
	struct maa_request req;
	struct skr_error err = {0};

	assert_non_null(big);
	b = enc(big, 64 * 1024 + 1, B64_URL);

	/* SnpReport one byte over 64 KiB */
	assert_true(asprintf(&inner, "{\"SnpReport\":\"%s\",\"VcekCertChain\":\"LS0t\"}", b) > 0);
	body = body_with(inner, B64_URL, "");
	assert_int_equal(maa_request_parse(body, strlen(body), &req, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "report.SnpReport is too large"));
	free(inner);
	free(body);

	/* VcekCertChain one byte over 64 KiB (text, so it is not refused for a NUL first) */
	memset(big, 'A', 64 * 1024 + 1);
	free(b);
	b = enc(big, 64 * 1024 + 1, B64_URL);
	assert_true(asprintf(&inner, "{\"SnpReport\":\"AAAA\",\"VcekCertChain\":\"%s\"}", b) > 0);
	body = body_with(inner, B64_URL, "");
	skr_error_clear(&err);
	assert_int_equal(maa_request_parse(body, strlen(body), &req, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "report.VcekCertChain is too large"));
	free(body);

	/* Exactly 64 KiB is accepted. */
	free(b);
	b = enc(big, 64 * 1024, B64_URL_NOPAD);
	free(inner);
	assert_true(asprintf(&inner, "{\"SnpReport\":\"%s\",\"VcekCertChain\":\"%s\"}", b, b) > 0);
	body = body_with(inner, B64_URL_NOPAD, "");
	skr_error_clear(&err);
	assert_int_equal(maa_request_parse(body, strlen(body), &req, &err), 0);
	assert_int_equal(req.report_len, 64 * 1024);
	maa_request_clear(&req);
	free(body);

	/* A 257-character nonce */
	nonce = malloc(258);
	assert_non_null(nonce);
	memset(nonce, 'n', 257);
	nonce[257] = '\0';
	assert_true(asprintf(&huge, ",\"nonce\":\"%s\"", nonce) > 0);
	body = body_with(GOOD_INNER, B64_URL, huge);
	skr_error_clear(&err);
	assert_int_equal(maa_request_parse(body, strlen(body), &req, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "nonce is longer than 256"));
	free(body);
	body = NULL;

	/* The whole body over its cap is refused before parsing. */
	free(huge);
	huge = malloc(3 * 1024 * 1024);
	assert_non_null(huge);
	memset(huge, ' ', 3 * 1024 * 1024);
	skr_error_clear(&err);
	assert_int_equal(maa_request_parse(huge, 3 * 1024 * 1024, &req, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "body larger than"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_build_matches_anchor),
	        cmocka_unit_test(test_parse_anchor_fixture),
	        cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_build_rejects),
	        cmocka_unit_test(test_parse_variants),
	        cmocka_unit_test(test_parse_rejects),
	        cmocka_unit_test(test_parse_rejects_oversized),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
