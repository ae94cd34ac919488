/* SPDX-License-Identifier: MIT */
/*
 * The attester (skr.h "Attester") over the virtual SNP platform: report binding, evidence whose
 * report verifies against the platform's ARK, the TCB match-then-refresh logic of §3.4 with a
 * security context and a certificate cache served by a local HTTPS server, the MAA call and
 * token verification.
 *
 * Platforms (made once, RSA-4096 keys are slow):
 *   P      TCB T0, the reference platform;
 *   P_new  P after a firmware update: same chip and keys, platform.json moved to TCB T1, so it
 *          signs T1 reports while its stored VCEK (the table it returns) still says T0;
 *   Q      another platform at T1: a chain whose TCB matches P_new's reports. (Its VCEK did not
 *          sign them; the attester selects chains by TCB and leaves signatures to MAA.)
 */
#include <errno.h>
#include <inttypes.h>
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

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "attest_internal.h"
#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "json_util.h"
#include "log.h"
#include "ossl.h"
#include "skr.h"
#include "test_fs.h"
#include "test_http_server.h"
#include "test_log.h"
#include "test_platform.h"

struct world {
	char tmp[64];
	char *dir_p, *dir_p_new, *dir_q;
	char *ark_p, *chain_p; /* PEM */
	char *chain_q;
	uint64_t t0, t1;
	struct test_http_server *srv;
	char endpoint[64]; /* "127.0.0.1:PORT" */
};

static struct world W;

static char *cat(const char *a, const char *b)
{
	char *s = path_join(a, b);

	assert_non_null(s);
	return s;
}

static void make_platform(const char *dir, uint8_t snp_svn, char **ark, char **chain)
{
	struct snp_virtual_params p;
	struct snp_virtual *v = NULL;
	struct skr_error err = {0};

	snp_virtual_params_default(&p);
	p.tcb.snp = snp_svn;
	if (test_platform_new(dir, &p, &v, &err) < 0)
		fail_msg("virtual platform %s: %s", dir, err.msg);
	if (ark)
		*ark = strdup(snp_virtual_ark_pem(v));
	*chain = strdup(snp_virtual_chain_pem(v));
	snp_virtual_free(v);
}

/* P_new: P's files with platform.json's TCB moved to @snp_svn (a firmware update). */
static void make_updated_copy(const char *from, const char *to, uint8_t snp_svn)
{
	static const char *const files[] = {"ark.pem", "ask.pem", "vcek.pem", "vcek-key.pem"};
	_cleanup_free_ char *json_path = cat(from, "platform.json"), *out_path = NULL;
	_cleanup_free_ char *text = NULL;
	_cleanup_json_ json_object *o = NULL;
	json_object *tcb;
	const char *s;
	size_t len;

	assert_int_equal(mkdir(to, 0700), 0);
	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		_cleanup_free_ char *src = cat(from, files[i]), *dst = cat(to, files[i]);
		_cleanup_free_ char *data = NULL;

		assert_int_equal(read_file(src, 1 << 20, &data, &len), 0);
		assert_int_equal(write_file_atomic(dst, data, len, 0600), 0);
	}
	assert_int_equal(read_file(json_path, 1 << 20, &text, &len), 0);
	assert_int_equal(json_parse(text, len, "platform.json", &o, NULL), 0);
	assert_true(json_object_object_get_ex(o, "tcb", &tcb));
	json_object_object_add(tcb, "snp", json_object_new_int(snp_svn));
	s = json_object_to_json_string(o);
	out_path = cat(to, "platform.json");
	assert_int_equal(write_file_atomic(out_path, s, strlen(s), 0600), 0);
}

static int setup(void **state)
{
	struct snp_virtual_params d;
	struct snp_tcb t;

	snprintf(W.tmp, sizeof(W.tmp), "/tmp/test_attest.XXXXXX");
	assert_non_null(mkdtemp(W.tmp));
	W.dir_p = cat(W.tmp, "p");
	W.dir_p_new = cat(W.tmp, "p_new");
	W.dir_q = cat(W.tmp, "q");
	snp_virtual_params_default(&d);
	t = d.tcb;
	t.snp = 8;
	W.t0 = snp_tcb_encode(&t, SNP_PRODUCT_MILAN);
	t.snp = 9;
	W.t1 = snp_tcb_encode(&t, SNP_PRODUCT_MILAN);

	make_platform(W.dir_p, 8, &W.ark_p, &W.chain_p);
	make_platform(W.dir_q, 9, NULL, &W.chain_q);
	make_updated_copy(W.dir_p, W.dir_p_new, 9);

	assert_int_equal(test_http_server_start(true, &W.srv), 0);
	snprintf(W.endpoint, sizeof(W.endpoint), "%s",
	         test_http_server_url(W.srv) + strlen("https://"));
	return 0;
}

static int teardown(void **state)
{
	test_http_server_stop(W.srv);
	test_fs_rm_rf(W.tmp);
	free(W.dir_p);
	free(W.dir_p_new);
	free(W.dir_q);
	free(W.ark_p);
	free(W.chain_p);
	free(W.chain_q);
	return 0;
}

