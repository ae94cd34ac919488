/* SPDX-License-Identifier: MIT */
/*
 * Release policies (protocols.md §5.4, §7.4): every operator against every claim type with Key
 * Vault's loose comparison, nested groups, dotted claim paths, issuer matching, the denial
 * explanation word for word, parse errors naming the JSON path, and importkey's builder.
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

#include "cleanup.h"
#include "skr.h"

#define ISS "https://sharedeus.eus.attest.azure.net"

/* 64 hex digits each: what MAA reports and what a policy may require. */
#define HOST_TOKEN "ab12cd34ef56a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6"
#define HOST_TOKEN_UPPER "AB12CD34EF56A7B8C9D0E1F2A3B4C5D6E7F8091A2B3C4D5E6F708192A3B4C5D6"
#define HOST_OTHER "cd5a8b9f0e1d2c3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f708192a3b4c5d"
/* Same as HOST_TOKEN but for the last digit. */
#define HOST_LAST "ab12cd34ef56a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d7"

_Static_assert(sizeof(HOST_TOKEN) == 65 && sizeof(HOST_OTHER) == 65 && sizeof(HOST_LAST) == 65,
               "hostdata fixtures are 64 hex digits");

/* An ACI-style token's claims (protocols.md §1.4) plus a few shapes the rules must handle. */
static const char claims_aci[] =
        "{\"iss\":\"" ISS "\","
        "\"x-ms-attestation-type\":\"sevsnpvm\","
        "\"x-ms-compliance-status\":\"azure-compliant-uvm\","
        "\"x-ms-sevsnpvm-hostdata\":\"" HOST_TOKEN "\","
        "\"x-ms-sevsnpvm-is-debuggable\":false,"
        "\"x-ms-sevsnpvm-vmpl\":0,"
        "\"x-ms-sevsnpvm-snpfw-svn\":8,"
        "\"x-ms-sevsnpvm-microcode-svn\":211,"
        "\"x-ms-ver\":\"1.0\","
        "\"ratio\":1.5,"
        "\"big\":18446744073709551615,"
        "\"negative\":-3,"
        "\"nullclaim\":null,"
        "\"x-ms-runtime\":{\"keys\":[{\"kid\":\"k1\",\"kty\":\"RSA\"}],"
        "\"vm-configuration\":{\"secure-boot\":true,\"tpm-enabled\":\"true\","
        "\"console-enabled\":false}},"
        "\"x-ms-isolation-tee\":{\"x-ms-attestation-type\":\"sevsnpvm\","
        "\"x-ms-sevsnpvm-vmpl\":0},"
        "\"dotted.name\":\"literal\","
        "\"dotted\":{\"name\":\"nested\"}}";

static void expect_error(const char *what, int r, const struct skr_error *err, int code,
                         const char *msg)
{
	if (r != code || strcmp(err->msg, msg) != 0) {
		print_error("%s: got %d '%s'\n  want %d '%s'\n", what, r, err->msg, code, msg);
		fail();
	}
}

static struct skr_policy *parse_ok(const char *json)
{
	struct skr_policy *p = NULL;
	struct skr_error err = {0};
	int r = skr_policy_parse(json, strlen(json), &p, &err);

	if (r < 0) {
		print_error("policy %s: %s\n", json, err.msg);
		fail();
	}
	assert_non_null(p);
	return p;
}

/* Parse @policy and evaluate it against @claims from @issuer. */
static int evaluate(const char *policy, const char *issuer, const char *claims, char **explanation,
                    struct skr_error *err)
{
	struct skr_policy *p = parse_ok(policy);
	int r = skr_policy_evaluate(p, issuer, claims, strlen(claims), explanation, err);

	skr_policy_free(p);
	return r;
}

/* ---------------------------------------------------------------------------------------------
 * Operators × claim types
 * ------------------------------------------------------------------------------------------- */

struct operator_case {
	const char *claim;
	const char *op;
	const char *value; /* JSON */
	bool met;
};

