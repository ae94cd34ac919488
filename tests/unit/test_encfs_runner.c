/* SPDX-License-Identifier: MIT */
/*
 * The sidecar's filesystem runner with a real devcloud (virtual SEV-SNP platform, attestation
 * service, key vault, IMDS on loopback ports) and real images: the configuration is parsed from
 * EncfsSideCarArgs as a container group gives it (only the image URL is then pointed at a local
 * file://, which the document format does not take), keys are imported with release policies
 * the way importkey does, and the runner's threads release them through a real attester.
 *   - policy denied: step "policy denied" in /status, the release audited as denied;
 *   - a released key that opens no keyslot: step "wrong key" with the released key's
 *     fingerprint (importkey prints the same), never the key;
 *   - the released key on a LUKS image made with it: the keyslot accepts it (the host has no
 *     device-mapper, so the activation fails at step "mount"; with device-mapper it mounts and
 *     the ready file appears, and stop removes both);
 *   - two filesystems in parallel, on_mount_failure "continue": both reported, no exit asked;
 *   - raw_key in a build that refuses it, even when the parser was bypassed;
 *   - a stale ready file is removed at start;
 *   - the daemon: exits 1 after a failed mount by default, keeps serving with "continue" and
 *     reports the failure in /status, stops with 0 on SIGTERM.
 * After each: no mount under the work directory, nothing in it, no key bytes in any file.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <libcryptsetup.h>
#include <openssl/rand.h>

#include "audit.h"
#include "b64.h"
#include "cleanup.h"
#include "config.h"
#include "encfs.h"
#include "encfs_runner.h"
#include "fileio.h"
#include "log.h"
#include "ossl.h"
#include "secret.h"
#include "skr.h"
#include "status.h"
#include "test_devcloud.h"
#include "test_encfs.h"
#include "test_fs.h"
#include "test_http_client.h"
#include "test_http_server.h"
#include "test_log.h"
#include "test_proc.h"

#define KEY_LEN 32
#define LUKS_IMAGE_SIZE (24u << 20)
#define WAIT_MS 120000

static char tmpdir[] = "/tmp/test_encfs_runner.XXXXXX";
static char ext4_img[600], luks_img[600], luks_other_img[600], audit_path[600];
static struct test_devcloud dc = {.pid = -1};
static char host_hex[65];
static uint8_t fs_key[KEY_LEN];    /* imported as "fs-key", releasable */
static uint8_t other_key[KEY_LEN]; /* formats luks_other_img: released fs-key opens nothing */
static struct skr_attester *attester;
static bool have_dm;
static int test_no;

/* ---------------------------------------------------------------------------------------------
 * Images and keys
 * ------------------------------------------------------------------------------------------- */

static char *skr_args_json(void)
{
	char *json;

	if (asprintf(&json,
	             "{\"certcache\": {\"endpoint_type\": \"AMD\"}, \"attestation_source\": "
	             "\"virtual\", \"virtual_platform_dir\": \"%s\", \"ca_bundle\": \"%s\", "
	             "\"imds_endpoint\": \"%s\"}",
	             dc.platform, dc.ca, dc.imds) < 0)
		return NULL;
	return json;
}

