/* SPDX-License-Identifier: MIT */
/*
 * devcloud's handlers without HTTP: the attest operation (success and every kind of bad
 * evidence), routing (404/405/api-version), the token metadata, KDS and THIM. One devcloud
 * state (with its virtual platform) and one second, untrusted platform per test binary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "b64.h"
#include "cleanup.h"
#include "devcloud.h"
#include "fileio.h"
#include "json_util.h"
#include "ossl.h"
#include "test_fs.h"
#include "test_platform.h"

#define HOST "localhost:8443"
#define RUNTIME "{\"keys\":[{\"kid\":\"k1\",\"kty\":\"RSA\"}],\"purpose\":\"unit\"}"
#define MAX_BODY (256u * 1024)
#define LIFETIME 600

static char tmpdir[] = "/tmp/test_devcloud_attest.XXXXXX";
static struct devcloud *dc;
static struct snp_virtual *other; /* a platform whose ARK devcloud does not trust */
static uint8_t host_data[32];

static int group_setup(void **state)
{
	struct devcloud_init_options io;
	struct devcloud_serve_options so;
	struct skr_error err = {0};
	_cleanup_free_ char *state_dir = NULL, *other_dir = NULL;

	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	state_dir = path_join(tmpdir, "state");
	other_dir = path_join(tmpdir, "other");
	for (size_t i = 0; i < sizeof(host_data); i++)
		host_data[i] = (uint8_t)(0x11 * (i % 16));

	devcloud_init_options_default(&io);
	io.state_dir = state_dir;
	io.hostnames[io.n_hostnames++] = "devcloud";
	memcpy(io.host_data, host_data, sizeof(host_data));
	if (devcloud_state_init(&io, NULL, &err) < 0) {
		fprintf(stderr, "init: %s\n", skr_error_message(&err));
		return -1;
	}
	devcloud_serve_options_default(&so);
	so.state_dir = state_dir;
	so.max_body = MAX_BODY;
	so.token_lifetime = LIFETIME;
	if (devcloud_open(&so, &dc, &err) < 0) {
		fprintf(stderr, "open: %s\n", skr_error_message(&err));
		return -1;
	}
	if (test_platform_new(other_dir, NULL, &other, &err) < 0) {
		fprintf(stderr, "second platform: %s\n", skr_error_message(&err));
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	devcloud_free(dc);
	snp_virtual_free(other);
	test_fs_rm_rf(tmpdir);
	return 0;
}

/* A report of @v bound to @runtime. */
static void get_report(struct snp_virtual *v, const char *runtime, uint8_t out[SNP_REPORT_SIZE])
{
	uint8_t rd[64];
	struct skr_error err = {0};

	skr_report_data_for((const uint8_t *)runtime, strlen(runtime), rd);
	if (snp_virtual_get_report(v, rd, 0, out, &err) < 0)
		fail_msg("snp_virtual_get_report: %s", skr_error_message(&err));
}

static char *build_body(const uint8_t *report, size_t len, const char *chain, const char *runtime,
                        uint64_t nonce)
{
	struct skr_error err = {0};
	char *body = NULL;

	if (maa_request_build(report, len, chain, NULL, (const uint8_t *)runtime, strlen(runtime),
	                      nonce, &body, &err) < 0)
		fail_msg("maa_request_build: %s", skr_error_message(&err));
	return body;
}

/* Attest and check an MAA error body: status, code present, message containing @needle. */
static void expect_error(const char *body, size_t len, size_t content_length, const char *host,
                         unsigned status, const char *needle)
{
	struct devcloud_response resp = {0};
	_cleanup_json_ json_object *root = NULL;
	json_object *error, *code, *message;
	const char *msg;

	assert_int_equal(devcloud_attest(dc, body, len, content_length, host, &resp), 0);
	if (resp.status != status)
		fail_msg("expected %u, got %u: %s", status, resp.status, resp.body);
	assert_string_equal(resp.content_type, "application/json; charset=utf-8");
	root = json_tokener_parse(resp.body);
	assert_non_null(root);
	assert_true(json_object_object_get_ex(root, "error", &error));
	assert_true(json_object_object_get_ex(error, "code", &code));
	assert_true(json_object_is_type(code, json_type_string));
	assert_true(json_object_object_get_ex(error, "message", &message));
	msg = json_object_get_string(message);
	if (!strcasestr(msg, needle))
		fail_msg("message '%s' does not mention '%s'", msg, needle);
	devcloud_response_clear(&resp);
}

static const char *chain_of(struct snp_virtual *v)
{
	return snp_virtual_chain_pem(v);
}

/* ---------------------------------------------------------------------------------------------
 * Success
 * ------------------------------------------------------------------------------------------- */

static json_object *decode_segment(const char *start, size_t len)
{
	_cleanup_free_ uint8_t *raw = NULL;
	size_t raw_len;
	json_object *obj = NULL;

	assert_int_equal(b64_decode(start, len, B64_ACCEPT_URL, &raw, &raw_len), 0);
	assert_int_equal(json_parse((const char *)raw, raw_len, "segment", &obj, NULL), 0);
	return obj;
}

static void test_attest_success(void **state)
{
	uint8_t report[SNP_REPORT_SIZE];
	_cleanup_free_ char *body = NULL, *sig = NULL;
	_cleanup_json_ json_object *answer = NULL, *header = NULL, *claims = NULL, *rt = NULL;
	struct devcloud_response resp = {0};
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = NULL;
	json_object *v;
	const char *token, *dot1, *dot2;
	char hex[129], expect_hex[129];
	size_t sig_len;
	uint8_t rd[64];

	(void)state;
	get_report(dc->platform, RUNTIME, report);
	body = build_body(report, sizeof(report), chain_of(dc->platform), RUNTIME, 987654321);
	assert_int_equal(devcloud_attest(dc, body, strlen(body), strlen(body), HOST, &resp), 0);
	if (resp.status != 200)
		fail_msg("attest: %u %s", resp.status, resp.body);
	assert_true(resp.secret_body);

	answer = json_tokener_parse(resp.body);
	assert_non_null(answer);
	assert_true(json_object_object_get_ex(answer, "token", &v));
	token = json_object_get_string(v);
	dot1 = strchr(token, '.');
	assert_non_null(dot1);
	dot2 = strchr(dot1 + 1, '.');
	assert_non_null(dot2);

	header = decode_segment(token, (size_t)(dot1 - token));
	assert_string_equal(json_object_get_string(json_object_object_get(header, "alg")), "RS256");
	assert_string_equal(json_object_get_string(json_object_object_get(header, "typ")), "JWT");
	assert_string_equal(json_object_get_string(json_object_object_get(header, "kid")), dc->kid);
	assert_string_equal(json_object_get_string(json_object_object_get(header, "jku")),
	                    "https://" HOST "/certs");

	/* RS256 over header.payload with the published signing key. */
	assert_int_equal(
	        b64_decode(dot2 + 1, strlen(dot2 + 1), B64_ACCEPT_URL, (uint8_t **)&sig, &sig_len),
	        0);
	md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, dc->signing_key), 1);
	assert_int_equal(EVP_DigestVerify(md, (uint8_t *)sig, sig_len, (const uint8_t *)token,
	                                  (size_t)(dot2 - token)),
	                 1);

	claims = decode_segment(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	assert_string_equal(json_object_get_string(json_object_object_get(claims, "iss")),
	                    "https://" HOST);
	assert_int_equal(json_object_get_int64(json_object_object_get(claims, "exp")) -
	                         json_object_get_int64(json_object_object_get(claims, "iat")),
	                 LIFETIME);
	assert_int_equal(json_object_get_int64(json_object_object_get(claims, "nbf")),
	                 json_object_get_int64(json_object_object_get(claims, "iat")));
	assert_int_equal(strlen(json_object_get_string(json_object_object_get(claims, "jti"))), 64);
	assert_string_equal(json_object_get_string(json_object_object_get(claims, "nonce")),
	                    "987654321");
	assert_string_equal(
	        json_object_get_string(json_object_object_get(claims, "x-ms-compliance-status")),
	        "azure-compliant-uvm");
	assert_string_equal(
	        json_object_get_string(json_object_object_get(claims, "x-ms-attestation-type")),
	        "sevsnpvm");
	assert_string_equal(
	        json_object_get_string(json_object_object_get(claims, "x-ms-policy-hash")),
	        dc->policy_hash);
	hex_encode(host_data, sizeof(host_data), expect_hex);
	assert_string_equal(
	        json_object_get_string(json_object_object_get(claims, "x-ms-sevsnpvm-hostdata")),
	        expect_hex);
	skr_report_data_for((const uint8_t *)RUNTIME, strlen(RUNTIME), rd);
	hex_encode(rd, sizeof(rd), hex);
	assert_string_equal(
	        json_object_get_string(json_object_object_get(claims, "x-ms-sevsnpvm-reportdata")),
	        hex);
	assert_false(json_object_get_boolean(
	        json_object_object_get(claims, "x-ms-sevsnpvm-is-debuggable")));
	rt = json_tokener_parse(RUNTIME);
	assert_true(json_object_equal(json_object_object_get(claims, "x-ms-runtime"), rt));
	devcloud_response_clear(&resp);
}