static int reset(void **state)
{
	test_http_server_reset(W.srv);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

/* A fresh, empty security-context directory (explicit, so nothing on the host is found). */
static char *context_dir(const char *name)
{
	char *dir = cat(W.tmp, name);

	assert_int_equal(mkdir(dir, 0700), 0);
	return dir;
}

static void context_write(const char *dir, const char *file, const char *text)
{
	_cleanup_free_ char *path = cat(dir, file);

	assert_int_equal(write_file_atomic(path, text, strlen(text), 0600), 0);
}

/* Split leaf ‖ rest of a PEM chain. */
static void split_leaf(const char *chain, char **leaf, char **rest)
{
	const char *second = strstr(chain + 1, "-----BEGIN CERTIFICATE-----");

	assert_non_null(second);
	*leaf = strndup(chain, (size_t)(second - chain));
	*rest = strdup(second);
}

/* host-amd-cert-base64: base64 of THIM JSON {vcekCert, tcbm, certificateChain, cacheControl}. */
static void context_write_thim(const char *dir, const char *vcek, const char *chain, uint64_t tcbm)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	_cleanup_free_ char *b64 = NULL;
	char tcbm_str[17];
	const char *s;

	snprintf(tcbm_str, sizeof(tcbm_str), "%016" PRIx64, tcbm);
	json_object_object_add(o, "vcekCert", json_object_new_string(vcek));
	json_object_object_add(o, "tcbm", json_object_new_string(tcbm_str));
	json_object_object_add(o, "certificateChain", json_object_new_string(chain));
	json_object_object_add(o, "cacheControl", json_object_new_string("86400"));
	s = json_object_to_json_string(o);
	assert_int_equal(b64_encode(s, strlen(s), B64_STD, &b64), 0);
	context_write(dir, "host-amd-cert-base64", b64);
}

static void context_write_thim_of(const char *dir, const char *full_chain, uint64_t tcbm)
{
	_cleanup_free_ char *leaf = NULL, *rest = NULL;

	split_leaf(full_chain, &leaf, &rest);
	context_write_thim(dir, leaf, rest, tcbm);
}

struct attester_opts {
	const char *platform;
	const char *context;
	bool cache; /* certificate cache: the test server as Azure's certificate cache */
};

static struct skr_attester *attester(const struct attester_opts *o)
{
	struct skr_attest_config cfg = {0};
	struct skr_attester *a = NULL;
	struct skr_error err = {0};

	cfg.source.kind = SNP_SOURCE_VIRTUAL;
	cfg.source.virtual_dir = o->platform;
	cfg.security_context_dir = o->context;
	cfg.ca_bundle = test_http_server_ca_file(W.srv);
	cfg.timeout_ms = 5000;
	cfg.max_attempts = 1;
	if (o->cache) {
		cfg.certcache.type = SNP_CERTCACHE_AZCACHE;
		cfg.certcache.endpoint = test_http_server_url(W.srv);
		cfg.certcache.timeout_ms = 5000;
	}
	if (skr_attester_new(&cfg, &a, &err) < 0)
		fail_msg("skr_attester_new: %s", err.msg);
	return a;
}

/* The report verifies against P's ARK with @chain_pem (§3.3). */
static void assert_verifies(const uint8_t *report, const char *chain_pem)
{
	struct snp_trust_store *ts = NULL;
	struct snp_cert_chain *chain = NULL;
	struct skr_error err = {0};

	assert_int_equal(snp_trust_store_new(&ts, &err), 0);
	assert_int_equal(snp_trust_store_add_pem(ts, W.ark_p, strlen(W.ark_p), &err), 0);
	assert_int_equal(snp_cert_chain_from_pem(chain_pem, strlen(chain_pem), &chain, &err), 0);
	if (snp_report_verify(report, SNP_REPORT_SIZE, chain, ts, &err) < 0)
		fail_msg("snp_report_verify: %s", err.msg);
	snp_cert_chain_free(chain);
	snp_trust_store_free(ts);
}

static const char runtime[] = "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}";

/* ---------------------------------------------------------------------------------------------
 * Source and report binding
 * ------------------------------------------------------------------------------------------- */

static void test_auto_without_device(void **state)
{
	static const char msg[] = "no SEV-SNP device: /dev/sev-guest, /dev/sev and configfs-tsm "
	                          "absent; set the attestation source";
	struct skr_attest_config cfg = {0};
	struct skr_attester *a = NULL;
	struct skr_error err = {0};
	struct stat st;

	/* An empty root has no device whatever machine runs the test. */
	cfg.source.kind = SNP_SOURCE_AUTO;
	cfg.source.root = W.tmp;
	assert_int_equal(skr_attester_new(&cfg, &a, &err), -ENODEV);
	assert_string_equal(err.msg, msg);
	assert_null(a);

	/* And this machine, which is not an SNP guest. */
	if (stat("/dev/sev-guest", &st) == 0 || stat("/dev/sev", &st) == 0 ||
	    stat("/sys/kernel/config/tsm/report", &st) == 0) {
		print_message("skipping the real-root check: an SEV device exists here\n");
		return;
	}
	cfg.source.root = NULL;
	skr_error_clear(&err);
	assert_int_equal(skr_attester_new(&cfg, &a, &err), -ENODEV);
	assert_string_equal(err.msg, msg);
}

static void test_report_data_for(void **state)
{
	/* SHA-256("") and SHA-256("abc") (FIPS 180-2), then 32 zero bytes. */
	static const char *const expect[] = {
	        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	};
	uint8_t rd[64], zero[32] = {0};
	char hex[65];

	skr_report_data_for(NULL, 0, rd);
	hex_encode(rd, 32, hex);
	assert_string_equal(hex, expect[0]);
	assert_memory_equal(rd + 32, zero, 32);
	memset(rd, 0xee, sizeof(rd));
	skr_report_data_for((const uint8_t *)"abc", 3, rd);
	hex_encode(rd, 32, hex);
	assert_string_equal(hex, expect[1]);
	assert_memory_equal(rd + 32, zero, 32);
}

