/* SPDX-License-Identifier: MIT */
/*
 * libencfs blob access, block cache, FUSE file and download against a real Azure Storage
 * emulator (Azurite, started and stopped here; blobs arranged with SharedKey REST calls and
 * SAS this harness computes, tests/lib/test_azurite.h):
 *   1. the harness itself: REST round trip, public/private/SAS/expired SAS as curl sees them,
 *      each fault of the proxy as curl sees it (so the fault tests below can fail);
 *   2. anonymous read of a public container, SAS read, expired and forged SAS → -EACCES with
 *      a clear reason and no signature in errors or logs, private blob without auth refused;
 *   3. blob_read equals the uploaded bytes: whole-blob SHA-256, random ranges, 8 threads;
 *   4. Put Page through blob_write read back (by blob_read and by a REST Get Blob);
 *      blob_upload_page_blob of a file with an all-zero middle;
 *   5. the blob overwritten while open → -ESTALE, never mixed bytes;
 *   6. through the fault proxy: a drop mid-body, 500, 503 + Retry-After (honoured), a short
 *      body, a close without answer — correct bytes; a server failing for good → -EIO in
 *      bounded time;
 *   7. the FUSE file over the block cache: same hash, random ranges, read-only;
 *   8. an ext4 image (mkfs.ext4 -d) in Azurite, through the FUSE file: `losetup -r` + mount and
 *      `mount -o loop,ro`, a file read equals its source;
 *   9. download mode: the same bytes, 0600, O_EXCL, recovered through a fault.
 * Mounts, loop devices and the FUSE mount are undone in each test's teardown even when it
 * fails; Azurite and the temporary directory go when the process exits.
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
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "b64.h"
#include "cleanup.h"
#include "encfs.h"
#include "fileio.h"
#include "log.h"
#include "test_azurite.h"
#include "test_fault_proxy.h"
#include "test_fs.h"
#include "test_http_client.h"
#include "test_log.h"
#include "test_proc.h"

#define MIB (1024u * 1024)
/* Not a multiple of any block size: the last block is partial. */
#define DATA_SIZE (5 * MIB + 12345)
#define PUB "pub"
#define PRIV "priv"
#define DATA "data.bin"
/* One step of a fault plan: @count requests of @method (NULL: any) get @fault (@param). */
#define STEP(fault_, count_, method_, param_)                                                      \
	((struct test_fault_step){                                                                 \
	        .fault = (fault_), .count = (count_), .method = (method_), .param = (param_)})

static char tmpdir[] = "/tmp/test_blob_azurite.XXXXXX";
static struct test_azurite az = {.pid = -1};
static struct test_fault_proxy *proxy;
static uint8_t *data; /* DATA's bytes, in both containers */
static char data_sha[65];

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

static void sha256_hex(const void *buf, size_t len, char out[65])
{
	uint8_t md[32];
	unsigned md_len = 0;

	assert_int_equal(EVP_Digest(buf, len, md, &md_len, EVP_sha256(), NULL), 1);
	hex_encode(md, 32, out);
}

/* SHA-256 of a file read with read() in @chunk pieces (through FUSE: many requests). */
static int sha256_file(const char *path, size_t chunk, char out[65], uint64_t *size)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ uint8_t *buf = malloc(chunk);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t md[32];
	ssize_t k;
	int r = 0;

	*size = 0;
	if (fd < 0 || !buf || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		r = -1;
	while (r == 0 && (k = read(fd, buf, chunk)) != 0) {
		if (k < 0) {
			r = -errno;
			break;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)k);
		*size += (uint64_t)k;
	}
	if (r == 0 && EVP_DigestFinal_ex(ctx, md, NULL) == 1)
		hex_encode(md, 32, out);
	EVP_MD_CTX_free(ctx);
	return r;
}

static uint64_t rand_below(uint64_t n)
{
	uint64_t v;

	assert_int_equal(RAND_bytes((uint8_t *)&v, sizeof(v)), 1);
	return n ? v % n : 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Defaults for tests: quick retries so fault tests stay short. */
static struct blob_options options(const char *url)
{
	return (struct blob_options){.url = url,
	                             .timeout_ms = 10000,
	                             .max_attempts = 6,
	                             .backoff_ms = 20,
	                             .max_backoff_ms = 2000};
}

/* A SAS URL for @container/@blob on @port (0: Azurite), valid for an hour; malloc'ed. */
static char *sas_url(int port, const char *container, const char *blob, const char *perms)
{
	_cleanup_free_ char *sas =
	        test_azurite_blob_sas(container, blob, perms, time(NULL) + 3600, NULL);

	assert_non_null(sas);
	return test_azurite_blob_url(&az, port, container, blob, sas);
}

static void random_bytes(uint8_t *buf, size_t len)
{
	for (size_t off = 0; off < len; off += 1 << 20) {
		size_t n = len - off < (1u << 20) ? len - off : (1u << 20);

		assert_int_equal(RAND_bytes(buf + off, (int)n), 1);
	}
}

/* Read the whole blob with blob_read in @chunk pieces and compare with @expect. */
static void check_whole(struct blob *b, const uint8_t *expect, size_t len, size_t chunk)
{
	_cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
	struct skr_error err = {0};
	char sha[65], want[65];

	assert_non_null(buf);
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		int r = blob_read(b, buf + off, n, off, &err);

		if (r != 0)
			fail_msg("blob_read(%zu at %zu): %d %s", n, off, r, err.msg);
	}
	sha256_hex(buf, len, sha);
	sha256_hex(expect, len, want);
	assert_string_equal(sha, want);
}

/* @n random ranges (≤ @max_len) of the blob compared with @expect. */
static void check_random(struct blob *b, const uint8_t *expect, size_t len, unsigned n,
                         size_t max_len)
{
	_cleanup_free_ uint8_t *buf = malloc(max_len);

	assert_non_null(buf);
	for (unsigned i = 0; i < n; i++) {
		struct skr_error err = {0};
		uint64_t off = rand_below(len);
		size_t k = 1 + (size_t)rand_below(max_len);
		int r;

		if (k > len - off)
			k = (size_t)(len - off);
		r = blob_read(b, buf, k, off, &err);
		if (r != 0)
			fail_msg("blob_read(%zu at %llu): %d %s", k, (unsigned long long)off, r,
			         err.msg);
		if (memcmp(buf, expect + off, k) != 0)
			fail_msg("blob_read(%zu at %llu): wrong bytes", k, (unsigned long long)off);
	}
}

