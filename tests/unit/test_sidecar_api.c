/* SPDX-License-Identifier: MIT */
/*
 * The SKR API at handler level (sidecar_api_handle() on parsed requests, no sockets) with a
 * real attester on a virtual SEV-SNP platform, plus the pieces around it:
 *   - every route with valid and invalid bodies: status and the exact single body;
 *   - the error code → status table;
 *   - the confused-deputy allowlist: refused before any upstream call (a scripted HTTPS server
 *     stands in for MAA and counts what reaches it), upstream failures mapped to 502/504;
 *   - the /attest/maa success path: the token body in locked memory, its jti audited;
 *   - audit records (file and content), the status model, the log sink's redaction;
 *   - the real server on loopback: 413 for an oversized upload, suspend/resume, and /status
 *     answering while slow upstream requests hold every worker.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "api.h"
#include "audit.h"
#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "logsink.h"
#include "ossl.h"
#include "secret.h"
#include "skr.h"
#include "status.h"
#include "test_fs.h"
#include "test_http_server.h"

static char tmpdir[] = "/tmp/test_sidecar_api.XXXXXX";
static char platform_dir[600], audit_path[600], log_path[600];
static struct test_http_server *maa_srv; /* stands in for MAA: counts what reaches it */
static char maa_ok[64];                  /* allowed, served by maa_srv */
static char akv_ok[64];                  /* allowed, served by maa_srv too (never reached) */
static struct sidecar_config cfg;
static struct skr_attester *attester;
static struct sidecar_status *status;
static struct sidecar_audit *audit_trail;
static struct sidecar_logsink *sink;
static struct sidecar_api api;