static void test_operators(void **state)
{
	static const struct operator_case cases[] = {
	        /* equals: strings exactly, case-sensitively */
	        {"x-ms-sevsnpvm-hostdata", "equals", "\"" HOST_TOKEN "\"", true},
	        {"x-ms-sevsnpvm-hostdata", "equals", "\"" HOST_TOKEN_UPPER "\"", false},
	        {"x-ms-sevsnpvm-hostdata", "equals", "\"" HOST_LAST "\"", false},
	        {"x-ms-compliance-status", "equals", "\"azure-compliant-uvm\"", true},
	        {"x-ms-compliance-status", "equals", "\"azure-compliant-UVM\"", false},
	        {"x-ms-compliance-status", "equals", "\"azure-compliant-uvm \"", false},
	        /* equals: booleans and their string forms */
	        {"x-ms-sevsnpvm-is-debuggable", "equals", "false", true},
	        {"x-ms-sevsnpvm-is-debuggable", "equals", "\"false\"", true},
	        {"x-ms-sevsnpvm-is-debuggable", "equals", "\"False\"", true},
	        {"x-ms-sevsnpvm-is-debuggable", "equals", "true", false},
	        {"x-ms-sevsnpvm-is-debuggable", "equals", "\"true\"", false},
	        {"x-ms-sevsnpvm-is-debuggable", "equals", "\"no\"", false},
	        {"x-ms-sevsnpvm-is-debuggable", "equals", "0", false},
	        /* equals: numbers by value, numeric strings too */
	        {"x-ms-sevsnpvm-vmpl", "equals", "0", true},
	        {"x-ms-sevsnpvm-vmpl", "equals", "\"0\"", true},
	        {"x-ms-sevsnpvm-vmpl", "equals", "0.0", true},
	        {"x-ms-sevsnpvm-vmpl", "equals", "\"0.0\"", true},
	        {"x-ms-sevsnpvm-vmpl", "equals", "-0", true},
	        {"x-ms-sevsnpvm-vmpl", "equals", "\"00\"", false},
	        {"x-ms-sevsnpvm-vmpl", "equals", "\" 0\"", false},
	        {"x-ms-sevsnpvm-vmpl", "equals", "1", false},
	        {"x-ms-sevsnpvm-vmpl", "equals", "\"1\"", false},
	        {"x-ms-sevsnpvm-vmpl", "equals", "false", false},
	        {"x-ms-sevsnpvm-vmpl", "equals", "\"false\"", false},
	        {"x-ms-sevsnpvm-snpfw-svn", "equals", "8", true},
	        {"x-ms-sevsnpvm-snpfw-svn", "equals", "\"8\"", true},
	        {"x-ms-sevsnpvm-snpfw-svn", "equals", "\"8e0\"", true},
	        {"ratio", "equals", "1.5", true},
	        {"ratio", "equals", "\"1.50\"", true},
	        {"ratio", "equals", "1.25", false},
	        {"big", "equals", "18446744073709551615", true},
	        {"x-ms-ver", "equals", "\"1.0\"", true},
	        {"x-ms-ver", "equals", "1", true},      /* numeric string claim vs number */
	        {"x-ms-ver", "equals", "\"1\"", false}, /* two strings: exact */
	        /* equals: arrays, objects and null never match; absent claims never match */
	        {"x-ms-runtime", "equals", "\"x\"", false},
	        {"x-ms-runtime.keys", "equals", "\"x\"", false},
	        {"nullclaim", "equals", "\"null\"", false},
	        {"missing", "equals", "\"x\"", false},
	        /* notEquals */
	        {"x-ms-sevsnpvm-vmpl", "notEquals", "1", true},
	        {"x-ms-sevsnpvm-vmpl", "notEquals", "\"0\"", false},
	        {"x-ms-sevsnpvm-vmpl", "notEquals", "false", true},
	        {"x-ms-sevsnpvm-is-debuggable", "notEquals", "true", true},
	        {"x-ms-sevsnpvm-is-debuggable", "notEquals", "\"false\"", false},
	        {"x-ms-sevsnpvm-hostdata", "notEquals", "\"" HOST_OTHER "\"", true},
	        {"x-ms-sevsnpvm-hostdata", "notEquals", "\"" HOST_TOKEN "\"", false},
	        {"missing", "notEquals", "\"x\"", false},
	        {"x-ms-runtime", "notEquals", "\"x\"", false},
	        {"nullclaim", "notEquals", "1", false},
	        /* ordering: numbers and numeric strings only */
	        {"x-ms-sevsnpvm-snpfw-svn", "greaterOrEquals", "8", true},
	        {"x-ms-sevsnpvm-snpfw-svn", "greaterOrEquals", "\"8\"", true},
	        {"x-ms-sevsnpvm-snpfw-svn", "greaterOrEquals", "7.9", true},
	        {"x-ms-sevsnpvm-snpfw-svn", "greaterOrEquals", "9", false},
	        {"x-ms-sevsnpvm-snpfw-svn", "greater", "7", true},
	        {"x-ms-sevsnpvm-snpfw-svn", "greater", "8", false},
	        {"x-ms-sevsnpvm-snpfw-svn", "greater", "\"8\"", false},
	        {"x-ms-sevsnpvm-snpfw-svn", "less", "9", true},
	        {"x-ms-sevsnpvm-snpfw-svn", "less", "8", false},
	        {"x-ms-sevsnpvm-snpfw-svn", "less", "8.5", true},
	        {"x-ms-sevsnpvm-snpfw-svn", "lessOrEquals", "8", true},
	        {"x-ms-sevsnpvm-snpfw-svn", "lessOrEquals", "7.5", false},
	        {"x-ms-sevsnpvm-microcode-svn", "greater", "127", true},
	        {"x-ms-sevsnpvm-microcode-svn", "greater", "\"1e3\"", false},
	        {"negative", "less", "0", true},
	        {"negative", "greaterOrEquals", "-3", true},
	        {"negative", "greater", "-3.5", true},
	        {"ratio", "greater", "1", true},
	        {"ratio", "less", "2", true},
	        {"ratio", "less", "\"1.5\"", false},
	        {"ratio", "lessOrEquals", "\"1.5\"", true},
	        {"big", "greater", "9223372036854775807", true},
	        {"big", "less", "1e20", true},
	        {"x-ms-ver", "greaterOrEquals", "1", true}, /* numeric string claim */
	        {"x-ms-ver", "less", "1", false},
	        {"x-ms-compliance-status", "greater", "1", false}, /* not comparable */
	        {"x-ms-sevsnpvm-hostdata", "less", "1", false},
	        {"x-ms-sevsnpvm-is-debuggable", "less", "1", false},
	        {"x-ms-runtime", "greater", "0", false},
	        {"nullclaim", "greater", "0", false},
	        {"missing", "greater", "0", false},
	        {"missing", "less", "0", false},
	        /* exists */
	        {"x-ms-sevsnpvm-hostdata", "exists", "true", true},
	        {"x-ms-sevsnpvm-hostdata", "exists", "false", false},
	        {"x-ms-sevsnpvm-is-debuggable", "exists", "true", true},
	        {"missing", "exists", "true", false},
	        {"missing", "exists", "false", true},
	        {"x-ms-runtime", "exists", "true", true},
	        {"nullclaim", "exists", "true", false}, /* null counts as absent */
	        {"nullclaim", "exists", "false", true},
	        {"x-ms-runtime.keys", "exists", "true", true},
	        {"x-ms-runtime.keys.0", "exists", "true", false}, /* arrays are not indexable */
	        {"x-ms-runtime.keys.0.kid", "exists", "false", true},
	        /* dotted paths into nested objects */
	        {"x-ms-runtime.vm-configuration.secure-boot", "equals", "true", true},
	        {"x-ms-runtime.vm-configuration.secure-boot", "equals", "\"true\"", true},
	        {"x-ms-runtime.vm-configuration.secure-boot", "equals", "false", false},
	        {"x-ms-runtime.vm-configuration.tpm-enabled", "equals", "true", true},
	        {"x-ms-runtime.vm-configuration.console-enabled", "equals", "\"false\"", true},
	        {"x-ms-runtime.vm-configuration.missing", "exists", "false", true},
	        {"x-ms-runtime.vm-configuration", "exists", "true", true},
	        {"x-ms-isolation-tee.x-ms-sevsnpvm-vmpl", "equals", "\"0\"", true},
	        {"x-ms-isolation-tee.x-ms-attestation-type", "equals", "\"sevsnpvm\"", true},
	        {"x-ms-sevsnpvm-hostdata.sub", "exists", "true", false}, /* through a string */
	        {"x-ms-runtime..keys", "exists", "true", false},
	        {"x-ms-runtime.", "exists", "true", false},
	        {".x-ms-runtime", "exists", "true", false},
	        /* a top-level name containing '.' wins over the path */
	        {"dotted.name", "equals", "\"literal\"", true},
	        {"dotted.name", "equals", "\"nested\"", false},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		const struct operator_case *c = &cases[i];
		_cleanup_free_ char *policy = NULL, *explanation = NULL;
		struct skr_error err = {0};
		int r;

		assert_true(asprintf(&policy,
		                     "{\"version\":\"1.0.0\",\"anyOf\":[{\"authority\":\"" ISS
		                     "\",\"allOf\":[{\"claim\":\"%s\",\"%s\":%s}]}]}",
		                     c->claim, c->op, c->value) > 0);
		r = evaluate(policy, ISS, claims_aci, &explanation, &err);
		if (r != (c->met ? 0 : -EACCES)) {
			print_error("case %zu: %s %s %s: got %d (%s), want %s\n", i, c->claim,
			            c->op, c->value, r, err.msg, c->met ? "met" : "NOT met");
			fail();
		}
		if (c->met) {
			assert_null(explanation);
			assert_string_equal(err.msg, "");
		} else {
			/* Each denial names the claim and carries a one-condition explanation. */
			assert_non_null(strstr(err.msg, c->claim));
			assert_non_null(explanation);
			assert_non_null(strstr(explanation, "  NOT met: "));
		}
	}
}

/* ---------------------------------------------------------------------------------------------
 * Groups, issuers, authorities
 * ------------------------------------------------------------------------------------------- */