static bool allow_skip(void)
{
	const char *v = getenv("SKR_ALLOW_SKIP");

	return v && strcmp(v, "1") == 0;
}

/* Root and /dev/fuse are needed for FUSE and loop mounts: fail unless skipping is allowed. */
static void require_root_fuse(void)
{
	if (geteuid() == 0 && access("/dev/fuse", R_OK | W_OK) == 0)
		return;
	if (allow_skip()) {
		print_message("SKIP: needs root and /dev/fuse (SKR_ALLOW_SKIP=1)\n");
		skip();
	}
	fail_msg("needs root and /dev/fuse (set SKR_ALLOW_SKIP=1 to skip locally)");
}

/* Run a command, asserting success; its stdout (trimmed) into @out when non-NULL. */
static int run(const char *const *argv, char *out, size_t size)
{
	struct test_proc_result res = {0};
	int status;

	assert_int_equal(test_proc_run(argv, NULL, &res), 0);
	status = res.status;
	if (status != 0)
		print_message("%s exited %d: %s%s\n", argv[0], status, res.out, res.err);
	if (out) {
		size_t n = res.out_len;

		while (n > 0 && (res.out[n - 1] == '\n' || res.out[n - 1] == ' '))
			n--;
		snprintf(out, size, "%.*s", (int)n, res.out);
	}
	test_proc_result_clear(&res);
	return status;
}

/* ---------------------------------------------------------------------------------------------
 * Setup
 * ------------------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
	char dir[600];
	int r;

	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	test_fs_remove_at_exit(tmpdir);
	snprintf(dir, sizeof(dir), "%s/azurite", tmpdir);
	if (test_azurite_start(&az, dir, true) < 0)
		return -1;
	data = malloc(DATA_SIZE);
	if (!data || RAND_bytes(data, DATA_SIZE) != 1)
		return -1;
	sha256_hex(data, DATA_SIZE, data_sha);
	if (test_azurite_create_container(&az, PUB, true) < 0 ||
	    test_azurite_create_container(&az, PRIV, false) < 0 ||
	    test_azurite_put_block_blob(&az, PUB, DATA, data, DATA_SIZE) < 0 ||
	    test_azurite_put_block_blob(&az, PRIV, DATA, data, DATA_SIZE) < 0)
		return -1;
	r = test_fault_proxy_start(az.port, &proxy);
	if (r < 0) {
		fprintf(stderr, "fault proxy: %s\n", strerror(-r));
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	test_fault_proxy_stop(proxy);
	proxy = NULL;
	free(data);
	if (test_azurite_stop(&az) < 0)
		fprintf(stderr, "Azurite did not stop cleanly (see %s)\n", az.log);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * 1. The harness as curl sees it
 * ------------------------------------------------------------------------------------------- */

static long curl_get(const char *url, const char *range, struct test_http_client_response *res)
{
	char hdr[80];
	const char *headers[] = {hdr, "x-ms-version: " TEST_AZURITE_VERSION, NULL};

	snprintf(hdr, sizeof(hdr), "Range: bytes=%s", range ? range : "0-");
	return test_http_client_request(
	        &(struct test_http_client_request){.url = url, .headers = headers, .quiet = true},
	        res);
}

static void test_harness(void **state)
{
	struct test_http_client_response res = {0};
	_cleanup_free_ uint8_t *got = NULL;
	_cleanup_free_ char *pub = test_azurite_blob_url(&az, 0, PUB, DATA, NULL);
	_cleanup_free_ char *priv = test_azurite_blob_url(&az, 0, PRIV, DATA, NULL);
	_cleanup_free_ char *sas = sas_url(0, PRIV, DATA, "r");
	_cleanup_free_ char *expired_q =
	        test_azurite_blob_sas(PRIV, DATA, "r", time(NULL) - 3600, NULL);
	_cleanup_free_ char *expired = test_azurite_blob_url(&az, 0, PRIV, DATA, expired_q);
	_cleanup_free_ char *via_proxy = sas_url(test_fault_proxy_port(proxy), PRIV, DATA, "r");
	struct test_fault_counts counts;
	char etag1[128], etag2[128];
	size_t len;

	(void)state;
	/* SharedKey REST round trip; an overwrite changes the ETag. */
	assert_int_equal(test_azurite_get_blob(&az, PRIV, DATA, &got, &len), 0);
	assert_int_equal(len, DATA_SIZE);
	assert_memory_equal(got, data, DATA_SIZE);
	assert_int_equal(test_azurite_put_block_blob(&az, PRIV, "etag-probe", "a", 1), 0);
	assert_int_equal(test_azurite_get_etag(&az, PRIV, "etag-probe", etag1), 0);
	assert_int_equal(test_azurite_put_block_blob(&az, PRIV, "etag-probe", "b", 1), 0);
	assert_int_equal(test_azurite_get_etag(&az, PRIV, "etag-probe", etag2), 0);
	assert_string_not_equal(etag1, etag2);

	/* Anonymous: the public container answers, the private one refuses. */
	assert_int_equal(curl_get(pub, "0-1023", &res), 206);
	assert_int_equal(res.len, 1024);
	assert_memory_equal(res.body, data, 1024);
	test_http_client_response_clear(&res);
	assert_true(curl_get(priv, "0-1023", &res) >= 400);
	print_message("anonymous read of a private blob: HTTP %ld\n", res.status);
	test_http_client_response_clear(&res);

	/* Our SAS is accepted; expired, it is refused with 403. */
	assert_int_equal(curl_get(sas, "100-199", &res), 206);
	assert_memory_equal(res.body, data + 100, 100);
	test_http_client_response_clear(&res);
	assert_int_equal(curl_get(expired, "0-99", &res), 403);
	test_http_client_response_clear(&res);

	/* Every fault of the proxy, as a plain client sees it. */
	test_fault_proxy_set_plan(proxy, NULL, 0);
	assert_int_equal(curl_get(via_proxy, "0-65535", &res), 206);
	assert_int_equal(res.len, 65536);
	test_http_client_response_clear(&res);
	test_fault_proxy_set_plan(proxy, &STEP(TEST_FAULT_DROP_MID_BODY, 1, NULL, 0), 1);
	curl_get(via_proxy, "0-65535", &res);
	assert_int_equal(res.rc, CURLE_PARTIAL_FILE);
	test_http_client_response_clear(&res);
	test_fault_proxy_set_plan(proxy, &STEP(TEST_FAULT_SHORT_BODY, 1, NULL, 0), 1);
	assert_int_equal(curl_get(via_proxy, "0-65535", &res), 206);
	assert_int_equal(res.len, 32768);
	assert_memory_equal(res.body, data, 32768);
	test_http_client_response_clear(&res);
	test_fault_proxy_set_plan(proxy, &STEP(TEST_FAULT_HTTP_500, 1, NULL, 0), 1);
	assert_int_equal(curl_get(via_proxy, "0-1", &res), 500);
	test_http_client_response_clear(&res);
	test_fault_proxy_set_plan(proxy, &STEP(TEST_FAULT_HTTP_503, 1, NULL, 2), 1);
	assert_int_equal(curl_get(via_proxy, "0-1", &res), 503);
	test_http_client_response_clear(&res);
	test_fault_proxy_set_plan(proxy, &STEP(TEST_FAULT_CLOSE, 1, NULL, 0), 1);
	curl_get(via_proxy, "0-1", &res);
	assert_int_equal(res.rc, CURLE_GOT_NOTHING);
	test_http_client_response_clear(&res);
	/* A step for another method leaves GETs alone; the plan is used up after its count. */
	test_fault_proxy_set_plan(proxy, &STEP(TEST_FAULT_HTTP_500, 1, "HEAD", 0), 1);
	assert_int_equal(curl_get(via_proxy, "0-1", &res), 206);
	test_http_client_response_clear(&res);
	test_fault_proxy_get_counts(proxy, &counts);
	assert_int_equal(counts.requests, 1);
	assert_int_equal(counts.gets, 1);
	assert_int_equal(counts.faults, 0);
}