static void test_attest_raw(void **state)
{
	_cleanup_free_ char *ctx = context_dir("ctx_raw");
	struct skr_attester *a = attester(&(struct attester_opts){W.dir_p, ctx, false});
	uint8_t report[SNP_REPORT_SIZE], expect[64];
	struct snp_report r;
	struct skr_error err = {0};

	assert_int_equal(skr_attest_raw(a, (const uint8_t *)runtime, strlen(runtime), report, &err),
	                 0);
	assert_int_equal(snp_report_parse(report, sizeof(report), &r, &err), 0);
	SHA256((const uint8_t *)runtime, strlen(runtime), expect);
	memset(expect + 32, 0, 32);
	assert_memory_equal(r.report_data, expect, 64);
	assert_int_equal(r.vmpl, 0);
	assert_int_equal(r.reported_tcb, W.t0);
	assert_verifies(report, W.chain_p);

	/* One more byte of runtime data, another binding. */
	assert_int_equal(
	        skr_attest_raw(a, (const uint8_t *)runtime, strlen(runtime) - 1, report, &err), 0);
	assert_int_equal(snp_report_parse(report, sizeof(report), &r, &err), 0);
	assert_memory_not_equal(r.report_data, expect, 32);
	skr_attester_free(a);
}

/* ---------------------------------------------------------------------------------------------
 * Evidence and the TCB logic (§3.4)
 * ------------------------------------------------------------------------------------------- */

static void test_evidence_platform_chain(void **state)
{
	_cleanup_free_ char *ctx = context_dir("ctx_evidence");
	struct skr_attester *a = attester(&(struct attester_opts){W.dir_p, ctx, false});
	struct skr_evidence e;
	struct snp_report r;
	struct skr_error err = {0};
	char tcb[17];

	if (skr_attest_evidence(a, (const uint8_t *)runtime, strlen(runtime), &e, &err) < 0)
		fail_msg("skr_attest_evidence: %s", err.msg);
	assert_string_equal(e.cert_chain_pem, W.chain_p);
	assert_int_equal(snp_report_parse(e.report, sizeof(e.report), &r, &err), 0);
	snprintf(tcb, sizeof(tcb), "%016" PRIx64, r.reported_tcb);
	assert_string_equal(e.endorsed_tcb, tcb);
	assert_int_equal(strlen(e.endorsed_tcb), 16);
	assert_null(e.uvm_reference_info);
	assert_verifies(e.report, e.cert_chain_pem);
	skr_evidence_clear(&e);
	assert_null(e.cert_chain_pem);
	skr_attester_free(a);

	/* The UVM reference info comes from the security context, as found there. */
	context_write(ctx, "reference-info-base64", "0oRZ+/8=\n");
	a = attester(&(struct attester_opts){W.dir_p, ctx, false});
	assert_int_equal(skr_attest_evidence(a, NULL, 0, &e, &err), 0);
	assert_string_equal(e.uvm_reference_info, "0oRZ+/8=");
	skr_evidence_clear(&e);
	skr_attester_free(a);
	assert_int_equal(test_http_server_request_count(W.srv), 0);
}

static void test_thim_matches_stale_table(void **state)
{
	_cleanup_free_ char *ctx = context_dir("ctx_thim_match");
	struct skr_attester *a;
	struct skr_evidence e;
	struct skr_error err = {0};
	char t1[17];

	/* The platform's table says T0, the security context's THIM has the T1 chain. */
	context_write_thim_of(ctx, W.chain_q, W.t1);
	a = attester(&(struct attester_opts){W.dir_p_new, ctx, true});
	if (skr_attest_evidence(a, NULL, 0, &e, &err) < 0)
		fail_msg("skr_attest_evidence: %s", err.msg);
	snprintf(t1, sizeof(t1), "%016" PRIx64, W.t1);
	assert_string_equal(e.endorsed_tcb, t1);
	assert_string_equal(e.cert_chain_pem, W.chain_q);
	/* A match before the cache: nothing was fetched. */
	assert_int_equal(test_http_server_request_count(W.srv), 0);
	skr_evidence_clear(&e);
	skr_attester_free(a);
}

static void test_refresh_from_cache(void **state)
{
	_cleanup_free_ char *ctx = context_dir("ctx_refresh");
	const struct test_http_request *req;
	struct skr_attester *a;
	struct skr_evidence e;
	struct skr_error err = {0};
	char t0[17], t1[17];
	int r;

	snprintf(t0, sizeof(t0), "%016" PRIx64, W.t0);
	snprintf(t1, sizeof(t1), "%016" PRIx64, W.t1);
	/* Table and THIM both say T0 while reports say T1: the cache has the T1 chain. */
	context_write_thim_of(ctx, W.chain_p, W.t0);
	test_http_server_reply(W.srv, NULL, 200, "application/x-pem-file", W.chain_q);
	a = attester(&(struct attester_opts){W.dir_p_new, ctx, true});
	test_log_capture_start(LOG_LEVEL_DEBUG);
	r = skr_attest_evidence(a, (const uint8_t *)runtime, strlen(runtime), &e, &err);
	test_log_capture_stop();
	if (r < 0)
		fail_msg("skr_attest_evidence: %s", err.msg);
	assert_string_equal(e.endorsed_tcb, t1);
	assert_string_equal(e.cert_chain_pem, W.chain_q);

	/* The refresh is recorded: one request to the cache, for this TCB, and a log line. */
	assert_int_equal(test_http_server_request_count(W.srv), 1);
	req = test_http_server_request(W.srv, 0);
	assert_string_equal(req->method, "GET");
	assert_non_null(strstr(req->path, "/SevSnpVM/certificates/"));
	{
		char tcb_path[32];

		snprintf(tcb_path, sizeof(tcb_path), "/%" PRIx64, W.t1);
		assert_non_null(strstr(req->path, tcb_path));
	}
	assert_non_null(test_log_captured());
	assert_non_null(strstr(test_log_captured(),
	                       "refreshing the certificate chain from the certificate "
	                       "cache"));
	skr_evidence_clear(&e);
	skr_attester_free(a);
}