/* allOf { anyOf { allOf {...fails...}, allOf { anyOf {A, B}, C } }, hostdata } */
#define NESTED_POLICY(a, b)                                                                        \
	"{\"version\":\"1.0.0\",\"anyOf\":[{\"authority\":\"" ISS "\",\"allOf\":["                 \
	"{\"anyOf\":["                                                                             \
	"{\"allOf\":[{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":1},"                             \
	"{\"claim\":\"x-ms-attestation-type\",\"equals\":\"sevsnpvm\"}]},"                         \
	"{\"allOf\":[{\"anyOf\":[" a "," b "]},"                                                   \
	"{\"claim\":\"x-ms-compliance-status\",\"equals\":\"azure-compliant-uvm\"}]}]},"           \
	"{\"claim\":\"x-ms-sevsnpvm-hostdata\",\"equals\":\"" HOST_TOKEN "\"}]}]}"

static void test_nested_groups(void **state)
{
	_cleanup_free_ char *explanation = NULL;
	struct skr_error err = {0};

	/* Met through the second branch's inner anyOf (its second alternative). */
	assert_int_equal(evaluate(NESTED_POLICY("{\"claim\":\"x-ms-sevsnpvm-is-debuggable\","
	                                        "\"equals\":true}",
	                                        "{\"claim\":\"x-ms-sevsnpvm-snpfw-svn\","
	                                        "\"greaterOrEquals\":8}"),
	                          ISS, claims_aci, &explanation, &err),
	                 0);
	assert_null(explanation);

	/* Neither alternative of the innermost anyOf: denied, and the explanation shows the
	 * grouping. Both branches of the outer anyOf are one failure away; the message names
	 * the first of them. */
	assert_int_equal(evaluate(NESTED_POLICY("{\"claim\":\"x-ms-sevsnpvm-is-debuggable\","
	                                        "\"equals\":true}",
	                                        "{\"claim\":\"x-ms-sevsnpvm-snpfw-svn\","
	                                        "\"greaterOrEquals\":9}"),
	                          ISS, claims_aci, &explanation, &err),
	                 -EACCES);
	assert_string_equal(err.msg,
	                    "claim x-ms-sevsnpvm-vmpl is 0 but the policy requires equals 1");
	assert_string_equal(
	        explanation,
	        "authority '" ISS "' requires all of:\n"
	        "  any of (NOT met):\n"
	        "    all of (NOT met):\n"
	        "      NOT met: x-ms-sevsnpvm-vmpl equals 1 (token: 0)\n"
	        "      met: x-ms-attestation-type equals 'sevsnpvm' (token: 'sevsnpvm')\n"
	        "    all of (NOT met):\n"
	        "      any of (NOT met):\n"
	        "        NOT met: x-ms-sevsnpvm-is-debuggable equals true (token: false)\n"
	        "        NOT met: x-ms-sevsnpvm-snpfw-svn greaterOrEquals 9 (token: 8)\n"
	        "      met: x-ms-compliance-status equals 'azure-compliant-uvm' (token: "
	        "'azure-compliant-uvm')\n"
	        "  met: x-ms-sevsnpvm-hostdata equals '" HOST_TOKEN "' (token: '" HOST_TOKEN
	        "')\n");
}

static void test_depth_limit_accepted(void **state)
{
	/* 12 nested groups (the authority's own list is the first) parse and evaluate. */
	char policy[2048] = "{\"anyOf\":[{\"authority\":\"" ISS "\",\"allOf\":[";
	struct skr_error err = {0};

	for (int i = 1; i < 12; i++)
		strcat(policy, i % 2 ? "{\"anyOf\":[" : "{\"allOf\":[");
	strcat(policy, "{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":\"0\"}");
	for (int i = 1; i < 12; i++)
		strcat(policy, "]}");
	strcat(policy, "]}]}");
	assert_int_equal(evaluate(policy, ISS, claims_aci, NULL, &err), 0);
}

struct issuer_case {
	const char *authority;
	const char *issuer;
	bool match;
};

static void test_issuer_matching(void **state)
{
	static const struct issuer_case cases[] = {
	        {ISS, ISS, true},
	        {ISS "/", ISS, true},
	        {ISS, ISS "/", true},
	        {ISS "/", ISS "/", true},
	        {"https://SharedEUS.EUS.attest.azure.net", ISS, true},
	        {"HTTPS://sharedeus.eus.attest.azure.net/", ISS, true},
	        {ISS, "https://SHAREDEUS.eus.attest.azure.net/", true},
	        {"https://127.0.0.1:8443", "https://127.0.0.1:8443/", true},
	        {"https://127.0.0.1:8443", "https://127.0.0.1:8444", false},
	        {"https://127.0.0.1:8443", "https://127.0.0.1", false},
	        {ISS "/tenant", ISS "/tenant/", true},
	        {ISS "/tenant", ISS "/TENANT", false}, /* the path keeps its case */
	        {ISS "//", ISS, false},                /* one trailing '/' only */
	        {"https://sharedweu.weu.attest.azure.net", ISS, false},
	        {"sharedeus.eus.attest.azure.net", ISS, false},
	        {"http://sharedeus.eus.attest.azure.net", ISS, false},
	        {ISS ".evil.example", ISS, false},
	        {ISS, ISS ".evil.example", false},
	        {ISS, "", false},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		const struct issuer_case *c = &cases[i];
		_cleanup_free_ char *policy = NULL, *explanation = NULL;
		struct skr_error err = {0};
		int r;

		assert_true(asprintf(&policy,
		                     "{\"anyOf\":[{\"authority\":\"%s\",\"allOf\":[{\"claim\":"
		                     "\"x-ms-sevsnpvm-vmpl\",\"equals\":\"0\"}]}]}",
		                     c->authority) > 0);
		r = evaluate(policy, c->issuer, claims_aci, &explanation, &err);
		if (r != (c->match ? 0 : -EACCES)) {
			print_error("case %zu: authority '%s' issuer '%s': got %d (%s)\n", i,
			            c->authority, c->issuer, r, err.msg);
			fail();
		}
		if (!c->match)
			assert_non_null(
			        strstr(err.msg, "is not an authority of the release policy"));
	}
}

static void test_several_authorities(void **state)
{
	static const char policy[] =
	        "{\"version\":\"0.2\",\"anyOf\":["
	        "{\"authority\":\"https://sharedweu.weu.attest.azure.net\",\"allOf\":["
	        "{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":\"0\"}]},"
	        "{\"authority\":\"" ISS "/\",\"allOf\":["
	        "{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":\"0\"},"
	        "{\"claim\":\"x-ms-sevsnpvm-is-debuggable\",\"equals\":\"false\"}]}]}";
	/* Two authorities with the issuer: the closer one (one failure) is explained. */
	static const char two_matching[] =
	        "{\"anyOf\":["
	        "{\"authority\":\"" ISS "\",\"allOf\":["
	        "{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":1},"
	        "{\"claim\":\"x-ms-sevsnpvm-is-debuggable\",\"equals\":true}]},"
	        "{\"authority\":\"https://sharedweu.weu.attest.azure.net\",\"allOf\":["
	        "{\"claim\":\"x-ms-ver\",\"equals\":\"1.0\"}]},"
	        "{\"authority\":\"" ISS "\",\"anyOf\":["
	        "{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":2},"
	        "{\"claim\":\"x-ms-sevsnpvm-snpfw-svn\",\"less\":8}]},"
	        "{\"authority\":\"" ISS "\",\"allOf\":["
	        "{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":0},"
	        "{\"claim\":\"x-ms-sevsnpvm-snpfw-svn\",\"greater\":8}]}]}";
	_cleanup_free_ char *explanation = NULL;
	struct skr_error err = {0};

	assert_int_equal(evaluate(policy, ISS, claims_aci, &explanation, &err), 0);
	assert_int_equal(evaluate(two_matching, ISS, claims_aci, &explanation, &err), -EACCES);
	/* The third authority (anyOf, min 1 failure) ties with the fourth (1 failure); the
	 * first of the closest wins. */
	assert_string_equal(err.msg,
	                    "claim x-ms-sevsnpvm-vmpl is 0 but the policy requires equals 2");
	assert_string_equal(explanation, "authority '" ISS "' requires any of:\n"
	                                 "  NOT met: x-ms-sevsnpvm-vmpl equals 2 (token: 0)\n"
	                                 "  NOT met: x-ms-sevsnpvm-snpfw-svn less 8 (token: 8)\n");
}

