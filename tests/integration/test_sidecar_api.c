/* SPDX-License-Identifier: MIT */
/*
 * The sidecar daemon as a real process against a real devcloud (attestation service, key vault
 * and IMDS on ephemeral loopback ports, HTTPS with devcloud's CA), configured the way a
 * container group configures it: SkrSideCarArgs / EncfsSideCarArgs / Port / LogFile / LogLevel
 * in the environment, the virtual SEV-SNP platform of devcloud's state as attestation source.
 *   1. every endpoint with valid and invalid bodies (wrong types, missing fields, empty
 *      strings, bad base64, a 1 MiB body, wrong method, unknown path): status and exact body;
 *   2. /attest/raw and /attest/combined evidence that verifies; /attest/maa returns a token that
 *      verifies against devcloud's published keys;
 *   3. /key/release returns the imported key as the Go sidecar's JWK string, with the daemon's
 *      managed identity (IMDS) and with a caller's access_token; a missing key is a 404;
 *   4. endpoints outside the allowlist are refused with 403 before any token is fetched (the
 *      devcloud request log shows no IMDS and no vault request);
 *   5. the listeners are loopback only: a non-loopback address of the machine refuses the port,
 *      and /proc/net/tcp{,6} show the listening sockets bound to 127.0.0.1 and ::1 only;
 *   6. the audit file has one record per attestation and release; SIGHUP reopens the log;
 *      SIGTERM stops the daemon with exit 0;
 *   7. neither the released key, the MAA token nor the bearer token appear in the daemon's log
 *      (level trace), its stderr or the audit file.
 * devcloud and the daemon are always killed at the end, even on failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/rand.h>

#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "ossl.h"
#include "secret.h"
#include "skr.h"
#include "test_devcloud.h"
#include "test_fs.h"
#include "test_http_client.h"
#include "test_proc.h"

#define OUT_MAX (64 * 1024 * 1024)

static char tmpdir[] = "/tmp/test_sidecar_api.XXXXXX";
static char daemon_log[600], daemon_err[600], audit_path[600];
static const char *daemon_bin;
static struct test_devcloud dc = {.pid = -1};
static pid_t daemon_pid = -1;
static char host_hex[65];
static uint16_t port;
static char base_url[64];

/* Secrets seen during the run: none may appear in the daemon's output. */
static uint8_t key_bytes[32];
static char *released_k; /* the JWK "k" of the released key */
static char *maa_token;
static char *bearer_token;

