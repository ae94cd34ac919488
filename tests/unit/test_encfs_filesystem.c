/* SPDX-License-Identifier: MIT */
/*
 * encfs_fs_mount()/encfs_fs_unmount() with real parts: file:// and HTTP blobs, the FUSE file
 * over the block cache and the download, real LUKS2 and ext4 images made here with
 * libcryptsetup and mkfs.ext4. This host has no device-mapper, so every failure path runs end
 * to end here and the full mount only where the kernel has device-mapper (the QEMU guest runs it
 * too). After every failure: the step reported is the right one, nothing is left behind (no
 * FUSE mount under the work directory in /proc/self/mountinfo, no file in the work directory,
 * no symlink or hidden mount beside the mount point), and no file below the test directory
 * holds the key bytes.
 */
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <libcryptsetup.h>
#include <openssl/rand.h>

#include "cleanup.h"
#include "encfs.h"
#include "fileio.h"
#include "log.h"
#include "secret.h"
#include "skr.h"
#include "test_encfs.h"
#include "test_fs.h"
#include "test_http_server.h"
#include "test_log.h"

#define KEY_LEN 32
#define LUKS_IMAGE_SIZE (24u << 20) /* 16 MiB of LUKS2 metadata + 8 MiB of data */
#define EXT4_IMAGE_SIZE (8u << 20)
#define FILE_TEXT "hello from an encrypted filesystem\n"

static char tmpdir[] = "/tmp/test_encfs_fs.XXXXXX";
static char work_dir[600], mnt_parent[600], mount_point[700];
static char ext4_img[600], luks_img[600], odd_img[600];
static uint8_t right_key[KEY_LEN], wrong_key[KEY_LEN];
static bool have_dm;

/* ---------------------------------------------------------------------------------------------
 * Images
 * ------------------------------------------------------------------------------------------- */

/* An ext4 filesystem holding hello.txt, in @path. */
static int make_ext4(const char *path, uint64_t size)
{
	char src[700], file[800];

	snprintf(src, sizeof(src), "%s/ext4-src", tmpdir);
	snprintf(file, sizeof(file), "%s/hello.txt", src);
	if ((mkdir(src, 0700) < 0 && errno != EEXIST) ||
	    write_file_atomic(file, FILE_TEXT, strlen(FILE_TEXT), 0644) < 0)
		return -1;
	return test_encfs_make_ext4(path, size, src);
}

/* Where device-mapper exists: an ext4 filesystem written through the mapping into @path. */
static int fill_luks(const char *path, const uint8_t *key)
{
	static const char name[] = "test-encfs-fs-setup";
	_cleanup_free_ char *fs = NULL, *ext4 = NULL, *dev = NULL;
	struct crypt_device *cd = NULL;
	size_t len;
	int fd, r;

	if (asprintf(&ext4, "%s/inner.ext4", tmpdir) < 0 ||
	    asprintf(&dev, "/dev/mapper/%s", name) < 0)
		return -1;
	if (make_ext4(ext4, LUKS_IMAGE_SIZE - (16u << 20)) < 0 ||
	    read_file(ext4, LUKS_IMAGE_SIZE, &fs, &len) < 0)
		return -1;
	r = crypt_init(&cd, path);
	if (r == 0)
		r = crypt_load(cd, CRYPT_LUKS2, NULL);
	if (r == 0)
		r = crypt_activate_by_passphrase(cd, name, CRYPT_ANY_SLOT, (const char *)key,
		                                 KEY_LEN, 0);
	if (r >= 0) {
		fd = open(dev, O_WRONLY | O_CLOEXEC);
		r = fd >= 0 && write(fd, fs, len) == (ssize_t)len && fsync(fd) == 0 ? 0 : -EIO;
		if (fd >= 0)
			close(fd);
		crypt_deactivate(cd, name);
	}
	crypt_free(cd);
	unlink(ext4);
	return r < 0 ? -1 : 0;
}

/*
 * What generatefs makes: LUKS2, aes-xts-plain64 with a 512-bit key, 4096-byte sectors, pbkdf2
 * (fast here), one keyslot for @key; the data area holds an ext4 filesystem only where
 * device-mapper can write it (on the host the data stays zero: the tests that run here stop
 * before reading it).
 */
static int make_luks(const char *path, const uint8_t *key)
{
	if (test_encfs_make_luks(path, LUKS_IMAGE_SIZE, key, KEY_LEN) < 0)
		return -1;
	return have_dm ? fill_luks(path, key) : 0;
}