/* ---------------------------------------------------------------------------------------------
 * 2. Authentication
 * ------------------------------------------------------------------------------------------- */

static void test_public_anonymous(void **state)
{
	_cleanup_free_ char *url = test_azurite_blob_url(&az, 0, PUB, DATA, NULL);
	struct blob_options o = options(url);
	struct skr_error err = {0};
	const struct blob_properties *p;
	struct blob *b = NULL;
	uint8_t byte;
	int r;

	(void)state;
	r = blob_open(&o, &b, &err);
	if (r != 0)
		fail_msg("blob_open(%s): %d %s", url, r, err.msg);
	p = blob_get_properties(b);
	assert_int_equal(p->size, DATA_SIZE);
	/* No SAS, no token, not *.blob.*: generic HTTP by the URL, though an implementation may
	 * switch to the Azure dialect on seeing x-ms-blob-type in the answer. */
	assert_true(p->kind == BLOB_KIND_HTTP || p->kind == BLOB_KIND_AZURE);
	assert_false(p->page_blob);
	assert_true(p->etag[0] != '\0');
	check_whole(b, data, DATA_SIZE, 1 * MIB);
	check_random(b, data, DATA_SIZE, 100, 300 * 1024);
	/* Past the end: refused, not clamped. */
	assert_int_equal(blob_read(b, &byte, 1, DATA_SIZE, &err), -EINVAL);
	blob_close(b);
}

static void test_sas_read(void **state)
{
	_cleanup_free_ char *sas = test_azurite_blob_sas(PRIV, DATA, "r", time(NULL) + 3600, NULL);
	_cleanup_free_ char *url = test_azurite_blob_url(&az, 0, PRIV, DATA, sas);
	struct blob_options o = options(url);
	struct skr_error err = {0};
	struct blob *b = NULL;
	char sig[128];
	const char *logs;
	int r;

	(void)state;
	test_azurite_sas_signature(sas, sig, sizeof(sig));
	assert_true(strlen(sig) > 20);
	test_log_capture_start(LOG_LEVEL_TRACE);
	r = blob_open(&o, &b, &err);
	if (r != 0) {
		test_log_capture_stop();
		fail_msg("blob_open(SAS): %d %s", r, err.msg);
	}
	assert_int_equal(blob_get_properties(b)->kind, BLOB_KIND_AZURE);
	assert_int_equal(blob_get_properties(b)->size, DATA_SIZE);
	assert_false(blob_get_properties(b)->page_blob);
	check_whole(b, data, DATA_SIZE, 2 * MIB);
	check_random(b, data, DATA_SIZE, 50, 100 * 1024);
	assert_non_null(strstr(blob_display_url(b), "sig=REDACTED"));
	assert_null(strstr(blob_display_url(b), sig));
	blob_close(b);
	test_log_capture_stop();
	logs = test_log_captured();
	if (logs) {
		assert_null(strstr(logs, sig));
		assert_null(strstr(logs, strrchr(sas, '=') + 1)); /* the URL-encoded spelling */
	}
	test_log_capture_clear();
}

/* blob_open of @query's URL must fail with -EACCES, a 403 reason, no signature anywhere. */
static void check_refused_sas(const char *query)
{
	_cleanup_free_ char *url = test_azurite_blob_url(&az, 0, PRIV, DATA, query);
	struct blob_options o = options(url);
	struct skr_error err = {0};
	struct blob *b = NULL;
	char sig[128];
	const char *logs;
	int r;

	test_azurite_sas_signature(query, sig, sizeof(sig));
	test_log_capture_start(LOG_LEVEL_TRACE);
	r = blob_open(&o, &b, &err);
	test_log_capture_stop();
	print_message("refused SAS: %d %s\n", r, err.msg);
	assert_int_equal(r, -EACCES);
	assert_null(b);
	assert_non_null(strstr(err.msg, "403"));
	assert_null(strstr(err.msg, sig));
	assert_null(strstr(err.msg, strrchr(query, '=') + 1));
	logs = test_log_captured();
	if (logs) {
		assert_null(strstr(logs, sig));
		assert_null(strstr(logs, strrchr(query, '=') + 1));
	}
	test_log_capture_clear();
}