static int group_setup(void **state)
{
	uint8_t host_data[32];
	char state_dir[600], devcloud_log[600];
	_cleanup_free_ char *skr_json = NULL, *b = NULL;
	struct sidecar_config c = {0};
	struct skr_attest_config acfg;
	struct skr_error err = {0};

	(void)state;
	if (!getenv("DEVCLOUD_BIN") && getenv("SKR_BUILD_ROOT")) {
		char bin[600];

		snprintf(bin, sizeof(bin), "%s/tools/devcloud/devcloud", getenv("SKR_BUILD_ROOT"));
		setenv("DEVCLOUD_BIN", bin, 1);
	}
	if (!test_devcloud_bin())
		return -1;
	if (!mkdtemp(tmpdir))
		return -1;
	test_fs_remove_at_exit(tmpdir);
	snprintf(state_dir, sizeof(state_dir), "%s/state", tmpdir);
	snprintf(devcloud_log, sizeof(devcloud_log), "%s/devcloud.log", tmpdir);
	snprintf(ext4_img, sizeof(ext4_img), "%s/plain.ext4", tmpdir);
	snprintf(luks_img, sizeof(luks_img), "%s/encfs.img", tmpdir);
	snprintf(luks_other_img, sizeof(luks_other_img), "%s/other.img", tmpdir);
	snprintf(audit_path, sizeof(audit_path), "%s/audit.jsonl", tmpdir);
	if (RAND_bytes(host_data, sizeof(host_data)) != 1 || RAND_bytes(fs_key, KEY_LEN) != 1 ||
	    RAND_bytes(other_key, KEY_LEN) != 1)
		return -1;
	hex_encode(host_data, sizeof(host_data), host_hex);
	have_dm = test_encfs_kernel_has_dm();
	crypt_set_log_callback(NULL, NULL, NULL);
	if (test_encfs_make_ext4(ext4_img, 8u << 20, NULL) < 0 ||
	    test_encfs_make_luks(luks_img, LUKS_IMAGE_SIZE, fs_key, KEY_LEN) < 0 ||
	    test_encfs_make_luks(luks_other_img, LUKS_IMAGE_SIZE, other_key, KEY_LEN) < 0)
		return -1;
	{
		const char *const init_args[] = {"--host-data", host_hex, NULL};

		if (test_devcloud_init(&dc, state_dir, devcloud_log, init_args) < 0 ||
		    test_devcloud_serve(&dc, NULL) < 0)
			return -1;
	}
	if (test_devcloud_import_oct_key(&dc, "fs-key", fs_key, KEY_LEN, host_hex) < 0 ||
	    test_devcloud_import_oct_key(
	            &dc, "denied-key", other_key, KEY_LEN,
	            "0000000000000000000000000000000000000000000000000000000000000000") < 0)
		return -1;

	/* The daemon's attester, from SkrSideCarArgs as the daemon builds it. */
	skr_json = skr_args_json();
	if (!skr_json || b64_encode(skr_json, strlen(skr_json), B64_STD, &b) < 0 ||
	    sidecar_config_parse_skr_args(b, strlen(b), &c, &err) < 0) {
		fprintf(stderr, "SkrSideCarArgs: %s\n", err.msg);
		return -1;
	}
	sidecar_config_attest(&c, &acfg);
	if (skr_attester_new(&acfg, &attester, &err) < 0) {
		fprintf(stderr, "attester: %s\n", err.msg);
		sidecar_config_clear(&c);
		return -1;
	}
	sidecar_config_clear(&c);
	test_log_capture_start(LOG_LEVEL_DEBUG);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	test_log_capture_stop();
	skr_attester_free(attester);
	test_devcloud_kill(&dc);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * One runner
 * ------------------------------------------------------------------------------------------- */

struct run {
	struct sidecar_config cfg;
	struct sidecar_status *status;
	struct sidecar_audit *audit;
	struct sidecar_encfs_runner *runner;
	char work_dir[700], mnt[700], ready[700];
	int done_calls;
};

static void done_fn(void *userdata)
{
	struct run *r = userdata;

	__atomic_add_fetch(&r->done_calls, 1, __ATOMIC_SEQ_CST);
}

/* One azure_filesystems entry of EncfsSideCarArgs (JSON) for key @kid at mount point @mp. */
static char *fs_json(const char *kid, const char *mp, const char *extra)
{
	char *json;

	if (asprintf(&json,
	             "{\"azure_url\": \"https://acct.blob.core.windows.net/c/encfs.img\","
	             " \"mount_point\": \"%s\", \"key\": {\"kid\": \"%s\", \"kty\": \"oct-HSM\","
	             " \"authority\": {\"endpoint\": \"%s\"}, \"akv\": {\"endpoint\": \"%s\"}}%s}",
	             mp, kid, dc.attest, dc.kv, extra ? extra : "") < 0)
		return NULL;
	return json;
}

/*
 * Parse EncfsSideCarArgs {@top, "azure_filesystems": [@fs...]} into @r->cfg, then point each
 * filesystem at its image @urls[i] (file:// or http://).
 */
static void run_config(struct run *r, const char *top, const char *const *fs,
                       const char *const *urls, size_t n)
{
	_cleanup_free_ char *json = NULL, *b = NULL, *list = NULL;
	struct skr_error err = {0};
	size_t len = 0;
	FILE *m = open_memstream(&list, &len);

	assert_non_null(m);
	for (size_t i = 0; i < n; i++)
		fprintf(m, "%s%s", i ? ", " : "", fs[i]);
	fclose(m);
	assert_true(asprintf(&json,
	                     "{\"work_dir\": \"%s\", \"ready_file\": \"%s\"%s%s,"
	                     " \"azure_filesystems\": [%s]}",
	                     r->work_dir, r->ready, top ? ", " : "", top ? top : "", list) > 0);
	assert_int_equal(b64_encode(json, strlen(json), B64_STD, &b), 0);
	if (sidecar_config_parse_encfs_args(b, strlen(b), &r->cfg, &err) < 0)
		fail_msg("EncfsSideCarArgs: %s", err.msg);
	if (sidecar_config_validate(&r->cfg, &err) < 0)
		fail_msg("EncfsSideCarArgs: %s", err.msg);
	assert_int_equal(r->cfg.n_filesystems, n);
	for (size_t i = 0; i < n; i++) {
		free(r->cfg.filesystems[i].azure_url);
		r->cfg.filesystems[i].azure_url = strdup(urls[i]);
		assert_non_null(r->cfg.filesystems[i].azure_url);
	}
}

static void run_init(struct run *r)
{
	memset(r, 0, sizeof(*r));
	test_no++;
	snprintf(r->work_dir, sizeof(r->work_dir), "%s/work%d", tmpdir, test_no);
	snprintf(r->mnt, sizeof(r->mnt), "%s/mnt%d", tmpdir, test_no);
	snprintf(r->ready, sizeof(r->ready), "%s/ready%d", tmpdir, test_no);
	assert_int_equal(mkdir(r->mnt, 0755), 0);
	test_log_capture_start(LOG_LEVEL_DEBUG);
}

static void run_start(struct run *r)
{
	const char *mps[SIDECAR_FILESYSTEMS_MAX];
	struct skr_error err = {0};

	for (size_t i = 0; i < r->cfg.n_filesystems; i++)
		mps[i] = r->cfg.filesystems[i].mount_point;
	assert_int_equal(sidecar_status_new(mps, r->cfg.n_filesystems, &r->status, &err), 0);
	sidecar_status_set_ready(r->status, true);
	assert_int_equal(sidecar_audit_new(audit_path, NULL, &r->audit, &err), 0);
	struct sidecar_encfs_runner_options o = {
	        .cfg = &r->cfg,
	        .attester = attester,
	        .status = r->status,
	        .audit = r->audit,
	        .dm_prefix = "test-encfs-runner-",
	        .done_fn = done_fn,
	        .done_userdata = r,
	};
	if (sidecar_encfs_runner_start(&o, &r->runner, &err) < 0)
		fail_msg("runner: %s", err.msg);
	if (sidecar_encfs_runner_wait(r->runner, WAIT_MS) < 0)
		fail_msg("the pipelines did not finish in %d ms", WAIT_MS);
	/* done_fn runs after the last pipeline's bookkeeping: give it a moment. */
	for (int i = 0; i < 100 && __atomic_load_n(&r->done_calls, __ATOMIC_SEQ_CST) == 0; i++)
		usleep(10000);
	assert_int_equal(__atomic_load_n(&r->done_calls, __ATOMIC_SEQ_CST), 1);
}

static void run_stop(struct run *r)
{
	struct skr_error err = {0};

	if (sidecar_encfs_runner_stop(r->runner, 20000, &err) < 0)
		fail_msg("stop: %s", err.msg);
	sidecar_audit_free(r->audit);
	sidecar_status_free(r->status);
	sidecar_config_clear(&r->cfg);
}

/* The /status entry of filesystem @i. */
static json_object *status_entry(struct run *r, size_t i, json_object **root)
{
	_cleanup_free_ char *text = NULL;
	json_object *arr;

	assert_int_equal(sidecar_status_to_json(r->status, &text), 0);
	assert_null(memmem(text, strlen(text), fs_key, KEY_LEN));
	*root = json_tokener_parse(text);
	assert_non_null(*root);
	assert_true(json_object_object_get_ex(*root, "filesystems", &arr));
	return json_object_array_get_idx(arr, i);
}

static const char *str_field(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		fail_msg("no string %s in %s", key, json_object_to_json_string(o));
	return json_object_get_string(v);
}

/* Filesystem @i failed at @step with a reason containing @part. */
static void assert_failed(struct run *r, size_t i, const char *step, const char *part)
{
	_cleanup_json_ json_object *root = NULL;
	json_object *e = status_entry(r, i, &root);

	if (getenv("TEST_VERBOSE"))
		print_message("%s\n", json_object_to_json_string(e));
	assert_string_equal(str_field(e, "state"), "failed");
	if (strcmp(str_field(e, "step"), step) != 0)
		fail_msg("step \"%s\" (%s), expected \"%s\"", str_field(e, "step"),
		         str_field(e, "reason"), step);
	if (part && !strstr(str_field(e, "reason"), part))
		fail_msg("reason \"%s\" lacks \"%s\"", str_field(e, "reason"), part);
	assert_string_equal(str_field(root, "message"), "Status NOT OK");
}

/* ---------------------------------------------------------------------------------------------
 * Nothing left behind
 * ------------------------------------------------------------------------------------------- */

static void assert_nothing_left(const struct run *r)
{
	assert_false(test_fs_mounted_below(r->work_dir));
	assert_false(test_fs_mounted_below(r->mnt));
	assert_int_equal(test_fs_count_entries(r->work_dir), 0);
	assert_int_equal(test_fs_count_entries(r->mnt), 0);
	assert_int_equal(access(r->ready, F_OK), -1);
	/* The released key never touches a file: not the images, the audit, the state. */
	assert_false(test_fs_find_bytes(tmpdir, fs_key, KEY_LEN));
	assert_false(test_log_has("\"k\":"));
}

/* ---------------------------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------------------------- */

static void test_policy_denied(void **state)
{
	struct run r;
	char mp[800];
	_cleanup_free_ char *fs = NULL, *url = test_encfs_file_url(ext4_img), *audit = NULL;
	size_t n;

	(void)state;
	run_init(&r);
	snprintf(mp, sizeof(mp), "%s/share", r.mnt);
	fs = fs_json("denied-key", mp, NULL);
	run_config(&r, NULL, (const char *const[]){fs}, (const char *const[]){url}, 1);
	run_start(&r);
	assert_failed(&r, 0, "policy denied", "release denied");
	assert_true(sidecar_encfs_runner_should_exit(r.runner));
	assert_int_equal(access(r.ready, F_OK), -1);
	assert_true(test_log_has("failed at step \"policy denied\""));
	run_stop(&r);
	assert_nothing_left(&r);
	/* Audited like an API release. */
	assert_int_equal(read_file(audit_path, 1 << 20, &audit, &n), 0);
	assert_non_null(strstr(audit, "\"endpoint\":\"azure_filesystems[0]\""));
	assert_non_null(strstr(audit, "\"outcome\":\"denied\""));
	assert_non_null(strstr(audit, "\"kid\":\"denied-key\""));
}

static void test_wrong_key(void **state)
{
	struct run r;
	char mp[800], fp[SKR_FINGERPRINT_STR_SIZE], key_hex[2 * KEY_LEN + 1];
	_cleanup_free_ char *fs = NULL, *url = test_encfs_file_url(luks_other_img);

	(void)state;
	skr_key_fingerprint(fs_key, KEY_LEN, fp);
	hex_encode(fs_key, KEY_LEN, key_hex);
	run_init(&r);
	snprintf(mp, sizeof(mp), "%s/share", r.mnt);
	fs = fs_json("fs-key", mp, NULL);
	run_config(&r, NULL, (const char *const[]){fs}, (const char *const[]){url}, 1);
	run_start(&r);
	assert_failed(&r, 0, "wrong key", fp);
	/* A warning with the fingerprint, to compare with importkey's output; never the key. */
	assert_true(test_log_has("compare the fingerprint"));
	assert_true(test_log_has(fp));
	assert_false(test_log_has(key_hex));
	run_stop(&r);
	assert_nothing_left(&r);
}

static void test_released_key(void **state)
{
	struct run r;
	char mp[800], fp[SKR_FINGERPRINT_STR_SIZE];
	_cleanup_free_ char *fs = NULL, *url = test_encfs_file_url(luks_img);

	(void)state;
	skr_key_fingerprint(fs_key, KEY_LEN, fp);
	run_init(&r);
	snprintf(mp, sizeof(mp), "%s/share", r.mnt);
	fs = fs_json("fs-key", mp, NULL);
	run_config(&r, NULL, (const char *const[]){fs}, (const char *const[]){url}, 1);
	run_start(&r);
	/* The released oct key is the LUKS key as it is: the fingerprint logged is the key's. */
	assert_true(test_log_has(fp));
	if (have_dm) {
		_cleanup_json_ json_object *root = NULL;

		assert_string_equal(str_field(status_entry(&r, 0, &root), "state"), "mounted");
		assert_int_equal(access(r.ready, F_OK), 0);
		assert_false(sidecar_encfs_runner_should_exit(r.runner));
	} else {
		/* The keyslot took the key; the host has no device-mapper to activate it. */
		assert_failed(&r, 0, "mount", "LUKS open: ");
		assert_false(test_log_has("wrong key"));
	}
	run_stop(&r);
	assert_nothing_left(&r);
}

/* Two at once, "continue": a missing blob (HTTP 404, SAS in the URL) and a plain ext4 image. */
static void test_two_continue(void **state)
{
	struct run r;
	struct test_http_server *srv = NULL;
	char mp0[800], mp1[800];
	_cleanup_free_ char *fs0 = NULL, *fs1 = NULL, *url0 = NULL,
	                    *url1 = test_encfs_file_url(ext4_img);

	(void)state;
	assert_int_equal(test_http_server_start(false, &srv), 0);
	test_http_server_push(
	        srv,
	        &(struct test_http_reply){.path = "/c/missing.img", .status = 404, .sticky = true});
	assert_true(asprintf(&url0, "%s/c/missing.img?sv=2022-11-02&sig=SASSECRETSIG",
	                     test_http_server_url(srv)) > 0);
	run_init(&r);
	snprintf(mp0, sizeof(mp0), "%s/a", r.mnt);
	snprintf(mp1, sizeof(mp1), "%s/b", r.mnt);
	fs0 = fs_json("fs-key", mp0, NULL);
	fs1 = fs_json("fs-key", mp1, NULL);
	run_config(&r, "\"on_mount_failure\": \"continue\"", (const char *const[]){fs0, fs1},
	           (const char *const[]){url0, url1}, 2);
	run_start(&r);
	assert_failed(&r, 0, "blob", "404");
	assert_failed(&r, 1, "not LUKS", "not a LUKS2 image");
	assert_false(sidecar_encfs_runner_should_exit(r.runner));
	{
		size_t failed = 0;

		assert_true(sidecar_encfs_runner_finished(r.runner, &failed));
		assert_int_equal(failed, 2);
	}
	assert_false(test_log_has("SASSECRETSIG"));
	{
		_cleanup_free_ char *text = NULL;

		assert_int_equal(sidecar_status_to_json(r.status, &text), 0);
		assert_null(strstr(text, "SASSECRETSIG"));
	}
	run_stop(&r);
	assert_nothing_left(&r);
	test_http_server_stop(srv);
}

/* Reasons reach /status: secrets replaced, never a write past the buffer, never a loop. */
static void test_reason_scrub(void **state)
{
	static const struct {
		const char *in;
		size_t size; /* of the buffer the reason lives in */
		const char *token;
		const char *want;
	} cases[] = {
	        {"GET /c/x?sv=1&sig=abc&se=2 failed", 64, NULL,
	         "GET /c/x?sv=1&sig=REDACTED&se=2 failed"},
	        {"a sig=REDACTED stays", 64, NULL, "a sig=REDACTED stays"},
	        {"SIG=x and sig=y", 64, NULL, "SIG=REDACTED and sig=REDACTED"},
	        {"token eyJhbGciOiJ in the body", 64, "eyJhbGciOiJ",
	         "token <redacted> in the body"},
	        /* a replacement longer than the value, at the very end of a full buffer */
	        {"0123456789012345sig=a", 22, NULL, "0123456789012345sig=R"},
	        {"012345678901234567sig=", 23, NULL, "012345678901234567sig="},
	        {"0123456789ABCDEFGH", 19, "ABCDEFGH", "0123456789<redacte"},
	        /* the secret is a part of the replacement text: replaced once, no endless loop */
	        {"x redacted y", 64, "redacted", "x <redacted> y"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sidecar_filesystem conf = {.akv_bearer_token = (char *)cases[i].token};
		/* a canary after the buffer: ASan and the check below catch an overrun */
		char *buf = malloc(cases[i].size + 8);

		assert_non_null(buf);
		memset(buf, 'Z', cases[i].size + 8);
		snprintf(buf, cases[i].size, "%s", cases[i].in);
		sidecar_encfs_reason_scrub(buf, cases[i].size, &conf);
		assert_string_equal(buf, cases[i].want);
		for (size_t k = 0; k < 8; k++)
			assert_int_equal(buf[cases[i].size + k], 'Z');
		free(buf);
	}
}

/* raw_key set behind the parser's back in a build that refuses it: still refused. */
static void test_raw_key_refused(void **state)
{
	struct run r;
	char mp[800];
	_cleanup_free_ char *fs = NULL, *url = test_encfs_file_url(luks_img);
	char hex[2 * KEY_LEN + 1];

	(void)state;
	if (sidecar_config_raw_key_allowed())
		skip();
	run_init(&r);
	snprintf(mp, sizeof(mp), "%s/share", r.mnt);
	fs = fs_json("fs-key", mp, NULL);
	run_config(&r, NULL, (const char *const[]){fs}, (const char *const[]){url}, 1);
	hex_encode(fs_key, KEY_LEN, hex);
	r.cfg.filesystems[0].raw_key_hex = strdup(hex);
	run_start(&r);
	assert_failed(&r, 0, "release", "raw_key is for testing only");
	assert_false(test_log_has(hex));
	run_stop(&r);
	assert_nothing_left(&r);
}

/* A ready file left by a crashed run says nothing about this one: removed at start. */
static void test_stale_ready_file(void **state)
{
	struct run r;
	char mp[800];
	_cleanup_free_ char *fs = NULL, *url = NULL;

	(void)state;
	run_init(&r);
	assert_true(asprintf(&url, "file://%s/nothing.img", tmpdir) > 0);
	assert_int_equal(write_file_atomic(r.ready, "old\n", 4, 0644), 0);
	snprintf(mp, sizeof(mp), "%s/share", r.mnt);
	fs = fs_json("fs-key", mp, NULL);
	run_config(&r, NULL, (const char *const[]){fs}, (const char *const[]){url}, 1);
	run_start(&r);
	assert_failed(&r, 0, "blob", "nothing.img");
	assert_int_equal(access(r.ready, F_OK), -1);
	assert_true(test_log_has("removed the stale ready file"));
	run_stop(&r);
	assert_nothing_left(&r);
}

/* ---------------------------------------------------------------------------------------------
 * The daemon: exit policy and /status
 * ------------------------------------------------------------------------------------------- */

static void daemon_env(const char *extra, char **skr_b64, char **encfs_b64, char *mp,
                       size_t mp_size, char *work, size_t work_size)
{
	_cleanup_free_ char *skr = skr_args_json(), *encfs = NULL;

	test_no++;
	snprintf(work, work_size, "%s/dwork%d", tmpdir, test_no);
	snprintf(mp, mp_size, "%s/dmnt%d/share", tmpdir, test_no);
	/* A blob URL that refuses connections: step blob, after the blob client's retries. */
	assert_true(asprintf(&encfs,
	                     "{\"work_dir\": \"%s\"%s, \"azure_filesystems\": [{\"azure_url\":"
	                     " \"http://127.0.0.1:1/c/i.img\", \"mount_point\": \"%s\", \"key\":"
	                     " {\"kid\": \"fs-key\", \"authority\": {\"endpoint\": \"%s\"},"
	                     " \"akv\": {\"endpoint\": \"%s\"}}}]}",
	                     work, extra ? extra : "", mp, dc.attest, dc.kv) > 0);
	assert_int_equal(b64_encode(skr, strlen(skr), B64_STD, skr_b64), 0);
	assert_int_equal(b64_encode(encfs, strlen(encfs), B64_STD, encfs_b64), 0);
}

static const char *sidecar_bin(void)
{
	static char bin[600];

	if (getenv("SIDECAR_BIN"))
		return getenv("SIDECAR_BIN");
	snprintf(bin, sizeof(bin), "%s/sidecar/confidential-sidecar", getenv("SKR_BUILD_ROOT"));
	return bin;
}

/* A loopback port free right now (the daemon's configuration wants a fixed one). */
static uint16_t free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t p = 0;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		p = ntohs(sin.sin_port);
	if (fd >= 0)
		close(fd);
	return p;
}

static pid_t spawn_daemon(const char *skr, const char *encfs, const char *log_path, uint16_t *port)
{
	char port_str[16];
	const char *const argv[] = {sidecar_bin(), "--port", port_str, NULL};
	const char *const env[] = {"SkrSideCarArgs", skr, "EncfsSideCarArgs", encfs, NULL};
	struct test_proc_io io = {.stderr_path = log_path, .env = env};

	*port = free_port();
	assert_true(*port > 0);
	snprintf(port_str, sizeof(port_str), "%u", *port);
	return test_proc_spawn(argv, &io);
}

static void test_daemon_exits_on_failure(void **state)
{
	_cleanup_free_ char *skr = NULL, *encfs = NULL, *log = NULL;
	char mp[700], work[700], log_path[700];
	static pid_t pid = -1;
	uint16_t port;
	size_t n;
	int status = 0;

	(void)state;
	daemon_env(NULL, &skr, &encfs, mp, sizeof(mp), work, sizeof(work));
	snprintf(log_path, sizeof(log_path), "%s/daemon%d.log", tmpdir, test_no);
	pid = spawn_daemon(skr, encfs, log_path, &port);
	assert_true(pid > 0);
	test_proc_kill_at_exit(&pid);
	for (int i = 0; i < 600 && !test_proc_exited(&pid, &status); i++)
		usleep(100 * 1000);
	if (pid > 0)
		fail_msg("the daemon still runs 60 s after a failed mount");
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_int_equal(read_file(log_path, 1 << 20, &log, &n), 0);
	if (!strstr(log, "failed at step \"blob\"") || !strstr(log, "exiting with status 1"))
		fail_msg("daemon log:\n%s", log);
	assert_false(test_fs_mounted_below(work));
	assert_int_equal(test_fs_count_entries(work), 0);
}

static void test_daemon_continue(void **state)
{
	_cleanup_free_ char *skr = NULL, *encfs = NULL;
	char mp[700], work[700], log_path[700], url[64];
	static pid_t pid = -1;
	uint16_t port = 0;
	int r;

	(void)state;
	daemon_env(", \"on_mount_failure\": \"continue\"", &skr, &encfs, mp, sizeof(mp), work,
	           sizeof(work));
	snprintf(log_path, sizeof(log_path), "%s/daemon%d.log", tmpdir, test_no);
	pid = spawn_daemon(skr, encfs, log_path, &port);
	assert_true(pid > 0);
	test_proc_kill_at_exit(&pid);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/status", port);
	/* Poll /status until the filesystem is reported failed; the daemon keeps serving. */
	for (int i = 0; i < 600; i++) {
		struct test_http_client_response res = {0};
		bool failed;

		test_http_client_request(
		        &(struct test_http_client_request){
		                .method = "GET", .url = url, .timeout_s = 5, .quiet = true},
		        &res);
		failed = res.rc == CURLE_OK && res.body && strstr(res.body, "\"state\":\"failed\"");
		if (failed) {
			assert_non_null(strstr(res.body, "\"step\":\"blob\""));
			assert_non_null(strstr(res.body, "Status NOT OK"));
			test_http_client_response_clear(&res);
			break;
		}
		test_http_client_response_clear(&res);
		usleep(100 * 1000);
		if (i == 599)
			fail_msg("/status never reported the failed filesystem");
	}
	usleep(300 * 1000);
	assert_false(test_proc_exited(&pid, NULL));
	r = test_proc_stop(&pid, SIGTERM, 30000);
	assert_int_equal(r, 0);
	assert_false(test_fs_mounted_below(work));
	assert_int_equal(test_fs_count_entries(work), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_policy_denied),
	        cmocka_unit_test(test_wrong_key),
	        cmocka_unit_test(test_released_key),
	        cmocka_unit_test(test_two_continue),
	        cmocka_unit_test(test_raw_key_refused),
	        cmocka_unit_test(test_reason_scrub),
	        cmocka_unit_test(test_stale_ready_file),
	        cmocka_unit_test(test_daemon_exits_on_failure),
	        cmocka_unit_test(test_daemon_continue),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
