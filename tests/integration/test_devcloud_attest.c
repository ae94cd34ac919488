/* SPDX-License-Identifier: MIT */
/*
 * The real `devcloud` binary over real HTTPS: init a state in a temp dir, serve it on an
 * ephemeral loopback port, then
 *   1. the full chain: virtual platform → skr_attest_maa → skr_token_verify (ca.pem trusted);
 *   2. bad evidence over HTTPS (libcurl) → 400/413 with {"error":{"code","message"}};
 *   3. the KDS and THIM paths return the platform's certificates (also through libskr's
 *      certificate fetcher);
 *   4. --listen 0.0.0.0 and 10.0.0.1 are refused with exit code 2;
 *   5. SIGTERM stops it with exit code 0.
 * The server is always killed at the end, even on failure (group teardown and at exit).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <json-c/json.h>

#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "ossl.h"
#include "secret.h"
#include "skr.h"
#include "test_devcloud.h"
#include "test_fs.h"
#include "test_http_client.h"
#include "test_platform.h"

#define MAX_BODY 131072
#define RUNTIME                                                                                    \
	"{\"keys\":[{\"e\":\"AQAB\",\"kid\":\"k\",\"kty\":\"RSA\"}],\"test\":\"integration\"}"

static char tmpdir[] = "/tmp/test_devcloud_integration.XXXXXX";
static struct test_devcloud dc = {.pid = -1};
static uint8_t host_data[32];
static struct snp_virtual *platform, *other;

static int group_setup(void **state)
{
	struct skr_error err = {0};
	char host_hex[65], state_dir[512], other_dir[600], amd_root[700], max_body[32];
	const char *testdata = getenv("SKR_TESTDATA");

	(void)state;
	if (!test_devcloud_bin())
		return -1;
	if (!testdata) {
		fprintf(stderr, "SKR_TESTDATA must be set (meson test does)\n");
		return -1;
	}
	if (!mkdtemp(tmpdir))
		return -1;
	test_fs_remove_at_exit(tmpdir);
	snprintf(state_dir, sizeof(state_dir), "%s/state", tmpdir);
	snprintf(other_dir, sizeof(other_dir), "%s/other", tmpdir);
	snprintf(amd_root, sizeof(amd_root), "%s/amd_roots/ask_ark_milan.pem", testdata);
	snprintf(max_body, sizeof(max_body), "%d", MAX_BODY);
	for (size_t i = 0; i < sizeof(host_data); i++)
		host_data[i] = (uint8_t)(0xF0 - i);
	hex_encode(host_data, sizeof(host_data), host_hex);
	{
		const char *const init_args[] = {"--host-data", host_hex, "--compliance-status",
		                                 "azure-compliant-uvm", NULL};
		const char *const serve_args[] = {
		        "--attest-port", "0",           "--max-body", max_body, "--trust-root",
		        amd_root,        "--log-level", "warn",       NULL};

		if (test_devcloud_init(&dc, state_dir, NULL, init_args) < 0 ||
		    test_devcloud_serve(&dc, serve_args) < 0)
			return -1;
	}

	if (snp_virtual_open(dc.platform, &platform, &err) < 0) {
		fprintf(stderr, "platform: %s\n", err.msg);
		return -1;
	}
	if (test_platform_new(other_dir, NULL, &other, &err) < 0) {
		fprintf(stderr, "second platform: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	test_devcloud_kill(&dc);
	snp_virtual_free(platform);
	snp_virtual_free(other);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * HTTPS with libcurl
 * ------------------------------------------------------------------------------------------- */

/* One request to the attest port; returns the HTTP status (0 on a transport error). */
static long https(const char *method, const char *path, const char *const *headers,
                  const char *body, size_t body_len, struct test_http_client_response *out)
{
	char url[1024];

	snprintf(url, sizeof(url), "https://%s%s", dc.attest, path);
	return test_http_client_request(&(struct test_http_client_request){.method = method,
	                                                                   .url = url,
	                                                                   .ca_bundle = dc.ca,
	                                                                   .headers = headers,
	                                                                   .body = body,
	                                                                   .body_len = body_len},
	                                out);
}