static void test_sas_refused(void **state)
{
	/* A different key: a well-formed SAS with a wrong signature. */
	static const char other_key[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	                                "AAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
	_cleanup_free_ char *expired =
	        test_azurite_blob_sas(PRIV, DATA, "r", time(NULL) - 3600, NULL);
	_cleanup_free_ char *forged =
	        test_azurite_blob_sas(PRIV, DATA, "r", time(NULL) + 3600, other_key);

	(void)state;
	assert_non_null(expired);
	assert_non_null(forged);
	check_refused_sas(expired);
	check_refused_sas(forged);
}

static void test_private_without_auth(void **state)
{
	_cleanup_free_ char *url = test_azurite_blob_url(&az, 0, PRIV, DATA, NULL);
	struct blob_options o = options(url);
	struct skr_error err = {0};
	struct blob *b = NULL;
	int r;

	(void)state;
	r = blob_open(&o, &b, &err);
	print_message("private blob without auth: %d %s\n", r, err.msg);
	assert_null(b);
	assert_true(r == -EACCES || r == -ENOENT);
	/* The reason names what was refused. */
	assert_non_null(strstr(err.msg, PRIV "/" DATA));
}

/* ---------------------------------------------------------------------------------------------
 * 3. Concurrent readers
 * ------------------------------------------------------------------------------------------- */

struct reader {
	struct blob *b;
	unsigned reads, failures, mismatches;
	char first_error[SKR_ERROR_MSG_MAX];
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	uint8_t *buf = malloc(256 * 1024);

	for (unsigned i = 0; buf && i < rd->reads; i++) {
		struct skr_error err = {0};
		uint64_t off = rand_below(DATA_SIZE);
		size_t len = 1 + (size_t)rand_below(256 * 1024);

		if (len > DATA_SIZE - off)
			len = (size_t)(DATA_SIZE - off);
		if (blob_read(rd->b, buf, len, off, &err) != 0) {
			if (rd->failures++ == 0)
				snprintf(rd->first_error, sizeof(rd->first_error), "%s", err.msg);
		} else if (memcmp(buf, data + off, len) != 0) {
			rd->mismatches++;
		}
	}
	if (!buf)
		rd->failures++;
	free(buf);
	return NULL;
}

static void test_concurrent_reads(void **state)
{
	_cleanup_free_ char *url = sas_url(0, PRIV, DATA, "r");
	struct blob_options o = options(url);
	struct skr_error err = {0};
	struct reader readers[8];
	pthread_t threads[8];
	struct blob *b = NULL;

	(void)state;
	assert_int_equal(blob_open(&o, &b, &err), 0);
	for (size_t i = 0; i < 8; i++) {
		readers[i] = (struct reader){.b = b, .reads = 40};
		assert_int_equal(pthread_create(&threads[i], NULL, reader_main, &readers[i]), 0);
	}
	for (size_t i = 0; i < 8; i++)
		pthread_join(threads[i], NULL);
	blob_close(b);
	for (size_t i = 0; i < 8; i++) {
		if (readers[i].failures)
			fail_msg("reader %zu: %u failures, first: %s", i, readers[i].failures,
			         readers[i].first_error);
		assert_int_equal(readers[i].mismatches, 0);
	}
}

/* ---------------------------------------------------------------------------------------------
 * 4. Writing: Put Page, page blob upload
 * ------------------------------------------------------------------------------------------- */

static void test_page_blob_write(void **state)
{
	const size_t size = 2 * MIB;
	_cleanup_free_ uint8_t *expect = malloc(size), *patch = malloc(8192), *got = NULL;
	_cleanup_free_ char *url = sas_url(0, PRIV, "page.bin", "rw");
	_cleanup_free_ char *block_url = sas_url(0, PRIV, DATA, "rw");
	struct blob_options o = options(url);
	struct skr_error err = {0};
	struct blob *b = NULL;
	size_t len;
	int r;

	(void)state;
	assert_non_null(expect);
	assert_non_null(patch);
	random_bytes(expect, size);
	random_bytes(patch, 8192);
	assert_int_equal(test_azurite_put_page_blob(&az, PRIV, "page.bin", expect, size), 0);

	/* Read-only handle: no writes. */
	assert_int_equal(blob_open(&o, &b, &err), 0);
	assert_true(blob_get_properties(b)->page_blob);
	assert_true(blob_write(b, patch, 512, 0, &err) < 0);
	blob_close(b);
	b = NULL;

	/* A block blob cannot be opened writable (Put Page needs a page blob). */
	o = options(block_url);
	o.writable = true;
	skr_error_clear(&err);
	assert_true(blob_open(&o, &b, &err) < 0);
	assert_null(b);

	o = options(url);
	o.writable = true;
	skr_error_clear(&err);
	r = blob_open(&o, &b, &err);
	if (r != 0)
		fail_msg("blob_open(writable page blob): %d %s", r, err.msg);
	/* Unaligned: refused before anything is sent. */
	assert_int_equal(blob_write(b, patch, 100, 0, &err), -EINVAL);
	assert_int_equal(blob_write(b, patch, 512, 100, &err), -EINVAL);
	skr_error_clear(&err);
	r = blob_write(b, patch, 4096, 65536, &err);
	if (r != 0)
		fail_msg("blob_write: %d %s", r, err.msg);
	memcpy(expect + 65536, patch, 4096);
	assert_int_equal(blob_write(b, patch + 4096, 512, 0, &err), 0);
	memcpy(expect, patch + 4096, 512);
	assert_int_equal(blob_write(b, patch, 8192, size - 8192, &err), 0);
	memcpy(expect + size - 8192, patch, 8192);
	/* Our own writes do not make the blob "changed under us". */
	check_whole(b, expect, size, 512 * 1024);
	blob_close(b);

	assert_int_equal(test_azurite_get_blob(&az, PRIV, "page.bin", &got, &len), 0);
	assert_int_equal(len, size);
	assert_memory_equal(got, expect, size);
}

/*
 * Upload @content as a page blob from a file through the proxy (counting the PUTs: create +
 * Put Page calls), compare by REST. Returns the number of PUTs.
 */
static unsigned upload_and_compare(const char *name, const uint8_t *content, size_t size,
                                   bool overwrite, int expect_r)
{
	_cleanup_free_ char *url = sas_url(test_fault_proxy_port(proxy), PRIV, name, "rcw");
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ uint8_t *got = NULL;
	_cleanup_close_ int fd = -1;
	struct blob_options o = options(url);
	struct test_fault_counts counts;
	struct skr_error err = {0};
	size_t len;
	int r;

	assert_true(asprintf(&path, "%s/%s.src", tmpdir, name) > 0);
	assert_int_equal(write_file_atomic(path, content, size, 0600), 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	test_fault_proxy_set_plan(proxy, NULL, 0);
	r = blob_upload_page_blob(&o, fd, size, 4, overwrite, &err);
	test_fault_proxy_get_counts(proxy, &counts);
	print_message("upload %s (%zu bytes, overwrite %d): %d, %u PUTs %s\n", name, size,
	              overwrite, r, counts.puts, err.msg);
	unlink(path);
	if (expect_r == 0) {
		assert_int_equal(r, 0);
		assert_int_equal(test_azurite_get_blob(&az, PRIV, name, &got, &len), 0);
		assert_int_equal(len, size);
		assert_memory_equal(got, content, size);
	} else {
		assert_int_equal(r, expect_r);
		assert_true(err.msg[0] != '\0');
	}
	return counts.puts;
}

static void test_upload_page_blob(void **state)
{
	/* random | 4 MiB of zeros, one whole Put Page chunk (skipped, still reads as zeros) |
	 * random, the last chunk partial */
	const size_t size = 4 * MIB + 4 * MIB + 3 * MIB + 512;
	_cleanup_free_ uint8_t *content = calloc(1, size);
	_cleanup_free_ char *url = sas_url(0, PRIV, "upload.bin", "rcw");
	struct blob_options o = options(url);
	struct skr_error err = {0};
	struct blob *b = NULL;

	(void)state;
	assert_non_null(content);
	random_bytes(content, 4 * MIB);
	random_bytes(content + 8 * MIB, 3 * MIB + 512);
	/* create + chunks 0 and 2: the zero chunk 1 is not sent */
	assert_int_equal(upload_and_compare("upload.bin", content, size, false, 0), 3);
	assert_int_equal(blob_open(&o, &b, &err), 0);
	assert_true(blob_get_properties(b)->page_blob);
	assert_int_equal(blob_get_properties(b)->size, size);
	blob_close(b);
	/* Exists: refused without overwrite, replaced with it. */
	random_bytes(content, 512);
	upload_and_compare("upload.bin", content, size, false, -EEXIST);
	upload_and_compare("upload.bin", content, size, true, 0);
	/* Not a page multiple: refused before anything is sent. */
	assert_int_equal(upload_and_compare("odd.bin", content, 1000, false, -EINVAL), 0);
}

/* ---------------------------------------------------------------------------------------------
 * 5. A blob that changes under a reader
 * ------------------------------------------------------------------------------------------- */

static void test_etag_change(void **state)
{
	_cleanup_free_ uint8_t *v1 = malloc(MIB), *v2 = malloc(MIB), *buf = malloc(MIB);
	_cleanup_free_ char *url = sas_url(0, PRIV, "changing.bin", "r");
	struct blob_options o = options(url);
	struct skr_error err = {0};
	struct blob *b = NULL;
	int r;

	(void)state;
	assert_non_null(v1);
	assert_non_null(v2);
	assert_non_null(buf);
	random_bytes(v1, MIB);
	random_bytes(v2, MIB);
	assert_int_equal(test_azurite_put_block_blob(&az, PRIV, "changing.bin", v1, MIB), 0);
	assert_int_equal(blob_open(&o, &b, &err), 0);
	assert_int_equal(blob_read(b, buf, 4096, 0, &err), 0);
	assert_memory_equal(buf, v1, 4096);
	assert_int_equal(test_azurite_put_block_blob(&az, PRIV, "changing.bin", v2, MIB), 0);
	r = blob_read(b, buf, MIB, 0, &err);
	print_message("read after overwrite: %d %s\n", r, err.msg);
	assert_int_equal(r, -ESTALE);
	assert_true(err.msg[0] != '\0');
	blob_close(b);
}

/* ---------------------------------------------------------------------------------------------
 * 6. Faults
 * ------------------------------------------------------------------------------------------- */

/*
 * Open DATA through the proxy (the plan applies to GETs only unless @plan says HEAD), read
 * 1 MiB at an odd offset and check the bytes and that the faults happened. Returns the read's
 * duration in seconds.
 */
static double read_through_fault(const struct test_fault_step *plan, size_t n,
                                 unsigned expect_faults)
{
	_cleanup_free_ char *url = sas_url(test_fault_proxy_port(proxy), PRIV, DATA, "r");
	_cleanup_free_ uint8_t *buf = malloc(MIB);
	struct blob_options o = options(url);
	struct skr_error err = {0};
	struct test_fault_counts counts;
	struct blob *b = NULL;
	const uint64_t off = 777777;
	double t0, t;
	int r;

	assert_non_null(buf);
	test_fault_proxy_set_plan(proxy, plan, n);
	r = blob_open(&o, &b, &err);
	if (r != 0)
		fail_msg("blob_open through the proxy: %d %s", r, err.msg);
	t0 = now_s();
	r = blob_read(b, buf, MIB, off, &err);
	t = now_s() - t0;
	test_fault_proxy_get_counts(proxy, &counts);
	blob_close(b);
	print_message("fault %d: read %d in %.2f s, %u requests (%u GET), %u faults %s\n",
	              plan[0].fault, r, t, counts.requests, counts.gets, counts.faults, err.msg);
	if (r != 0)
		fail_msg("blob_read through fault %d: %d %s", plan[0].fault, r, err.msg);
	assert_memory_equal(buf, data + off, MIB);
	assert_int_equal(counts.faults, expect_faults);
	assert_true(counts.requests > expect_faults);
	test_fault_proxy_set_plan(proxy, NULL, 0);
	return t;
}

static void test_fault_drop_mid_body(void **state)
{
	(void)state;
	read_through_fault(&STEP(TEST_FAULT_DROP_MID_BODY, 2, "GET", 0), 1, 2);
}

static void test_fault_500(void **state)
{
	(void)state;
	read_through_fault(&STEP(TEST_FAULT_HTTP_500, 2, "GET", 0), 1, 2);
	/* At open too. */
	read_through_fault(&STEP(TEST_FAULT_HTTP_500, 1, "HEAD", 0), 1, 1);
}

static void test_fault_503_retry_after(void **state)
{
	double t;

	(void)state;
	t = read_through_fault(&STEP(TEST_FAULT_HTTP_503, 1, "GET", 1), 1, 1);
	/* Retry-After: 1 is honoured (the backoff alone would be 20 ms). */
	assert_true(t >= 0.9);
}

static void test_fault_short_body(void **state)
{
	(void)state;
	read_through_fault(&STEP(TEST_FAULT_SHORT_BODY, 1, "GET", 0), 1, 1);
}

static void test_fault_close(void **state)
{
	(void)state;
	read_through_fault(&STEP(TEST_FAULT_CLOSE, 1, "GET", 0), 1, 1);
}

static void test_fault_mixed(void **state)
{
	const struct test_fault_step plan[] = {
	        STEP(TEST_FAULT_SHORT_BODY, 1, "GET", 0),
	        STEP(TEST_FAULT_HTTP_500, 1, "GET", 0),
	        STEP(TEST_FAULT_DROP_MID_BODY, 1, "GET", 0),
	};

	(void)state;
	read_through_fault(plan, ELEMENTSOF(plan), 3);
}

/*
 * The block cache reads runs of several blocks in one request, straight into the blocks, and a
 * retry resumes at the first incomplete block: faults in the middle of such runs (a drop
 * mid-body, a short body) still give exactly the blob's bytes, read sequentially as FUSE does.
 */
static void test_fault_block_cache_runs(void **state)
{
	const struct test_fault_step plan[] = {
	        STEP(TEST_FAULT_DROP_MID_BODY, 2, "GET", 0),
	        STEP(TEST_FAULT_SHORT_BODY, 1, "GET", 0),
	        STEP(TEST_FAULT_DROP_MID_BODY, 1, "GET", 0),
	};
	_cleanup_free_ char *url = sas_url(test_fault_proxy_port(proxy), PRIV, DATA, "r");
	_cleanup_free_ uint8_t *got = malloc(DATA_SIZE);
	const struct block_cache_options co = {
	        .block_size = 64 * 1024, .capacity_blocks = 32, .readahead_blocks = 16};
	struct blob_options o = options(url);
	struct block_cache_stats stats;
	struct test_fault_counts counts;
	struct skr_error err = {0};
	struct block_cache *c = NULL;
	struct blob *b = NULL;
	size_t done = 0;

	(void)state;
	assert_non_null(got);
	test_fault_proxy_set_plan(proxy, plan, ELEMENTSOF(plan));
	if (blob_open(&o, &b, &err) < 0)
		fail_msg("blob_open through the proxy: %s", err.msg);
	if (block_cache_new(b, &co, &c, &err) < 0)
		fail_msg("block_cache_new: %s", err.msg);
	while (done < DATA_SIZE) {
		size_t want = DATA_SIZE - done < 128 * 1024 ? DATA_SIZE - done : 128 * 1024;
		ssize_t n = block_cache_read(c, got + done, want, done, &err);

		if (n <= 0)
			fail_msg("block_cache_read at %zu: %zd %s", done, n, err.msg);
		done += (size_t)n;
	}
	block_cache_get_stats(c, &stats);
	block_cache_free(c);
	blob_close(b);
	test_fault_proxy_get_counts(proxy, &counts);
	test_fault_proxy_set_plan(proxy, NULL, 0);
	print_message("block cache through faults: %u requests, %u faults, %llu blocks read "
	              "ahead\n",
	              counts.requests, counts.faults, (unsigned long long)stats.readahead_blocks);
	assert_memory_equal(got, data, DATA_SIZE);
	assert_int_equal(counts.faults, 4);
	assert_true(stats.readahead_blocks > 0);
}

/* A server that never recovers: -EIO within a bound, the reason given, few requests. */
static void permanent_failure(enum test_fault fault, unsigned param)
{
	_cleanup_free_ char *url = sas_url(test_fault_proxy_port(proxy), PRIV, DATA, "r");
	uint8_t buf[4096];
	struct blob_options o = options(url);
	struct skr_error err = {0};
	struct test_fault_counts counts;
	struct blob *b = NULL;
	double t0, t;
	int r;

	o.max_attempts = 4;
	o.backoff_ms = 10;
	o.max_backoff_ms = 200;
	test_fault_proxy_set_plan(proxy, NULL, 0);
	assert_int_equal(blob_open(&o, &b, &err), 0);
	test_fault_proxy_set_plan(proxy, &STEP(fault, TEST_FAULT_FOREVER, "GET", param), 1);
	t0 = now_s();
	r = blob_read(b, buf, sizeof(buf), 0, &err);
	t = now_s() - t0;
	test_fault_proxy_get_counts(proxy, &counts);
	test_fault_proxy_set_plan(proxy, NULL, 0);
	blob_close(b);
	print_message("permanent fault %d: %d in %.2f s after %u GETs: %s\n", fault, r, t,
	              counts.gets, err.msg);
	assert_int_equal(r, -EIO);
	assert_true(err.msg[0] != '\0');
	assert_true(t < 10.0);
	assert_true(counts.gets >= 2);
	assert_true(counts.gets <= o.max_attempts);
}

static void test_fault_permanent(void **state)
{
	(void)state;
	permanent_failure(TEST_FAULT_HTTP_500, 0);
	permanent_failure(TEST_FAULT_DROP_MID_BODY, 0);
	/* A Retry-After of an hour is capped by max_backoff_ms. */
	permanent_failure(TEST_FAULT_HTTP_503, 3600);
}

/* ---------------------------------------------------------------------------------------------
 * 7, 8. The FUSE file, and an ext4 image through it
 * ------------------------------------------------------------------------------------------- */

struct fuse_state {
	struct blob *blob;
	struct block_cache *cache;
	struct blob_fuse *fuse;
	char mnt[600]; /* an ext4 mount point, "" when none */
	char mnt2[600];
	char loop[64]; /* a loop device we attached, "" when none */
	int fd;        /* the FUSE file opened by a test, -1 when none: a failed assertion
	                  skips cleanup attributes, and an open file keeps the FUSE mount busy */
};

static struct fuse_state fs_state = {.fd = -1};

static void fuse_expose(struct fuse_state *s, const char *url, const char *dir)
{
	struct blob_options o = options(url);
	struct block_cache_options co = {.block_size = 64 * 1024,
	                                 .capacity_blocks = 32,
	                                 .readahead_blocks = 4,
	                                 .fetch_threads = 4};
	struct skr_error err = {0};
	int r;

	r = blob_open(&o, &s->blob, &err);
	if (r != 0)
		fail_msg("blob_open: %d %s", r, err.msg);
	r = block_cache_new(s->blob, &co, &s->cache, &err);
	if (r != 0)
		fail_msg("block_cache_new: %d %s", r, err.msg);
	r = blob_fuse_mount(s->cache, dir, false, &s->fuse, &err);
	if (r != 0)
		fail_msg("blob_fuse_mount(%s): %d %s", dir, r, err.msg);
}

static int fuse_teardown(void **state)
{
	struct fuse_state *s = &fs_state;
	struct skr_error err = {0};

	(void)state;
	if (s->fd >= 0)
		close(s->fd);
	if (s->mnt2[0] && umount2(s->mnt2, MNT_DETACH) < 0 && errno != EINVAL)
		fprintf(stderr, "umount %s: %s\n", s->mnt2, strerror(errno));
	if (s->mnt[0] && umount2(s->mnt, MNT_DETACH) < 0 && errno != EINVAL)
		fprintf(stderr, "umount %s: %s\n", s->mnt, strerror(errno));
	if (s->loop[0]) {
		const char *argv[] = {"/sbin/losetup", "-d", s->loop, NULL};
		struct test_proc_result res = {0};

		if (test_proc_run(argv, NULL, &res) < 0 || res.status != 0)
			fprintf(stderr, "losetup -d %s failed: %s\n", s->loop,
			        res.err ? res.err : "");
		test_proc_result_clear(&res);
	}
	if (s->fuse && blob_fuse_unmount(s->fuse, &err) < 0)
		fprintf(stderr, "blob_fuse_unmount: %s\n", err.msg);
	block_cache_free(s->cache);
	blob_close(s->blob);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	return 0;
}

static void test_fuse_file(void **state)
{
	struct fuse_state *s = &fs_state;
	_cleanup_free_ char *url = sas_url(0, PRIV, DATA, "r");
	_cleanup_free_ uint8_t *buf = malloc(200 * 1024);
	struct block_cache_stats stats;
	char dir[600], sha[65];
	const char *file;
	struct stat st;
	uint64_t size;

	(void)state;
	require_root_fuse();
	assert_non_null(buf);
	snprintf(dir, sizeof(dir), "%s/fuse-data", tmpdir);
	fuse_expose(s, url, dir);
	file = blob_fuse_file(s->fuse);
	assert_non_null(file);
	assert_int_equal(stat(file, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, DATA_SIZE);
	assert_int_equal(sha256_file(file, 128 * 1024, sha, &size), 0);
	assert_int_equal(size, DATA_SIZE);
	assert_string_equal(sha, data_sha);
	/* Read-only. */
	s->fd = open(file, O_WRONLY | O_CLOEXEC);
	assert_true(s->fd < 0);
	s->fd = open(file, O_RDONLY | O_CLOEXEC);
	assert_true(s->fd >= 0);
	for (int i = 0; i < 200; i++) {
		uint64_t off = rand_below(DATA_SIZE);
		size_t len = 1 + (size_t)rand_below(200 * 1024);
		ssize_t k;

		if (len > DATA_SIZE - off)
			len = (size_t)(DATA_SIZE - off);
		k = pread(s->fd, buf, len, (off_t)off);
		assert_int_equal(k, (ssize_t)len);
		if (memcmp(buf, data + off, len) != 0)
			fail_msg("FUSE pread(%zu at %llu): wrong bytes", len,
			         (unsigned long long)off);
	}
	block_cache_get_stats(s->cache, &stats);
	print_message("cache: %llu hits, %llu misses, %llu read ahead, %llu bytes fetched\n",
	              (unsigned long long)stats.hits, (unsigned long long)stats.misses,
	              (unsigned long long)stats.readahead_blocks,
	              (unsigned long long)stats.fetched_bytes);
	assert_true(stats.fetched_bytes >= DATA_SIZE);
}

/* Files of the ext4 image's source tree. */
static void make_tree(const char *src, uint8_t **big, size_t big_len)
{
	char path[700];

	assert_int_equal(mkdir(src, 0755), 0);
	*big = malloc(big_len);
	assert_non_null(*big);
	random_bytes(*big, big_len);
	snprintf(path, sizeof(path), "%s/big.bin", src);
	assert_int_equal(write_file_atomic(path, *big, big_len, 0644), 0);
	snprintf(path, sizeof(path), "%s/sub", src);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/sub/hello.txt", src);
	assert_int_equal(write_file_atomic(path, "hello from azurite\n", 19, 0644), 0);
}

static void check_tree(const char *mnt, const uint8_t *big, size_t big_len)
{
	_cleanup_free_ char *text = NULL;
	char path[700], sha[65], want[65];
	uint64_t size;
	size_t len;

	snprintf(path, sizeof(path), "%s/big.bin", mnt);
	assert_int_equal(sha256_file(path, 1 * MIB, sha, &size), 0);
	sha256_hex(big, big_len, want);
	assert_int_equal(size, big_len);
	assert_string_equal(sha, want);
	snprintf(path, sizeof(path), "%s/sub/hello.txt", mnt);
	assert_int_equal(read_file(path, 4096, &text, &len), 0);
	assert_string_equal(text, "hello from azurite\n");
}

static void test_ext4_through_fuse(void **state)
{
	struct fuse_state *s = &fs_state;
	const size_t big_len = 3 * MIB + 4321;
	_cleanup_free_ uint8_t *big = NULL;
	_cleanup_free_ char *url = NULL;
	_cleanup_close_ int fd = -1;
	char src[600], img[600], dir[600], loop[64];
	struct stat st;

	(void)state;
	require_root_fuse();
	snprintf(src, sizeof(src), "%s/ext4-src", tmpdir);
	snprintf(img, sizeof(img), "%s/ext4.img", tmpdir);
	make_tree(src, &big, big_len);
	{
		const char *argv[] = {
		        "/sbin/mkfs.ext4", "-q", "-F", "-b", "4096", "-d", src, img, "16M", NULL};

		assert_int_equal(run(argv, NULL, 0), 0);
	}
	fd = open(img, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(
	        test_azurite_put_block_blob_fd(&az, PRIV, "ext4.img", fd, (uint64_t)st.st_size), 0);
	url = sas_url(0, PRIV, "ext4.img", "r");
	snprintf(dir, sizeof(dir), "%s/fuse-ext4", tmpdir);
	fuse_expose(s, url, dir);

	/* losetup -r, then mount the loop device read-only. */
	{
		const char *argv[] = {"/sbin/losetup",         "-r", "-f", "--show",
		                      blob_fuse_file(s->fuse), NULL};

		assert_int_equal(run(argv, loop, sizeof(loop)), 0);
		assert_true(strncmp(loop, "/dev/loop", 9) == 0);
		snprintf(s->loop, sizeof(s->loop), "%s", loop);
	}
	snprintf(s->mnt, sizeof(s->mnt), "%s/mnt-loop", tmpdir);
	assert_int_equal(mkdir(s->mnt, 0755), 0);
	{
		const char *argv[] = {"/bin/mount", "-t",    "ext4", "-o",
		                      "ro",         s->loop, s->mnt, NULL};

		assert_int_equal(run(argv, NULL, 0), 0);
	}
	check_tree(s->mnt, big, big_len);

	/* mount -o loop,ro of the FUSE file itself (mount attaches and detaches the loop). */
	snprintf(s->mnt2, sizeof(s->mnt2), "%s/mnt-file", tmpdir);
	assert_int_equal(mkdir(s->mnt2, 0755), 0);
	{
		const char *argv[] = {"/bin/mount", "-t",      "ext4",
		                      "-o",         "loop,ro", blob_fuse_file(s->fuse),
		                      s->mnt2,      NULL};

		assert_int_equal(run(argv, NULL, 0), 0);
	}
	check_tree(s->mnt2, big, big_len);

	/* Undo in order here (the teardown does the same after a failure). */
	assert_int_equal(umount2(s->mnt2, 0), 0);
	s->mnt2[0] = '\0';
	assert_int_equal(umount2(s->mnt, 0), 0);
	s->mnt[0] = '\0';
	{
		const char *argv[] = {"/sbin/losetup", "-d", s->loop, NULL};

		assert_int_equal(run(argv, NULL, 0), 0);
		s->loop[0] = '\0';
	}
	unlink(img);
}

/* ---------------------------------------------------------------------------------------------
 * 9. Download mode
 * ------------------------------------------------------------------------------------------- */

static void download_and_check(const char *url, const char *path)
{
	struct blob_options o = options(url);
	struct skr_error err = {0};
	struct blob *b = NULL;
	char sha[65];
	struct stat st;
	uint64_t size;
	int r;

	assert_int_equal(blob_open(&o, &b, &err), 0);
	r = blob_download(b, path, 4, &err);
	if (r != 0) {
		blob_close(b);
		fail_msg("blob_download: %d %s", r, err.msg);
	}
	/* O_EXCL: an existing file is never overwritten. */
	skr_error_clear(&err);
	assert_int_equal(blob_download(b, path, 4, &err), -EEXIST);
	blob_close(b);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(sha256_file(path, MIB, sha, &size), 0);
	assert_int_equal(size, DATA_SIZE);
	assert_string_equal(sha, data_sha);
}

static void test_download(void **state)
{
	_cleanup_free_ char *url = sas_url(0, PRIV, DATA, "r");
	_cleanup_free_ char *proxied = sas_url(test_fault_proxy_port(proxy), PRIV, DATA, "r");
	const struct test_fault_step plan[] = {
	        STEP(TEST_FAULT_DROP_MID_BODY, 1, "GET", 0),
	        STEP(TEST_FAULT_HTTP_503, 1, "GET", 1),
	        STEP(TEST_FAULT_SHORT_BODY, 1, "GET", 0),
	};
	struct test_fault_counts counts;
	char path[600];

	(void)state;
	snprintf(path, sizeof(path), "%s/download.img", tmpdir);
	download_and_check(url, path);
	unlink(path);
	test_fault_proxy_set_plan(proxy, plan, ELEMENTSOF(plan));
	download_and_check(proxied, path);
	test_fault_proxy_get_counts(proxy, &counts);
	test_fault_proxy_set_plan(proxy, NULL, 0);
	assert_int_equal(counts.faults, 3);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_harness),
	        cmocka_unit_test(test_public_anonymous),
	        cmocka_unit_test(test_sas_read),
	        cmocka_unit_test(test_sas_refused),
	        cmocka_unit_test(test_private_without_auth),
	        cmocka_unit_test(test_concurrent_reads),
	        cmocka_unit_test(test_page_blob_write),
	        cmocka_unit_test(test_upload_page_blob),
	        cmocka_unit_test(test_etag_change),
	        cmocka_unit_test(test_fault_drop_mid_body),
	        cmocka_unit_test(test_fault_500),
	        cmocka_unit_test(test_fault_503_retry_after),
	        cmocka_unit_test(test_fault_short_body),
	        cmocka_unit_test(test_fault_close),
	        cmocka_unit_test(test_fault_mixed),
	        cmocka_unit_test(test_fault_block_cache_runs),
	        cmocka_unit_test(test_fault_permanent),
	        cmocka_unit_test_teardown(test_fuse_file, fuse_teardown),
	        cmocka_unit_test_teardown(test_ext4_through_fuse, fuse_teardown),
	        cmocka_unit_test(test_download),
	};

	if (!test_azurite_require())
		return 1;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