static void test_refresh_still_mismatching(void **state)
{
	_cleanup_free_ char *ctx = context_dir("ctx_stale");
	_cleanup_free_ char *expect = NULL;
	struct skr_attester *a;
	struct skr_evidence e;
	struct skr_error err = {0};

	context_write_thim_of(ctx, W.chain_p, W.t0);
	/* The cache keeps answering with the T0 chain. */
	test_http_server_push(W.srv, &(struct test_http_reply){.status = 200,
	                                                       .content_type = "text/plain",
	                                                       .body = W.chain_p,
	                                                       .sticky = true});
	a = attester(&(struct attester_opts){W.dir_p_new, ctx, true});
	assert_int_equal(skr_attest_evidence(a, NULL, 0, &e, &err), -ESTALE);
	assert_true(asprintf(&expect,
	                     "SNP reported TCB value 0x%016" PRIx64
	                     " doesn't match certificate TCB value 0x%016" PRIx64,
	                     W.t1, W.t0) > 0);
	if (!strstr(err.msg, expect))
		fail_msg("got \"%s\", expected \"%s\"", err.msg, expect);
	assert_null(e.cert_chain_pem);
	/* Refreshed for the first report and, once more, for a new one. */
	assert_int_equal(test_http_server_request_count(W.srv), 2);
	skr_attester_free(a);
}

static void test_stale_without_cache(void **state)
{
	_cleanup_free_ char *ctx = context_dir("ctx_nocache");
	struct skr_attester *a = attester(&(struct attester_opts){W.dir_p_new, ctx, false});
	struct skr_evidence e;
	struct skr_error err = {0};

	assert_int_equal(skr_attest_evidence(a, NULL, 0, &e, &err), -ESTALE);
	assert_non_null(strstr(err.msg, "doesn't match certificate TCB value"));
	assert_non_null(strstr(err.msg, "from the platform's certificate table"));
	skr_attester_free(a);
}

static void test_cache_failure_is_reported(void **state)
{
	_cleanup_free_ char *ctx = context_dir("ctx_cachefail");
	struct skr_attester *a;
	struct skr_evidence e;
	struct skr_error err = {0};

	/* The cache answers 404: the mismatch is reported together with the cache's failure. */
	a = attester(&(struct attester_opts){W.dir_p_new, ctx, true});
	assert_int_equal(skr_attest_evidence(a, NULL, 0, &e, &err), -ESTALE);
	assert_non_null(strstr(err.msg, "doesn't match certificate TCB value"));
	assert_non_null(strstr(err.msg, "404"));
	skr_attester_free(a);
}

static void test_incomplete_chain_completed(void **state)
{
	_cleanup_free_ char *ctx = context_dir("ctx_complete");
	_cleanup_free_ char *leaf = NULL, *rest = NULL, *ark = NULL;
	struct skr_attester *a;
	struct skr_evidence e;
	struct skr_error err = {0};

	/* THIM with Q's VCEK and ARK only (no ASK): matching TCB, incomplete chain. */
	split_leaf(W.chain_q, &leaf, &rest);
	ark = strdup(strstr(rest + 1, "-----BEGIN CERTIFICATE-----"));
	assert_non_null(ark);
	context_write_thim(ctx, leaf, ark, W.t1);

	/* Without a cache this fails and says what is missing. */
	a = attester(&(struct attester_opts){W.dir_p_new, ctx, false});
	assert_int_equal(skr_attest_evidence(a, NULL, 0, &e, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "lacks the ASK or ARK"));
	skr_attester_free(a);

	/* With one, the cache's ASK completes it. */
	test_http_server_reply(W.srv, NULL, 200, "application/x-pem-file", W.chain_q);
	a = attester(&(struct attester_opts){W.dir_p_new, ctx, true});
	skr_error_clear(&err);
	if (skr_attest_evidence(a, NULL, 0, &e, &err) < 0)
		fail_msg("skr_attest_evidence: %s", err.msg);
	assert_string_equal(e.cert_chain_pem, W.chain_q);
	assert_int_equal(test_http_server_request_count(W.srv), 1);
	skr_evidence_clear(&e);
	skr_attester_free(a);
}

static void test_bad_security_context(void **state)
{
	_cleanup_free_ char *ctx = context_dir("ctx_bad");
	_cleanup_free_ char *missing = cat(W.tmp, "does-not-exist");
	struct skr_attest_config cfg = {0};
	struct skr_attester *a = NULL;
	struct skr_error err = {0};

	cfg.source.kind = SNP_SOURCE_VIRTUAL;
	cfg.source.virtual_dir = W.dir_p;
	cfg.security_context_dir = ctx;
	context_write(ctx, "host-amd-cert-base64", "not base64 at all!");
	assert_int_equal(skr_attester_new(&cfg, &a, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "host-amd-cert-base64 is not base64"));
	assert_null(a);

	context_write(ctx, "host-amd-cert-base64", "eyJ2Y2VrQ2VydCI6MX0="); /* {"vcekCert":1} */
	skr_error_clear(&err);
	assert_true(skr_attester_new(&cfg, &a, &err) < 0);
	assert_non_null(strstr(err.msg, "host-amd-cert-base64"));
	assert_non_null(strstr(err.msg, "vcekCert"));

	/* A configured directory that does not exist is a configuration error. */
	cfg.security_context_dir = missing;
	skr_error_clear(&err);
	assert_true(skr_attester_new(&cfg, &a, &err) < 0);
	assert_non_null(strstr(err.msg, "does-not-exist"));
}

struct thread_arg {
	struct skr_attester *a;
	int result;
	char msg[SKR_ERROR_MSG_MAX];
};