static int group_setup(void **state)
{
	(void)state;
	test_log_capture_start(LOG_LEVEL_DEBUG);
	if (!mkdtemp(tmpdir))
		return -1;
	test_fs_remove_at_exit(tmpdir);
	snprintf(work_dir, sizeof(work_dir), "%s/work", tmpdir);
	snprintf(mnt_parent, sizeof(mnt_parent), "%s/mnt", tmpdir);
	snprintf(mount_point, sizeof(mount_point), "%s/share", mnt_parent);
	snprintf(ext4_img, sizeof(ext4_img), "%s/plain.ext4", tmpdir);
	snprintf(luks_img, sizeof(luks_img), "%s/encfs.img", tmpdir);
	snprintf(odd_img, sizeof(odd_img), "%s/odd.img", tmpdir);
	if (mkdir(mnt_parent, 0755) < 0)
		return -1;
	if (RAND_bytes(right_key, KEY_LEN) != 1 || RAND_bytes(wrong_key, KEY_LEN) != 1)
		return -1;
	have_dm = test_encfs_kernel_has_dm();
	crypt_set_log_callback(NULL, NULL, NULL);
	if (make_ext4(ext4_img, EXT4_IMAGE_SIZE) < 0 || make_luks(luks_img, right_key) < 0 ||
	    test_encfs_make_file(odd_img, 3 * 4096 + 512) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	test_log_capture_stop();
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Nothing left behind
 * ------------------------------------------------------------------------------------------- */

static void assert_nothing_left(void)
{
	char hidden[700];
	struct stat st;

	if (test_fs_mounted_below(work_dir))
		fail_msg("a mount is left below %s", work_dir);
	if (test_fs_mounted_below(mnt_parent))
		fail_msg("a mount is left below %s", mnt_parent);
	if (test_fs_count_entries(work_dir) != 0)
		fail_msg("%zu entries left in %s", test_fs_count_entries(work_dir), work_dir);
	assert_int_equal(test_fs_count_entries(mnt_parent), 0);
	assert_int_equal(lstat(mount_point, &st), -1);
	snprintf(hidden, sizeof(hidden), "%s/.filesystem-0", mnt_parent);
	assert_int_equal(lstat(hidden, &st), -1);
	assert_false(test_fs_find_bytes(tmpdir, right_key, KEY_LEN));
	assert_false(test_fs_find_bytes(tmpdir, wrong_key, KEY_LEN));
}

/* ---------------------------------------------------------------------------------------------
 * Pipeline runs
 * ------------------------------------------------------------------------------------------- */

struct key_script {
	int r;                /* what the key function returns */
	enum encfs_step step; /* ... and the step it names on failure */
	const uint8_t *key;   /* the passphrase it gives on success */
	int calls;
	atomic_bool *cancel; /* set while the key is released: SIGTERM during the release */
};

static int key_fn(void *userdata, struct secret **passphrase, enum encfs_step *step,
                  struct skr_error *err)
{
	struct key_script *k = userdata;

	k->calls++;
	if (k->cancel)
		atomic_store(k->cancel, true);
	if (k->r < 0) {
		*step = k->step;
		return skr_error_set(err, k->r,
		                     "release: release denied by the vault: policy says no");
	}
	*passphrase = secret_new_copy(k->key, KEY_LEN);
	return *passphrase ? 0 : skr_error_set(err, -ENOMEM, "out of memory");
}

static void config_init(struct encfs_fs_config *c, const char *url, enum encfs_access access,
                        struct key_script *k)
{
	*c = (struct encfs_fs_config){
	        .index = 0,
	        .mount_point = mount_point,
	        .access = access,
	        .blob = {.url = url, .max_attempts = 2, .backoff_ms = 10},
	        .cache = {.block_size = 65536, .capacity_blocks = 16},
	        .work_dir = work_dir,
	        .dm_prefix = "test-encfs-fs-",
	        .key_fn = key_fn,
	        .key_userdata = k,
	};
}

/* Mount expecting failure at @step; returns nothing, checks the aftermath. */
static void expect_failure(const struct encfs_fs_config *c, enum encfs_step step,
                           const char *reason_part, struct skr_error *err)
{
	struct encfs_fs *fs = (struct encfs_fs *)1;
	enum encfs_step got = (enum encfs_step) - 1;
	int r;

	r = encfs_fs_mount(c, &fs, &got, err);
	if (r >= 0)
		fail_msg("mounted, expected a failure at step %s", encfs_step_name(step));
	assert_null(fs);
	assert_int_equal(err->code, r);
	if (got != step)
		fail_msg("failed at step \"%s\" (%s), expected \"%s\"", encfs_step_name(got),
		         err->msg, encfs_step_name(step));
	if (reason_part && !strstr(err->msg, reason_part))
		fail_msg("reason \"%s\" lacks \"%s\"", err->msg, reason_part);
	assert_nothing_left();
}

static const enum encfs_access accesses[] = {ENCFS_ACCESS_FUSE, ENCFS_ACCESS_DOWNLOAD};

static void test_step_names(void **state)
{
	(void)state;
	assert_string_equal(encfs_step_name(ENCFS_STEP_BLOB), "blob");
	assert_string_equal(encfs_step_name(ENCFS_STEP_ATTEST), "attest");
	assert_string_equal(encfs_step_name(ENCFS_STEP_RELEASE), "release");
	assert_string_equal(encfs_step_name(ENCFS_STEP_POLICY), "policy denied");
	assert_string_equal(encfs_step_name(ENCFS_STEP_KEY), "wrong key");
	assert_string_equal(encfs_step_name(ENCFS_STEP_HEADER), "not LUKS");
	assert_string_equal(encfs_step_name(ENCFS_STEP_VERITY), "verity");
	assert_string_equal(encfs_step_name(ENCFS_STEP_MOUNT), "mount");
	assert_string_equal(encfs_step_name((enum encfs_step)99), "unknown");
	assert_int_equal(encfs_fs_unmount(NULL, 0, NULL), 0);
}

/* A file:// blob that does not exist: step blob, the key is never asked for. */
static void test_blob_missing_file(void **state)
{
	_cleanup_free_ char *missing = NULL, *url = NULL;

	(void)state;
	assert_true(asprintf(&missing, "%s/missing.img", tmpdir) > 0);
	url = test_encfs_file_url(missing);
	for (size_t i = 0; i < ELEMENTSOF(accesses); i++) {
		struct key_script k = {.key = right_key};
		struct encfs_fs_config c;
		struct skr_error err = {0};

		config_init(&c, url, accesses[i], &k);
		expect_failure(&c, ENCFS_STEP_BLOB, "missing.img", &err);
		assert_int_equal(err.code, -ENOENT);
		assert_true(strncmp(err.msg, "blob: ", 6) == 0);
		assert_int_equal(k.calls, 0);
	}
}

/* An HTTP URL that answers 404, with a SAS signature that must not appear in the reason. */
static void test_blob_http_404(void **state)
{
	struct test_http_server *srv = NULL;
	_cleanup_free_ char *url = NULL;

	(void)state;
	assert_int_equal(test_http_server_start(false, &srv), 0);
	test_http_server_push(srv, &(struct test_http_reply){.path = "/c/encfs.img",
	                                                     .status = 404,
	                                                     .content_type = "text/plain",
	                                                     .body = "no such blob",
	                                                     .sticky = true});
	assert_true(asprintf(&url, "%s/c/encfs.img?sv=2022-11-02&sr=b&sig=SASSECRETSIGNATURE%%3D",
	                     test_http_server_url(srv)) > 0);
	for (size_t i = 0; i < ELEMENTSOF(accesses); i++) {
		struct key_script k = {.key = right_key};
		struct encfs_fs_config c;
		struct skr_error err = {0};

		test_log_capture_start(LOG_LEVEL_DEBUG);
		config_init(&c, url, accesses[i], &k);
		expect_failure(&c, ENCFS_STEP_BLOB, "404", &err);
		assert_null(strstr(err.msg, "SASSECRETSIGNATURE"));
		assert_false(test_log_has("SASSECRETSIGNATURE"));
		assert_int_equal(k.calls, 0);
	}
	assert_true(test_http_server_request_count(srv) >= 2);
	test_http_server_stop(srv);
}

/* The key function refuses (policy): the FUSE mount or the download made before is undone. */
static void test_key_policy_denied(void **state)
{
	_cleanup_free_ char *url = test_encfs_file_url(ext4_img);

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(accesses); i++) {
		struct key_script k = {.r = -EACCES, .step = ENCFS_STEP_POLICY};
		struct encfs_fs_config c;
		struct skr_error err = {0};

		test_log_capture_start(LOG_LEVEL_DEBUG);
		config_init(&c, url, accesses[i], &k);
		expect_failure(&c, ENCFS_STEP_POLICY, "policy says no", &err);
		assert_int_equal(err.code, -EACCES);
		assert_int_equal(k.calls, 1);
		/* The image was exposed before the key was asked for: that is what was undone. */
		assert_true(test_log_has(accesses[i] == ENCFS_ACCESS_FUSE
		                                 ? "image exposed through FUSE"
		                                 : "image downloaded"));
	}
}

/* A key function that names a step it may not (a blob or mount step): reported as release. */
static void test_key_step_normalised(void **state)
{
	_cleanup_free_ char *url = test_encfs_file_url(ext4_img);
	struct key_script k = {.r = -EIO, .step = ENCFS_STEP_MOUNT};
	struct encfs_fs_config c;
	struct skr_error err = {0};

	(void)state;
	config_init(&c, url, ENCFS_ACCESS_FUSE, &k);
	expect_failure(&c, ENCFS_STEP_RELEASE, NULL, &err);
	k = (struct key_script){.r = -EPROTO, .step = ENCFS_STEP_ATTEST};
	skr_error_clear(&err);
	expect_failure(&c, ENCFS_STEP_ATTEST, NULL, &err);
}

/* A plain ext4 image: the allowlist says "not a LUKS2 image" before any activation. */
static void test_not_luks(void **state)
{
	_cleanup_free_ char *url = test_encfs_file_url(ext4_img);

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(accesses); i++) {
		struct key_script k = {.key = right_key};
		struct encfs_fs_config c;
		struct skr_error err = {0};

		config_init(&c, url, accesses[i], &k);
		expect_failure(&c, ENCFS_STEP_HEADER, "not a LUKS2 image", &err);
		assert_int_equal(err.code, -EMEDIUMTYPE);
		assert_int_equal(k.calls, 1);
	}
}