static int group_setup(void **state)
{
	struct snp_virtual_params params;
	struct skr_attest_config acfg;
	struct skr_error err = {0};
	_cleanup_free_ char *json = NULL, *b64 = NULL;

	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	test_fs_remove_at_exit(tmpdir);
	snprintf(platform_dir, sizeof(platform_dir), "%s/platform", tmpdir);
	snprintf(audit_path, sizeof(audit_path), "%s/audit.jsonl", tmpdir);
	snprintf(log_path, sizeof(log_path), "%s/sidecar.log", tmpdir);
	snp_virtual_params_default(&params);
	if (snp_virtual_create(platform_dir, &params, &err) < 0) {
		fprintf(stderr, "virtual platform: %s\n", err.msg);
		return -1;
	}
	if (test_http_server_start(true, &maa_srv) < 0)
		return -1;
	snprintf(maa_ok, sizeof(maa_ok), "127.0.0.1:%u", test_http_server_port(maa_srv));
	snprintf(akv_ok, sizeof(akv_ok), "localhost:%u", test_http_server_port(maa_srv));

	/* The real configuration parser: our additions to SkrSideCarArgs. */
	if (asprintf(
	            &json,
	            "{\"attestation_source\": \"virtual\", \"virtual_platform_dir\": \"%s\","
	            " \"ca_bundle\": \"%s\", \"timeout_ms\": 400,"
	            " \"allowed_endpoints\": {\"attestation\": [\"%s\"], \"key_vault\": [\"%s\"]}}",
	            platform_dir, test_http_server_ca_file(maa_srv), maa_ok, akv_ok) < 0 ||
	    b64_encode(json, strlen(json), B64_STD, &b64) < 0)
		return -1;
	if (sidecar_config_parse_skr_args(b64, strlen(b64), &cfg, &err) < 0 ||
	    sidecar_config_validate(&cfg, &err) < 0) {
		fprintf(stderr, "config: %s\n", err.msg);
		return -1;
	}
	sidecar_config_attest(&cfg, &acfg);
	acfg.max_attempts = 1; /* upstream failures fail fast here */
	acfg.kek_pool_size = -1;
	if (skr_attester_new(&acfg, &attester, &err) < 0) {
		fprintf(stderr, "attester: %s\n", err.msg);
		return -1;
	}
	if (sidecar_logsink_new(log_path, SIDECAR_LOG_HUMAN, &sink, &err) < 0 ||
	    sidecar_audit_new(audit_path, sink, &audit_trail, &err) < 0 ||
	    sidecar_status_new(NULL, 0, &status, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return -1;
	}
	sidecar_status_set_ready(status, true);
	api = (struct sidecar_api){
	        .cfg = &cfg, .attester = attester, .status = status, .audit = audit_trail};
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	skr_attester_free(attester);
	sidecar_status_free(status);
	sidecar_audit_free(audit_trail);
	sidecar_logsink_free(sink);
	sidecar_config_clear(&cfg);
	test_http_server_stop(maa_srv);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

static void call(const char *method, const char *path, const char *body,
                 struct sidecar_api_response *resp)
{
	struct sidecar_api_request req = {
	        .method = method,
	        .path = path,
	        .body = body,
	        .body_len = body ? strlen(body) : 0,
	        .content_length = body ? strlen(body) : 0,
	};

	assert_int_equal(sidecar_api_handle(&api, &req, resp), 0);
	assert_non_null(resp->body);
	assert_int_equal(resp->body_len, strlen(resp->body));
}

static void expect(const char *method, const char *path, const char *body, unsigned status_code,
                   const char *expected_body)
{
	struct sidecar_api_response resp;

	call(method, path, body, &resp);
	if (resp.status != status_code || strcmp(resp.body, expected_body) != 0)
		fail_msg("%s %s %s: got %u %s, expected %u %s", method, path,
		         body ? body : "(none)", resp.status, resp.body, status_code,
		         expected_body);
	sidecar_api_response_clear(&resp);
}

static json_object *parse_ok(const struct sidecar_api_response *resp)
{
	json_object *o;

	if (resp->status != 200)
		fail_msg("expected 200, got %u %s", resp->status, resp->body);
	o = json_tokener_parse(resp->body);
	assert_non_null(o);
	return o;
}

static const char *str_field(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		fail_msg("no string field %s in %s", key, json_object_to_json_string(o));
	return json_object_get_string(v);
}

/* A syntactically valid JWT with @jti (unsigned: the attester only checks the shape). */
static char *fake_jwt(const char *jti)
{
	_cleanup_free_ char *h = NULL, *p = NULL, *payload = NULL, *sig = NULL;
	char *out = NULL;
	uint8_t zeros[256] = {0};

	assert_true(asprintf(&payload, "{\"iss\":\"https://x\",\"jti\":\"%s\",\"pad\":\"%0100d\"}",
	                     jti, 0) > 0);
	assert_int_equal(b64_encode("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", 27, B64_URL_NOPAD, &h),
	                 0);
	assert_int_equal(b64_encode(payload, strlen(payload), B64_URL_NOPAD, &p), 0);
	assert_int_equal(b64_encode(zeros, sizeof(zeros), B64_URL_NOPAD, &sig), 0);
	assert_true(asprintf(&out, "%s.%s.%s", h, p, sig) > 0);
	return out;
}

static char *read_text(const char *path)
{
	char *text = NULL;
	size_t len;

	assert_int_equal(read_file(path, 16 * 1024 * 1024, &text, &len), 0);
	return text;
}

static size_t count_lines(const char *path)
{
	_cleanup_free_ char *text = read_text(path);
	size_t n = 0;

	for (const char *p = text; *p; p++)
		n += *p == '\n';
	return n;
}

/* The last line of @path containing @needle, parsed as JSON (the audit record). */
static json_object *last_record(const char *path, const char *needle)
{
	_cleanup_free_ char *text = read_text(path);
	char *line, *save = NULL, *found = NULL;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (strstr(line, needle))
			found = line;
	if (!found)
		fail_msg("no line with %s in %s", needle, path);
	return json_tokener_parse(found);
}

/* ---------------------------------------------------------------------------------------------
 * Routing, methods, body limits
 * ------------------------------------------------------------------------------------------- */

static void test_routing(void **state)
{
	struct sidecar_api_response resp;
	char big[SIDECAR_API_MAX_BODY + 2];

	(void)state;
	expect("GET", "/status", NULL, 200,
	       "{\"message\":\"Status OK\",\"state\":\"ready\",\"filesystems\":[]}");
	expect("HEAD", "/status", NULL, 200,
	       "{\"message\":\"Status OK\",\"state\":\"ready\",\"filesystems\":[]}");
	expect("GET", "/nope", NULL, 404,
	       "{\"error\":\"unknown path '/nope': the API serves GET /status and POST "
	       "/attest/raw, /attest/combined, /attest/maa, /key/release\"}");
	expect("GET", "/status/", NULL, 404,
	       "{\"error\":\"unknown path '/status/': the API serves GET /status and POST "
	       "/attest/raw, /attest/combined, /attest/maa, /key/release\"}");

	static const struct {
		const char *method, *path, *allow, *body;
	} wrong_methods[] = {
	        {"POST", "/status", "GET, HEAD",
	         "{\"error\":\"method POST is not allowed on /status: use GET\"}"},
	        {"GET", "/attest/raw", "POST",
	         "{\"error\":\"method GET is not allowed on /attest/raw: use POST\"}"},
	        {"PUT", "/attest/combined", "POST",
	         "{\"error\":\"method PUT is not allowed on /attest/combined: use POST\"}"},
	        {"DELETE", "/attest/maa", "POST",
	         "{\"error\":\"method DELETE is not allowed on /attest/maa: use POST\"}"},
	        {"GET", "/key/release", "POST",
	         "{\"error\":\"method GET is not allowed on /key/release: use POST\"}"},
	};
	for (size_t i = 0; i < ELEMENTSOF(wrong_methods); i++) {
		call(wrong_methods[i].method, wrong_methods[i].path, NULL, &resp);
		assert_int_equal(resp.status, 405);
		assert_string_equal(resp.allow, wrong_methods[i].allow);
		assert_string_equal(resp.body, wrong_methods[i].body);
		sidecar_api_response_clear(&resp);
	}

	/* 413: a body over the limit, whether it was kept or only announced */
	memset(big, ' ', sizeof(big) - 1);
	big[0] = '{';
	big[sizeof(big) - 2] = '}';
	big[sizeof(big) - 1] = 0;
	expect("POST", "/key/release", big, 413,
	       "{\"error\":\"request body is larger than 65536 bytes\"}");
	{
		struct sidecar_api_request req = {
		        .method = "POST", .path = "/attest/raw", .content_length = 1024 * 1024};

		assert_int_equal(sidecar_api_handle(&api, &req, &resp), 0);
		assert_int_equal(resp.status, 413);
		assert_string_equal(resp.body,
		                    "{\"error\":\"request body is larger than 65536 bytes\"}");
		sidecar_api_response_clear(&resp);
	}
	/* exactly the limit is fine (and then judged as JSON) */
	big[SIDECAR_API_MAX_BODY] = 0;
	big[SIDECAR_API_MAX_BODY - 1] = '}';
	expect("POST", "/attest/raw", big, 400, "{\"error\":\"field 'runtime_data' is required\"}");

	assert_true(sidecar_api_route_is_slow("POST", "/key/release"));
	assert_true(sidecar_api_route_is_slow("POST", "/attest/raw"));
	assert_false(sidecar_api_route_is_slow("GET", "/status"));
	assert_false(sidecar_api_route_is_slow("GET", "/key/release"));
	assert_false(sidecar_api_route_is_slow("POST", "/nope"));
}

/* ---------------------------------------------------------------------------------------------
 * Bad bodies, per route
 * ------------------------------------------------------------------------------------------- */

struct bad_body {
	const char *body;
	const char *error; /* the exact message */
};

static void expect_bad_bodies(const char *path, const struct bad_body *cases, size_t n,
                              unsigned code)
{
	for (size_t i = 0; i < n; i++) {
		_cleanup_json_ json_object *o = json_object_new_object();

		json_object_object_add(o, "error", json_object_new_string(cases[i].error));
		expect("POST", path, cases[i].body, code,
		       json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
		                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
	}
}

/* Bodies every POST route refuses the same way. */
static const struct bad_body common_bad[] = {
        {NULL, "request body is empty: expected a JSON object"},
        {"", "request body is empty: expected a JSON object"},
        {"[]", "request body must be a JSON object"},
        {"\"runtime_data\"", "request body must be a JSON object"},
        {"{", "request body is not valid JSON: unexpected end of data"},
        {"{\"runtime_data\": \"QUJD\"} {}", "request body is not valid JSON: unexpected character"},
};

static void test_bad_bodies_attest(void **state)
{
	static const struct bad_body runtime_bad[] = {
	        {"{}", "field 'runtime_data' is required"},
	        {"{\"runtime_data\": null}", "field 'runtime_data' is required"},
	        {"{\"runtime_data\": \"\"}",
	         "field 'runtime_data' is required and may not be empty"},
	        {"{\"runtime_data\": 5}", "field 'runtime_data' must be a string"},
	        {"{\"runtime_data\": [\"QUJD\"]}", "field 'runtime_data' must be a string"},
	        {"{\"runtime_data\": {}}", "field 'runtime_data' must be a string"},
	        {"{\"runtime_data\": true}", "field 'runtime_data' must be a string"},
	        {"{\"runtime_data\": \"QU\\u0000JD\"}",
	         "field 'runtime_data' contains a NUL character"},
	        {"{\"runtime_data\": \"!!!!\"}",
	         "field 'runtime_data' is not base64: expected the standard or URL-safe alphabet "
	         "with '=' padding"},
	        /* unpadded (Go's StdEncoding and URLEncoding both require padding) */
	        {"{\"runtime_data\": \"QUI\"}",
	         "field 'runtime_data' is not base64: expected the standard or URL-safe alphabet "
	         "with '=' padding"},
	        /* mixed alphabets */
	        {"{\"runtime_data\": \"+-8=\"}",
	         "field 'runtime_data' is not base64: expected the standard or URL-safe alphabet "
	         "with '=' padding"},
	        {"{\"runtime_data\": \"QU JD\"}",
	         "field 'runtime_data' is not base64: expected the standard or URL-safe alphabet "
	         "with '=' padding"},
	};
	static const char *const paths[] = {"/attest/raw", "/attest/combined"};

	(void)state;
	for (size_t p = 0; p < ELEMENTSOF(paths); p++) {
		expect_bad_bodies(paths[p], common_bad, ELEMENTSOF(common_bad), 400);
		expect_bad_bodies(paths[p], runtime_bad, ELEMENTSOF(runtime_bad), 400);
	}
	/* /attest/maa: both fields required (maa_endpoint is checked first) */
	{
		char body[256];
		static const struct bad_body maa_bad[] = {
		        {"{\"runtime_data\": \"QUJD\"}", "field 'maa_endpoint' is required"},
		        {"{\"maa_endpoint\": \"\", \"runtime_data\": \"QUJD\"}",
		         "field 'maa_endpoint' is required and may not be empty"},
		        {"{\"maa_endpoint\": 1, \"runtime_data\": \"QUJD\"}",
		         "field 'maa_endpoint' must be a string"},
		};

		expect_bad_bodies("/attest/maa", common_bad, ELEMENTSOF(common_bad), 400);
		expect_bad_bodies("/attest/maa", maa_bad, ELEMENTSOF(maa_bad), 400);
		snprintf(body, sizeof(body), "{\"maa_endpoint\": \"%s\"}", maa_ok);
		expect("POST", "/attest/maa", body, 400,
		       "{\"error\":\"field 'runtime_data' is required\"}");
		snprintf(body, sizeof(body),
		         "{\"maa_endpoint\": \"%s\", \"runtime_data\": \"QUI\"}", maa_ok);
		expect("POST", "/attest/maa", body, 400,
		       "{\"error\":\"field 'runtime_data' is not base64: expected the standard or "
		       "URL-safe alphabet with '=' padding\"}");
	}
	/* nothing of the above reached the MAA stand-in */
	assert_int_equal(test_http_server_request_count(maa_srv), 0);
}

static void test_bad_bodies_release(void **state)
{
	char b[6][512];
	const struct bad_body release_bad[] = {
	        {"{}", "field 'maa_endpoint' is required"},
	        {b[0], "field 'akv_endpoint' is required"},
	        {b[1], "field 'kid' is required"},
	        {b[2], "field 'kid' is required and may not be empty"},
	        {b[3], "field 'kid' must be a string"},
	        {b[4], "field 'access_token' must be a string"},
	        {b[5], "field 'akv_endpoint' must be a string"},
	};

	(void)state;
	snprintf(b[0], sizeof(b[0]), "{\"maa_endpoint\": \"%s\", \"kid\": \"k\"}", maa_ok);
	snprintf(b[1], sizeof(b[1]), "{\"maa_endpoint\": \"%s\", \"akv_endpoint\": \"%s\"}", maa_ok,
	         akv_ok);
	snprintf(b[2], sizeof(b[2]),
	         "{\"maa_endpoint\": \"%s\", \"akv_endpoint\": \"%s\", \"kid\": \"\"}", maa_ok,
	         akv_ok);
	snprintf(b[3], sizeof(b[3]),
	         "{\"maa_endpoint\": \"%s\", \"akv_endpoint\": \"%s\", \"kid\": [\"k\"]}", maa_ok,
	         akv_ok);
	snprintf(b[4], sizeof(b[4]),
	         "{\"maa_endpoint\": \"%s\", \"akv_endpoint\": \"%s\", \"kid\": \"k\", "
	         "\"access_token\": 12}",
	         maa_ok, akv_ok);
	snprintf(b[5], sizeof(b[5]),
	         "{\"maa_endpoint\": \"%s\", \"akv_endpoint\": {}, \"kid\": \"k\"}", maa_ok);
	expect_bad_bodies("/key/release", common_bad, ELEMENTSOF(common_bad), 400);
	expect_bad_bodies("/key/release", release_bad, ELEMENTSOF(release_bad), 400);
	assert_int_equal(test_http_server_request_count(maa_srv), 0);
}

/* ---------------------------------------------------------------------------------------------
 * Attestation on the virtual platform
 * ------------------------------------------------------------------------------------------- */

static void expect_report_bound(const uint8_t *report, const void *runtime, size_t len)
{
	struct snp_report r;
	uint8_t expected[64];
	struct snp_virtual *v = NULL;
	struct snp_trust_store *ts = NULL;
	struct snp_cert_chain *chain = NULL;
	struct skr_error err = {0};

	assert_int_equal(snp_report_parse(report, SNP_REPORT_SIZE, &r, &err), 0);
	skr_report_data_for(runtime, len, expected);
	assert_memory_equal(r.report_data, expected, 64);
	/* signed by the platform: verifies against its ARK */
	assert_int_equal(snp_virtual_open(platform_dir, &v, &err), 0);
	assert_int_equal(snp_trust_store_new(&ts, &err), 0);
	assert_int_equal(snp_trust_store_add_pem(ts, snp_virtual_ark_pem(v),
	                                         strlen(snp_virtual_ark_pem(v)), &err),
	                 0);
	assert_int_equal(snp_cert_chain_from_pem(snp_virtual_chain_pem(v),
	                                         strlen(snp_virtual_chain_pem(v)), &chain, &err),
	                 0);
	if (snp_report_verify(report, SNP_REPORT_SIZE, chain, ts, &err) < 0)
		fail_msg("report does not verify: %s", err.msg);
	snp_cert_chain_free(chain);
	snp_trust_store_free(ts);
	snp_virtual_free(v);
}

static void test_attest_raw(void **state)
{
	/* standard and URL-safe alphabets: "\xfb\xff\xbf" encodes as "+/+/" and "-_-_" */
	static const char *const bodies[] = {"{\"runtime_data\": \"+/+/\", \"extra\": 1}",
	                                     "{\"runtime_data\": \"-_-_\"}"};
	static const uint8_t runtime[] = {0xfb, 0xff, 0xbf};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(bodies); i++) {
		struct sidecar_api_response resp;
		_cleanup_json_ json_object *o = NULL;
		_cleanup_json_ json_object *rec = NULL;
		uint8_t report[SNP_REPORT_SIZE], md[32];
		char hex[65];
		const char *text;

		call("POST", "/attest/raw", bodies[i], &resp);
		o = parse_ok(&resp);
		assert_int_equal(json_object_object_length(o), 1);
		text = str_field(o, "report");
		assert_int_equal(strlen(text), 2 * SNP_REPORT_SIZE);
		for (const char *p = text; *p; p++)
			assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
		assert_int_equal(hex_decode(text, strlen(text), report, sizeof(report)), 0);
		expect_report_bound(report, runtime, sizeof(runtime));
		assert_null(resp.secret); /* a report is public */
		sidecar_api_response_clear(&resp);

		/* audited with the report's hash */
		rec = last_record(audit_path, "\"endpoint\":\"/attest/raw\"");
		assert_string_equal(str_field(rec, "type"), "audit");
		assert_string_equal(str_field(rec, "outcome"), "success");
		EVP_Digest(report, sizeof(report), md, NULL, EVP_sha256(), NULL);
		hex_encode(md, sizeof(md), hex);
		assert_string_equal(str_field(rec, "report_sha256"), hex);
	}
}

static void test_attest_combined(void **state)
{
	struct sidecar_api_response resp;
	_cleanup_json_ json_object *o = NULL;
	_cleanup_free_ uint8_t *pem = NULL, *report = NULL;
	struct snp_cert_chain *chain = NULL;
	struct snp_vcek_info info;
	struct skr_error err = {0};
	size_t pem_len, report_len;
	char tcb[17];

	(void)state;
	call("POST", "/attest/combined", "{\"runtime_data\": \"eyJhIjoxfQ==\"}", &resp);
	o = parse_ok(&resp);
	assert_int_equal(json_object_object_length(o), 4);
	/* evidence = standard base64 of the report */
	assert_int_equal(b64_decode(str_field(o, "evidence"), strlen(str_field(o, "evidence")),
	                            B64_ACCEPT_STD | B64_REQUIRE_PAD, &report, &report_len),
	                 0);
	assert_int_equal(report_len, SNP_REPORT_SIZE);
	expect_report_bound(report, "{\"a\":1}", 7);
	/* endorsements = standard base64 of VCEK ‖ ASK ‖ ARK PEM */
	assert_int_equal(b64_decode(str_field(o, "endorsements"),
	                            strlen(str_field(o, "endorsements")),
	                            B64_ACCEPT_STD | B64_REQUIRE_PAD, &pem, &pem_len),
	                 0);
	assert_int_equal(snp_cert_chain_from_pem((const char *)pem, pem_len, &chain, &err), 0);
	assert_true(snp_cert_chain_is_complete(chain));
	/* endorsed_tcb: the chain's TCB as 16 hex digits */
	assert_int_equal(snp_cert_chain_leaf_info(chain, &info, &err), 0);
	snprintf(tcb, sizeof(tcb), "%016llx", (unsigned long long)info.tcb_raw);
	assert_string_equal(str_field(o, "endorsed_tcb"), tcb);
	/* no security context here: no reference info, an empty string as in Go */
	assert_string_equal(str_field(o, "uvm_endorsements"), "");
	snp_cert_chain_free(chain);
	sidecar_api_response_clear(&resp);
}

/* ---------------------------------------------------------------------------------------------
 * Confused deputy, upstream failures, the MAA success path
 * ------------------------------------------------------------------------------------------- */

static void test_allowlist_before_upstream(void **state)
{
	struct sidecar_api_response resp;
	_cleanup_json_ json_object *rec = NULL;
	char body[512];
	size_t before = test_http_server_request_count(maa_srv);
	char want[512];

	(void)state;
	/* /attest/maa to an endpoint not allowed */
	snprintf(want, sizeof(want),
	         "{\"error\":\"maa_endpoint 'evil.example.com' is not allowed by configuration "
	         "(allowed: %s); add it to allowed_endpoints.attestation in SkrSideCarArgs\"}",
	         maa_ok);
	expect("POST", "/attest/maa",
	       "{\"maa_endpoint\": \"evil.example.com\", \"runtime_data\": "
	       "\"QUJD\"}",
	       403, want);
	/* /key/release: a vault not allowed, MAA allowed → refused before attesting */
	snprintf(body, sizeof(body),
	         "{\"maa_endpoint\": \"%s\", \"akv_endpoint\": \"attacker.example:443\", \"kid\": "
	         "\"k\", \"access_token\": \"secret-bearer\"}",
	         maa_ok);
	call("POST", "/key/release", body, &resp);
	assert_int_equal(resp.status, 403);
	snprintf(want, sizeof(want),
	         "{\"error\":\"akv_endpoint 'attacker.example:443' is not allowed by configuration "
	         "(allowed: %s); add it to allowed_endpoints.key_vault in SkrSideCarArgs\"}",
	         akv_ok);
	assert_string_equal(resp.body, want);
	sidecar_api_response_clear(&resp);
	/* MAA not allowed, vault allowed */
	snprintf(body, sizeof(body),
	         "{\"maa_endpoint\": \"https://evil.example.com\", \"akv_endpoint\": \"%s\", "
	         "\"kid\": \"k\"}",
	         akv_ok);
	call("POST", "/key/release", body, &resp);
	assert_int_equal(resp.status, 403);
	assert_non_null(
	        strstr(resp.body, "maa_endpoint 'https://evil.example.com' is not allowed"));
	sidecar_api_response_clear(&resp);
	/* nothing was sent anywhere */
	assert_int_equal(test_http_server_request_count(maa_srv), before);

	/* the refusal is audited, the bearer token is not */
	rec = last_record(audit_path, "attacker.example");
	assert_string_equal(str_field(rec, "outcome"), "denied");
	assert_int_equal(json_object_get_int(json_object_object_get(rec, "status")), 403);
	assert_string_equal(str_field(rec, "kid"), "k");
	{
		_cleanup_free_ char *text = read_text(audit_path);
		_cleanup_free_ char *log = read_text(log_path);

		assert_null(strstr(text, "secret-bearer"));
		assert_null(strstr(log, "secret-bearer"));
	}
}

static void test_upstream_failures(void **state)
{
	char body[512];
	struct sidecar_api_response resp;
	size_t before = test_http_server_request_count(maa_srv);

	(void)state;
	/* runtime data that is not JSON ("ABC") is the caller's error: 400, MAA never asked */
	snprintf(body, sizeof(body), "{\"maa_endpoint\": \"%s\", \"runtime_data\": \"QUJD\"}",
	         maa_ok);
	call("POST", "/attest/maa", body, &resp);
	if (resp.status != 400 || !strstr(resp.body, "runtime_data is not valid JSON") ||
	    !strstr(resp.body, "dataType JSON"))
		fail_msg("not JSON: got %u %s", resp.status, resp.body);
	assert_int_equal(test_http_server_request_count(maa_srv), before);
	sidecar_api_response_clear(&resp);

	snprintf(body, sizeof(body),
	         "{\"maa_endpoint\": \"%s\", \"runtime_data\": \"eyJhIjoxfQ==\"}", maa_ok);

	/* MAA 500 → 502; allowed, so it was contacted */
	test_http_server_reply(maa_srv, NULL, 500, "application/json",
	                       "{\"error\":{\"code\":\"InternalError\",\"message\":\"boom\"}}");
	call("POST", "/attest/maa", body, &resp);
	assert_int_equal(resp.status, 502);
	assert_true(strncmp(resp.body, "{\"error\":\"attestation failed: ", 30) == 0);
	assert_int_equal(test_http_server_request_count(maa_srv), before + 1);
	sidecar_api_response_clear(&resp);

	/* MAA refuses the evidence (400) → 403 with the reason */
	test_http_server_reply(maa_srv, NULL, 400, "application/json",
	                       "{\"error\":{\"code\":\"InvalidParameter\",\"message\":\"nope\"}}");
	call("POST", "/attest/maa", body, &resp);
	assert_int_equal(resp.status, 403);
	assert_true(strncmp(resp.body, "{\"error\":\"attestation failed: ", 30) == 0);
	sidecar_api_response_clear(&resp);

	/* no answer within timeout_ms → 504 */
	{
		struct test_http_reply slow = {.status = 200, .delay_ms = 1500, .body = "{}"};

		test_http_server_push(maa_srv, &slow);
		call("POST", "/attest/maa", body, &resp);
		assert_int_equal(resp.status, 504);
		assert_true(strncmp(resp.body, "{\"error\":\"attestation failed: ", 30) == 0);
		sidecar_api_response_clear(&resp);
	}

	/* a release whose attestation fails upstream: 502, the reason says "secure key release" */
	test_http_server_reply(maa_srv, NULL, 503, "application/json", "{}");
	snprintf(body, sizeof(body),
	         "{\"maa_endpoint\": \"%s\", \"akv_endpoint\": \"%s\", \"kid\": \"k\", "
	         "\"access_token\": \"tok\"}",
	         maa_ok, akv_ok);
	call("POST", "/key/release", body, &resp);
	assert_int_equal(resp.status, 502);
	assert_true(strncmp(resp.body, "{\"error\":\"secure key release failed: ", 37) == 0);
	sidecar_api_response_clear(&resp);
	/* audited as far as it got: a report was taken (its hash), no token, no key */
	{
		_cleanup_json_ json_object *rec = last_record(
		        audit_path, "\"endpoint\":\"/key/release\",\"outcome\":\"error\"");
		json_object *v;

		assert_int_equal(strlen(str_field(rec, "report_sha256")), 64);
		assert_false(json_object_object_get_ex(rec, "token_jti", &v));
		assert_false(json_object_object_get_ex(rec, "key_fingerprint", &v));
	}
}

static void test_attest_maa_token(void **state)
{
	_cleanup_free_ char *token = fake_jwt("jti-1234"), *reply = NULL, *want = NULL;
	_cleanup_json_ json_object *rec = NULL;
	struct sidecar_api_response resp;
	char body[512];
	uint8_t rd[64];
	char rd_hex[129];

	(void)state;
	assert_true(asprintf(&reply, "{\"token\":\"%s\"}", token) > 0);
	test_http_server_reply(maa_srv, "/attest/SevSnpVm", 200, "application/json", reply);
	snprintf(body, sizeof(body),
	         "{\"maa_endpoint\": \"https://%s/\", \"runtime_data\": \"eyJhIjoxfQ==\"}", maa_ok);
	call("POST", "/attest/maa", body, &resp);
	if (resp.status != 200)
		fail_msg("got %u %s", resp.status, resp.body);
	assert_true(asprintf(&want, "{\"token\":\"%s\"}", token) > 0);
	assert_string_equal(resp.body, want);
	/* the token body lives in locked memory owned by the response */
	assert_non_null(resp.secret);
	assert_ptr_equal(resp.body, (char *)resp.secret->data + sizeof(struct secret *));
	/* what libmicrohttpd's free callback does */
	{
		char *b = resp.body;

		resp.body = NULL;
		resp.secret = NULL;
		sidecar_api_secret_body_free(b);
	}

	/* audited: the jti and the REPORT_DATA, never the token */
	rec = last_record(audit_path, "jti-1234");
	assert_string_equal(str_field(rec, "outcome"), "success");
	assert_string_equal(str_field(rec, "token_jti"), "jti-1234");
	skr_report_data_for((const uint8_t *)"{\"a\":1}", 7, rd);
	hex_encode(rd, sizeof(rd), rd_hex);
	assert_string_equal(str_field(rec, "report_data"), rd_hex);
	/* and the hash of the report MAA received */
	{
		size_t n = test_http_server_request_count(maa_srv);
		const struct test_http_request *req = test_http_server_request(maa_srv, n - 1);
		struct skr_error err = {0};
		struct maa_request m;
		uint8_t md[32];
		char hex[65];

		assert_int_equal(maa_request_parse(req->body, req->body_len, &m, &err), 0);
		SHA256(m.report, m.report_len, md);
		hex_encode(md, sizeof(md), hex);
		assert_string_equal(str_field(rec, "report_sha256"), hex);
		maa_request_clear(&m);
	}
	{
		_cleanup_free_ char *text = read_text(audit_path);
		_cleanup_free_ char *log = read_text(log_path);
		char sig_part[40];

		/* any 32 characters of the token's payload would be a leak */
		snprintf(sig_part, sizeof(sig_part), "%.32s", strchr(token, '.') + 1);
		assert_null(strstr(text, sig_part));
		assert_null(strstr(log, sig_part));
	}
}

static void test_error_table(void **state)
{
	static const struct {
		int code;
		unsigned status;
	} cases[] = {
	        {-EINVAL, 400},     {-EACCES, 403},       {-EPERM, 403},   {-ENOENT, 404},
	        {-EIO, 502},        {-EPROTO, 502},       {-EAGAIN, 502},  {-EBADMSG, 502},
	        {-ESTALE, 502},     {-EKEYEXPIRED, 502},  {-ENOTSUP, 502}, {-ECONNREFUSED, 502},
	        {-ECONNRESET, 502}, {-EHOSTUNREACH, 502}, {-EFBIG, 502},   {-ETIMEDOUT, 504},
	        {-ENOMEM, 500},     {-ENODEV, 500},       {-EXDEV, 500},   {0, 500},
	        {ETIMEDOUT, 504}, /* either sign */
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++)
		if (sidecar_api_status_for_error(cases[i].code) != cases[i].status)
			fail_msg("code %d: %u, expected %u", cases[i].code,
			         sidecar_api_status_for_error(cases[i].code), cases[i].status);
}

/* ---------------------------------------------------------------------------------------------
 * Status model
 * ------------------------------------------------------------------------------------------- */

static void test_status_model(void **state)
{
	static const char *const mounts[] = {"/mnt/a", "/mnt/b"};
	struct sidecar_status *s = NULL;
	struct skr_error err = {0};
	_cleanup_free_ char *j1 = NULL, *j2 = NULL, *j3 = NULL, *j4 = NULL;

	(void)state;
	assert_int_equal(sidecar_status_new(mounts, 2, &s, &err), 0);
	assert_int_equal(sidecar_status_to_json(s, &j1), 0);
	assert_string_equal(j1,
	                    "{\"message\":\"Status NOT OK\",\"state\":\"starting\",\"filesystems\":"
	                    "[{\"mount_point\":\"/mnt/a\",\"state\":\"pending\"},"
	                    "{\"mount_point\":\"/mnt/b\",\"state\":\"pending\"}]}");
	sidecar_status_set_ready(s, true);
	assert_int_equal(sidecar_status_set_fs(s, "/mnt/a", SIDECAR_FS_MOUNTED, "x", "y"), 0);
	assert_false(sidecar_status_ok(s));
	assert_int_equal(sidecar_status_set_fs(s, "/mnt/b", SIDECAR_FS_MOUNTED, NULL, NULL), 0);
	assert_true(sidecar_status_ok(s));
	assert_int_equal(sidecar_status_to_json(s, &j2), 0);
	/* step and reason are kept for failures only */
	assert_string_equal(j2, "{\"message\":\"Status OK\",\"state\":\"ready\",\"filesystems\":"
	                        "[{\"mount_point\":\"/mnt/a\",\"state\":\"mounted\"},"
	                        "{\"mount_point\":\"/mnt/b\",\"state\":\"mounted\"}]}");
	assert_int_equal(sidecar_status_set_fs(s, "/mnt/b", SIDECAR_FS_FAILED, "open LUKS",
	                                       "wrong key \"k\""),
	                 0);
	assert_int_equal(sidecar_status_to_json(s, &j3), 0);
	assert_string_equal(j3,
	                    "{\"message\":\"Status NOT OK\",\"state\":\"degraded\","
	                    "\"filesystems\":[{\"mount_point\":\"/mnt/a\",\"state\":\"mounted\"},"
	                    "{\"mount_point\":\"/mnt/b\",\"state\":\"failed\",\"step\":\"open "
	                    "LUKS\",\"reason\":\"wrong key \\\"k\\\"\"}]}");
	assert_int_equal(sidecar_status_set_fs(s, "/mnt/c", SIDECAR_FS_MOUNTED, NULL, NULL),
	                 -ENOENT);
	sidecar_status_set_ready(s, false);
	assert_false(sidecar_status_ok(s));
	assert_int_equal(sidecar_status_to_json(s, &j4), 0);
	assert_non_null(strstr(j4, "\"message\":\"Status NOT OK\""));
	assert_string_equal(sidecar_fs_state_name(SIDECAR_FS_PENDING), "pending");
	sidecar_status_free(s);
}

/* ---------------------------------------------------------------------------------------------
 * Audit
 * ------------------------------------------------------------------------------------------- */

static void test_audit_records(void **state)
{
	char path[700];
	struct sidecar_audit *a = NULL;
	struct skr_error err = {0};
	_cleanup_free_ char *token = fake_jwt("abc-jti"), *text = NULL, *jti = NULL;
	uint8_t report[SNP_REPORT_SIZE] = {1, 2, 3}, md[32], rd[64] = {0xaa};
	char hex[65];
	struct stat st;
	struct sidecar_audit_event ev = {
	        .endpoint = "/key/release",
	        .outcome = "success",
	        .status = 200,
	        .maa_endpoint = "maa.example",
	        .akv_endpoint = "vault.example",
	        .kid = "key1",
	        .key_id = "https://vault.example/keys/key1/v1",
	        .key_fingerprint = "sha256:0123",
	        .token = token,
	        .report = report,
	        .report_len = sizeof(report),
	        .report_data = rd,
	};
	json_object *o;

	(void)state;
	snprintf(path, sizeof(path), "%s/audit-test.jsonl", tmpdir);
	assert_int_equal(sidecar_audit_new(path, NULL, &a, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	sidecar_audit_record(a, &ev);
	ev.outcome = "denied";
	ev.status = 403;
	ev.token = NULL;
	ev.report = NULL;
	ev.report_data = NULL;
	ev.key_id = ev.key_fingerprint = NULL;
	ev.reason = "release denied";
	sidecar_audit_record(a, &ev);
	/* rotation: the old file moves away, SIGHUP reopens */
	{
		char moved[720];

		snprintf(moved, sizeof(moved), "%s.1", path);
		assert_int_equal(rename(path, moved), 0);
		assert_int_equal(sidecar_audit_reopen(a, &err), 0);
		sidecar_audit_record(a, &ev);
		assert_int_equal(count_lines(moved), 2);
		assert_int_equal(count_lines(path), 1);
		text = read_text(moved);
	}
	sidecar_audit_free(a);

	o = json_tokener_parse(text); /* the first line */
	assert_non_null(o);
	assert_string_equal(str_field(o, "type"), "audit");
	assert_string_equal(str_field(o, "endpoint"), "/key/release");
	assert_string_equal(str_field(o, "outcome"), "success");
	assert_int_equal(json_object_get_int(json_object_object_get(o, "status")), 200);
	assert_string_equal(str_field(o, "maa_endpoint"), "maa.example");
	assert_string_equal(str_field(o, "akv_endpoint"), "vault.example");
	assert_string_equal(str_field(o, "kid"), "key1");
	assert_string_equal(str_field(o, "key_id"), "https://vault.example/keys/key1/v1");
	assert_string_equal(str_field(o, "key_fingerprint"), "sha256:0123");
	assert_string_equal(str_field(o, "token_jti"), "abc-jti");
	EVP_Digest(report, sizeof(report), md, NULL, EVP_sha256(), NULL);
	hex_encode(md, sizeof(md), hex);
	assert_string_equal(str_field(o, "report_sha256"), hex);
	assert_int_equal(strlen(str_field(o, "report_data")), 128);
	assert_false(json_object_object_get_ex(o, "reason", NULL));
	assert_non_null(strstr(str_field(o, "time"), "Z"));
	/* never the token itself */
	assert_null(strstr(text, token));
	assert_null(strstr(text, strchr(token, '.') + 1));
	json_object_put(o);

	/* jti extraction refuses what is not a JWT */
	assert_int_equal(sidecar_audit_token_jti("not-a-token", &jti), -EINVAL);
	assert_int_equal(sidecar_audit_token_jti("a.b.c", &jti), -EINVAL);
	assert_int_equal(sidecar_audit_token_jti(token, &jti), 0);
	assert_string_equal(jti, "abc-jti");
}

/* ---------------------------------------------------------------------------------------------
 * Log sink and redaction
 * ------------------------------------------------------------------------------------------- */

static void test_log_redaction(void **state)
{
	_cleanup_free_ char *jwt = fake_jwt("x");
	char in[4096], out[8192];
	static const struct {
		const char *in, *out;
		size_t count;
	} cases[] = {
	        {"nothing secret here", "nothing secret here", 0},
	        {"GET https://acct.blob.core.windows.net/c/i.img?sv=2021&sig=abc%2Fdef&se=1 done",
	         "GET https://acct.blob.core.windows.net/c/i.img?sv=2021&sig=<redacted>&se=1 done",
	         1},
	        {"SIG=XYZ", "SIG=<redacted>", 1},
	        {"xsig=abc", "xsig=abc", 0},
	        {"sig=", "sig=", 0},
	        {"Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123",
	         "Authorization: Bearer <redacted>", 1},
	        {"the Bearer token was refused", "the Bearer token was refused", 0},
	        {"{\"k\":\"c2VjcmV0LWtleS1tYXRlcmlhbA\",\"kty\":\"oct\"}",
	         "{\"k\":\"<redacted>\",\"kty\":\"oct\"}", 1},
	        {"{\"key\":\"{\\\"d\\\": \\\"AAAA\\\",\\\"e\\\":\\\"AQAB\\\"}\"}",
	         "{\"key\":\"{\\\"d\\\": \\\"<redacted>\\\",\\\"e\\\":\\\"AQAB\\\"}\"}", 1},
	        {"\"kid\":\"name\"", "\"kid\":\"name\"", 0},
	        {"host login.microsoftonline.com.example.org",
	         "host login.microsoftonline.com.example.org", 0},
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		size_t n = sidecar_log_redact(cases[i].in, out, sizeof(out));

		if (n != cases[i].count || strcmp(out, cases[i].out) != 0)
			fail_msg("redact '%s': %zu '%s'", cases[i].in, n, out);
	}
	/* a JWT anywhere, also followed by a full stop; a short dotted run is left alone */
	snprintf(in, sizeof(in), "token=%s.", jwt);
	assert_int_equal(sidecar_log_redact(in, out, sizeof(out)), 1);
	assert_string_equal(out, "token=<redacted>.");
	snprintf(in, sizeof(in), "got %s and a.b.c", jwt);
	assert_int_equal(sidecar_log_redact(in, out, sizeof(out)), 1);
	assert_string_equal(out, "got <redacted> and a.b.c");
	/* truncation stays within the buffer */
	assert_int_equal(sidecar_log_redact("sig=abcdef", out, 8), 1);
	assert_string_equal(out, "sig=<re");
}

static void test_log_sink(void **state)
{
	char path[700], moved[720];
	struct sidecar_logsink *s = NULL;
	struct skr_error err = {0};
	_cleanup_free_ char *jwt = fake_jwt("y"), *text = NULL, *text2 = NULL;
	struct stat st;
	json_object *o;

	(void)state;
	snprintf(path, sizeof(path), "%s/json.log", tmpdir);
	snprintf(moved, sizeof(moved), "%s/json.log.1", tmpdir);
	assert_int_equal(sidecar_logsink_new(path, SIDECAR_LOG_JSON, &s, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	sidecar_logsink_install(s);
	log_set_level(LOG_LEVEL_INFO);
	log_info("token %s sent with sig=abc", jwt);
	log_debug("below the level");
	sidecar_logsink_write_audit(s, "{\"type\":\"audit\",\"kid\":\"k\"}");
	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(sidecar_logsink_reopen(s, &err), 0);
	log_warn("after rotation");
	sidecar_logsink_free(s); /* uninstalls */
	log_info("to stderr again, not to the file");

	text = read_text(moved);
	assert_null(strstr(text, jwt));
	assert_null(strstr(text, "below the level"));
	o = json_tokener_parse(text);
	assert_non_null(o);
	assert_string_equal(str_field(o, "level"), "info");
	assert_string_equal(str_field(o, "msg"), "token <redacted> sent with sig=<redacted>");
	assert_non_null(str_field(o, "time"));
	json_object_put(o);
	/* the audit record is a line of its own, as is */
	assert_non_null(strstr(text, "\n{\"type\":\"audit\",\"kid\":\"k\"}\n"));
	text2 = read_text(path);
	assert_non_null(strstr(text2, "\"level\":\"warn\",\"msg\":\"after rotation\""));
	assert_null(strstr(text2, "stderr again"));

	/* human format */
	{
		_cleanup_free_ char *line = NULL;

		assert_int_equal(sidecar_logsink_format(SIDECAR_LOG_HUMAN, LOG_LEVEL_WARN,
		                                        "Bearer abcdefghijklmnopqrstuvwxyz", &line),
		                 0);
		assert_non_null(strstr(line, " warn  Bearer <redacted>\n"));
	}
	/* an unwritable path is named */
	assert_int_equal(sidecar_logsink_new("/nonexistent/dir/x.log", SIDECAR_LOG_HUMAN, &s, &err),
	                 -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/dir/x.log"));
}

/* ---------------------------------------------------------------------------------------------
 * The server on loopback
 * ------------------------------------------------------------------------------------------- */

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	FILE *f = userdata;

	return fwrite(ptr, size, nmemb, f);
}

struct http_result {
	long status;
	char *body;
	double seconds;
	CURLcode rc;
};

static void http(const char *method, const char *url, const char *body, size_t body_len,
                 bool expect_100, struct http_result *res)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&res->body, &size);

	assert_non_null(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	hl = curl_slist_append(hl, "Content-Type: application/json");
	hl = curl_slist_append(hl, expect_100 ? "Expect: 100-continue" : "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	res->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
	curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &res->seconds);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	fclose(f);
}

struct slow_call {
	char url[128];
	char body[256];
	struct http_result res;
	pthread_t thread;
};

static void *slow_main(void *arg)
{
	struct slow_call *s = arg;

	http("POST", s->url, s->body, strlen(s->body), false, &s->res);
	return NULL;
}

static void test_server(void **state)
{
	struct sidecar_api_server *srv = NULL;
	struct skr_error err = {0};
	struct http_result res = {0};
	char url[128], status_url[128];
	_cleanup_free_ char *big = malloc(1024 * 1024 + 1);
	struct slow_call slow[10];
	/* Upstream calls here wait out the stand-in's delay (1.5 s), not the group's 400 ms. */
	struct skr_attester *patient = NULL;
	struct skr_attest_config acfg;
	struct sidecar_api papi = api;

	(void)state;
	sidecar_config_attest(&cfg, &acfg);
	acfg.max_attempts = 1;
	acfg.kek_pool_size = -1;
	acfg.timeout_ms = 10000;
	assert_int_equal(skr_attester_new(&acfg, &patient, &err), 0);
	papi.attester = patient;
	assert_int_equal(sidecar_api_server_start(&papi, 0, &srv, &err), 0);
	snprintf(status_url, sizeof(status_url), "http://127.0.0.1:%u/status",
	         sidecar_api_server_port(srv));

	/* the Go shape and headers */
	http("GET", status_url, NULL, 0, false, &res);
	assert_int_equal(res.rc, CURLE_OK);
	assert_int_equal(res.status, 200);
	assert_string_equal(res.body,
	                    "{\"message\":\"Status OK\",\"state\":\"ready\",\"filesystems\":[]}");
	free(res.body);
	if (sidecar_api_server_has_ipv6(srv)) {
		snprintf(url, sizeof(url), "http://[::1]:%u/status", sidecar_api_server_port(srv));
		http("GET", url, NULL, 0, false, &res);
		assert_int_equal(res.status, 200);
		free(res.body);
	}

	/* a 1 MiB body: 413 with the one body, with and without Expect: 100-continue */
	assert_non_null(big);
	memset(big, 'a', 1024 * 1024);
	big[1024 * 1024] = 0;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/key/release", sidecar_api_server_port(srv));
	for (int e = 0; e < 2; e++) {
		http("POST", url, big, 1024 * 1024, e == 1, &res);
		if (res.rc != CURLE_OK || res.status != 413)
			fail_msg("1 MiB body (expect %d): %s, status %ld", e,
			         curl_easy_strerror(res.rc), res.status);
		assert_string_equal(res.body,
		                    "{\"error\":\"request body is larger than 65536 bytes\"}");
		free(res.body);
	}
	/* a slow route through the worker pool */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/attest/raw", sidecar_api_server_port(srv));
	http("POST", url, "{\"runtime_data\":\"QUJD\"}", 23, false, &res);
	assert_int_equal(res.status, 200);
	assert_non_null(strstr(res.body, "{\"report\":\""));
	free(res.body);

	/* slow upstream calls on every worker and more: /status still answers at once */
	{
		struct test_http_reply slow_reply = {
		        .status = 500, .delay_ms = 1500, .body = "{}", .sticky = true};

		test_http_server_push(maa_srv, &slow_reply);
	}
	for (size_t i = 0; i < ELEMENTSOF(slow); i++) {
		snprintf(slow[i].url, sizeof(slow[i].url), "http://127.0.0.1:%u/attest/maa",
		         sidecar_api_server_port(srv));
		snprintf(slow[i].body, sizeof(slow[i].body),
		         "{\"maa_endpoint\":\"%s\",\"runtime_data\":\"eyJhIjoxfQ==\"}", maa_ok);
		memset(&slow[i].res, 0, sizeof(slow[i].res));
		assert_int_equal(pthread_create(&slow[i].thread, NULL, slow_main, &slow[i]), 0);
	}
	usleep(300 * 1000);
	assert_true(sidecar_api_server_in_flight(srv) >= 8);
	for (int i = 0; i < 5; i++) {
		http("GET", status_url, NULL, 0, false, &res);
		assert_int_equal(res.status, 200);
		/* blocked behind an upstream call it would take over a second */
		if (res.seconds > 0.6)
			fail_msg("/status took %.3f s while upstream calls were slow", res.seconds);
		free(res.body);
	}
	/* a drain shorter than the upstream delay times out; a long one completes */
	assert_int_equal(sidecar_api_server_drain(srv, 50), -ETIMEDOUT);
	for (size_t i = 0; i < ELEMENTSOF(slow); i++) {
		pthread_join(slow[i].thread, NULL);
		/* the stand-in's 500 after its delay → 502 */
		assert_int_equal(slow[i].res.status, 502);
		free(slow[i].res.body);
	}
	assert_int_equal(sidecar_api_server_drain(srv, 5000), 0);
	assert_int_equal(sidecar_api_server_in_flight(srv), 0);

	/* quiesced: new connections are refused */
	sidecar_api_server_quiesce(srv);
	http("GET", status_url, NULL, 0, false, &res);
	assert_int_equal(res.rc, CURLE_COULDNT_CONNECT);
	free(res.body);
	sidecar_api_server_free(srv);
	skr_attester_free(patient);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_routing),
	        cmocka_unit_test(test_bad_bodies_attest),
	        cmocka_unit_test(test_bad_bodies_release),
	        cmocka_unit_test(test_attest_raw),
	        cmocka_unit_test(test_attest_combined),
	        cmocka_unit_test(test_allowlist_before_upstream),
	        cmocka_unit_test(test_upstream_failures),
	        cmocka_unit_test(test_attest_maa_token),
	        cmocka_unit_test(test_error_table),
	        cmocka_unit_test(test_status_model),
	        cmocka_unit_test(test_audit_records),
	        cmocka_unit_test(test_log_redaction),
	        cmocka_unit_test(test_log_sink),
	        cmocka_unit_test(test_server),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