#define ATTEST_PATH "/attest/SevSnpVm?api-version=2020-10-01"

static void expect_error(long status, struct test_http_client_response *b, long want,
                         const char *needle)
{
	_cleanup_json_ json_object *root = NULL;
	json_object *error, *code, *message;

	if (status != want)
		fail_msg("expected HTTP %ld, got %ld: %s", want, status, b->body);
	root = json_tokener_parse(b->body);
	assert_non_null(root);
	assert_true(json_object_object_get_ex(root, "error", &error));
	assert_true(json_object_object_get_ex(error, "code", &code));
	assert_true(json_object_object_get_ex(error, "message", &message));
	if (!strcasestr(json_object_get_string(message), needle))
		fail_msg("message '%s' does not mention '%s'", json_object_get_string(message),
		         needle);
	test_http_client_response_clear(b);
}

static void get_report(struct snp_virtual *v, const char *runtime, uint8_t out[SNP_REPORT_SIZE])
{
	uint8_t rd[64];
	struct skr_error err = {0};

	skr_report_data_for((const uint8_t *)runtime, strlen(runtime), rd);
	if (snp_virtual_get_report(v, rd, 0, out, &err) < 0)
		fail_msg("snp_virtual_get_report: %s", err.msg);
}

static char *build_body(const uint8_t *report, size_t len, const char *chain, const char *runtime)
{
	struct skr_error err = {0};
	char *body = NULL;

	if (maa_request_build(report, len, chain, NULL, (const uint8_t *)runtime, strlen(runtime),
	                      42, &body, &err) < 0)
		fail_msg("maa_request_build: %s", err.msg);
	return body;
}

/* ---------------------------------------------------------------------------------------------
 * 1. Full chain with libskr's client
 * ------------------------------------------------------------------------------------------- */

static void test_full_chain(void **state)
{
	struct skr_attest_config cfg = {0};
	struct skr_attester *a = NULL;
	struct skr_error err = {0};
	_cleanup_free_ char *token = NULL, *claims_json = NULL;
	_cleanup_json_ json_object *claims = NULL, *rt = NULL;
	char expect[129];
	uint8_t rd[64];

	(void)state;
	cfg.source.kind = SNP_SOURCE_VIRTUAL;
	cfg.source.virtual_dir = dc.platform;
	cfg.ca_bundle = dc.ca;
	cfg.security_context_dir = NULL;
	if (skr_attester_new(&cfg, &a, &err) < 0)
		fail_msg("skr_attester_new: %s", err.msg);
	if (skr_attest_maa(a, dc.attest, (const uint8_t *)RUNTIME, strlen(RUNTIME), &token, &err) <
	    0) {
		skr_attester_free(a);
		fail_msg("skr_attest_maa: %s", err.msg);
	}
	if (skr_token_verify(a, dc.attest, token, &claims_json, &err) < 0) {
		skr_attester_free(a);
		fail_msg("skr_token_verify: %s", err.msg);
	}
	skr_attester_free(a);

	claims = json_tokener_parse(claims_json);
	assert_non_null(claims);
	{
		char iss[128];

		snprintf(iss, sizeof(iss), "https://%s", dc.attest);
		assert_string_equal(json_object_get_string(json_object_object_get(claims, "iss")),
		                    iss);
	}
	skr_report_data_for((const uint8_t *)RUNTIME, strlen(RUNTIME), rd);
	hex_encode(rd, sizeof(rd), expect);
	assert_string_equal(
	        json_object_get_string(json_object_object_get(claims, "x-ms-sevsnpvm-reportdata")),
	        expect);
	hex_encode(host_data, sizeof(host_data), expect);
	assert_string_equal(
	        json_object_get_string(json_object_object_get(claims, "x-ms-sevsnpvm-hostdata")),
	        expect);
	assert_string_equal(
	        json_object_get_string(json_object_object_get(claims, "x-ms-compliance-status")),
	        "azure-compliant-uvm");
	assert_string_equal(
	        json_object_get_string(json_object_object_get(claims, "x-ms-attestation-type")),
	        "sevsnpvm");
	assert_int_equal(json_object_get_int(json_object_object_get(claims, "x-ms-sevsnpvm-vmpl")),
	                 0);
	rt = json_tokener_parse(RUNTIME);
	assert_true(json_object_equal(json_object_object_get(claims, "x-ms-runtime"), rt));
	/*
	 * devcloud echoes the request's nonce as a decimal string; skr_attest_maa() has compared
	 * it with the nonce it sent (a mismatch is -EPROTO), so its presence here is the check.
	 */
	{
		json_object *nonce = json_object_object_get(claims, "nonce");
		const char *n;

		assert_non_null(nonce);
		assert_true(json_object_is_type(nonce, json_type_string));
		n = json_object_get_string(nonce);
		assert_true(*n && strspn(n, "0123456789") == strlen(n));
	}
	secure_erase(token, strlen(token));
}