/* Host names are matched case-insensitively and kept as sent; extra names and [::1] work. */
static void test_attest_issuer_hosts(void **state)
{
	static const struct {
		const char *host, *iss;
	} cases[] = {
	        {"localhost", "https://localhost"},
	        {"LocalHost:1234", "https://LocalHost:1234"},
	        {"127.0.0.1:5", "https://127.0.0.1:5"},
	        {"[::1]:443", "https://[::1]:443"},
	        {"devcloud:8443", "https://devcloud:8443"},
	};
	struct devcloud_settings *s = &dc->settings;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		_cleanup_free_ char *iss = NULL;
		struct skr_error err = {0};

		if (devcloud_issuer_from_host(s, cases[i].host, &iss, &err) < 0)
			fail_msg("%s: %s", cases[i].host, err.msg);
		assert_string_equal(iss, cases[i].iss);
	}
}

/* ---------------------------------------------------------------------------------------------
 * Bad input: each a 400/413 with an MAA error body naming the problem
 * ------------------------------------------------------------------------------------------- */

static void test_attest_malformed_json(void **state)
{
	static const char *bodies[] = {"{not json", "", "[1,2]", "{\"report\":12}"};

	(void)state;
	expect_error(bodies[0], strlen(bodies[0]), 0, HOST, 400, "not valid JSON");
	expect_error(bodies[1], 0, 0, HOST, 400, "JSON");
	expect_error(bodies[2], strlen(bodies[2]), 0, HOST, 400, "not a JSON object");
	expect_error(bodies[3], strlen(bodies[3]), 0, HOST, 400, "report");
}