/* ---------------------------------------------------------------------------------------------
 * Denial explanations
 * ------------------------------------------------------------------------------------------- */

/* The anchor's policy: equals with string values only (protocols.md §5.4). */
#define ANCHOR_POLICY(hostdata)                                                                    \
	"{\"version\":\"1.0.0\",\"anyOf\":[{\"authority\":\"" ISS "\",\"allOf\":["                 \
	"{\"claim\":\"x-ms-sevsnpvm-hostdata\",\"equals\":\"" hostdata "\"},"                      \
	"{\"claim\":\"x-ms-compliance-status\",\"equals\":\"azure-compliant-uvm\"},"               \
	"{\"claim\":\"x-ms-sevsnpvm-is-debuggable\",\"equals\":\"false\"},"                        \
	"{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":\"0\"}]}]}"

static void test_explain_hostdata_mismatch(void **state)
{
	_cleanup_free_ char *explanation = NULL;
	struct skr_error err = {0};

	assert_int_equal(evaluate(ANCHOR_POLICY(HOST_OTHER), ISS, claims_aci, &explanation, &err),
	                 -EACCES);
	assert_int_equal(err.code, -EACCES);
	assert_string_equal(err.msg, "claim x-ms-sevsnpvm-hostdata is 'ab12cd34ef56a7b8…' but the "
	                             "policy requires equals 'cd5a8b9f0e1d2c3b…'");
	assert_string_equal(explanation,
	                    "authority '" ISS "' requires all of:\n"
	                    "  NOT met: x-ms-sevsnpvm-hostdata equals '" HOST_OTHER
	                    "' (token: '" HOST_TOKEN "')\n"
	                    "  met: x-ms-compliance-status equals 'azure-compliant-uvm' (token: "
	                    "'azure-compliant-uvm')\n"
	                    "  met: x-ms-sevsnpvm-is-debuggable equals 'false' (token: false)\n"
	                    "  met: x-ms-sevsnpvm-vmpl equals '0' (token: 0)\n");
}

static void test_explain_shows_where_strings_differ(void **state)
{
	struct skr_error err = {0};

	/* Differing in the last digit: the message shows enough to see it. */
	assert_int_equal(evaluate(ANCHOR_POLICY(HOST_LAST), ISS, claims_aci, NULL, &err), -EACCES);
	assert_string_equal(err.msg, "claim x-ms-sevsnpvm-hostdata is '" HOST_TOKEN
	                             "' but the policy requires equals '" HOST_LAST "'");

	/* Long strings differing at the end: at most 128 characters each, the line stays whole. */
	{
		_cleanup_free_ char *policy = NULL, *claims = NULL;
		char a[301], b[301];

		memset(a, 'a', 300);
		a[300] = '\0';
		memcpy(b, a, sizeof(b));
		b[299] = 'b';
		assert_true(asprintf(&policy,
		                     "{\"anyOf\":[{\"authority\":\"" ISS "\",\"allOf\":[{\"claim\":"
		                     "\"long\",\"equals\":\"%s\"}]}]}",
		                     b) > 0);
		assert_true(asprintf(&claims, "{\"long\":\"%s\"}", a) > 0);
		skr_error_clear(&err);
		assert_int_equal(evaluate(policy, ISS, claims, NULL, &err), -EACCES);
		assert_int_equal(strlen(err.msg), strlen("claim long is '' but the policy requires "
		                                         "equals ''") +
		                                          2 * (128 + strlen("…")));
	}

	skr_error_clear(&err);
	assert_int_equal(evaluate(ANCHOR_POLICY(HOST_TOKEN_UPPER), ISS, claims_aci, NULL, &err),
	                 -EACCES);
	assert_string_equal(err.msg, "claim x-ms-sevsnpvm-hostdata is 'ab12cd34ef56a7b8…' but the "
	                             "policy requires equals 'AB12CD34EF56A7B8…' (they differ only "
	                             "in letter case: strings compare case-sensitively)");
}

static void test_explain_missing_claim(void **state)
{
	static const char claims[] = "{\"x-ms-sevsnpvm-hostdata\":\"" HOST_TOKEN "\","
	                             "\"x-ms-sevsnpvm-vmpl\":0}";
	static const char policy[] =
	        "{\"anyOf\":[{\"authority\":\"" ISS "\",\"allOf\":["
	        "{\"claim\":\"x-ms-sevsnpvm-hostdata\",\"equals\":\"" HOST_TOKEN "\"},"
	        "{\"claim\":\"x-ms-sevsnpvm-is-debuggable\",\"equals\":false},"
	        "{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":\"0\"}]}]}";
	_cleanup_free_ char *explanation = NULL;
	struct skr_error err = {0};

	assert_int_equal(evaluate(policy, ISS, claims, &explanation, &err), -EACCES);
	assert_string_equal(err.msg, "claim x-ms-sevsnpvm-is-debuggable is absent from the token "
	                             "but the policy requires equals false");
	assert_string_equal(
	        explanation,
	        "authority '" ISS "' requires all of:\n"
	        "  met: x-ms-sevsnpvm-hostdata equals '" HOST_TOKEN "' (token: '" HOST_TOKEN "')\n"
	        "  NOT met: x-ms-sevsnpvm-is-debuggable equals false (claim absent from "
	        "the token)\n"
	        "  met: x-ms-sevsnpvm-vmpl equals '0' (token: 0)\n");
}

static void test_explain_debuggable_token(void **state)
{
	static const char claims[] = "{\"x-ms-sevsnpvm-hostdata\":\"" HOST_TOKEN "\","
	                             "\"x-ms-compliance-status\":\"azure-compliant-uvm\","
	                             "\"x-ms-sevsnpvm-is-debuggable\":true,"
	                             "\"x-ms-sevsnpvm-vmpl\":0}";
	_cleanup_free_ char *explanation = NULL;
	struct skr_error err = {0};

	assert_int_equal(evaluate(ANCHOR_POLICY(HOST_TOKEN), ISS, claims, &explanation, &err),
	                 -EACCES);
	assert_string_equal(err.msg, "claim x-ms-sevsnpvm-is-debuggable is true but the policy "
	                             "requires equals 'false'");
	assert_string_equal(explanation,
	                    "authority '" ISS "' requires all of:\n"
	                    "  met: x-ms-sevsnpvm-hostdata equals '" HOST_TOKEN
	                    "' (token: '" HOST_TOKEN "')\n"
	                    "  met: x-ms-compliance-status equals 'azure-compliant-uvm' (token: "
	                    "'azure-compliant-uvm')\n"
	                    "  NOT met: x-ms-sevsnpvm-is-debuggable equals 'false' (token: true)\n"
	                    "  met: x-ms-sevsnpvm-vmpl equals '0' (token: 0)\n");
}