/* ---------------------------------------------------------------------------------------------
 * 2. Bad input over HTTPS
 * ------------------------------------------------------------------------------------------- */

static void test_bad_input(void **state)
{
	uint8_t report[SNP_REPORT_SIZE + 16] = {0}, untrusted[SNP_REPORT_SIZE];
	const char *chain = snp_virtual_chain_pem(platform);
	struct test_http_client_response b;
	long st;

	(void)state;
	get_report(platform, RUNTIME, report);
	get_report(other, RUNTIME, untrusted);

	st = https("POST", ATTEST_PATH, NULL, "{not json", 9, &b);
	expect_error(st, &b, 400, "not valid JSON");

	{
		static const char body[] = "{\"report\":\"%%%\",\"runtimeData\":{\"data\":\"\","
		                           "\"dataType\":\"JSON\"}}";

		st = https("POST", ATTEST_PATH, NULL, body, strlen(body), &b);
		expect_error(st, &b, 400, "not base64");
	}
	{
		_cleanup_free_ char *body = build_body(report, 1000, chain, RUNTIME);

		st = https("POST", ATTEST_PATH, NULL, body, strlen(body), &b);
		expect_error(st, &b, 400, "SnpReport is 1000 bytes, expected 1184 (truncated)");
	}
	{
		_cleanup_free_ char *body = build_body(report, sizeof(report), chain, RUNTIME);

		st = https("POST", ATTEST_PATH, NULL, body, strlen(body), &b);
		expect_error(st, &b, 400, "SnpReport is 1200 bytes, expected 1184 (oversized)");
	}
	{
		_cleanup_free_ char *body = build_body(untrusted, sizeof(untrusted),
		                                       snp_virtual_chain_pem(other), RUNTIME);

		st = https("POST", ATTEST_PATH, NULL, body, strlen(body), &b);
		expect_error(st, &b, 400, "not rooted in a trusted AMD root key");
	}
	{
		_cleanup_free_ char *body =
		        build_body(report, SNP_REPORT_SIZE, chain, "{\"different\":1}");

		st = https("POST", ATTEST_PATH, NULL, body, strlen(body), &b);
		expect_error(st, &b, 400, "REPORT_DATA mismatch");
	}
	{
		/* Over --max-body: refused from Content-Length, body never read. Both with and
		 * without "Expect: 100-continue". */
		static const char *const expect_hdr[] = {"Expect: 100-continue", NULL};
		static const char *const no_expect[] = {"Expect:", NULL};
		size_t len = MAX_BODY + 1;
		_cleanup_free_ char *big = malloc(len);

		assert_non_null(big);
		memset(big, 'x', len);
		st = https("POST", ATTEST_PATH, expect_hdr, big, len, &b);
		expect_error(st, &b, 413, "more than the limit");
		st = https("POST", ATTEST_PATH, no_expect, big, len, &b);
		expect_error(st, &b, 413, "more than the limit");
		/* Chunked: no Content-Length to refuse early; the excess is discarded. */
		{
			static const char *const chunked[] = {"Transfer-Encoding: chunked", NULL};

			st = https("POST", ATTEST_PATH, chunked, big, len, &b);
			expect_error(st, &b, 413, "more than the limit");
		}
	}
	{
		_cleanup_free_ char *body = build_body(report, SNP_REPORT_SIZE, chain, RUNTIME);

		st = https("POST", "/attest/SevSnpVm", NULL, body, strlen(body), &b);
		expect_error(st, &b, 400, "api-version");
		/* Any api-version is accepted: a good body now succeeds. */
		st = https("POST", "/attest/SevSnpVm?api-version=2022-08-01", NULL, body,
		           strlen(body), &b);
		assert_int_equal(st, 200);
		assert_non_null(strstr(b.body, "\"token\":\""));
		test_http_client_response_clear(&b);
	}
	st = https("GET", "/no/such/path", NULL, NULL, 0, &b);
	expect_error(st, &b, 404, "no such path");
	/* A decoded line break (log injection) comes back escaped, as the access log has it. */
	st = https("GET", "/no%0Asuch%25path", NULL, NULL, 0, &b);
	expect_error(st, &b, 404, "no such path: /no%0Asuch%25path");
	{
		/* More header fields than devcloud keeps, Host the last: 431, not "no Host". */
		char lines[70][80];
		const char *hdrs[72];
		size_t n = 0;

		for (; n < 69; n++) {
			snprintf(lines[n], sizeof(lines[n]), "X-Filler-%zu: %zu", n, n);
			hdrs[n] = lines[n];
		}
		snprintf(lines[n], sizeof(lines[n]), "Host: %s", dc.attest);
		hdrs[n++] = lines[69];
		hdrs[n] = NULL;
		st = https("GET", "/certs", hdrs, NULL, 0, &b);
		expect_error(st, &b, 431, "more than 64 header fields");
		/* 60 are fine */
		hdrs[60] = NULL;
		st = https("GET", "/certs", hdrs, NULL, 0, &b);
		assert_int_equal(st, 200);
		test_http_client_response_clear(&b);
	}
	st = https("GET", ATTEST_PATH, NULL, NULL, 0, &b);
	expect_error(st, &b, 405, "not allowed");
	{
		static const char *const evil_host[] = {"Host: evil.example.com", NULL};
		_cleanup_free_ char *body = build_body(report, SNP_REPORT_SIZE, chain, RUNTIME);

		st = https("POST", ATTEST_PATH, evil_host, body, strlen(body), &b);
		expect_error(st, &b, 400, "Host header");
	}
}