static void test_attest_wrong_base64(void **state)
{
	static const char body[] = "{\"report\":\"%%%not-base64%%%\",\"runtimeData\":{\"data\":"
	                           "\"\",\"dataType\":\"JSON\"}}";

	(void)state;
	expect_error(body, strlen(body), 0, HOST, 400, "not base64");
}

static void test_attest_report_size(void **state)
{
	uint8_t report[SNP_REPORT_SIZE + 16] = {0};
	_cleanup_free_ char *truncated = NULL, *oversized = NULL;

	(void)state;
	get_report(dc->platform, RUNTIME, report);
	truncated = build_body(report, 1000, chain_of(dc->platform), RUNTIME, 1);
	expect_error(truncated, strlen(truncated), 0, HOST, 400,
	             "SnpReport is 1000 bytes, expected 1184 (truncated)");
	oversized = build_body(report, sizeof(report), chain_of(dc->platform), RUNTIME, 1);
	expect_error(oversized, strlen(oversized), 0, HOST, 400,
	             "SnpReport is 1200 bytes, expected 1184 (oversized)");
}

/* Report modifications that the verifier must refuse, each with its own reason. */
static void test_attest_verification_failures(void **state)
{
	static const struct {
		const char *name;
		size_t offset;
		uint8_t xor_value;
		const char *needle;
	} cases[] = {
	        /* SIGNATURE_ALGO 1 → 3 (xor 2): unknown algorithm, refused before any math */
	        {"signature algorithm", 0x34, 0x03, "SIGNATURE_ALGO is 2"},
	        /* REPORTED_TCB: the VCEK was certified for another TCB */
	        {"TCB mismatch", 0x180, 0x01, "does not match the report's REPORTED_TCB"},
	        /* CHIP_ID: the VCEK belongs to another chip */
	        {"hwID mismatch", 0x1A0, 0x01, "is not the report's CHIP_ID"},
	        /* one bit of MEASUREMENT: the signature no longer matches */
	        {"bit flip", 0x90, 0x01, "signature does not verify"},
	        /* one bit of the signature itself */
	        {"signature bit flip", 0x2A0, 0x80, "signature does not verify"},
	};
	uint8_t good[SNP_REPORT_SIZE];

	(void)state;
	get_report(dc->platform, RUNTIME, good);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t report[SNP_REPORT_SIZE];
		_cleanup_free_ char *body = NULL;

		memcpy(report, good, sizeof(report));
		report[cases[i].offset] ^= cases[i].xor_value;
		body = build_body(report, sizeof(report), chain_of(dc->platform), RUNTIME, 1);
		print_message("case: %s\n", cases[i].name);
		expect_error(body, strlen(body), 0, HOST, 400, "SNP report verification failed");
		expect_error(body, strlen(body), 0, HOST, 400, cases[i].needle);
	}
}