/* A port free on both 127.0.0.1 and ::1 (the daemon's configuration wants a fixed one). */
static uint16_t free_port(void)
{
	for (int attempt = 0; attempt < 20; attempt++) {
		struct sockaddr_in sin = {.sin_family = AF_INET,
		                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
		socklen_t len = sizeof(sin);
		int fd4 = socket(AF_INET, SOCK_STREAM, 0), fd6 = socket(AF_INET6, SOCK_STREAM, 0);
		uint16_t p = 0;

		if (fd4 >= 0 && bind(fd4, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
		    getsockname(fd4, (struct sockaddr *)&sin, &len) == 0) {
			p = ntohs(sin.sin_port);
			sin6.sin6_port = htons(p);
			if (fd6 >= 0 && bind(fd6, (struct sockaddr *)&sin6, sizeof(sin6)) < 0 &&
			    errno == EADDRINUSE)
				p = 0;
		}
		if (fd4 >= 0)
			close(fd4);
		if (fd6 >= 0)
			close(fd6);
		if (p)
			return p;
	}
	return 0;
}

/* @method @url (http://, https:// with devcloud's CA) with @body (may be NULL). */
static void http(const char *method, const char *url, const char *const *headers, const char *body,
                 size_t body_len, struct test_http_client_response *res)
{
	/* quiet: the tests look at res->rc themselves (a refused connection can be the point) */
	test_http_client_request(&(struct test_http_client_request){.method = method,
	                                                            .url = url,
	                                                            .ca_bundle = dc.ca,
	                                                            .headers = headers,
	                                                            .body = body,
	                                                            .body_len = body_len,
	                                                            .timeout_s = 60,
	                                                            .quiet = true},
	                         res);
}

static void api(const char *method, const char *path, const char *body,
                struct test_http_client_response *res)
{
	char url[256];

	snprintf(url, sizeof(url), "%s%s", base_url, path);
	http(method, url, NULL, body, body ? strlen(body) : 0, res);
	if (res->rc != CURLE_OK)
		fail_msg("%s %s: %s", method, path, curl_easy_strerror(res->rc));
	assert_non_null(res->content_type);
	assert_string_equal(res->content_type, "application/json; charset=utf-8");
}

static char *b64_std(const char *s)
{
	char *out = NULL;

	assert_int_equal(b64_encode(s, strlen(s), B64_STD, &out), 0);
	return out;
}

/* Start the daemon with @skr_args (JSON) and @encfs_args (JSON or NULL). */
static void start_daemon(const char *skr_args, const char *encfs_args)
{
	_cleanup_free_ char *skr_b64 = b64_std(skr_args);
	_cleanup_free_ char *encfs_b64 = encfs_args ? b64_std(encfs_args) : NULL;
	char port_str[16];

	port = free_port();
	assert_true(port > 0);
	snprintf(port_str, sizeof(port_str), "%u", port);
	snprintf(base_url, sizeof(base_url), "http://localhost:%u", port);
	{
		const char *const argv[] = {daemon_bin, NULL};
		const char *const env[] = {"SkrSideCarArgs", skr_b64, "EncfsSideCarArgs", encfs_b64,
		                           "Port", port_str, "LogFile", daemon_log,
		                           /* the most verbose level: secrets must not appear at
		                            * any level */
		                           "LogLevel", "trace", NULL};
		struct test_proc_io io = {.stderr_path = daemon_err, .env = env};

		daemon_pid = test_proc_spawn(argv, &io);
		assert_true(daemon_pid > 0);
		test_proc_kill_at_exit(&daemon_pid);
	}
	/* ready when /status answers */
	for (int i = 0; i < 300; i++) {
		struct test_http_client_response r = {0};
		char url[128];
		int status;

		if (test_proc_exited(&daemon_pid, &status))
			fail_msg("the daemon exited at start (status %d)", status);
		snprintf(url, sizeof(url), "%s/status", base_url);
		http("GET", url, NULL, NULL, 0, &r);
		if (r.rc == CURLE_OK && r.status == 200) {
			test_http_client_response_clear(&r);
			return;
		}
		test_http_client_response_clear(&r);
		usleep(50 * 1000);
	}
	fail_msg("the daemon did not answer /status in 15 s");
}

/* SIGTERM: exit 0 within the shutdown bound. */
static void stop_daemon(void)
{
	int r = test_proc_stop(&daemon_pid, SIGTERM, 12000);

	if (r == -ETIMEDOUT)
		fail_msg("the daemon did not stop within 12 s of SIGTERM");
	assert_int_equal(r, 0);
}

static char *skr_args_json(const char *extra)
{
	char *json = NULL;

	assert_true(asprintf(&json,
	                     "{\"certcache\": {\"endpoint_type\": \"AMD\"},"
	                     " \"attestation_source\": \"virtual\","
	                     " \"virtual_platform_dir\": \"%s\", \"ca_bundle\": \"%s\","
	                     " \"imds_endpoint\": \"%s\", \"audit_file\": \"%s\"%s}",
	                     dc.platform, dc.ca, dc.imds, audit_path, extra ? extra : "") > 0);
	return json;
}

/* Import a random oct key named @name with a policy pinning the platform's host data. */
static void import_key(const char *name)
{
	assert_int_equal(RAND_bytes(key_bytes, sizeof(key_bytes)), 1);
	assert_int_equal(
	        test_devcloud_import_oct_key(&dc, name, key_bytes, sizeof(key_bytes), host_hex), 0);
}

static int group_setup(void **state)
{
	uint8_t host_data[32];
	char state_dir[512], devcloud_log[600];

	(void)state;
	daemon_bin = getenv("SIDECAR_BIN");
	if (!test_devcloud_bin() || !daemon_bin) {
		fprintf(stderr, "DEVCLOUD_BIN and SIDECAR_BIN must be set (meson test does)\n");
		return -1;
	}
	if (!mkdtemp(tmpdir))
		return -1;
	test_fs_remove_at_exit(tmpdir);
	snprintf(state_dir, sizeof(state_dir), "%s/state", tmpdir);
	snprintf(devcloud_log, sizeof(devcloud_log), "%s/devcloud.log", tmpdir);
	snprintf(daemon_log, sizeof(daemon_log), "%s/sidecar.log", tmpdir);
	snprintf(daemon_err, sizeof(daemon_err), "%s/sidecar.stderr", tmpdir);
	snprintf(audit_path, sizeof(audit_path), "%s/audit.jsonl", tmpdir);
	if (RAND_bytes(host_data, sizeof(host_data)) != 1)
		return -1;
	hex_encode(host_data, sizeof(host_data), host_hex);
	{
		const char *const init_args[] = {"--host-data", host_hex, NULL};
		/* info: the request log is how the tests see what was (not) sent */
		const char *const serve_args[] = {"--log-level", "info", NULL};

		if (test_devcloud_init(&dc, state_dir, devcloud_log, init_args) < 0)
			return -1;
		return test_devcloud_serve(&dc, serve_args);
	}
}

static int group_teardown(void **state)
{
	(void)state;
	test_proc_kill(&daemon_pid);
	test_devcloud_kill(&dc);
	free(released_k);
	free(maa_token);
	free(bearer_token);
	return 0;
}

static const char *str_field(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		fail_msg("no string field %s in %s", key, json_object_to_json_string(o));
	return json_object_get_string(v);
}

static json_object *parse_ok(const struct test_http_client_response *r)
{
	json_object *o;

	if (r->status != 200)
		fail_msg("expected 200, got %ld %s", r->status, r->body);
	o = json_tokener_parse(r->body);
	assert_non_null(o);
	return o;
}

/* ---------------------------------------------------------------------------------------------
 * 1. Valid and invalid requests (the daemon with an explicit allowlist)
 * ------------------------------------------------------------------------------------------- */

static void start_default_daemon(void)
{
	_cleanup_free_ char *extra = NULL, *json = NULL;

	assert_true(asprintf(&extra,
	                     ", \"allowed_endpoints\": {\"attestation\": [\"%s\"], \"key_vault\": "
	                     "[\"https://%s\"]}",
	                     dc.attest, dc.kv) > 0);
	json = skr_args_json(extra);
	start_daemon(json, NULL);
}

static void expect(const char *method, const char *path, const char *body, long code,
                   const char *expected)
{
	struct test_http_client_response r = {0};

	api(method, path, body, &r);
	if (r.status != code || strcmp(r.body, expected) != 0)
		fail_msg("%s %s %.80s: got %ld %s, expected %ld %s", method, path,
		         body ? body : "(none)", r.status, r.body, code, expected);
	test_http_client_response_clear(&r);
}

static void expect_error(const char *method, const char *path, const char *body, long code,
                         const char *message)
{
	_cleanup_json_ json_object *o = json_object_new_object();

	json_object_object_add(o, "error", json_object_new_string(message));
	expect(method, path, body, code,
	       json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
}

static void test_requests(void **state)
{
	static const char not_b64[] = "field 'runtime_data' is not base64: expected the standard "
	                              "or URL-safe alphabet with '=' padding";
	static const char *const attest_paths[] = {"/attest/raw", "/attest/combined"};
	char body[512];
	struct test_http_client_response r = {0};
	_cleanup_free_ char *big = malloc(1024 * 1024 + 1);
	size_t tokens = test_devcloud_log_count(&dc, "/metadata/identity"),
	       attests = test_devcloud_log_count(&dc, "/attest/");

	(void)state;
	start_default_daemon();

	expect("GET", "/status", NULL, 200,
	       "{\"message\":\"Status OK\",\"state\":\"ready\",\"filesystems\":[]}");
	expect_error("GET", "/nope", NULL, 404,
	             "unknown path '/nope': the API serves GET /status and POST /attest/raw, "
	             "/attest/combined, /attest/maa, /key/release");
	/* wrong methods carry Allow */
	api("POST", "/status", "{}", &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(r.allow, "GET, HEAD");
	assert_string_equal(r.body,
	                    "{\"error\":\"method POST is not allowed on /status: use GET\"}");
	test_http_client_response_clear(&r);
	api("GET", "/key/release", NULL, &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(r.allow, "POST");
	assert_string_equal(r.body,
	                    "{\"error\":\"method GET is not allowed on /key/release: use POST\"}");
	test_http_client_response_clear(&r);

	for (size_t i = 0; i < ELEMENTSOF(attest_paths); i++) {
		const char *p = attest_paths[i];

		expect_error("GET", p, NULL, 405,
		             strcmp(p, "/attest/raw") == 0
		                     ? "method GET is not allowed on /attest/raw: use POST"
		                     : "method GET is not allowed on /attest/combined: use POST");
		expect_error("POST", p, "", 400, "request body is empty: expected a JSON object");
		expect_error("POST", p, "xyz", 400,
		             "request body is not valid JSON: unexpected character");
		expect_error("POST", p, "[1]", 400, "request body must be a JSON object");
		expect_error("POST", p, "{}", 400, "field 'runtime_data' is required");
		expect_error("POST", p, "{\"runtime_data\": \"\"}", 400,
		             "field 'runtime_data' is required and may not be empty");
		expect_error("POST", p, "{\"runtime_data\": 42}", 400,
		             "field 'runtime_data' must be a string");
		expect_error("POST", p, "{\"runtime_data\": \"***\"}", 400, not_b64);
		expect_error("POST", p, "{\"runtime_data\": \"QUI\"}", 400, not_b64);
	}
	snprintf(body, sizeof(body), "{\"maa_endpoint\": \"%s\", \"runtime_data\": 1}", dc.attest);
	expect_error("POST", "/attest/maa", body, 400, "field 'runtime_data' must be a string");
	expect_error("POST", "/attest/maa", "{\"runtime_data\": \"QUJD\"}", 400,
	             "field 'maa_endpoint' is required");
	expect_error("POST", "/attest/maa", "{\"maa_endpoint\": \"\", \"runtime_data\": \"QUJD\"}",
	             400, "field 'maa_endpoint' is required and may not be empty");
	snprintf(body, sizeof(body), "{\"maa_endpoint\": \"%s\", \"runtime_data\": \"Q\"}",
	         dc.attest);
	expect_error("POST", "/attest/maa", body, 400, not_b64);
	snprintf(body, sizeof(body), "{\"maa_endpoint\": \"%s\", \"akv_endpoint\": \"%s\"}",
	         dc.attest, dc.kv);
	expect_error("POST", "/key/release", body, 400, "field 'kid' is required");
	snprintf(body, sizeof(body),
	         "{\"maa_endpoint\": \"%s\", \"akv_endpoint\": \"%s\", \"kid\": \"\"}", dc.attest,
	         dc.kv);
	expect_error("POST", "/key/release", body, 400,
	             "field 'kid' is required and may not be empty");
	snprintf(body, sizeof(body),
	         "{\"maa_endpoint\": \"%s\", \"akv_endpoint\": 7, \"kid\": \"k\"}", dc.attest);
	expect_error("POST", "/key/release", body, 400, "field 'akv_endpoint' must be a string");
	snprintf(body, sizeof(body),
	         "{\"maa_endpoint\": \"%s\", \"akv_endpoint\": \"%s\", \"kid\": \"k\", "
	         "\"access_token\": false}",
	         dc.attest, dc.kv);
	expect_error("POST", "/key/release", body, 400, "field 'access_token' must be a string");
	expect_error("POST", "/key/release", "{\"kid\": \"k\"}", 400,
	             "field 'maa_endpoint' is required");

	/* a 1 MiB body, on every POST route */
	assert_non_null(big);
	memset(big, ' ', 1024 * 1024);
	big[0] = '{';
	big[1024 * 1024 - 1] = '}';
	big[1024 * 1024] = 0;
	expect_error("POST", "/attest/raw", big, 413, "request body is larger than 65536 bytes");
	expect_error("POST", "/attest/combined", big, 413,
	             "request body is larger than 65536 bytes");
	expect_error("POST", "/attest/maa", big, 413, "request body is larger than 65536 bytes");
	expect_error("POST", "/key/release", big, 413, "request body is larger than 65536 bytes");

	/* none of it reached devcloud */
	assert_int_equal(test_devcloud_log_count(&dc, "/metadata/identity"), tokens);
	assert_int_equal(test_devcloud_log_count(&dc, "/attest/"), attests);
	/* still serving */
	expect("GET", "/status", NULL, 200,
	       "{\"message\":\"Status OK\",\"state\":\"ready\",\"filesystems\":[]}");
}

/* ---------------------------------------------------------------------------------------------
 * 2. Attestation
 * ------------------------------------------------------------------------------------------- */

static void expect_bound_report(const uint8_t *report, const void *runtime, size_t len)
{
	struct snp_report rep;
	uint8_t rd[64];
	struct skr_error err = {0};

	assert_int_equal(snp_report_parse(report, SNP_REPORT_SIZE, &rep, &err), 0);
	skr_report_data_for(runtime, len, rd);
	assert_memory_equal(rep.report_data, rd, 64);
	{
		uint8_t hd[32];

		assert_int_equal(hex_decode(host_hex, 64, hd, sizeof(hd)), 0);
		assert_memory_equal(rep.host_data, hd, 32);
	}
}

static void test_attest(void **state)
{
	struct test_http_client_response r = {0};
	_cleanup_json_ json_object *raw = NULL, *combined = NULL, *maa_out = NULL;
	_cleanup_free_ uint8_t *ev = NULL, *chain = NULL;
	_cleanup_free_ char *claims = NULL, *issuer = NULL;
	uint8_t report[SNP_REPORT_SIZE];
	struct skr_token_verifier *verifier = NULL;
	struct skr_error err = {0};
	size_t len, chain_len;
	char body[512];

	(void)state;
	/* /attest/raw, URL-safe alphabet as the Go sidecar's tests send it */
	api("POST", "/attest/raw", "{\"runtime_data\": \"-_-_\"}", &r);
	raw = parse_ok(&r);
	assert_int_equal(strlen(str_field(raw, "report")), 2 * SNP_REPORT_SIZE);
	assert_int_equal(
	        hex_decode(str_field(raw, "report"), 2 * SNP_REPORT_SIZE, report, sizeof(report)),
	        0);
	expect_bound_report(report, "\xfb\xff\xbf", 3);
	test_http_client_response_clear(&r);

	/* /attest/combined */
	api("POST", "/attest/combined", "{\"runtime_data\": \"eyJub25jZSI6MX0=\"}", &r);
	combined = parse_ok(&r);
	assert_int_equal(b64_decode(str_field(combined, "evidence"),
	                            strlen(str_field(combined, "evidence")),
	                            B64_ACCEPT_STD | B64_REQUIRE_PAD, &ev, &len),
	                 0);
	assert_int_equal(len, SNP_REPORT_SIZE);
	expect_bound_report(ev, "{\"nonce\":1}", 11);
	assert_int_equal(b64_decode(str_field(combined, "endorsements"),
	                            strlen(str_field(combined, "endorsements")),
	                            B64_ACCEPT_STD | B64_REQUIRE_PAD, &chain, &chain_len),
	                 0);
	{
		struct snp_cert_chain *c = NULL;
		struct snp_trust_store *ts = NULL;
		struct snp_virtual *v = NULL;

		assert_int_equal(snp_cert_chain_from_pem((const char *)chain, chain_len, &c, &err),
		                 0);
		assert_true(snp_cert_chain_is_complete(c));
		/* the evidence verifies against the platform's ARK */
		assert_int_equal(snp_virtual_open(dc.platform, &v, &err), 0);
		assert_int_equal(snp_trust_store_new(&ts, &err), 0);
		assert_int_equal(snp_trust_store_add_pem(ts, snp_virtual_ark_pem(v),
		                                         strlen(snp_virtual_ark_pem(v)), &err),
		                 0);
		snp_virtual_free(v);
		if (snp_report_verify(ev, len, c, ts, &err) < 0)
			fail_msg("combined evidence does not verify: %s", err.msg);
		snp_trust_store_free(ts);
		snp_cert_chain_free(c);
	}
	assert_int_equal(strlen(str_field(combined, "endorsed_tcb")), 16);
	assert_string_equal(str_field(combined, "uvm_endorsements"), "");
	test_http_client_response_clear(&r);

	/* /attest/maa: a token that verifies against devcloud's keys */
	snprintf(body, sizeof(body), "{\"maa_endpoint\": \"%s\", \"runtime_data\": \"%s\"}",
	         dc.attest, "eyJub25jZSI6Mn0=");
	api("POST", "/attest/maa", body, &r);
	maa_out = parse_ok(&r);
	assert_int_equal(json_object_object_length(maa_out), 1);
	maa_token = strdup(str_field(maa_out, "token"));
	test_http_client_response_clear(&r);
	assert_int_equal(skr_token_verifier_new(dc.ca, &verifier, &err), 0);
	assert_true(asprintf(&issuer, "https://%s", dc.attest) > 0);
	if (skr_token_verifier_verify(verifier, issuer, maa_token, &claims, &err) < 0)
		fail_msg("token does not verify: %s", err.msg);
	skr_token_verifier_free(verifier);
	/* bound to the runtime data */
	{
		_cleanup_json_ json_object *c = json_tokener_parse(claims);
		uint8_t rd[64];
		char rd_hex[129];

		assert_non_null(c);
		skr_report_data_for((const uint8_t *)"{\"nonce\":2}", 11, rd);
		hex_encode(rd, sizeof(rd), rd_hex);
		assert_string_equal(str_field(c, "x-ms-sevsnpvm-reportdata"), rd_hex);
	}
}

/* ---------------------------------------------------------------------------------------------
 * 3. Key release
 * ------------------------------------------------------------------------------------------- */

static void expect_released_jwk(const struct test_http_client_response *r)
{
	_cleanup_json_ json_object *outer = parse_ok(r), *jwk = NULL;
	_cleanup_free_ char *k = NULL;
	json_object *ops;

	/* the Go shape: {"key": "<the JWK as a JSON string>"} */
	assert_int_equal(json_object_object_length(outer), 1);
	jwk = json_tokener_parse(str_field(outer, "key"));
	assert_non_null(jwk);
	assert_string_equal(str_field(jwk, "kty"), "oct");
	assert_int_equal(b64_encode(key_bytes, sizeof(key_bytes), B64_URL_NOPAD, &k), 0);
	assert_string_equal(str_field(jwk, "k"), k);
	assert_true(json_object_object_get_ex(jwk, "key_ops", &ops));
	assert_int_equal(json_object_array_length(ops), 2);
	if (!released_k)
		released_k = strdup(k);
}

static void test_release(void **state)
{
	struct test_http_client_response r = {0};
	char body[1024];
	size_t tokens;

	(void)state;
	import_key("sidecar-key");

	/* the daemon's own identity (devcloud's IMDS) */
	tokens = test_devcloud_log_count(&dc, "/metadata/identity");
	snprintf(body, sizeof(body),
	         "{\"maa_endpoint\": \"%s\", \"akv_endpoint\": \"%s\", \"kid\": \"sidecar-key\"}",
	         dc.attest, dc.kv);
	api("POST", "/key/release", body, &r);
	expect_released_jwk(&r);
	test_http_client_response_clear(&r);
	assert_true(test_devcloud_log_count(&dc, "/metadata/identity") > tokens);

	/* a caller's access_token: no IMDS request */
	bearer_token = test_devcloud_vault_token(&dc);
	assert_non_null(bearer_token);
	tokens = test_devcloud_log_count(&dc, "/metadata/identity");
	{
		_cleanup_free_ char *with_token = NULL;

		assert_true(asprintf(&with_token,
		                     "{\"maa_endpoint\": \"%s\", \"akv_endpoint\": \"https://%s\", "
		                     "\"kid\": \"sidecar-key\", \"access_token\": \"%s\"}",
		                     dc.attest, dc.kv, bearer_token) > 0);
		api("POST", "/key/release", with_token, &r);
	}
	expect_released_jwk(&r);
	test_http_client_response_clear(&r);
	assert_int_equal(test_devcloud_log_count(&dc, "/metadata/identity"), tokens);

	/* no such key: 404 with the vault's reason */
	snprintf(body, sizeof(body),
	         "{\"maa_endpoint\": \"%s\", \"akv_endpoint\": \"%s\", \"kid\": \"missing-key\"}",
	         dc.attest, dc.kv);
	api("POST", "/key/release", body, &r);
	assert_int_equal(r.status, 404);
	assert_true(strncmp(r.body, "{\"error\":\"secure key release failed: ", 37) == 0);
	assert_non_null(strstr(r.body, "missing-key"));
	test_http_client_response_clear(&r);

	/* a bad bearer token: refused by the vault → 403 */
	snprintf(body, sizeof(body),
	         "{\"maa_endpoint\": \"%s\", \"akv_endpoint\": \"%s\", \"kid\": \"sidecar-key\", "
	         "\"access_token\": \"not-a-valid-token\"}",
	         dc.attest, dc.kv);
	api("POST", "/key/release", body, &r);
	assert_int_equal(r.status, 403);
	assert_true(strncmp(r.body, "{\"error\":\"secure key release failed: ", 37) == 0);
	test_http_client_response_clear(&r);
}

/* ---------------------------------------------------------------------------------------------
 * 4. Confused deputy
 * ------------------------------------------------------------------------------------------- */

static void test_allowlist(void **state)
{
	char body[1024], want[1024];
	size_t tokens = test_devcloud_log_count(&dc, "/metadata/identity"),
	       releases = test_devcloud_log_count(&dc, "/release"),
	       attests = test_devcloud_log_count(&dc, "/attest/");

	(void)state;
	/* another vault (devcloud's IMDS port, say): refused before attesting or any token */
	snprintf(body, sizeof(body),
	         "{\"maa_endpoint\": \"%s\", \"akv_endpoint\": \"attacker.example.net\", \"kid\": "
	         "\"sidecar-key\"}",
	         dc.attest);
	snprintf(want, sizeof(want),
	         "akv_endpoint 'attacker.example.net' is not allowed by configuration (allowed: "
	         "%s); add it to allowed_endpoints.key_vault in SkrSideCarArgs",
	         dc.kv);
	expect_error("POST", "/key/release", body, 403, want);
	snprintf(body, sizeof(body),
	         "{\"maa_endpoint\": \"127.0.0.2:1\", \"akv_endpoint\": \"%s\", \"kid\": "
	         "\"sidecar-key\"}",
	         dc.kv);
	snprintf(want, sizeof(want),
	         "maa_endpoint '127.0.0.2:1' is not allowed by configuration (allowed: %s); add it "
	         "to allowed_endpoints.attestation in SkrSideCarArgs",
	         dc.attest);
	expect_error("POST", "/key/release", body, 403, want);
	expect_error("POST", "/attest/maa",
	             "{\"maa_endpoint\": \"127.0.0.2:1\", \"runtime_data\": \"QUJD\"}", 403, want);
	assert_int_equal(test_devcloud_log_count(&dc, "/metadata/identity"), tokens);
	assert_int_equal(test_devcloud_log_count(&dc, "/release"), releases);
	assert_int_equal(test_devcloud_log_count(&dc, "/attest/"), attests);
}

/* ---------------------------------------------------------------------------------------------
 * 5. Loopback only
 * ------------------------------------------------------------------------------------------- */

/* Local addresses of the listening sockets on @p in /proc/net/@file (hex, as the kernel has it). */
/* Run the sidecar binary with @args; its exit code, stdout and stderr (malloc'ed). */
static int run_cli(const char *const *args, char **out, char **err)
{
	const char *argv[32] = {daemon_bin};
	struct test_proc_result res;
	size_t n = 1;
	int status;

	for (; args[n - 1] && n < 31; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	assert_int_equal(test_proc_run(argv, NULL, &res), 0);
	assert_true(res.status >= 0); /* exited, not killed by a signal */
	status = res.status;
	*out = TAKE_PTR(res.out);
	*err = TAKE_PTR(res.err);
	test_proc_result_clear(&res);
	return status;
}

/*
 * The one-shot commands: usage errors exit 2 before any device or network is used (an http://
 * endpoint, a path on the MAA endpoint, runtime data that is not JSON), --version works, and an
 * attestation against devcloud succeeds (its token echoes the request's nonce, which the client
 * checks).
 */
static void test_cli(void **state)
{
	char maa_path[128];
	static const struct {
		int code;
		const char *args[16];
		const char *out, *err;
	} cases[] = {
	        {0, {"attest", "--version"}, "confidential-sidecar ", ""},
	        {0, {"release", "--version"}, "confidential-sidecar ", ""},
	        {2, {"attest", "--maa-endpoint", "http://127.0.0.1:1"}, "", "only https://"},
	        {2, {"attest", "--maa-endpoint", "ftp://x"}, "", "only https://"},
	        {2,
	         {"release", "--maa-endpoint", "x", "--akv-endpoint", "HTTP://y", "--kid", "k"},
	         "",
	         "--akv-endpoint 'HTTP://y': only https://"},
	        {2, {"attest", "--maa-endpoint", ""}, "", "--maa-endpoint is empty"},
	};
	size_t before;

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_free_ char *out = NULL, *err = NULL;
		int code = run_cli(cases[i].args, &out, &err);

		if (code != cases[i].code || !strstr(out, cases[i].out) ||
		    !strstr(err, cases[i].err))
			fail_msg("%s %s: exit %d, stdout '%s', stderr '%s'", cases[i].args[0],
			         cases[i].args[1], code, out, err);
	}

	/* With a working platform: the library's own checks are usage errors too. */
	before = test_devcloud_log_count(&dc, "POST /attest/SevSnpVm");
	snprintf(maa_path, sizeof(maa_path), "https://%s/prefix", dc.attest);
	{
		const char *bad_path[] = {"attest",    "--maa-endpoint",
		                          maa_path,    "--attestation-source",
		                          "virtual",   "--virtual-dir",
		                          dc.platform, "--ca-bundle",
		                          dc.ca,       NULL};
		const char *not_json[] = {
		        "attest",  "--maa-endpoint", dc.attest,   "--attestation-source",
		        "virtual", "--virtual-dir",  dc.platform, "--ca-bundle",
		        dc.ca,     "--runtime-data", "not json",  NULL};
		const char *ok[] = {
		        "attest",  "--maa-endpoint", dc.attest,     "--attestation-source",
		        "virtual", "--virtual-dir",  dc.platform,   "--ca-bundle",
		        dc.ca,     "--runtime-data", "{\"cli\":1}", NULL};
		_cleanup_free_ char *out = NULL, *err = NULL, *out2 = NULL, *err2 = NULL;
		_cleanup_free_ char *out3 = NULL, *err3 = NULL;
		_cleanup_json_ json_object *claims = NULL;

		assert_int_equal(run_cli(bad_path, &out, &err), 2);
		assert_non_null(strstr(err, "has a path"));
		assert_int_equal(run_cli(not_json, &out2, &err2), 2);
		assert_non_null(strstr(err2, "runtime_data is not valid JSON"));
		assert_int_equal(test_devcloud_log_count(&dc, "POST /attest/SevSnpVm"), before);

		if (run_cli(ok, &out3, &err3) != 0)
			fail_msg("attest: %s", err3);
		assert_non_null(strstr(err3, "token verified"));
		claims = json_tokener_parse(out3);
		assert_non_null(claims);
		assert_int_equal(json_object_get_int(json_object_object_get(
		                         json_object_object_get(claims, "x-ms-runtime"), "cli")),
		                 1);
		assert_true(strspn(str_field(claims, "nonce"), "0123456789") > 0);
		assert_int_equal(test_devcloud_log_count(&dc, "POST /attest/SevSnpVm"), before + 1);
	}
}

/* devcloud's request log escapes the decoded path: a client cannot forge a log line. */
static void test_devcloud_log_injection(void **state)
{
	struct test_http_client_response r = {0};
	char url[256];

	(void)state;
	snprintf(url, sizeof(url), "https://%s/x%%0AGET%%20/forged%%20200", dc.attest);
	http("GET", url, NULL, NULL, 0, &r);
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(r.body, "/x%0AGET%20/forged%20200"));
	test_http_client_response_clear(&r);
	assert_int_equal(test_devcloud_log_count(&dc, "GET /x%0AGET%20/forged%20200 404"), 1);
	assert_int_equal(test_devcloud_log_count(&dc, "\nGET /forged"), 0);
}

static size_t listening_addresses(const char *file, uint16_t p, char addrs[][40], size_t max)
{
	char path[64], line[512];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/net/%s", file);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char local[64], remote[64], st[8];
		unsigned lport;
		char *colon;

		if (sscanf(line, "%*d: %63s %63s %7s", local, remote, st) != 3)
			continue;
		colon = strchr(local, ':');
		if (!colon || sscanf(colon + 1, "%x", &lport) != 1 || lport != p ||
		    strcmp(st, "0A") != 0) /* 0A: LISTEN */
			continue;
		*colon = 0;
		if (n < max)
			snprintf(addrs[n++], 40, "%.39s", local);
	}
	fclose(f);
	return n;
}

static void test_loopback_only(void **state)
{
	struct ifaddrs *ifa = NULL;
	char v4[8][40], v6[8][40];
	size_t n4, n6, tried = 0;

	(void)state;
	/* the kernel's view: LISTEN sockets on the port are 127.0.0.1 and ::1, nothing else */
	n4 = listening_addresses("tcp", port, v4, 8);
	n6 = listening_addresses("tcp6", port, v6, 8);
	assert_int_equal(n4, 1);
	assert_string_equal(v4[0], "0100007F"); /* 127.0.0.1, little-endian hex */
	assert_true(n6 <= 1);
	if (n6)
		assert_string_equal(v6[0], "00000000000000000000000001000000"); /* ::1 */

	/* and in practice: every non-loopback address of the machine refuses the port */
	assert_int_equal(getifaddrs(&ifa), 0);
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		struct sockaddr_storage ss = {0};
		socklen_t len;
		char name[INET6_ADDRSTRLEN] = "";
		int fd, r;

		if (!i->ifa_addr || (i->ifa_flags & IFF_LOOPBACK) || !(i->ifa_flags & IFF_UP))
			continue;
		if (i->ifa_addr->sa_family == AF_INET) {
			memcpy(&ss, i->ifa_addr, sizeof(struct sockaddr_in));
			((struct sockaddr_in *)&ss)->sin_port = htons(port);
			len = sizeof(struct sockaddr_in);
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, name,
			          sizeof(name));
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			memcpy(&ss, i->ifa_addr, sizeof(struct sockaddr_in6));
			((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
			len = sizeof(struct sockaddr_in6);
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, name,
			          sizeof(name));
		} else {
			continue;
		}
		fd = socket(ss.ss_family, SOCK_STREAM, 0);
		assert_true(fd >= 0);
		r = connect(fd, (struct sockaddr *)&ss, len);
		if (r == 0)
			fail_msg("the daemon accepted a connection on %s (%s) port %u", name,
			         i->ifa_name, port);
		/* refused: nothing listens there (unreachable link-local scopes are fine too) */
		assert_true(errno == ECONNREFUSED || errno == ENETUNREACH || errno == EINVAL ||
		            errno == EADDRNOTAVAIL);
		close(fd);
		tried++;
	}
	freeifaddrs(ifa);
	fprintf(stderr,
	        "loopback-only: %zu non-loopback address(es) of this machine refuse port %u\n",
	        tried, port);
}

/* ---------------------------------------------------------------------------------------------
 * 6. Audit, SIGHUP, EncfsSideCarArgs, SIGTERM
 * ------------------------------------------------------------------------------------------- */

static void test_audit_and_signals(void **state)
{
	_cleanup_free_ char *audit = NULL;
	char rotated[700], fp[SKR_FINGERPRINT_STR_SIZE];
	size_t len;
	struct stat st;

	(void)state;
	assert_int_equal(read_file(audit_path, OUT_MAX, &audit, &len), 0);
	assert_int_equal(stat(audit_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* a record per attestation and release, success and failure */
	assert_non_null(strstr(audit, "\"endpoint\":\"/attest/raw\",\"outcome\":\"success\""));
	assert_non_null(strstr(audit, "\"endpoint\":\"/attest/combined\",\"outcome\":\"success\""));
	assert_non_null(strstr(audit, "\"endpoint\":\"/attest/maa\",\"outcome\":\"success\""));
	assert_non_null(strstr(audit, "\"endpoint\":\"/key/release\",\"outcome\":\"success\""));
	assert_non_null(strstr(audit, "\"endpoint\":\"/key/release\",\"outcome\":\"denied\""));
	assert_non_null(strstr(audit, "\"endpoint\":\"/key/release\",\"outcome\":\"error\""));
	skr_key_fingerprint(key_bytes, sizeof(key_bytes), fp);
	assert_non_null(strstr(audit, fp));
	assert_non_null(strstr(audit, "\"token_jti\":\""));
	/*
	 * A successful release and MAA attestation are audited with the token's jti and the
	 * report's hash (never the token), a release also with the key's id and fingerprint.
	 */
	{
		static const char *const needles[] = {
		        "\"endpoint\":\"/key/release\",\"outcome\":\"success\"",
		        "\"endpoint\":\"/attest/maa\",\"outcome\":\"success\""};

		for (size_t i = 0; i < ELEMENTSOF(needles); i++) {
			const char *line = strstr(audit, needles[i]), *start, *end;
			_cleanup_free_ char *text = NULL;
			_cleanup_json_ json_object *rec = NULL;
			json_object *v;

			assert_non_null(line);
			for (start = line; start > audit && start[-1] != '\n'; start--)
				;
			end = strchr(line, '\n');
			assert_non_null(end);
			text = strndup(start, (size_t)(end - start));
			rec = json_tokener_parse(text);
			assert_non_null(rec);
			assert_true(json_object_object_get_ex(rec, "token_jti", &v));
			assert_true(json_object_get_string_len(v) > 0);
			assert_true(json_object_object_get_ex(rec, "report_sha256", &v));
			assert_int_equal(json_object_get_string_len(v), 64);
			if (i == 0) {
				assert_true(json_object_object_get_ex(rec, "key_fingerprint", &v));
				assert_string_equal(json_object_get_string(v), fp);
				assert_true(json_object_object_get_ex(rec, "key_id", &v));
				assert_non_null(strstr(json_object_get_string(v), "/keys/"));
			}
		}
	}

	/* SIGHUP: the rotated log stays, a new one is opened */
	snprintf(rotated, sizeof(rotated), "%s.1", daemon_log);
	assert_int_equal(rename(daemon_log, rotated), 0);
	assert_int_equal(kill(daemon_pid, SIGHUP), 0);
	for (int i = 0; i < 100 && access(daemon_log, F_OK) != 0; i++)
		usleep(20 * 1000);
	assert_int_equal(access(daemon_log, F_OK), 0);
	expect("GET", "/status", NULL, 200,
	       "{\"message\":\"Status OK\",\"state\":\"ready\",\"filesystems\":[]}");
	usleep(100 * 1000);
	{
		_cleanup_free_ char *fresh = NULL;

		assert_int_equal(read_file(daemon_log, OUT_MAX, &fresh, &len), 0);
		assert_non_null(strstr(fresh, "GET /status 200"));
		assert_int_equal(stat(daemon_log, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	stop_daemon();
	/* stopped: the port refuses connections */
	{
		struct test_http_client_response r = {0};
		char url[128];

		snprintf(url, sizeof(url), "%s/status", base_url);
		http("GET", url, NULL, NULL, 0, &r);
		assert_int_equal(r.rc, CURLE_COULDNT_CONNECT);
		test_http_client_response_clear(&r);
	}

	/*
	 * EncfsSideCarArgs: the filesystem is in /status, its key's endpoints are allowed. Its
	 * image does not exist (devcloud answers 404 for it), so the mount fails at step "blob";
	 * with on_mount_failure "continue" the API keeps serving and /status says why.
	 */
	{
		_cleanup_free_ char *skr = skr_args_json(NULL), *encfs = NULL;
		struct test_http_client_response r = {0};
		char body[1024];
		bool failed = false;

		assert_true(
		        asprintf(&encfs,
		                 "{\"azure_filesystems\": [{\"azure_url\": "
		                 "\"https://%s/container/missing.img\", "
		                 "\"mount_point\": \"%s/mnt/share\", \"key\": {\"kid\": "
		                 "\"sidecar-key\", \"kty\": \"oct-HSM\", \"authority\": "
		                 "{\"endpoint\": \"%s\"}, \"akv\": {\"endpoint\": \"%s\"}}}], "
		                 "\"work_dir\": \"%s/work\", \"on_mount_failure\": \"continue\"}",
		                 dc.attest, tmpdir, dc.attest, dc.kv, tmpdir) > 0);
		start_daemon(skr, encfs);
		for (int i = 0; i < 200 && !failed; i++) {
			api("GET", "/status", NULL, &r);
			assert_int_equal(r.status, 200);
			/* never "Status OK" while the filesystem is not mounted */
			assert_non_null(strstr(r.body, "\"Status NOT OK\""));
			failed = strstr(r.body, "\"state\":\"failed\"") != NULL;
			if (failed) {
				assert_non_null(strstr(r.body, "\"state\":\"degraded\""));
				assert_non_null(strstr(r.body, "\"step\":\"blob\""));
			} else {
				assert_non_null(strstr(r.body, "\"state\":\"pending\""));
				usleep(50 * 1000);
			}
			test_http_client_response_clear(&r);
		}
		assert_true(failed);
		snprintf(body, sizeof(body),
		         "{\"maa_endpoint\": \"%s\", \"akv_endpoint\": \"%s\", \"kid\": "
		         "\"sidecar-key\"}",
		         dc.attest, dc.kv);
		api("POST", "/key/release", body, &r);
		expect_released_jwk(&r);
		test_http_client_response_clear(&r);
		stop_daemon();
	}
}

/* ---------------------------------------------------------------------------------------------
 * 7. No secret in any output
 * ------------------------------------------------------------------------------------------- */

static void expect_absent(const char *path, const char *what, const char *text, const char *secret)
{
	const char *p = secret && *secret ? strstr(text, secret) : NULL;

	if (p) {
		const char *line = p;

		while (line > text && line[-1] != '\n')
			line--;
		fail_msg("%s appears in %s: %.300s", what, path, line);
	}
}

static void test_no_secrets_in_logs(void **state)
{
	static const char *const files[] = {daemon_log, daemon_err, audit_path};
	char key_hex[65], rotated[700];
	const char *signature;
	char signature_part[41];

	(void)state;
	assert_non_null(released_k);
	assert_non_null(maa_token);
	assert_non_null(bearer_token);
	hex_encode(key_bytes, sizeof(key_bytes), key_hex);
	/* libskr may log header.payload.<redacted> at trace (style.md): the signature makes it a
	 * credential, so it is the signature that must never appear */
	signature = strrchr(maa_token, '.') + 1;
	assert_true(strlen(signature) > 40);
	snprintf(signature_part, sizeof(signature_part), "%.40s", signature);
	snprintf(rotated, sizeof(rotated), "%s.1", daemon_log);
	for (size_t i = 0; i < ELEMENTSOF(files) + 1; i++) {
		const char *path = i < ELEMENTSOF(files) ? files[i] : rotated;
		_cleanup_free_ char *text = NULL;
		size_t len;

		assert_int_equal(read_file(path, OUT_MAX, &text, &len), 0);
		/* stderr stays empty: everything goes to LogFile */
		assert_true(len > 0 || path == daemon_err);
		expect_absent(path, "the released key (JWK k)", text, released_k);
		expect_absent(path, "the released key (hex)", text, key_hex);
		expect_absent(path, "the MAA token", text, maa_token);
		expect_absent(path, "the MAA token's signature", text, signature_part);
		expect_absent(path, "the bearer token", text, bearer_token);
		expect_absent(path, "a private key", text, "PRIVATE KEY");
	}
	/* trace level really was on: the log is not empty of detail */
	{
		_cleanup_free_ char *text = NULL;
		size_t len;

		assert_int_equal(read_file(rotated, OUT_MAX, &text, &len), 0);
		assert_non_null(strstr(text, "POST /key/release 200"));
		assert_non_null(strstr(text, "audit {"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_requests),
	        cmocka_unit_test(test_attest),
	        cmocka_unit_test(test_release),
	        cmocka_unit_test(test_allowlist),
	        cmocka_unit_test(test_cli),
	        cmocka_unit_test(test_devcloud_log_injection),
	        cmocka_unit_test(test_loopback_only),
	        cmocka_unit_test(test_audit_and_signals),
	        cmocka_unit_test(test_no_secrets_in_logs),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