static void *attest_thread(void *p)
{
	struct thread_arg *t = p;

	for (int i = 0; i < 4 && t->result == 0; i++) {
		struct skr_evidence e;
		struct skr_error err = {0};

		t->result = skr_attest_evidence(t->a, (const uint8_t *)runtime, strlen(runtime), &e,
		                                &err);
		if (t->result == 0 && strcmp(e.cert_chain_pem, W.chain_p) != 0)
			t->result = -EBADMSG;
		snprintf(t->msg, sizeof(t->msg), "%s", err.msg);
		skr_evidence_clear(&e);
	}
	return NULL;
}

static void test_concurrent_evidence(void **state)
{
	_cleanup_free_ char *ctx = context_dir("ctx_threads");
	struct skr_attester *a = attester(&(struct attester_opts){W.dir_p, ctx, false});
	pthread_t th[4];
	struct thread_arg args[4];

	for (size_t i = 0; i < ELEMENTSOF(th); i++) {
		args[i] = (struct thread_arg){.a = a};
		assert_int_equal(pthread_create(&th[i], NULL, attest_thread, &args[i]), 0);
	}
	for (size_t i = 0; i < ELEMENTSOF(th); i++) {
		pthread_join(th[i], NULL);
		if (args[i].result != 0)
			fail_msg("thread %zu: %d %s", i, args[i].result, args[i].msg);
	}
	skr_attester_free(a);
}

static double ms_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static void *evidence_once(void *p)
{
	struct thread_arg *t = p;
	struct skr_evidence e;
	struct skr_error err = {0};

	t->result = skr_attest_evidence(t->a, NULL, 0, &e, &err);
	snprintf(t->msg, sizeof(t->msg), "%s", err.msg);
	skr_evidence_clear(&e);
	return NULL;
}

/*
 * A certificate download (here a cache that takes 2 s to answer) holds the fetcher's lock only:
 * a report, which needs just the device, is served meanwhile.
 */