static void test_attest_untrusted_chain(void **state)
{
	uint8_t report[SNP_REPORT_SIZE];
	_cleanup_free_ char *body = NULL;

	(void)state;
	/* A genuine report of a platform whose ARK devcloud does not trust. */
	get_report(other, RUNTIME, report);
	body = build_body(report, sizeof(report), chain_of(other), RUNTIME, 1);
	expect_error(body, strlen(body), 0, HOST, 400, "SNP report verification failed");
	expect_error(body, strlen(body), 0, HOST, 400, "not rooted in a trusted AMD root key");
}

static void test_attest_bad_chain(void **state)
{
	uint8_t report[SNP_REPORT_SIZE];
	_cleanup_free_ char *body = NULL;

	(void)state;
	get_report(dc->platform, RUNTIME, report);
	body = build_body(report, sizeof(report), "-----BEGIN CERTIFICATE-----\nAAAA\n", RUNTIME,
	                  1);
	expect_error(body, strlen(body), 0, HOST, 400, "VcekCertChain");
}

static void test_attest_report_data_mismatch(void **state)
{
	uint8_t report[SNP_REPORT_SIZE];
	_cleanup_free_ char *body = NULL;

	(void)state;
	get_report(dc->platform, "{\"other\":true}", report);
	body = build_body(report, sizeof(report), chain_of(dc->platform), RUNTIME, 1);
	expect_error(body, strlen(body), 0, HOST, 400, "REPORT_DATA mismatch");
}

static void test_attest_runtime_not_object(void **state)
{
	uint8_t report[SNP_REPORT_SIZE];
	_cleanup_free_ char *body = NULL;

	(void)state;
	get_report(dc->platform, "[1,2,3]", report);
	body = build_body(report, sizeof(report), chain_of(dc->platform), "[1,2,3]", 1);
	expect_error(body, strlen(body), 0, HOST, 400, "JSON object");
}

static void test_attest_body_too_large(void **state)
{
	_cleanup_free_ char *big = malloc(MAX_BODY + 2);

	(void)state;
	assert_non_null(big);
	memset(big, ' ', MAX_BODY + 1);
	big[MAX_BODY + 1] = '\0';
	/* Announced by Content-Length (the body was never read) ... */
	expect_error("", 0, MAX_BODY + 1, HOST, 413, "more than the limit");
	/* ... or received. */
	expect_error(big, MAX_BODY + 1, 0, HOST, 413, "more than the limit");
	/* At the limit exactly: parsed (and refused as JSON, not for its size). */
	expect_error(big, MAX_BODY, 0, HOST, 400, "JSON");
}