/*
 * Shutdown while a pipeline runs: it stops at the next step boundary and undoes the FUSE mount
 * or download it made; the released key is erased, nothing is left.
 */
static void test_cancelled(void **state)
{
	_cleanup_free_ char *url = test_encfs_file_url(luks_img);

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(accesses); i++) {
		atomic_bool cancel;
		struct key_script k = {.key = right_key, .cancel = &cancel};
		struct encfs_fs_config c;
		struct skr_error err = {0};

		atomic_init(&cancel, false);
		config_init(&c, url, accesses[i], &k);
		c.cancel = &cancel;
		expect_failure(&c, ENCFS_STEP_RELEASE, "the sidecar is shutting down", &err);
		assert_int_equal(err.code, -ECANCELED);
		assert_int_equal(k.calls, 1);

		/* cancelled before it starts: nothing is fetched, no key asked for */
		k = (struct key_script){.key = right_key};
		c.key_userdata = &k;
		expect_failure(&c, ENCFS_STEP_BLOB, "shutting down", &err);
		assert_int_equal(k.calls, 0);
	}
}

/* A LUKS2 image and another key: "wrong key" with the fingerprint of the key that was tried. */
static void test_wrong_key(void **state)
{
	_cleanup_free_ char *url = test_encfs_file_url(luks_img);
	char fp[SKR_FINGERPRINT_STR_SIZE], right_fp[SKR_FINGERPRINT_STR_SIZE];

	(void)state;
	skr_key_fingerprint(wrong_key, KEY_LEN, fp);
	skr_key_fingerprint(right_key, KEY_LEN, right_fp);
	for (size_t i = 0; i < ELEMENTSOF(accesses); i++) {
		struct key_script k = {.key = wrong_key};
		struct encfs_fs_config c;
		struct skr_error err = {0};
		char line[800];

		test_log_capture_start(LOG_LEVEL_DEBUG);
		config_init(&c, url, accesses[i], &k);
		expect_failure(&c, ENCFS_STEP_KEY, fp, &err);
		assert_int_equal(err.code, -EPERM);
		assert_non_null(strstr(err.msg, "wrong key"));
		assert_null(strstr(err.msg, right_fp));
		/* The operator's line: a warning with the fingerprint to compare with importkey's. */
		snprintf(line, sizeof(line), "warn: filesystem 0 (%s): ", mount_point);
		assert_true(test_log_has(line));
		assert_true(test_log_has("compare the fingerprint"));
		assert_true(test_log_has_after(line, fp));
	}
}