static void test_download_does_not_block_reports(void **state)
{
	_cleanup_free_ char *ctx = context_dir("ctx_slow_cache");
	struct thread_arg arg = {0};
	struct skr_error err = {0};
	uint8_t report[SNP_REPORT_SIZE];
	struct timespec t0, t1;
	pthread_t th;

	/* The table says T0, reports say T1: the evidence call refreshes from the cache. */
	test_http_server_push(W.srv, &(struct test_http_reply){.status = 200,
	                                                       .content_type = "text/plain",
	                                                       .body = W.chain_q,
	                                                       .delay_ms = 2000});
	arg.a = attester(&(struct attester_opts){W.dir_p_new, ctx, true});
	assert_int_equal(pthread_create(&th, NULL, evidence_once, &arg), 0);
	for (int i = 0; i < 500 && test_http_server_request_count(W.srv) == 0; i++)
		usleep(10 * 1000);
	assert_int_equal(test_http_server_request_count(W.srv), 1);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(skr_attest_raw(arg.a, NULL, 0, report, &err), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (ms_between(&t0, &t1) > 1000)
		fail_msg("a report waited %.0f ms for a certificate download",
		         ms_between(&t0, &t1));

	pthread_join(th, NULL);
	if (arg.result != 0)
		fail_msg("evidence: %d %s", arg.result, arg.msg);
	skr_attester_free(arg.a);
}

/* ---------------------------------------------------------------------------------------------
 * MAA and token verification
 * ------------------------------------------------------------------------------------------- */

#define TOKEN "eyJhbGciOiJSUzI1NiJ9.eyJhIjoxfQ.c2ln"

static void test_attest_maa(void **state)
{
	_cleanup_free_ char *ctx = context_dir("ctx_maa"), *token = NULL;
	struct skr_attester *a;
	const struct test_http_request *req;
	struct maa_request m;
	struct snp_report r;
	struct skr_error err = {0};
	uint8_t expect[64];

	context_write(ctx, "reference-info-base64", "0oRZ+/8=");
	a = attester(&(struct attester_opts){W.dir_p, ctx, false});
	test_http_server_reply(W.srv, "/attest/SevSnpVm", 200, "application/json",
	                       "{\"token\":\"" TOKEN "\"}");
	if (skr_attest_maa(a, W.endpoint, (const uint8_t *)runtime, strlen(runtime), &token, &err) <
	    0)
		fail_msg("skr_attest_maa: %s", err.msg);
	assert_string_equal(token, TOKEN);

	/* What MAA received: the evidence bound to the runtime data, as §4.1 spells it. */
	assert_int_equal(test_http_server_request_count(W.srv), 1);
	req = test_http_server_request(W.srv, 0);
	assert_string_equal(req->target, "/attest/SevSnpVm?api-version=2020-10-01");
	assert_string_equal(test_http_request_header(req, "User-Agent"),
	                    "ConfidentialSkrContainer");
	if (maa_request_parse(req->body, req->body_len, &m, &err) < 0)
		fail_msg("maa_request_parse: %s", err.msg);
	assert_int_equal(m.report_len, SNP_REPORT_SIZE);
	assert_int_equal(snp_report_parse(m.report, m.report_len, &r, &err), 0);
	skr_report_data_for((const uint8_t *)runtime, strlen(runtime), expect);
	assert_memory_equal(r.report_data, expect, 64);
	assert_string_equal(m.vcek_cert_chain, W.chain_p);
	assert_verifies(m.report, m.vcek_cert_chain);
	assert_string_equal(m.endorsements, "{\"Uvm\":[\"0oRZ-_8=\"]}");
	assert_int_equal(m.runtime_data_len, strlen(runtime));
	assert_memory_equal(m.runtime_data, runtime, strlen(runtime));
	assert_string_equal(m.runtime_data_type, "JSON");
	assert_non_null(m.nonce);
	assert_true(strspn(m.nonce, "0123456789") == strlen(m.nonce));
	assert_non_null(strstr(req->body, "\"initTimeData\":{\"data\":\"\",\"dataType\":\"\"}"));
	maa_request_clear(&m);

	/* MAA refusing the evidence. */
	free(token);
	token = NULL;
	test_http_server_reply(W.srv, "/attest/SevSnpVm", 400, "application/json",
	                       "{\"error\":{\"code\":\"InvalidParameter\",\"message\":\"bad "
	                       "report\"}}");
	skr_error_clear(&err);
	assert_int_equal(skr_attest_maa(a, W.endpoint, (const uint8_t *)"{}", 2, &token, &err),
	                 -EACCES);
	assert_non_null(strstr(err.msg, "InvalidParameter: bad report"));
	assert_null(token);

	/* A bad endpoint fails before the device is asked. */
	skr_error_clear(&err);
	assert_int_equal(skr_attest_maa(a, "http://x", NULL, 0, &token, &err), -EINVAL);
	skr_attester_free(a);
}

/* An unsigned token with @payload (the attester checks the shape and the nonce only). */
static char *token_with(const char *payload)
{
	_cleanup_free_ char *p = NULL;
	char *out = NULL;

	assert_int_equal(b64_encode(payload, strlen(payload), B64_URL_NOPAD, &p), 0);
	assert_true(asprintf(&out, "eyJhbGciOiJSUzI1NiJ9.%s.c2ln", p) > 0);
	return out;
}

static void reply_token(const char *payload)
{
	_cleanup_free_ char *t = token_with(payload), *body = NULL;

	assert_true(asprintf(&body, "{\"token\":\"%s\"}", t) > 0);
	test_http_server_reply(W.srv, "/attest/SevSnpVm", 200, "application/json", body);
}

/*
 * protocols.md §4.1 details the client owns: runtime data sent as dataType JSON must be JSON
 * (refused before the device or MAA is asked), a token's nonce must be the request's, and the
 * audit information (jti, report hash) is filled.
 */
static void test_attest_maa_checks(void **state)
{
	_cleanup_free_ char *ctx = context_dir("ctx_maa_checks");
	struct skr_attester *a = attester(&(struct attester_opts){W.dir_p, ctx, false});
	static const struct {
		const char *runtime, *msg;
	} not_json[] = {
	        {"", "runtime_data is empty"},
	        {"ABC", "runtime_data is not valid JSON"},
	        {"{\"a\":1} x", "runtime_data is not valid JSON"},
	};
	struct skr_attest_info info;
	struct skr_error err = {0};
	char *token = NULL;
	int r;

	for (size_t i = 0; i < ELEMENTSOF(not_json); i++) {
		skr_error_clear(&err);
		memset(&info, 'x', sizeof(info));
		r = skr_attest_maa_ex(a, W.endpoint, (const uint8_t *)not_json[i].runtime,
		                      strlen(not_json[i].runtime), &token, &info, &err);
		if (r != -EINVAL || !strstr(err.msg, not_json[i].msg) ||
		    !strstr(err.msg, "dataType JSON"))
			fail_msg("\"%s\": got %d \"%s\"", not_json[i].runtime, r, err.msg);
		assert_null(token);
		assert_string_equal(info.jti, "");
		assert_string_equal(info.report_sha256, "");
	}
	assert_int_equal(test_http_server_request_count(W.srv), 0);

	/* A token answering another request: a string nonce, then a number. */
	reply_token("{\"jti\":\"j-1\",\"nonce\":\"42\"}");
	skr_error_clear(&err);
	r = skr_attest_maa_ex(a, W.endpoint, (const uint8_t *)runtime, strlen(runtime), &token,
	                      &info, &err);
	if (r != -EPROTO || !strstr(err.msg, "MAA token nonce 42 is not the request's "))
		fail_msg("string nonce: got %d \"%s\"", r, err.msg);
	assert_null(token);
	/* known as far as the call got: the report was taken, the token had a jti */
	assert_string_equal(info.jti, "j-1");
	assert_int_equal(strlen(info.report_sha256), 64);

	reply_token("{\"nonce\":7}");
	skr_error_clear(&err);
	r = skr_attest_maa(a, W.endpoint, (const uint8_t *)runtime, strlen(runtime), &token, &err);
	if (r != -EPROTO || !strstr(err.msg, "MAA token nonce 7 is not"))
		fail_msg("number nonce: got %d \"%s\"", r, err.msg);
	assert_null(token);

	/* No nonce claim (real MAA may leave it out): accepted; jti and report hash recorded. */
	test_http_server_reset(W.srv);
	reply_token("{\"jti\":\"jti-77\"}");
	skr_error_clear(&err);
	if (skr_attest_maa_ex(a, W.endpoint, (const uint8_t *)runtime, strlen(runtime), &token,
	                      &info, &err) < 0)
		fail_msg("skr_attest_maa_ex: %s", err.msg);
	assert_string_equal(info.jti, "jti-77");
	{
		const struct test_http_request *req = test_http_server_request(W.srv, 0);
		struct maa_request m;
		uint8_t md[32];
		char hex[65];

		assert_int_equal(maa_request_parse(req->body, req->body_len, &m, &err), 0);
		SHA256(m.report, m.report_len, md);
		hex_encode(md, sizeof(md), hex);
		assert_string_equal(info.report_sha256, hex);
		maa_request_clear(&m);
	}
	free(token);
	skr_attester_free(a);
}

/* Sign {"alg":"RS256","kid":@kid} . @payload with @key. */
static char *sign(EVP_PKEY *key, const char *alg, const char *kid, const char *payload)
{
	_cleanup_free_ char *header = NULL, *h = NULL, *p = NULL, *input = NULL, *s = NULL;
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char sig[512];
	size_t sig_len = sizeof(sig);
	char *token = NULL;

	assert_true(asprintf(&header, "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}", alg, kid) >
	            0);
	assert_int_equal(b64_encode(header, strlen(header), B64_URL_NOPAD, &h), 0);
	assert_int_equal(b64_encode(payload, strlen(payload), B64_URL_NOPAD, &p), 0);
	assert_true(asprintf(&input, "%s.%s", h, p) > 0);
	assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, key, NULL), 1);
	assert_int_equal(EVP_DigestSign(ctx, sig, &sig_len, (unsigned char *)input, strlen(input)),
	                 1);
	assert_int_equal(b64_encode(sig, sig_len, B64_URL_NOPAD, &s), 0);
	assert_true(asprintf(&token, "%s.%s", input, s) > 0);
	return token;
}