static void test_attest_bad_host(void **state)
{
	static const char *hosts[] = {"evil.example.com",
	                              "evil.example.com:443",
	                              "localhost.evil.com",
	                              "localhost:0",
	                              "localhost:99999",
	                              "localhost:80:80",
	                              "[::1",
	                              "localhostx"};
	uint8_t report[SNP_REPORT_SIZE];
	_cleanup_free_ char *body = NULL;

	(void)state;
	get_report(dc->platform, RUNTIME, report);
	body = build_body(report, sizeof(report), chain_of(dc->platform), RUNTIME, 1);
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
		expect_error(body, strlen(body), 0, hosts[i], 400, "Host header");
	expect_error(body, strlen(body), 0, NULL, 400, "no Host header");
}

/* ---------------------------------------------------------------------------------------------
 * Routing, metadata, KDS, THIM
 * ------------------------------------------------------------------------------------------- */

static void dispatch(const char *method, const char *path, const struct devcloud_kv *query,
                     size_t n_query, const struct devcloud_kv *headers, size_t n_headers,
                     struct devcloud_response *resp)
{
	struct devcloud_request req = {
	        .method = method,
	        .path = path,
	        .query = query,
	        .n_query = n_query,
	        .headers = headers,
	        .n_headers = n_headers,
	        .body = "",
	};

	assert_int_equal(devcloud_dispatch(dc, &req, resp), 0);
}

static const struct devcloud_kv host_header[] = {{"Host", HOST}};

static void test_routes(void **state)
{
	static const struct devcloud_kv version[] = {{"api-version", "2020-10-01"}};
	static const struct devcloud_kv empty_version[] = {{"api-version", NULL}};
	struct devcloud_response resp = {0};

	(void)state;
	dispatch("GET", "/nope", NULL, 0, host_header, 1, &resp);
	assert_int_equal(resp.status, 404);
	assert_non_null(strstr(resp.body, "\"code\":\"NotFound\""));

	dispatch("GET", "/attest/SevSnpVm", version, 1, host_header, 1, &resp);
	assert_int_equal(resp.status, 405);
	assert_string_equal(resp.allow, "POST");
	assert_non_null(strstr(resp.body, "\"code\":\"MethodNotAllowed\""));

	dispatch("POST", "/certs", NULL, 0, host_header, 1, &resp);
	assert_int_equal(resp.status, 405);
	assert_string_equal(resp.allow, "GET");

	dispatch("POST", "/attest/SevSnpVm", NULL, 0, host_header, 1, &resp);
	assert_int_equal(resp.status, 400);
	assert_non_null(strstr(resp.body, "api-version"));
	dispatch("POST", "/attest/SevSnpVm", empty_version, 1, host_header, 1, &resp);
	assert_int_equal(resp.status, 400);
	assert_non_null(strstr(resp.body, "MissingApiVersionParameter"));

	/* Client text in 404/405 messages is escaped: no line break reaches a client's log. */
	dispatch("GET", "/a\nFAKE LOG LINE", NULL, 0, host_header, 1, &resp);
	assert_int_equal(resp.status, 404);
	assert_null(strchr(resp.body, '\n'));
	assert_null(strstr(resp.body, "\\n"));
	assert_non_null(strstr(resp.body, "no such path: /a%0AFAKE%20LOG%20LINE"));
	dispatch("GE\rT", "/certs", NULL, 0, host_header, 1, &resp);
	assert_int_equal(resp.status, 405);
	assert_non_null(strstr(resp.body, "GE%0DT is not allowed"));

	/* api-version present, any value; MAA's path is case-insensitive. */
	dispatch("POST", "/attest/sevsnpvm", version, 1, host_header, 1, &resp);
	assert_int_equal(resp.status, 400);
	assert_non_null(strstr(resp.body, "InvalidParameter"));
	devcloud_response_clear(&resp);
}