/* ---------------------------------------------------------------------------------------------
 * 3. KDS and THIM
 * ------------------------------------------------------------------------------------------- */

static void test_kds_thim(void **state)
{
	const struct snp_virtual_params *p = snp_virtual_params(platform);
	struct snp_cert_table t = {0};
	const struct snp_cert_table_entry *vcek;
	struct skr_error err = {0};
	char hwid[129], path[512];
	struct test_http_client_response b;
	long st;

	(void)state;
	assert_int_equal(snp_virtual_cert_table(platform, &t, &err), 0);
	vcek = snp_cert_table_find(&t, SNP_CERT_VCEK);
	assert_non_null(vcek);

	hex_encode(p->chip_id, sizeof(p->chip_id), hwid);
	snprintf(path, sizeof(path), "/vcek/v1/%s/%s?ucodeSPL=%u&snpSPL=%u&teeSPL=%u&blSPL=%u",
	         snp_product_name(p->product), hwid, p->tcb.microcode, p->tcb.snp, p->tcb.tee,
	         p->tcb.bootloader);
	st = https("GET", path, NULL, NULL, 0, &b);
	assert_int_equal(st, 200);
	assert_int_equal(b.len, vcek->len);
	assert_memory_equal(b.body, vcek->data, vcek->len);
	test_http_client_response_clear(&b);

	snprintf(path, sizeof(path), "/vcek/v1/%s/%s?ucodeSPL=%u&snpSPL=%u&teeSPL=%u&blSPL=%u",
	         snp_product_name(p->product), hwid, p->tcb.microcode, p->tcb.snp + 1u, p->tcb.tee,
	         p->tcb.bootloader);
	st = https("GET", path, NULL, NULL, 0, &b);
	expect_error(st, &b, 404, "TCB");

	snprintf(path, sizeof(path), "/vcek/v1/%s/cert_chain", snp_product_name(p->product));
	st = https("GET", path, NULL, NULL, 0, &b);
	assert_int_equal(st, 200);
	{
		/* ASK then ARK, and together with the VCEK a complete chain. */
		struct snp_cert_chain *chain = NULL;

		assert_int_equal(snp_cert_chain_from_pem(b.body, b.len, &chain, &err), 0);
		assert_false(snp_cert_chain_has_leaf(chain));
		snp_cert_chain_free(chain);
		assert_non_null(strstr(snp_virtual_chain_pem(platform), b.body) ? "" : NULL);
	}
	test_http_client_response_clear(&b);

	st = https("GET", "/metadata/THIM/amd/certification", NULL, NULL, 0, &b);
	expect_error(st, &b, 400, "Metadata: true");
	{
		static const char *const md[] = {"Metadata: true", NULL};
		struct snp_thim thim = {0};

		st = https("GET", "/metadata/THIM/amd/certification", md, NULL, 0, &b);
		assert_int_equal(st, 200);
		if (snp_thim_parse(b.body, b.len, &thim, &err) < 0)
			fail_msg("THIM answer: %s", err.msg);
		assert_int_equal(thim.tcbm, snp_tcb_encode(&p->tcb, p->product));
		assert_non_null(strstr(snp_virtual_chain_pem(platform), thim.vcek_pem));
		snp_thim_clear(&thim);
		test_http_client_response_clear(&b);
	}

	/* libskr's certificate fetcher against devcloud's THIM: what the sidecar runs. */
	{
		struct snp_certcache_config cc = {0};
		struct snp_cert_fetcher *f = NULL;
		struct snp_cert_chain *chain = NULL;
		struct snp_vcek_info info;
		struct snp_report report;
		uint8_t raw[SNP_REPORT_SIZE];
		char url[256];

		snprintf(url, sizeof(url), "https://%s/metadata/THIM/amd/certification", dc.attest);
		cc.type = SNP_CERTCACHE_LOCAL_THIM;
		cc.endpoint = url;
		cc.ca_bundle = dc.ca;
		get_report(platform, RUNTIME, raw);
		assert_int_equal(snp_report_parse(raw, sizeof(raw), &report, &err), 0);
		if (snp_cert_fetcher_new(&cc, &f, &err) < 0 ||
		    snp_cert_fetcher_get(f, &report, &chain, &err) < 0) {
			snp_cert_fetcher_free(f);
			fail_msg("certificate fetcher (THIM): %s", err.msg);
		}
		assert_true(snp_cert_chain_is_complete(chain));
		assert_int_equal(snp_cert_chain_leaf_info(chain, &info, &err), 0);
		assert_int_equal(info.tcb_raw, report.reported_tcb);
		snp_cert_chain_free(chain);
		snp_cert_fetcher_free(f);
	}
	snp_cert_table_clear(&t);
}

