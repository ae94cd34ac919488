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
 * The server is always killed at the end, even on failure (group teardown and atexit).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

#define MAX_BODY 131072
#define RUNTIME                                                                                    \
	"{\"keys\":[{\"e\":\"AQAB\",\"kid\":\"k\",\"kty\":\"RSA\"}],\"test\":\"integration\"}"

static char tmpdir[] = "/tmp/test_devcloud_integration.XXXXXX";
static char state_dir[512], ca_path[600], platform_dir[600], endpoints_path[600];
static const char *devcloud_bin;
static pid_t server_pid = -1;
static int port;
static char endpoint[64]; /* localhost:PORT */
static uint8_t host_data[32];
static struct snp_virtual *platform, *other;

static void kill_server(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGKILL);
		waitpid(server_pid, NULL, 0);
		server_pid = -1;
	}
}

static void remove_tmpdir(void)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

static void at_exit(void)
{
	kill_server();
	remove_tmpdir();
}

/*
 * Run devcloud with @args (NULL-terminated, without the program) and its stdout to @out_path
 * (NULL: /dev/null); its exit status or -1.
 */
static int run_devcloud(const char *const *args, const char *out_path)
{
	const char *argv[32] = {devcloud_bin};
	size_t n = 1;
	pid_t pid;
	int status;

	for (; args[n - 1] && n < 31; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd =
		        open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd >= 0)
			dup2(fd, STDOUT_FILENO);
		execv(devcloud_bin, (char *const *)argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static int wait_for_endpoints(void)
{
	for (int i = 0; i < 600; i++) {
		_cleanup_free_ char *text = NULL;
		json_object *root, *p;
		size_t len;
		int status;

		if (waitpid(server_pid, &status, WNOHANG) == server_pid) {
			fprintf(stderr, "devcloud serve exited early (status %d)\n", status);
			server_pid = -1;
			return -1;
		}
		if (read_file(endpoints_path, 4096, &text, &len) == 0) {
			root = json_tokener_parse(text);
			if (root && json_object_object_get_ex(root, "attest_port", &p)) {
				port = json_object_get_int(p);
				json_object_put(root);
				return port > 0 ? 0 : -1;
			}
			json_object_put(root);
		}
		usleep(50 * 1000);
	}
	fprintf(stderr, "devcloud serve did not write %s in 30 s\n", endpoints_path);
	return -1;
}

static int group_setup(void **state)
{
	struct skr_error err = {0};
	struct snp_virtual_params p;
	char host_hex[65], other_dir[600], amd_root[700];
	const char *testdata = getenv("SKR_TESTDATA");

	(void)state;
	devcloud_bin = getenv("DEVCLOUD_BIN");
	if (!devcloud_bin || !testdata) {
		fprintf(stderr, "DEVCLOUD_BIN and SKR_TESTDATA must be set (meson test does)\n");
		return -1;
	}
	if (!mkdtemp(tmpdir))
		return -1;
	atexit(at_exit);
	snprintf(state_dir, sizeof(state_dir), "%s/state", tmpdir);
	snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", state_dir);
	snprintf(platform_dir, sizeof(platform_dir), "%s/platform", state_dir);
	snprintf(endpoints_path, sizeof(endpoints_path), "%s/endpoints.json", state_dir);
	snprintf(other_dir, sizeof(other_dir), "%s/other", tmpdir);
	snprintf(amd_root, sizeof(amd_root), "%s/amd_roots/ask_ark_milan.pem", testdata);
	for (size_t i = 0; i < sizeof(host_data); i++)
		host_data[i] = (uint8_t)(0xF0 - i);
	hex_encode(host_data, sizeof(host_data), host_hex);

	{
		const char *args[] = {"init",
		                      "--state",
		                      state_dir,
		                      "--host-data",
		                      host_hex,
		                      "--compliance-status",
		                      "azure-compliant-uvm",
		                      NULL};

		if (run_devcloud(args, NULL) != 0) {
			fprintf(stderr, "devcloud init failed\n");
			return -1;
		}
	}

	server_pid = fork();
	if (server_pid < 0)
		return -1;
	if (server_pid == 0) {
		char max_body[32];

		snprintf(max_body, sizeof(max_body), "%d", MAX_BODY);
		execl(devcloud_bin, devcloud_bin, "serve", "--state", state_dir, "--attest-port",
		      "0", "--max-body", max_body, "--trust-root", amd_root, "--log-level", "warn",
		      (char *)NULL);
		_exit(127);
	}
	if (wait_for_endpoints() < 0)
		return -1;
	snprintf(endpoint, sizeof(endpoint), "localhost:%d", port);

	if (snp_virtual_open(platform_dir, &platform, &err) < 0) {
		fprintf(stderr, "platform: %s\n", err.msg);
		return -1;
	}
	snp_virtual_params_default(&p);
	if (snp_virtual_create(other_dir, &p, &err) < 0 ||
	    snp_virtual_open(other_dir, &other, &err) < 0) {
		fprintf(stderr, "second platform: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	kill_server();
	snp_virtual_free(platform);
	snp_virtual_free(other);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * HTTPS with libcurl
 * ------------------------------------------------------------------------------------------- */

struct buf {
	char *data;
	size_t len;
};

static size_t on_data(char *ptr, size_t size, size_t n, void *userdata)
{
	struct buf *b = userdata;
	char *nd = realloc(b->data, b->len + size * n + 1);

	if (!nd)
		return 0;
	b->data = nd;
	memcpy(b->data + b->len, ptr, size * n);
	b->len += size * n;
	b->data[b->len] = '\0';
	return size * n;
}

/* One request; returns the HTTP status (0 on a transport error), body in *out. */
static long https(const char *method, const char *path, const char *const *headers,
                  const char *body, size_t body_len, struct buf *out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL;
	char url[1024];
	long status = 0;
	CURLcode rc;

	out->data = NULL;
	out->len = 0;
	assert_non_null(c);
	snprintf(url, sizeof(url), "https://%s%s", endpoint, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, ca_path);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	for (size_t i = 0; headers && headers[i]; i++)
		hl = curl_slist_append(hl, headers[i]);
	if (body) {
		hl = curl_slist_append(hl, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else
		fprintf(stderr, "curl %s %s: %s\n", method, path, curl_easy_strerror(rc));
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	return status;
}

#define ATTEST_PATH "/attest/SevSnpVm?api-version=2020-10-01"

static void expect_error(long status, struct buf *b, long want, const char *needle)
{
	_cleanup_json_ json_object *root = NULL;
	json_object *error, *code, *message;

	if (status != want)
		fail_msg("expected HTTP %ld, got %ld: %s", want, status, b->data ? b->data : "");
	root = json_tokener_parse(b->data);
	assert_non_null(root);
	assert_true(json_object_object_get_ex(root, "error", &error));
	assert_true(json_object_object_get_ex(error, "code", &code));
	assert_true(json_object_object_get_ex(error, "message", &message));
	if (!strcasestr(json_object_get_string(message), needle))
		fail_msg("message '%s' does not mention '%s'", json_object_get_string(message),
		         needle);
	free(b->data);
	b->data = NULL;
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
	cfg.source.virtual_dir = platform_dir;
	cfg.ca_bundle = ca_path;
	cfg.security_context_dir = NULL;
	if (skr_attester_new(&cfg, &a, &err) < 0)
		fail_msg("skr_attester_new: %s", err.msg);
	if (skr_attest_maa(a, endpoint, (const uint8_t *)RUNTIME, strlen(RUNTIME), &token, &err) <
	    0) {
		skr_attester_free(a);
		fail_msg("skr_attest_maa: %s", err.msg);
	}
	if (skr_token_verify(a, endpoint, token, &claims_json, &err) < 0) {
		skr_attester_free(a);
		fail_msg("skr_token_verify: %s", err.msg);
	}
	skr_attester_free(a);

	claims = json_tokener_parse(claims_json);
	assert_non_null(claims);
	{
		char iss[128];

		snprintf(iss, sizeof(iss), "https://%s", endpoint);
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
	struct buf b;
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
		assert_non_null(strstr(b.data, "\"token\":\""));
		free(b.data);
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
		snprintf(lines[n], sizeof(lines[n]), "Host: %s", endpoint);
		hdrs[n++] = lines[69];
		hdrs[n] = NULL;
		st = https("GET", "/certs", hdrs, NULL, 0, &b);
		expect_error(st, &b, 431, "more than 64 header fields");
		/* 60 are fine */
		hdrs[60] = NULL;
		st = https("GET", "/certs", hdrs, NULL, 0, &b);
		assert_int_equal(st, 200);
		free(b.data);
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
	struct buf b;
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
	assert_memory_equal(b.data, vcek->data, vcek->len);
	free(b.data);

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

		assert_int_equal(snp_cert_chain_from_pem(b.data, b.len, &chain, &err), 0);
		assert_false(snp_cert_chain_has_leaf(chain));
		snp_cert_chain_free(chain);
		assert_non_null(strstr(snp_virtual_chain_pem(platform), b.data) ? "" : NULL);
	}
	free(b.data);

	st = https("GET", "/metadata/THIM/amd/certification", NULL, NULL, 0, &b);
	expect_error(st, &b, 400, "Metadata: true");
	{
		static const char *const md[] = {"Metadata: true", NULL};
		struct snp_thim thim = {0};

		st = https("GET", "/metadata/THIM/amd/certification", md, NULL, 0, &b);
		assert_int_equal(st, 200);
		if (snp_thim_parse(b.data, b.len, &thim, &err) < 0)
			fail_msg("THIM answer: %s", err.msg);
		assert_int_equal(thim.tcbm, snp_tcb_encode(&p->tcb, p->product));
		assert_non_null(strstr(snp_virtual_chain_pem(platform), thim.vcek_pem));
		snp_thim_clear(&thim);
		free(b.data);
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

		snprintf(url, sizeof(url), "https://%s/metadata/THIM/amd/certification", endpoint);
		cc.type = SNP_CERTCACHE_LOCAL_THIM;
		cc.endpoint = url;
		cc.ca_bundle = ca_path;
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
		const char *args[] = {"serve",  "--state",       state_dir, "--listen",
		                      addrs[i], "--attest-port", "0",       NULL};

		if (run_devcloud(args, NULL) != 2)
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
		const char *args[] = {"serve", "--state",    state_dir, "--attest-port",
		                      "0",     "--max-body", sizes[i],  NULL};

		if (run_devcloud(args, NULL) != 2)
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

		assert_int_equal(run_devcloud(args, out_path), 0);
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
		assert_int_equal(run_devcloud(args, NULL), 1);
		args[6] = ark_path;
		assert_int_equal(run_devcloud(args, NULL), 0);
	}
	{
		/* A flipped bit: exit 1. */
		const char *args[] = {"verify-report", "--report",     report_path, "--chain",
		                      chain_path,      "--trust-root", ark_path,    NULL};

		report[0x90] ^= 1;
		assert_int_equal(write_file_atomic(report_path, report, sizeof(report), 0600), 0);
		assert_int_equal(run_devcloud(args, NULL), 1);
	}
}

static void test_sigterm(void **state)
{
	int status = 0;
	pid_t r = 0;

	(void)state;
	assert_true(server_pid > 0);
	assert_int_equal(kill(server_pid, SIGTERM), 0);
	for (int i = 0; i < 200 && r == 0; i++) {
		r = waitpid(server_pid, &status, WNOHANG);
		if (r == 0)
			usleep(50 * 1000);
	}
	assert_int_equal(r, server_pid);
	server_pid = -1;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* endpoints.json goes with the server, so scripts never see a dead port. */
	assert_int_equal(access(endpoints_path, F_OK), -1);
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