static void test_openid_and_jwks(void **state)
{
	struct devcloud_response resp = {0};
	_cleanup_json_ json_object *cfg = NULL, *jwks = NULL;
	_cleanup_(X509_freep) X509 *cert = NULL;
	_cleanup_free_ uint8_t *der = NULL;
	json_object *keys, *key, *x5c;
	const unsigned char *p;
	size_t der_len;

	(void)state;
	dispatch("GET", "/.well-known/openid-configuration", NULL, 0, host_header, 1, &resp);
	assert_int_equal(resp.status, 200);
	cfg = json_tokener_parse(resp.body);
	assert_string_equal(json_object_get_string(json_object_object_get(cfg, "issuer")),
	                    "https://" HOST);
	assert_string_equal(json_object_get_string(json_object_object_get(cfg, "jwks_uri")),
	                    "https://" HOST "/certs");
	assert_string_equal(
	        json_object_get_string(json_object_array_get_idx(
	                json_object_object_get(cfg, "id_token_signing_alg_values_supported"), 0)),
	        "RS256");
	assert_non_null(json_object_object_get(cfg, "claims_supported"));
	assert_non_null(json_object_object_get(cfg, "revocation_endpoint"));

	dispatch("GET", "/.well-known/openid-configuration", NULL, 0, NULL, 0, &resp);
	assert_int_equal(resp.status, 400);

	dispatch("GET", "/certs", NULL, 0, host_header, 1, &resp);
	assert_int_equal(resp.status, 200);
	jwks = json_tokener_parse(resp.body);
	keys = json_object_object_get(jwks, "keys");
	assert_int_equal(json_object_array_length(keys), 1);
	key = json_object_array_get_idx(keys, 0);
	assert_string_equal(json_object_get_string(json_object_object_get(key, "kid")), dc->kid);
	assert_string_equal(json_object_get_string(json_object_object_get(key, "kty")), "RSA");
	assert_string_equal(json_object_get_string(json_object_object_get(key, "alg")), "RS256");
	assert_string_equal(json_object_get_string(json_object_object_get(key, "use")), "sig");
	assert_string_equal(json_object_get_string(json_object_object_get(key, "e")), "AQAB");
	x5c = json_object_object_get(key, "x5c");
	assert_int_equal(json_object_array_length(x5c), 2);

	/* x5c[0] is the signing certificate: its public key verifies tokens. */
	const char *leaf = json_object_get_string(json_object_array_get_idx(x5c, 0));
	assert_int_equal(b64_decode(leaf, strlen(leaf), B64_ACCEPT_STD, &der, &der_len), 0);
	p = der;
	cert = d2i_X509(NULL, &p, (long)der_len);
	assert_non_null(cert);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(cert), dc->signing_key), 1);
	devcloud_response_clear(&resp);
}