static char *x5c_of(EVP_PKEY *key)
{
	_cleanup_(X509_freep) X509 *c = X509_new();
	unsigned char *der = NULL;
	char *b64 = NULL;
	int len;

	assert_non_null(c);
	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), 7);
	X509_gmtime_adj(X509_getm_notBefore(c), -60);
	X509_gmtime_adj(X509_getm_notAfter(c), 3600);
	X509_set_pubkey(c, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"maa signer", -1, -1, 0);
	X509_set_issuer_name(c, X509_get_subject_name(c));
	assert_true(X509_sign(c, key, EVP_sha256()) > 0);
	len = i2d_X509(c, &der);
	assert_true(len > 0);
	assert_int_equal(b64_encode(der, (size_t)len, B64_STD, &b64), 0);
	OPENSSL_free(der);
	return b64;
}

static void test_token_verify(void **state)
{
	_cleanup_free_ char *ctx = context_dir("ctx_token");
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_RSA_gen(2048);
	_cleanup_free_ char *x5c = NULL, *meta = NULL, *jwks = NULL, *payload = NULL;
	_cleanup_free_ char *token = NULL, *claims = NULL, *bad_payload = NULL;
	const char *issuer = test_http_server_url(W.srv);
	struct skr_attester *a = attester(&(struct attester_opts){W.dir_p, ctx, false});
	struct skr_error err = {0};
	long long now = (long long)time(NULL);
	size_t requests;

	assert_non_null(key);
	x5c = x5c_of(key);
	assert_true(asprintf(&meta, "{\"issuer\":\"%s\",\"jwks_uri\":\"%s/certs\"}", issuer,
	                     issuer) > 0);
	assert_true(asprintf(&jwks,
	                     "{\"keys\":[{\"kid\":\"k1\",\"kty\":\"RSA\",\"x5c\":[\"%s\"]}]}",
	                     x5c) > 0);
	test_http_server_push(W.srv,
	                      &(struct test_http_reply){.path = "/.well-known/openid-configuration",
	                                                .content_type = "application/json",
	                                                .body = meta,
	                                                .sticky = true});
	test_http_server_push(W.srv, &(struct test_http_reply){.path = "/certs",
	                                                       .content_type = "application/json",
	                                                       .body = jwks,
	                                                       .sticky = true});
	assert_true(asprintf(&payload,
	                     "{\"iss\":\"%s\",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,"
	                     "\"x-ms-attestation-type\":\"sevsnpvm\"}",
	                     issuer, now, now, now + 3600) > 0);
	token = sign(key, "RS256", "k1", payload);

	if (skr_token_verify(a, W.endpoint, token, &claims, &err) < 0)
		fail_msg("skr_token_verify: %s", err.msg);
	assert_string_equal(claims, payload);
	requests = test_http_server_request_count(W.srv);
	assert_int_equal(requests, 2);

	/* The key set is cached: a second token costs no request. */
	free(claims);
	claims = NULL;
	assert_int_equal(skr_token_verify(a, issuer, token, &claims, &err), 0);
	assert_int_equal(test_http_server_request_count(W.srv), requests);

	/* A token from another issuer, with a key this one publishes. */
	free(claims);
	claims = NULL;
	{
		_cleanup_free_ char *p = NULL, *t = NULL;

		assert_true(asprintf(&p,
		                     "{\"iss\":\"https://other.attest.azure.net\",\"exp\":%lld}",
		                     now + 3600) > 0);
		t = sign(key, "RS256", "k1", p);
		assert_int_equal(skr_token_verify(a, W.endpoint, t, &claims, &err), -EACCES);
		assert_non_null(strstr(err.msg, "MAA token: JWT issuer"));
		assert_null(claims);
	}
	/*
	 * Asked to verify for "localhost:PORT", whose metadata names 127.0.0.1:PORT as its key
	 * location: another origin, refused before any key is fetched from it.
	 */
	{
		char other[64];

		snprintf(other, sizeof(other), "localhost:%u", test_http_server_port(W.srv));
		skr_error_clear(&err);
		assert_int_equal(skr_token_verify(a, other, token, &claims, &err), -EPERM);
		assert_non_null(strstr(err.msg, "not on the issuer's host"));
		assert_null(claims);
		requests = test_http_server_request_count(W.srv);
	}

	/* alg none is refused without asking anyone. */
	{
		_cleanup_free_ char *h = NULL, *p = NULL, *none = NULL;

		static const char none_header[] = "{\"alg\":\"none\",\"kid\":\"k1\"}";

		assert_int_equal(b64_encode(none_header, strlen(none_header), B64_URL_NOPAD, &h),
		                 0);
		assert_int_equal(b64_encode(payload, strlen(payload), B64_URL_NOPAD, &p), 0);
		assert_true(asprintf(&none, "%s.%s.", h, p) > 0);
		skr_error_clear(&err);
		assert_int_equal(skr_token_verify(a, W.endpoint, none, &claims, &err), -ENOTSUP);
		assert_int_equal(test_http_server_request_count(W.srv), requests);
	}

	/* Unknown kid, expired token, another signer. */
	{
		_cleanup_free_ char *t = sign(key, "RS256", "k2", payload);
		_cleanup_(EVP_PKEY_freep) EVP_PKEY *other = EVP_RSA_gen(2048);
		_cleanup_free_ char *forged = NULL, *expired = NULL;

		skr_error_clear(&err);
		assert_int_equal(skr_token_verify(a, W.endpoint, t, &claims, &err), -ENOENT);
		assert_non_null(strstr(err.msg, "no key with kid \"k2\""));

		assert_true(asprintf(&bad_payload, "{\"iss\":\"%s\",\"exp\":%lld}", issuer,
		                     now - 1000) > 0);
		expired = sign(key, "RS256", "k1", bad_payload);
		skr_error_clear(&err);
		assert_int_equal(skr_token_verify(a, W.endpoint, expired, &claims, &err), -ESTALE);

		forged = sign(other, "RS256", "k1", payload);
		skr_error_clear(&err);
		assert_int_equal(skr_token_verify(a, W.endpoint, forged, &claims, &err), -EBADMSG);
		assert_null(claims);
	}
	skr_attester_free(a);
}