/*
 * The right key. With device-mapper (the QEMU guest): mounted, the file readable through the
 * published mount point, then unmounted leaving nothing. Without (this host): the keyslot
 * accepts the key, so the failure is the activation's, reported as step mount, never as a
 * wrong key, and again nothing is left.
 */
static void test_right_key(void **state)
{
	_cleanup_free_ char *url = test_encfs_file_url(luks_img);
	char fp[SKR_FINGERPRINT_STR_SIZE];

	(void)state;
	skr_key_fingerprint(right_key, KEY_LEN, fp);
	for (size_t i = 0; i < ELEMENTSOF(accesses); i++) {
		struct key_script k = {.key = right_key};
		struct encfs_fs_config c;
		struct skr_error err = {0};
		struct encfs_fs *fs = NULL;
		enum encfs_step step;
		int r;

		test_log_capture_start(LOG_LEVEL_DEBUG);
		config_init(&c, url, accesses[i], &k);
		if (!have_dm) {
			expect_failure(&c, ENCFS_STEP_MOUNT, "LUKS open: ", &err);
			print_message("without device-mapper: %s\n", err.msg);
			assert_null(strstr(err.msg, "wrong key"));
			assert_false(test_log_has("wrong key"));
			continue;
		}
		r = encfs_fs_mount(&c, &fs, &step, &err);
		if (r < 0)
			fail_msg("step %s: %s", encfs_step_name(step), err.msg);
		{
			_cleanup_free_ char *text = NULL, *path = NULL;
			size_t len;

			assert_true(asprintf(&path, "%s/hello.txt", mount_point) > 0);
			assert_int_equal(read_file(path, 4096, &text, &len), 0);
			assert_string_equal(text, FILE_TEXT);
		}
		assert_int_equal(encfs_fs_unmount(fs, 10000, &err), 0);
		assert_nothing_left();
	}
}