static void test_kds(void **state)
{
	const struct snp_virtual_params *p = snp_virtual_params(dc->platform);
	char hwid[129], path[256], bl[4], tee[4], snp[4], uc[4], wrong[4];
	struct devcloud_response resp = {0};
	const char *product = snp_product_name(p->product);

	(void)state;
	hex_encode(p->chip_id, sizeof(p->chip_id), hwid);
	snprintf(bl, sizeof(bl), "%u", p->tcb.bootloader);
	snprintf(tee, sizeof(tee), "%02u", p->tcb.tee); /* zero-padded works too */
	snprintf(snp, sizeof(snp), "%u", p->tcb.snp);
	snprintf(uc, sizeof(uc), "%u", p->tcb.microcode);
	snprintf(wrong, sizeof(wrong), "%u", (p->tcb.snp + 1) & 0xff);
	{
		const struct devcloud_kv q[] = {
		        {"blSPL", bl}, {"teeSPL", tee}, {"snpSPL", snp}, {"ucodeSPL", uc}};

		snprintf(path, sizeof(path), "/vcek/v1/%s/%s", product, hwid);
		dispatch("GET", path, q, 4, NULL, 0, &resp);
		assert_int_equal(resp.status, 200);
		assert_int_equal(resp.body_len, dc->certs.leaf_der_len);
		assert_memory_equal(resp.body, dc->certs.leaf_der, resp.body_len);
		/* upper-case hwid is the same chip */
		for (char *c = path + strlen("/vcek/v1/") + strlen(product) + 1; *c; c++)
			if (*c >= 'a' && *c <= 'f')
				*c = (char)(*c - 'a' + 'A');
		dispatch("GET", path, q, 4, NULL, 0, &resp);
		assert_int_equal(resp.status, 200);
	}
	{
		const struct devcloud_kv q[] = {
		        {"blSPL", bl}, {"teeSPL", tee}, {"snpSPL", wrong}, {"ucodeSPL", uc}};

		snprintf(path, sizeof(path), "/vcek/v1/%s/%s", product, hwid);
		dispatch("GET", path, q, 4, NULL, 0, &resp);
		assert_int_equal(resp.status, 404);
	}
	{
		const struct devcloud_kv q[] = {{"blSPL", bl}, {"teeSPL", tee}, {"snpSPL", snp}};

		dispatch("GET", path, q, 3, NULL, 0, &resp);
		assert_int_equal(resp.status, 400);
		assert_non_null(strstr(resp.body, "ucodeSPL"));
	}
	{
		const struct devcloud_kv q[] = {
		        {"blSPL", "x"}, {"teeSPL", tee}, {"snpSPL", snp}, {"ucodeSPL", uc}};

		dispatch("GET", path, q, 4, NULL, 0, &resp);
		assert_int_equal(resp.status, 400);
	}
	{
		const struct devcloud_kv q[] = {
		        {"blSPL", bl}, {"teeSPL", tee}, {"snpSPL", snp}, {"ucodeSPL", uc}};

		hwid[0] = hwid[0] == '0' ? '1' : '0';
		snprintf(path, sizeof(path), "/vcek/v1/%s/%s", product, hwid);
		dispatch("GET", path, q, 4, NULL, 0, &resp);
		assert_int_equal(resp.status, 404);
		snprintf(path, sizeof(path), "/vcek/v1/Nonexistent/%s", hwid);
		dispatch("GET", path, q, 4, NULL, 0, &resp);
		assert_int_equal(resp.status, 404);
	}
	snprintf(path, sizeof(path), "/vcek/v1/%s/cert_chain", product);
	dispatch("GET", path, NULL, 0, NULL, 0, &resp);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, dc->certs.chain_pem);
	/* ASK then ARK: two certificates, and the chain of the platform ends with the same ARK */
	assert_non_null(
	        strstr(resp.body, "-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----"));
	devcloud_response_clear(&resp);
}

static void test_thim(void **state)
{
	static const struct devcloud_kv metadata[] = {{"Metadata", "true"}};
	static const struct devcloud_kv wrong[] = {{"Metadata", "false"}};
	struct devcloud_response resp = {0};
	_cleanup_json_ json_object *root = NULL;
	struct snp_thim thim = {0};
	struct skr_error err = {0};
	const struct snp_virtual_params *p = snp_virtual_params(dc->platform);

	(void)state;
	dispatch("GET", "/metadata/THIM/amd/certification", NULL, 0, NULL, 0, &resp);
	assert_int_equal(resp.status, 400);
	assert_non_null(strstr(resp.body, "Metadata: true"));
	dispatch("GET", "/metadata/THIM/amd/certification", NULL, 0, wrong, 1, &resp);
	assert_int_equal(resp.status, 400);

	dispatch("GET", "/metadata/THIM/amd/certification", NULL, 0, metadata, 1, &resp);
	assert_int_equal(resp.status, 200);
	root = json_tokener_parse(resp.body);
	assert_string_equal(json_object_get_string(json_object_object_get(root, "vcekCert")),
	                    dc->certs.leaf_pem);
	assert_string_equal(
	        json_object_get_string(json_object_object_get(root, "certificateChain")),
	        dc->certs.chain_pem);
	assert_string_equal(json_object_get_string(json_object_object_get(root, "cacheControl")),
	                    "86400");
	/* libskr's THIM parser reads it back with the platform's TCB. */
	if (snp_thim_parse(resp.body, resp.body_len, &thim, &err) < 0)
		fail_msg("snp_thim_parse: %s", err.msg);
	assert_int_equal(thim.tcbm, snp_tcb_encode(&p->tcb, p->product));
	snp_thim_clear(&thim);
	devcloud_response_clear(&resp);
}