/* ---------------------------------------------------------------------------------------------
 * 4. Loopback only; 5. SIGTERM
 * ------------------------------------------------------------------------------------------- */

static void test_listen_refused(void **state)
{
	static const char *addrs[] = {"0.0.0.0", "10.0.0.1", "::", "192.168.1.1", "example.com"};

	(void)state;
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		const char *args[] = {"serve",  "--state",       dc.state, "--listen",
		                      addrs[i], "--attest-port", "0",      NULL};

		if (test_devcloud_run(args, NULL) != 2)
			fail_msg("--listen %s was not refused with exit code 2", addrs[i]);
	}
}

/*
 * --max-body is capped at what the MAA request parser accepts: a body between the two limits
 * would get the parser's 400 instead of a 413.
 */
static void test_max_body_refused(void **state)
{
	static const char *const sizes[] = {"0", "2097153", "67108864"};

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		const char *args[] = {"serve", "--state",    dc.state, "--attest-port",
		                      "0",     "--max-body", sizes[i], NULL};

		if (test_devcloud_run(args, NULL) != 2)
			fail_msg("--max-body %s was not refused with exit code 2", sizes[i]);
	}
}

/* 6. Offline verification of a report file (raw or hex) with the CLI. */
static void test_verify_report_cli(void **state)
{
	uint8_t report[SNP_REPORT_SIZE];
	char report_path[700], hex_path[700], chain_path[700], ark_path[700], runtime_path[700],
	        out_path[700], hex[2 * SNP_REPORT_SIZE + 2];
	const char *ark = snp_virtual_ark_pem(platform);
	const char *chain = snp_virtual_chain_pem(platform);
	_cleanup_free_ char *out = NULL;
	_cleanup_json_ json_object *claims = NULL;
	size_t len;

	(void)state;
	get_report(platform, RUNTIME, report);
	snprintf(report_path, sizeof(report_path), "%s/report.bin", tmpdir);
	snprintf(hex_path, sizeof(hex_path), "%s/report.hex", tmpdir);
	snprintf(chain_path, sizeof(chain_path), "%s/chain.pem", tmpdir);
	snprintf(ark_path, sizeof(ark_path), "%s/ark.pem", tmpdir);
	snprintf(runtime_path, sizeof(runtime_path), "%s/runtime.json", tmpdir);
	snprintf(out_path, sizeof(out_path), "%s/claims.json", tmpdir);
	hex_encode(report, sizeof(report), hex);
	strcat(hex, "\n");
	assert_int_equal(write_file_atomic(report_path, report, sizeof(report), 0600), 0);
	assert_int_equal(write_file_atomic(hex_path, hex, strlen(hex), 0600), 0);
	assert_int_equal(write_file_atomic(chain_path, chain, strlen(chain), 0600), 0);
	assert_int_equal(write_file_atomic(ark_path, ark, strlen(ark), 0600), 0);
	assert_int_equal(write_file_atomic(runtime_path, RUNTIME, strlen(RUNTIME), 0600), 0);

	{
		const char *args[] = {
		        "verify-report", "--report", hex_path,         "--chain",    chain_path,
		        "--trust-root",  ark_path,   "--runtime-data", runtime_path, NULL};

		assert_int_equal(test_devcloud_run(args, out_path), 0);
		assert_int_equal(read_file(out_path, 1 << 20, &out, &len), 0);
		claims = json_tokener_parse(out);
		assert_non_null(claims);
		assert_string_equal(json_object_get_string(json_object_object_get(
		                            claims, "x-ms-attestation-type")),
		                    "sevsnpvm");
		assert_non_null(json_object_object_get(claims, "x-ms-runtime"));
	}
	{
		/* The raw file; with AMD's Milan roots only, the virtual ARK is not trusted. */
		char amd[700];
		const char *args[] = {"verify-report", "--report",     report_path, "--chain",
		                      chain_path,      "--trust-root", amd,         NULL};

		snprintf(amd, sizeof(amd), "%s/amd_roots/ask_ark_milan.pem",
		         getenv("SKR_TESTDATA"));
		assert_int_equal(test_devcloud_run(args, NULL), 1);
		args[6] = ark_path;
		assert_int_equal(test_devcloud_run(args, NULL), 0);
	}
	{
		/* A flipped bit: exit 1. */
		const char *args[] = {"verify-report", "--report",     report_path, "--chain",
		                      chain_path,      "--trust-root", ark_path,    NULL};

		report[0x90] ^= 1;
		assert_int_equal(write_file_atomic(report_path, report, sizeof(report), 0600), 0);
		assert_int_equal(test_devcloud_run(args, NULL), 1);
	}
}

static void test_sigterm(void **state)
{
	(void)state;
	assert_true(dc.pid > 0);
	assert_int_equal(test_devcloud_stop(&dc), 0);
	/* endpoints.json goes with the server, so scripts never see a dead port. */
	assert_int_equal(access(dc.endpoints, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_full_chain),       cmocka_unit_test(test_bad_input),
	        cmocka_unit_test(test_kds_thim),         cmocka_unit_test(test_listen_refused),
	        cmocka_unit_test(test_max_body_refused), cmocka_unit_test(test_verify_report_cli),
	        cmocka_unit_test(test_sigterm),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