struct explain_case {
	const char *condition; /* JSON */
	const char *msg;
	const char *line;
};

static void test_explain_each_failure_kind(void **state)
{
	static const struct explain_case cases[] = {
	        {"{\"claim\":\"x-ms-compliance-status\",\"greater\":1}",
	         "claim x-ms-compliance-status is 'azure-compliant-…' but the policy requires "
	         "greater 1 (not comparable as numbers)",
	         "  NOT met: x-ms-compliance-status greater 1 (token: 'azure-compliant-uvm', not "
	         "comparable as numbers)\n"},
	        {"{\"claim\":\"x-ms-runtime.keys\",\"equals\":\"k1\"}",
	         "claim x-ms-runtime.keys is an array but the policy requires equals 'k1' (not "
	         "comparable)",
	         "  NOT met: x-ms-runtime.keys equals 'k1' (token: an array, not comparable)\n"},
	        {"{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"exists\":false}",
	         "claim x-ms-sevsnpvm-vmpl is present in the token but the policy requires it to "
	         "be absent",
	         "  NOT met: x-ms-sevsnpvm-vmpl exists false (claim present in the token)\n"},
	        {"{\"claim\":\"x-ms-sevsnpvm-guestsvn\",\"exists\":true}",
	         "claim x-ms-sevsnpvm-guestsvn is absent from the token but the policy requires it "
	         "to be present",
	         "  NOT met: x-ms-sevsnpvm-guestsvn exists true (claim absent from the token)\n"},
	        {"{\"claim\":\"x-ms-sevsnpvm-snpfw-svn\",\"greaterOrEquals\":\"10\"}",
	         "claim x-ms-sevsnpvm-snpfw-svn is 8 but the policy requires greaterOrEquals '10'",
	         "  NOT met: x-ms-sevsnpvm-snpfw-svn greaterOrEquals '10' (token: 8)\n"},
	        {"{\"claim\":\"ratio\",\"lessOrEquals\":1.25}",
	         "claim ratio is 1.5 but the policy requires lessOrEquals 1.25",
	         "  NOT met: ratio lessOrEquals 1.25 (token: 1.5)\n"},
	        {"{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"notEquals\":\"0\"}",
	         "claim x-ms-sevsnpvm-vmpl is 0 but the policy requires notEquals '0'",
	         "  NOT met: x-ms-sevsnpvm-vmpl notEquals '0' (token: 0)\n"},
	        /* control characters cannot break the one-line layout */
	        {"{\"claim\":\"line\\nbreak\",\"equals\":\"a\\nb\"}",
	         "claim line?break is absent from the token but the policy requires equals 'a?b'",
	         "  NOT met: line?break equals 'a?b' (claim absent from the token)\n"},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_free_ char *policy = NULL, *explanation = NULL, *want = NULL;
		struct skr_error err = {0};

		assert_true(asprintf(&policy,
		                     "{\"anyOf\":[{\"authority\":\"" ISS "\",\"allOf\":[%s]}]}",
		                     cases[i].condition) > 0);
		assert_true(asprintf(&want, "authority '" ISS "' requires all of:\n%s",
		                     cases[i].line) > 0);
		assert_int_equal(evaluate(policy, ISS, claims_aci, &explanation, &err), -EACCES);
		if (strcmp(err.msg, cases[i].msg) != 0 || strcmp(explanation, want) != 0) {
			print_error("case %zu:\n got  %s\n want %s\n got  %s want %s", i, err.msg,
			            cases[i].msg, explanation, want);
			fail();
		}
	}
}

static void test_explain_issuer_mismatch(void **state)
{
	static const char policy[] =
	        "{\"anyOf\":["
	        "{\"authority\":\"https://sharedweu.weu.attest.azure.net\",\"allOf\":["
	        "{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":\"0\"}]},"
	        "{\"authority\":\"https://contoso.attest.azure.net/\",\"allOf\":["
	        "{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":\"0\"}]}]}";
	_cleanup_free_ char *explanation = NULL;
	struct skr_error err = {0};

	assert_int_equal(evaluate(policy, ISS, claims_aci, &explanation, &err), -EACCES);
	assert_string_equal(err.msg, "token issuer '" ISS "' is not an authority of the release "
	                             "policy (authorities: https://sharedweu.weu.attest.azure.net, "
	                             "https://contoso.attest.azure.net/)");
	assert_string_equal(explanation,
	                    "token issuer '" ISS "' matches no authority of the release policy:\n"
	                    "  authority 'https://sharedweu.weu.attest.azure.net'\n"
	                    "  authority 'https://contoso.attest.azure.net/'\n");
}

static void test_evaluate_rejects_bad_claims(void **state)
{
	struct skr_policy *p = parse_ok(ANCHOR_POLICY(HOST_TOKEN));
	char *explanation = (char *)"untouched";
	struct skr_error err = {0};

	expect_error("array", skr_policy_evaluate(p, ISS, "[1]", 3, &explanation, &err), &err,
	             -EINVAL, "token claims are an array, not a JSON object");
	assert_null(explanation);
	skr_error_clear(&err);
	expect_error("not json", skr_policy_evaluate(p, ISS, "{\"a\":", 5, NULL, &err), &err,
	             -EINVAL, "token claims is not valid JSON: unexpected end of data");
	skr_error_clear(&err);
	expect_error("control", skr_policy_evaluate(p, "https://x\n", "{}", 2, NULL, &err), &err,
	             -EINVAL, "token issuer contains control characters");
	skr_error_clear(&err);
	expect_error("no issuer", skr_policy_evaluate(p, NULL, "{}", 2, NULL, &err), &err, -EINVAL,
	             "release policy: missing policy, issuer or claims");
	skr_policy_free(p);
	skr_policy_free(NULL);
}

/* Microsoft's samples: version 0.2 and no version, x-ms-compliance-status, CVM claims under
 * x-ms-isolation-tee, JSON-literal values. */
static void test_microsoft_samples(void **state)
{
	static const char sample_aci[] =
	        "{\"version\":\"0.2\",\"anyOf\":[{\"authority\":\"" ISS "/\",\"allOf\":["
	        "{\"claim\":\"x-ms-attestation-type\",\"equals\":\"sevsnpvm\"},"
	        "{\"claim\":\"x-ms-compliance-status\",\"equals\":\"azure-compliant-uvm\"},"
	        "{\"claim\":\"x-ms-sevsnpvm-is-debuggable\",\"equals\":false}]}]}";
	static const char sample_cvm[] =
	        "{\"anyOf\":[{\"authority\":\"https://sharedeus2.eus2.attest.azure.net/"
	        "\",\"allOf\":["
	        "{\"claim\":\"x-ms-isolation-tee.x-ms-attestation-type\",\"equals\":\"sevsnpvm\"},"
	        "{\"claim\":\"x-ms-isolation-tee.x-ms-compliance-status\","
	        "\"equals\":\"azure-compliant-cvm\"}]}]}";
	static const char claims_cvm[] =
	        "{\"x-ms-isolation-tee\":{\"x-ms-attestation-type\":\"sevsnpvm\","
	        "\"x-ms-compliance-status\":\"azure-compliant-cvm\"}}";
	struct skr_error err = {0};

	assert_int_equal(evaluate(sample_aci, ISS, claims_aci, NULL, &err), 0);
	assert_int_equal(evaluate(sample_cvm, "https://sharedeus2.eus2.attest.azure.net",
	                          claims_cvm, NULL, &err),
	                 0);
	assert_int_equal(evaluate(sample_cvm, "https://sharedeus2.eus2.attest.azure.net",
	                          claims_aci, NULL, &err),
	                 -EACCES);
	assert_string_equal(err.msg, "claim x-ms-isolation-tee.x-ms-compliance-status is absent "
	                             "from the token but the policy requires equals "
	                             "'azure-compliant-…'");
}