/* A pinned root hash over a blob whose size is no verity layout of ours: step verity. */
static void test_verity_size(void **state)
{
	_cleanup_free_ char *url = test_encfs_file_url(odd_img);

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(accesses); i++) {
		struct key_script k = {.key = right_key};
		struct encfs_fs_config c;
		struct skr_error err = {0};

		config_init(&c, url, accesses[i], &k);
		c.verity_root_hash =
		        "4392712ba01368efdf14b05c76f9e4df0d53664630b5d48632ed17a137f39076";
		expect_failure(&c, ENCFS_STEP_VERITY, "verity_root_hash", &err);
		assert_int_equal(k.calls, 0);
	}
}

/* Refused before anything is touched. */
static void test_refused_configs(void **state)
{
	_cleanup_free_ char *url = test_encfs_file_url(ext4_img);
	struct key_script k = {.key = right_key};
	struct encfs_fs_config c;
	struct skr_error err = {0};

	(void)state;
	/* A download cannot carry writes back to the blob. */
	config_init(&c, url, ENCFS_ACCESS_DOWNLOAD, &k);
	c.read_write = true;
	expect_failure(&c, ENCFS_STEP_BLOB, "read_write needs access \"fuse\"", &err);

	skr_error_clear(&err);
	config_init(&c, url, ENCFS_ACCESS_FUSE, &k);
	c.mount_point = "relative/share";
	expect_failure(&c, ENCFS_STEP_BLOB, "mount_point must be an absolute path", &err);

	skr_error_clear(&err);
	config_init(&c, url, ENCFS_ACCESS_FUSE, &k);
	c.read_write = true;
	c.verity_root_hash = "4392712ba01368efdf14b05c76f9e4df0d53664630b5d48632ed17a137f39076";
	expect_failure(&c, ENCFS_STEP_BLOB, "read-only", &err);

	skr_error_clear(&err);
	config_init(&c, url, ENCFS_ACCESS_FUSE, &k);
	c.dm_prefix = "a/b";
	expect_failure(&c, ENCFS_STEP_BLOB, "dm_prefix", &err);
	assert_int_equal(k.calls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_step_names),
	        cmocka_unit_test(test_blob_missing_file),
	        cmocka_unit_test(test_blob_http_404),
	        cmocka_unit_test(test_key_policy_denied),
	        cmocka_unit_test(test_key_step_normalised),
	        cmocka_unit_test(test_not_luks),
	        cmocka_unit_test(test_cancelled),
	        cmocka_unit_test(test_wrong_key),
	        cmocka_unit_test(test_right_key),
	        cmocka_unit_test(test_verity_size),
	        cmocka_unit_test(test_refused_configs),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