/* One evidence's chain PEM, checked to verify the report it came with. */
static char *evidence_chain(struct skr_attester *a)
{
	struct skr_evidence e;
	struct skr_error err = {0};
	char *pem;

	if (skr_attest_evidence(a, (const uint8_t *)runtime, strlen(runtime), &e, &err) < 0)
		fail_msg("skr_attest_evidence: %s", err.msg);
	pem = strdup(e.cert_chain_pem);
	assert_non_null(pem);
	skr_evidence_clear(&e);
	return pem;
}

static void table_cache_mark(struct skr_attester *a)
{
	free(a->table_cache_pem);
	a->table_cache_pem = strdup("marker: served from the table cache");
	assert_non_null(a->table_cache_pem);
}

/*
 * The chain parsed from the platform's table is kept, keyed by the table's exact bytes and
 * the TCB: white box, so that a hit is visible (a marker in place of the cached PEM) and any
 * difference in the key is shown to miss.
 */
static void test_evidence_table_cache(void **state)
{
	_cleanup_free_ char *ctx = context_dir("ctx_table_cache");
	struct skr_attester *a = attester(&(struct attester_opts){W.dir_p, ctx, false});
	char *pem;

	/* The first report parses the table and stores the result. */
	pem = evidence_chain(a);
	assert_string_equal(pem, W.chain_p);
	free(pem);
	assert_non_null(a->table_cache_pem);
	assert_string_equal(a->table_cache_pem, W.chain_p);
	assert_int_equal(a->table_cache_tcb, W.t0);

	/* The same table and TCB: served from the cache. */
	table_cache_mark(a);
	pem = evidence_chain(a);
	assert_string_equal(pem, "marker: served from the table cache");
	free(pem);

	/* One byte of the table differs: parsed again, and the cache replaced. */
	a->table_cache_key[a->table_cache_key_len - 1] ^= 1;
	pem = evidence_chain(a);
	assert_string_equal(pem, W.chain_p);
	free(pem);
	assert_string_equal(a->table_cache_pem, W.chain_p);

	/* A table of another length, or another TCB: parsed again. */
	table_cache_mark(a);
	a->table_cache_key_len--;
	pem = evidence_chain(a);
	assert_string_equal(pem, W.chain_p);
	free(pem);
	table_cache_mark(a);
	a->table_cache_tcb ^= 1;
	pem = evidence_chain(a);
	assert_string_equal(pem, W.chain_p);
	free(pem);
	assert_int_equal(a->table_cache_tcb, W.t0);
	skr_attester_free(a);

	/* A table whose chain does not match the reported TCB is never stored. */
	context_write_thim_of(ctx, W.chain_q, W.t1);
	a = attester(&(struct attester_opts){W.dir_p_new, ctx, true});
	pem = evidence_chain(a);
	assert_string_equal(pem, W.chain_q);
	free(pem);
	assert_null(a->table_cache_pem);
	skr_attester_free(a);
	assert_int_equal(test_http_server_request_count(W.srv), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_auto_without_device),
	        cmocka_unit_test(test_report_data_for),
	        cmocka_unit_test_setup(test_attest_raw, reset),
	        cmocka_unit_test_setup(test_evidence_platform_chain, reset),
	        cmocka_unit_test_setup(test_evidence_table_cache, reset),
	        cmocka_unit_test_setup(test_thim_matches_stale_table, reset),
	        cmocka_unit_test_setup(test_refresh_from_cache, reset),
	        cmocka_unit_test_setup(test_refresh_still_mismatching, reset),
	        cmocka_unit_test_setup(test_stale_without_cache, reset),
	        cmocka_unit_test_setup(test_cache_failure_is_reported, reset),
	        cmocka_unit_test_setup(test_incomplete_chain_completed, reset),
	        cmocka_unit_test_setup(test_bad_security_context, reset),
	        cmocka_unit_test_setup(test_concurrent_evidence, reset),
	        cmocka_unit_test_setup(test_download_does_not_block_reports, reset),
	        cmocka_unit_test_setup(test_attest_maa, reset),
	        cmocka_unit_test_setup(test_attest_maa_checks, reset),
	        cmocka_unit_test_setup(test_token_verify, reset),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