/* ---------------------------------------------------------------------------------------------
 * Parse errors
 * ------------------------------------------------------------------------------------------- */

#define AUTH "{\"authority\":\"" ISS "\",\"allOf\":[" COND "]}"
#define COND "{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":\"0\"}"
#define IN_ALLOF(c) "{\"anyOf\":[{\"authority\":\"" ISS "\",\"allOf\":[" COND "," COND "," c "]}]}"
#define OPS "equals, notEquals, less, lessOrEquals, greater, greaterOrEquals, exists"

struct parse_error_case {
	const char *json;
	int code;
	const char *msg;
};

static void test_parse_errors(void **state)
{
	static const struct parse_error_case cases[] = {
	        {"[]", -EINVAL,
	         "release policy: expected a JSON object at the top level, got an array"},
	        {"\"policy\"", -EINVAL,
	         "release policy: expected a JSON object at the top level, got a string"},
	        {"{\"anyOf\":[" AUTH "]", -EINVAL,
	         "release policy is not valid JSON: unexpected end of data"},
	        {"{\"anyOf\":[" AUTH "]} {}", -EINVAL,
	         "release policy is not valid JSON: unexpected character"},
	        {"{\"version\":\"1.0.0\"}", -EINVAL,
	         "release policy: field 'anyOf' is missing (the top level is an 'anyOf' over "
	         "authorities)"},
	        {"{\"version\":\"1.2\",\"anyOf\":[" AUTH "]}", -EINVAL,
	         "release policy: version '1.2' is not supported (accepted: \"1.0.0\", \"0.2\" or "
	         "no version)"},
	        {"{\"version\":\"1.0.2\",\"anyOf\":[" AUTH "]}", -EINVAL,
	         "release policy: version '1.0.2' is not supported (accepted: \"1.0.0\", \"0.2\" "
	         "or no version)"},
	        {"{\"version\":1,\"anyOf\":[" AUTH "]}", -EINVAL,
	         "release policy: 'version' must be a string (accepted: \"1.0.0\", \"0.2\" or no "
	         "version)"},
	        {"{\"anyOf\":[]}", -EINVAL,
	         "release policy: anyOf: empty list (a release policy needs at least one "
	         "authority)"},
	        {"{\"anyOf\":{}}", -EINVAL,
	         "release policy: anyOf: expected an array of authorities, got an object"},
	        {"{\"allOf\":[" AUTH "]}", -EINVAL,
	         "release policy: top-level 'allOf' is not supported (the top level is an 'anyOf' "
	         "over authorities)"},
	        {"{\"anyOf\":[" AUTH "],\"immutable\":true}", -EINVAL,
	         "release policy: unknown field 'immutable' (a release policy has 'version' and "
	         "'anyOf')"},
	        {"{\"anyOf\":[" AUTH ",7]}", -EINVAL,
	         "release policy: anyOf[1]: expected an authority object, got a number"},
	        {"{\"anyOf\":[{\"authority\":\"https://a\"}]}", -EINVAL,
	         "release policy: anyOf[0]: authority 'https://a' has neither 'allOf' nor "
	         "'anyOf'"},
	        {"{\"anyOf\":[{\"allOf\":[" COND "]}]}", -EINVAL,
	         "release policy: anyOf[0]: field 'authority' is missing"},
	        {"{\"anyOf\":[{\"authority\":5,\"allOf\":[" COND "]}]}", -EINVAL,
	         "release policy: anyOf[0]: 'authority' must be a string (the MAA issuer URL), "
	         "got a number"},
	        {"{\"anyOf\":[{\"authority\":\"\",\"allOf\":[" COND "]}]}", -EINVAL,
	         "release policy: anyOf[0]: 'authority' must not be empty"},
	        {"{\"anyOf\":[{\"authority\":\"a\",\"allOf\":[" COND "],\"anyOf\":[" COND "]}]}",
	         -EINVAL,
	         "release policy: anyOf[0]: both 'allOf' and 'anyOf' (an authority takes exactly "
	         "one)"},
	        {"{\"anyOf\":[{\"authority\":\"a\",\"allof\":[" COND "]}]}", -EINVAL,
	         "release policy: anyOf[0]: unknown key 'allof' (an authority has 'authority' and "
	         "'allOf' or 'anyOf')"},
	        {"{\"anyOf\":[{\"authority\":\"a\",\"allOf\":{}}]}", -EINVAL,
	         "release policy: anyOf[0].allOf: expected an array of conditions, got an object"},
	        {"{\"anyOf\":[{\"authority\":\"a\",\"anyOf\":[]}]}", -EINVAL,
	         "release policy: anyOf[0].anyOf: empty list (a group needs at least one "
	         "condition)"},
	        {IN_ALLOF("{\"claim\":\"x-ms-sevsnpvm-is-debuggable\",\"equal\":\"false\"}"),
	         -EINVAL,
	         "release policy: anyOf[0].allOf[2]: unknown operator 'equal' (operators: " OPS
	         ")"},
	        {IN_ALLOF("{\"claim\":\"x\",\"equals\":\"a\",\"notEquals\":\"b\"}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: two operators 'equals' and 'notEquals' (a "
	         "condition takes exactly one)"},
	        {IN_ALLOF("{\"equals\":\"a\"}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: operator 'equals' without a 'claim'"},
	        {IN_ALLOF("{\"claim\":\"x\"}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: claim 'x' has no operator (one of: " OPS ")"},
	        {IN_ALLOF("{\"claim\":5,\"equals\":\"a\"}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: 'claim' must be a non-empty string, got a "
	         "number"},
	        {IN_ALLOF("{\"claim\":\"\",\"equals\":\"a\"}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: 'claim' must not be empty"},
	        {IN_ALLOF("{\"claim\":\"x\",\"equals\":[1]}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: 'equals' takes a string, number or boolean, "
	         "got an array"},
	        {IN_ALLOF("{\"claim\":\"x\",\"notEquals\":null}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: 'notEquals' takes a string, number or "
	         "boolean, got null"},
	        {IN_ALLOF("{\"claim\":\"x\",\"equals\":1e999}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: 'equals' takes a finite number"},
	        {IN_ALLOF("{\"claim\":\"x\",\"exists\":\"true\"}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: 'exists' takes true or false, got a string"},
	        {IN_ALLOF("{\"claim\":\"x\",\"greater\":\"abc\"}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: 'greater' takes a number or a string holding "
	         "a number, got a string"},
	        {IN_ALLOF("{\"claim\":\"x\",\"lessOrEquals\":\"08\"}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: 'lessOrEquals' takes a number or a string "
	         "holding a number, got a string"},
	        {IN_ALLOF("{\"claim\":\"x\",\"less\":true}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: 'less' takes a number or a string holding a "
	         "number, got a boolean"},
	        {IN_ALLOF("\"x-ms-sevsnpvm-vmpl\""), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: expected a condition object, got a string"},
	        {IN_ALLOF("{}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: empty condition (a condition is {\"claim\": "
	         "name, <operator>: value} or {\"allOf\"|\"anyOf\": [...]})"},
	        {IN_ALLOF("{\"anyOf\":[" COND "],\"allOf\":[" COND "]}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: both 'allOf' and 'anyOf' (a group takes "
	         "exactly one)"},
	        {IN_ALLOF("{\"claim\":\"x\",\"equals\":\"a\",\"anyOf\":[" COND "]}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: 'anyOf' cannot be combined with 'claim' (a "
	         "condition is either a claim comparison or a group)"},
	        {IN_ALLOF("{\"not\":[" COND "]}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: unknown key 'not' (a condition is {\"claim\": "
	         "name, <operator>: value} or {\"allOf\"|\"anyOf\": [...]})"},
	        {IN_ALLOF("{\"anyOf\":[" COND
	                  ",{\"allOf\":[{\"claim\":\"y\",\"GreaterOrEquals\":1}]}]}"),
	         -EINVAL,
	         "release policy: anyOf[0].allOf[2].anyOf[1].allOf[0]: unknown operator "
	         "'GreaterOrEquals' (operators: " OPS ")"},
	        {IN_ALLOF("{\"anyOf\":[]}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2].anyOf: empty list (a group needs at least one "
	         "condition)"},
	        {IN_ALLOF("{\"claim\":\"x\\u0000y\",\"equals\":\"a\"}"), -EINVAL,
	         "release policy: anyOf[0].allOf[2]: 'claim' contains a NUL character"},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct skr_policy *p = (struct skr_policy *)&p;
		struct skr_error err = {0};
		int r = skr_policy_parse(cases[i].json, strlen(cases[i].json), &p, &err);

		if (r != cases[i].code || strcmp(err.msg, cases[i].msg) != 0) {
			print_error("case %zu (%s):\n got  %d %s\n want %d %s\n", i, cases[i].json,
			            r, err.msg, cases[i].code, cases[i].msg);
			fail();
		}
		assert_null(p);
	}
}

static void test_parse_accepts_versions(void **state)
{
	static const char *const policies[] = {
	        "{\"version\":\"1.0.0\",\"anyOf\":[" AUTH "]}",
	        "{\"version\":\"0.2\",\"anyOf\":[" AUTH "]}",
	        "{\"anyOf\":[" AUTH "]}",
	        " {\"anyOf\":[" AUTH "]}\n",
	        /* a long claim name of exactly the limit */
	        "{\"anyOf\":[{\"authority\":\"a\",\"allOf\":[{\"claim\":\""
	        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	        "xxxxxxxxxxxxxxxx\",\"exists\":false}]}]}",
	};

	for (size_t i = 0; i < ELEMENTSOF(policies); i++)
		skr_policy_free(parse_ok(policies[i]));
}

/* Nesting and size limits: untrusted input must not recurse or allocate without bound. */
static void test_parse_limits(void **state)
{
	_cleanup_free_ char *deep = NULL, *wide = NULL, *json_deep = NULL;
	struct skr_policy *p = NULL;
	struct skr_error err = {0};
	size_t cap = 1 << 20, len;
	FILE *f;

	/* 13 nested groups: refused by the policy's own limit, naming the path. */
	f = open_memstream(&deep, &len);
	assert_non_null(f);
	fputs("{\"anyOf\":[{\"authority\":\"a\",\"allOf\":[", f);
	for (int i = 1; i < 13; i++)
		fputs("{\"allOf\":[", f);
	fputs(COND, f);
	for (int i = 1; i < 13; i++)
		fputs("]}", f);
	fputs("]}]}", f);
	fclose(f);
	expect_error(
	        "depth", skr_policy_parse(deep, strlen(deep), &p, &err), &err, -EINVAL,
	        "release policy: anyOf[0].allOf[0].allOf[0].allOf[0].allOf[0].allOf[0].allOf[0]"
	        ".allOf[0].allOf[0].allOf[0].allOf[0].allOf[0].allOf[0]: groups nested deeper "
	        "than 12 levels");
	assert_null(p);

	/* Far deeper: json-c's own nesting limit refuses it before any recursion of ours. */
	skr_error_clear(&err);
	f = open_memstream(&json_deep, &len);
	assert_non_null(f);
	fputs("{\"anyOf\":[{\"authority\":\"a\",\"allOf\":[", f);
	for (int i = 0; i < 10000; i++)
		fputs("{\"anyOf\":[", f);
	fclose(f);
	expect_error("json depth", skr_policy_parse(json_deep, strlen(json_deep), &p, &err), &err,
	             -EINVAL, "release policy is not valid JSON: nesting too deep");

	/* 1 authority + 4095 conditions is the most; one more is refused. */
	for (int n = 4095; n <= 4096; n++) {
		free(wide);
		f = open_memstream(&wide, &len);
		assert_non_null(f);
		fputs("{\"anyOf\":[{\"authority\":\"a\",\"anyOf\":[", f);
		for (int i = 0; i < n; i++)
			fprintf(f, "%s{\"claim\":\"c%d\",\"exists\":true}", i ? "," : "", i);
		fputs("]}]}", f);
		fclose(f);
		skr_error_clear(&err);
		if (n == 4095) {
			skr_policy_free(parse_ok(wide));
			continue;
		}
		expect_error("nodes", skr_policy_parse(wide, strlen(wide), &p, &err), &err, -E2BIG,
		             "release policy: more than 4096 authorities and conditions (a release "
		             "policy this large is refused)");
	}

	/* Size cap before parsing. */
	skr_error_clear(&err);
	expect_error("size", skr_policy_parse("{}", cap + 1, &p, &err), &err, -EFBIG,
	             "release policy: larger than 1048576 bytes");
}

/* ---------------------------------------------------------------------------------------------
 * Build (importkey)
 * ------------------------------------------------------------------------------------------- */

static void test_build_anchor_config(void **state)
{
	/* importkeyconfig.json's claims as the anchor's README writes them. */
	static const char claims[] =
	        "[[{\"claim\": \"x-ms-sevsnpvm-hostdata\", \"equals\": \"" HOST_TOKEN "\"},"
	        "  {\"claim\": \"x-ms-compliance-status\", \"equals\": \"azure-compliant-uvm\"},"
	        "  {\"claim\": \"x-ms-sevsnpvm-is-debuggable\", \"equals\": \"false\"}]]";
	static const char want[] =
	        "{\"version\":\"1.0.0\",\"anyOf\":[{\"authority\":\"" ISS "\",\"allOf\":["
	        "{\"claim\":\"x-ms-sevsnpvm-hostdata\",\"equals\":\"" HOST_TOKEN "\"},"
	        "{\"claim\":\"x-ms-compliance-status\",\"equals\":\"azure-compliant-uvm\"},"
	        "{\"claim\":\"x-ms-sevsnpvm-is-debuggable\",\"equals\":\"false\"}]}]}";
	_cleanup_free_ char *policy = NULL;
	struct skr_error err = {0};

	assert_int_equal(skr_policy_build("sharedeus.eus.attest.azure.net", claims, strlen(claims),
	                                  &policy, &err),
	                 0);
	assert_string_equal(policy, want);
	/* What importkey puts on the key releases to a matching token. */
	assert_int_equal(evaluate(policy, ISS "/", claims_aci, NULL, &err), 0);
}

static void test_build_operators_and_sets(void **state)
{
	static const char claims[] =
	        "[[{\"claim\":\"x-ms-sevsnpvm-snpfw-svn\",\"greaterOrEquals\":8},"
	        "{\"claim\":\"x-ms-sevsnpvm-is-debuggable\",\"equals\":false},"
	        "{\"claim\":\"ratio\",\"less\":1.50},"
	        "{\"claim\":\"x-ms-sevsnpvm-guestsvn\",\"exists\":false}],"
	        "[{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"notEquals\":\"1\"},"
	        "{\"anyOf\":[{\"claim\":\"a\",\"exists\":true},{\"claim\":\"b\",\"exists\":true}]}]"
	        "]";
	static const char want[] = "{\"version\":\"1.0.0\",\"anyOf\":["
	                           "{\"authority\":\"https://127.0.0.1:8443\",\"allOf\":["
	                           "{\"claim\":\"x-ms-sevsnpvm-snpfw-svn\",\"greaterOrEquals\":8},"
	                           "{\"claim\":\"x-ms-sevsnpvm-is-debuggable\",\"equals\":false},"
	                           "{\"claim\":\"ratio\",\"less\":1.50},"
	                           "{\"claim\":\"x-ms-sevsnpvm-guestsvn\",\"exists\":false}]},"
	                           "{\"authority\":\"https://127.0.0.1:8443\",\"allOf\":["
	                           "{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"notEquals\":\"1\"},"
	                           "{\"anyOf\":[{\"claim\":\"a\",\"exists\":true},{\"claim\":\"b\","
	                           "\"exists\":true}]}]}]}";
	static const char *const endpoints[] = {
	        "127.0.0.1:8443",
	        "https://127.0.0.1:8443",
	        "https://127.0.0.1:8443/",
	        "HTTPS://127.0.0.1:8443//",
	};
	struct skr_error err = {0};

	for (size_t i = 0; i < ELEMENTSOF(endpoints); i++) {
		_cleanup_free_ char *policy = NULL;

		assert_int_equal(
		        skr_policy_build(endpoints[i], claims, strlen(claims), &policy, &err), 0);
		assert_string_equal(policy, want);
	}
}

struct build_error_case {
	const char *endpoint;
	const char *claims;
	const char *msg;
};

static void test_build_errors(void **state)
{
	static const struct build_error_case cases[] = {
	        {"", "[[" COND "]]", "MAA endpoint is empty (expected host[:port])"},
	        {NULL, "[[" COND "]]", "MAA endpoint is empty (expected host[:port])"},
	        {"http://maa.example", "[[" COND "]]",
	         "MAA endpoint 'http://maa.example': the scheme must be https (MAA tokens are "
	         "issued by https URLs)"},
	        {"https://", "[[" COND "]]", "MAA endpoint 'https://' has no host name"},
	        {"https:///x", "[[" COND "]]", "MAA endpoint 'https:///x' has no host name"},
	        {"maa example", "[[" COND "]]",
	         "MAA endpoint contains whitespace or control characters"},
	        {"maa", "{}", "claims must be an array of arrays, got an object"},
	        {"maa", "[", "claims is not valid JSON: unexpected end of data"},
	        {"maa", "[]",
	         "claims is empty (a release policy needs at least one array of conditions)"},
	        {"maa", "[" COND "]",
	         "claims[0]: expected an array of conditions, got an object (claims must be an "
	         "array of arrays)"},
	        {"maa", "[[" COND "],[]]",
	         "claims[1]: empty list (each inner array needs at least one condition)"},
	        {"maa", "[[" COND "],[{\"claim\":\"x\",\"equal\":\"y\"}]]",
	         "claims[1][0]: unknown operator 'equal' (operators: " OPS ")"},
	        {"maa", "[[" COND ",5]]",
	         "claims[0][1]: expected a condition object, got a number"},
	        {"maa", "[[{\"claim\":\"x\",\"greaterOrEquals\":\"eight\"}]]",
	         "claims[0][0]: 'greaterOrEquals' takes a number or a string holding a number, got "
	         "a string"},
	        {"maa", "[[{\"claim\":\"x\",\"equals\":\"a\",\"notEquals\":\"b\"}]]",
	         "claims[0][0]: two operators 'equals' and 'notEquals' (a condition takes exactly "
	         "one)"},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		char *policy = (char *)"untouched";
		struct skr_error err = {0};
		int r = skr_policy_build(cases[i].endpoint, cases[i].claims,
		                         strlen(cases[i].claims), &policy, &err);

		if (r != -EINVAL || strcmp(err.msg, cases[i].msg) != 0) {
			print_error("case %zu:\n got  %d %s\n want %s\n", i, r, err.msg,
			            cases[i].msg);
			fail();
		}
		assert_null(policy);
	}
}

static void test_build_node_limit(void **state)
{
	_cleanup_free_ char *claims = NULL;
	char *policy = NULL;
	struct skr_error err = {0};
	size_t len;
	FILE *f = open_memstream(&claims, &len);

	/* 3000 sets of one condition: each set adds an authority, 6000 nodes in all. */
	assert_non_null(f);
	fputc('[', f);
	for (int i = 0; i < 3000; i++)
		fprintf(f, "%s[{\"claim\":\"c\",\"exists\":true}]", i ? "," : "");
	fputc(']', f);
	fclose(f);
	expect_error("nodes", skr_policy_build("maa", claims, strlen(claims), &policy, &err), &err,
	             -E2BIG,
	             "built release policy: more than 4096 authorities and conditions (a "
	             "release policy this large is refused)");
	assert_null(policy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_operators),
	        cmocka_unit_test(test_nested_groups),
	        cmocka_unit_test(test_depth_limit_accepted),
	        cmocka_unit_test(test_issuer_matching),
	        cmocka_unit_test(test_several_authorities),
	        cmocka_unit_test(test_explain_hostdata_mismatch),
	        cmocka_unit_test(test_explain_shows_where_strings_differ),
	        cmocka_unit_test(test_explain_missing_claim),
	        cmocka_unit_test(test_explain_debuggable_token),
	        cmocka_unit_test(test_explain_each_failure_kind),
	        cmocka_unit_test(test_explain_issuer_mismatch),
	        cmocka_unit_test(test_evaluate_rejects_bad_claims),
	        cmocka_unit_test(test_microsoft_samples),
	        cmocka_unit_test(test_parse_errors),
	        cmocka_unit_test(test_parse_accepts_versions),
	        cmocka_unit_test(test_parse_limits),
	        cmocka_unit_test(test_build_anchor_config),
	        cmocka_unit_test(test_build_operators_and_sets),
	        cmocka_unit_test(test_build_errors),
	        cmocka_unit_test(test_build_node_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