/* `init` refuses a non-empty state directory without --force. */
static void test_init_refuses_non_empty(void **state)
{
	struct devcloud_init_options io;
	struct skr_error err = {0};

	(void)state;
	devcloud_init_options_default(&io);
	io.state_dir = dc->state_dir;
	assert_int_equal(devcloud_state_init(&io, NULL, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "--force"));
}

static void test_log_escape(void **state)
{
	static const struct {
		const char *in;
		size_t size;
		const char *out;
	} cases[] = {
	        {"/attest/SevSnpVm", 64, "/attest/SevSnpVm"},
	        {"/no\nsuch", 64, "/no%0Asuch"},
	        {"/a\r\n200 OK", 64, "/a%0D%0A200%20OK"},
	        /* '%' itself is escaped: a literal "%0A" and a line break differ in the log */
	        {"/%0A", 64, "/%250A"},
	        {"/\x7f\x80\xff", 64, "/%7F%80%FF"},
	        {"", 8, ""},
	        /* exactly fits (9 characters and the NUL), then one more: cut with "..." */
	        {"/12345678", 10, "/12345678"},
	        {"/123456789", 10, "/12345..."},
	        /* an escape is never split */
	        {"/1234\n", 8, "/123..."},
	        {"/ab", 3, "/a"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[64];

		memset(out, 'Z', sizeof(out));
		devcloud_log_escape(cases[i].in, out, cases[i].size);
		if (strcmp(out, cases[i].out) != 0)
			fail_msg("case %zu: got \"%s\", expected \"%s\"", i, out, cases[i].out);
		assert_true(strlen(out) < cases[i].size);
	}
}

/*
 * --max-body may not exceed the MAA request parser's own cap (a body in between would get the
 * parser's 400, not a 413), and the two limits are the same number.
 */
static void test_max_body_limit(void **state)
{
	struct devcloud_serve_options so;
	struct devcloud *second = NULL;
	struct skr_error err = {0};
	struct maa_request m;
	_cleanup_free_ char *body = malloc(DEVCLOUD_MAX_BODY_LIMIT + 1);

	(void)state;
	devcloud_serve_options_default(&so);
	so.state_dir = dc->state_dir;
	so.max_body = DEVCLOUD_MAX_BODY_LIMIT + 1;
	assert_int_equal(devcloud_open(&so, &second, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--max-body must be 1..2097152"));
	assert_null(second);

	assert_non_null(body);
	memset(body, ' ', DEVCLOUD_MAX_BODY_LIMIT + 1);
	skr_error_clear(&err);
	assert_int_equal(maa_request_parse(body, DEVCLOUD_MAX_BODY_LIMIT + 1, &m, &err), -EFBIG);
	skr_error_clear(&err);
	assert_int_not_equal(maa_request_parse(body, DEVCLOUD_MAX_BODY_LIMIT, &m, &err), -EFBIG);
	assert_null(strstr(err.msg, "larger than"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_attest_success),
	        cmocka_unit_test(test_attest_issuer_hosts),
	        cmocka_unit_test(test_attest_malformed_json),
	        cmocka_unit_test(test_attest_wrong_base64),
	        cmocka_unit_test(test_attest_report_size),
	        cmocka_unit_test(test_attest_verification_failures),
	        cmocka_unit_test(test_attest_untrusted_chain),
	        cmocka_unit_test(test_attest_bad_chain),
	        cmocka_unit_test(test_attest_report_data_mismatch),
	        cmocka_unit_test(test_attest_runtime_not_object),
	        cmocka_unit_test(test_attest_body_too_large),
	        cmocka_unit_test(test_attest_bad_host),
	        cmocka_unit_test(test_routes),
	        cmocka_unit_test(test_openid_and_jwks),
	        cmocka_unit_test(test_kds),
	        cmocka_unit_test(test_thim),
	        cmocka_unit_test(test_init_refuses_non_empty),
	        cmocka_unit_test(test_log_escape),
	        cmocka_unit_test(test_max_body_limit),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
