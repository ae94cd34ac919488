/* SPDX-License-Identifier: MIT */
/*
 * The real `generatefs` binary (GENERATEFS_BIN), checked with the real cryptsetup tools:
 *   1. --help explains the low pbkdf2 count; bad command lines exit 2 and create nothing;
 *   2. an image from a temporary tree with --generate-key --read-only-verity: the JSON summary,
 *      the key file (0600, 32 bytes) never printed, `cryptsetup luksDump` shows the expected
 *      header, `cryptsetup open --test-passphrase --key-file` accepts the key and refuses
 *      another, `veritysetup verify` accepts the printed root hash at the printed offset and
 *      refuses it after one flipped byte; progress lines on stderr (image over 64 MiB);
 *   3. --key-hex, --sector-size 512, --uuid: the header says so;
 *   4. runtime and input errors leave no image, no temporary file and no generated key: missing
 *      source, existing output (kept intact), wrong key length, a tree larger than --size, a
 *      full disk (a small tmpfs, when running as root);
 *   5. --upload to file:// and to Azurite with a SAS (page blob, bytes equal the image).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/rand.h>

#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "ossl.h"
#include "test_atexit.h"
#include "test_azurite.h"
#include "test_fs.h"
#include "test_proc.h"

#define MIB (1024u * 1024u)

static char tmpdir[] = "/tmp/test_generatefs_bin.XXXXXX";
static char src[600], outdir[600];
static const char *generatefs_bin;

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

/* The full path of @name (test_proc_tool()); the test fails when it is not installed. */
static const char *tool(const char *name)
{
	const char *path = test_proc_tool(name);

	if (!path)
		fail_msg("%s is not installed", name);
	return path;
}

/* Run @argv; the result (caller clears). */
static void run(const char *const *argv, struct test_proc_result *res)
{
	assert_int_equal(test_proc_run(argv, NULL, res), 0);
}

/* Run generatefs with @args (NULL-terminated). */
static void run_gfs(const char *const *args, struct test_proc_result *res)
{
	const char *argv[48] = {generatefs_bin};
	size_t n = 1;

	for (; args[n - 1] && n < 47; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	run(argv, res);
}

static int run_status(const char *const *argv)
{
	struct test_proc_result res = {0};
	int st;

	run(argv, &res);
	st = res.status;
	test_proc_result_clear(&res);
	return st;
}

static void write_bytes(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

/* Nothing in @dir except the names in @keep (NULL-terminated, may be NULL). */
static void assert_dir_holds_only(const char *dir, const char *const *keep)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d))) {
		bool ok = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");

		for (size_t i = 0; keep && keep[i] && !ok; i++)
			ok = !strcmp(e->d_name, keep[i]);
		if (!ok)
			fail_msg("unexpected file left in %s: %s", dir, e->d_name);
	}
	closedir(d);
}

static void flip_byte(const char *path, uint64_t off)
{
	uint8_t b;
	int fd = open(path, O_RDWR | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x80;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

static void make_tree(const char *dir)
{
	char p[700];
	uint8_t data[300000];

	assert_int_equal(mkdir_p(dir, 0755), 0);
	snprintf(p, sizeof(p), "%s/data", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	assert_int_equal(RAND_bytes(data, sizeof(data)), 1);
	snprintf(p, sizeof(p), "%s/data/blob.bin", dir);
	write_bytes(p, data, sizeof(data), 0644);
	snprintf(p, sizeof(p), "%s/README", dir);
	write_bytes(p, "encrypted example\n", 18, 0600);
	assert_int_equal(setxattr(p, "user.kind", "doc", 3, 0), 0);
	snprintf(p, sizeof(p), "%s/data/readme-link", dir);
	assert_int_equal(symlink("../README", p), 0);
}

static void clean_outdir(void)
{
	assert_int_equal(test_fs_rm_rf(outdir), 0);
	assert_int_equal(mkdir(outdir, 0755), 0);
}

static int group_setup(void **state)
{
	(void)state;
	generatefs_bin = getenv("GENERATEFS_BIN");
	if (!generatefs_bin) {
		fprintf(stderr, "GENERATEFS_BIN must be set (meson test does)\n");
		return -1;
	}
	if (!mkdtemp(tmpdir))
		return -1;
	test_fs_remove_at_exit(tmpdir);
	snprintf(src, sizeof(src), "%s/src", tmpdir);
	snprintf(outdir, sizeof(outdir), "%s/out", tmpdir);
	make_tree(src);
	return mkdir(outdir, 0755);
}

/* ---------------------------------------------------------------------------------------------
 * 1. Command line
 * ------------------------------------------------------------------------------------------- */

static void test_help_and_usage_errors(void **state)
{
	struct test_proc_result res = {0};
	char img[700], key[700];

	clean_outdir();
	run_gfs((const char *const[]){"--help", NULL}, &res);
	assert_int_equal(res.status, 0);
	assert_non_null(strstr(res.out, "pbkdf2"));
	assert_non_null(strstr(res.out, "adds no security"));
	test_proc_result_clear(&res);

	snprintf(img, sizeof(img), "%s/x.img", outdir);
	snprintf(key, sizeof(key), "%s/x.key", outdir);
	const char *const *cases[] = {
	        (const char *const[]){"--bogus", NULL},
	        (const char *const[]){"--out", "X", "--generate-key", "K", NULL},
	        (const char *const[]){"--dir", "D", "--generate-key", "K", NULL},
	        (const char *const[]){"--dir", "D", "--out", "X", NULL},
	        (const char *const[]){"--dir", "D", "--out", "X", "--key-hex", "00",
	                              "--generate-key", "K", NULL},
	        (const char *const[]){"--dir", "D", "--out", "X", "--key-hex", "00", "--size",
	                              "12Q", NULL},
	        (const char *const[]){"--dir", "D", "--out", "X", "--key-hex", "00",
	                              "--sector-size", "1024", NULL},
	        (const char *const[]){"--dir", "D", "--out", "X", "--key-hex", "00", "--size",
	                              "64M", "--auto-size", NULL},
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		run_gfs(cases[i], &res);
		if (res.status != 2)
			fail_msg("case %zu: exit %d: %s", i, res.status, res.err);
		assert_int_equal(res.out_len, 0);
		assert_non_null(strstr(res.err, "generatefs: "));
		/* one line */
		assert_ptr_equal(strchr(res.err, '\n'), res.err + res.err_len - 1);
		test_proc_result_clear(&res);
	}
	/* a wrong key length (hex) */
	run_gfs((const char *const[]){"--dir", src, "--out", img, "--key-hex", "abcd", NULL}, &res);
	assert_int_equal(res.status, 2);
	assert_non_null(strstr(res.err, "64 hex digits"));
	test_proc_result_clear(&res);
	assert_dir_holds_only(outdir, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * 2. An image, checked with cryptsetup and veritysetup
 * ------------------------------------------------------------------------------------------- */

static json_object *parse_summary(const char *out)
{
	json_object *j = json_tokener_parse(out);

	assert_non_null(j);
	return j;
}

static const char *jstr(json_object *j, const char *k)
{
	json_object *v;

	assert_true(json_object_object_get_ex(j, k, &v));
	return json_object_get_string(v);
}

static int64_t jint(json_object *j, const char *k)
{
	json_object *v;

	assert_true(json_object_object_get_ex(j, k, &v));
	return json_object_get_int64(v);
}

static void test_image_with_verity(void **state)
{
	struct test_proc_result res = {0};
	char img[700], key[700], wrong[700], key_hex[65], off[48];
	_cleanup_free_ char *key_data = NULL;
	size_t key_len;
	struct stat st;
	json_object *j, *v;
	const char *root;
	int64_t hash_offset;

	clean_outdir();
	snprintf(img, sizeof(img), "%s/app.img", outdir);
	snprintf(key, sizeof(key), "%s/app.key", outdir);
	run_gfs((const char *const[]){"--dir", src, "--out", img, "--generate-key", key, "--size",
	                              "96M", "--label", "appdata", "--read-only-verity",
	                              "--threads", "2", NULL},
	        &res);
	if (res.status != 0)
		fail_msg("generatefs: %s", res.err);

	/* the key: 0600, 32 bytes, printed nowhere */
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(read_file(key, 1024, &key_data, &key_len), 0);
	assert_int_equal(key_len, 32);
	hex_encode(key_data, key_len, key_hex);
	assert_null(strstr(res.out, key_hex));
	assert_null(strstr(res.err, key_hex));
	assert_null(memmem(res.out, res.out_len, key_data, 8));
	/* progress for an image over 64 MiB */
	assert_non_null(strstr(res.err, "encrypting"));

	/* the summary */
	j = parse_summary(res.out);
	assert_string_equal(jstr(j, "image"), img);
	assert_string_equal(jstr(j, "cipher"), "aes-xts-plain64");
	assert_int_equal(jint(j, "sector_size"), 4096);
	assert_int_equal(jint(j, "key_size_bits"), 512);
	assert_int_equal(jint(j, "data_offset"), 16 * MIB);
	assert_int_equal(jint(j, "luks_size"), 96 * MIB);
	assert_int_equal(jint(j, "size"), (int64_t)file_size(img));
	assert_string_equal(jstr(j, "key_file"), key);
	assert_true(json_object_get_boolean(json_object_object_get(j, "key_generated")));
	assert_int_equal(strlen(jstr(j, "luks_uuid")), 36);
	assert_true(json_object_object_get_ex(j, "verity", &v));
	root = jstr(v, "root_hash");
	hash_offset = jint(v, "hash_offset");
	assert_int_equal(strlen(root), 64);
	assert_int_equal(hash_offset, 96 * MIB);
	assert_true(file_size(img) > 96 * MIB);

	/* cryptsetup luksDump shows the expected header */
	{
		const char *argv[] = {tool("cryptsetup"), "luksDump", img, NULL};
		char uuid_line[80];

		test_proc_result_clear(&res);
		run(argv, &res);
		assert_int_equal(res.status, 0);
		snprintf(uuid_line, sizeof(uuid_line), "%s", jstr(j, "luks_uuid"));
		static const char *const expect[] = {
		        "Version:       \t2",       "cipher: aes-xts-plain64",
		        "sector: 4096 [bytes]",     "offset: 16777216 [bytes]",
		        "Key:        512 bits",     "PBKDF:      pbkdf2",
		        "Hash:       sha256",       "Iterations: 1000",
		        "Label:         \tappdata",
		};
		for (size_t i = 0; i < ELEMENTSOF(expect); i++)
			if (!strstr(res.out, expect[i]))
				fail_msg("luksDump lacks '%s':\n%s", expect[i], res.out);
		assert_non_null(strstr(res.out, uuid_line));
		test_proc_result_clear(&res);
	}
	/* the key opens the keyslot, another does not */
	{
		const char *argv[] = {tool("cryptsetup"),
		                      "open",
		                      "--test-passphrase",
		                      "--key-file",
		                      key,
		                      img,
		                      NULL};
		assert_int_equal(run_status(argv), 0);
	}
	{
		uint8_t other[32];

		assert_int_equal(RAND_bytes(other, sizeof(other)), 1);
		snprintf(wrong, sizeof(wrong), "%s/wrong.key", tmpdir);
		write_bytes(wrong, other, sizeof(other), 0600);
		const char *argv[] = {tool("cryptsetup"),
		                      "open",
		                      "--test-passphrase",
		                      "--key-file",
		                      wrong,
		                      img,
		                      NULL};
		assert_int_not_equal(run_status(argv), 0);
	}
	/* veritysetup verify with the printed root hash and offset */
	snprintf(off, sizeof(off), "--hash-offset=%lld", (long long)hash_offset);
	{
		const char *argv[] = {tool("veritysetup"), "verify", off, img, img, root, NULL};
		assert_int_equal(run_status(argv), 0);
		flip_byte(img, 20 * MIB + 12345); /* in the encrypted ext4 */
		assert_int_not_equal(run_status(argv), 0);
		flip_byte(img, 20 * MIB + 12345);
		assert_int_equal(run_status(argv), 0);
		flip_byte(img, 100); /* in the LUKS header: covered too */
		assert_int_not_equal(run_status(argv), 0);
	}
	json_object_put(j);
	assert_dir_holds_only(outdir, (const char *const[]){"app.img", "app.key", NULL});
}

/* ---------------------------------------------------------------------------------------------
 * 3. Options reach the header
 * ------------------------------------------------------------------------------------------- */

static void test_key_hex_sector_512_uuid(void **state)
{
	static const char uuid[] = "6a1c1f43-9f4e-4d6b-a1a4-3e3c1f0d2b7a";
	struct test_proc_result res = {0};
	char img[700], keyfile[700], hex[65];
	uint8_t key[32];
	json_object *j;

	clean_outdir();
	assert_int_equal(RAND_bytes(key, sizeof(key)), 1);
	hex_encode(key, sizeof(key), hex);
	snprintf(img, sizeof(img), "%s/small.img", outdir);
	snprintf(keyfile, sizeof(keyfile), "%s/hex.key", tmpdir);
	/* a key file holding hex and a newline, as `openssl rand -hex 32 >` writes it */
	{
		char line[66];

		snprintf(line, sizeof(line), "%s\n", hex);
		write_bytes(keyfile, line, 65, 0600);
	}
	run_gfs((const char *const[]){"--dir", src, "--out", img, "--key-hex", hex, "--sector-size",
	                              "512", "--uuid", uuid, "--auto-size", NULL},
	        &res);
	if (res.status != 0)
		fail_msg("generatefs: %s", res.err);
	assert_null(strstr(res.out, hex));
	j = parse_summary(res.out);
	assert_string_equal(jstr(j, "luks_uuid"), uuid);
	assert_int_equal(jint(j, "sector_size"), 512);
	assert_true(json_object_get_boolean(json_object_object_get(j, "auto_size")));
	assert_null(json_object_object_get(j, "verity"));
	assert_null(json_object_object_get(j, "key_file"));
	/* small tree: no progress output */
	assert_null(strstr(res.err, "encrypting"));
	json_object_put(j);
	test_proc_result_clear(&res);

	{
		const char *argv[] = {tool("cryptsetup"), "luksDump", img, NULL};
		run(argv, &res);
		assert_int_equal(res.status, 0);
		assert_non_null(strstr(res.out, "sector: 512 [bytes]"));
		assert_non_null(strstr(res.out, uuid));
		test_proc_result_clear(&res);
	}
	{
		/* the same key, given as a hex file, opens it */
		char raw[700];

		snprintf(raw, sizeof(raw), "%s/raw.key", tmpdir);
		write_bytes(raw, key, sizeof(key), 0600);
		const char *argv[] = {tool("cryptsetup"),
		                      "open",
		                      "--test-passphrase",
		                      "--key-file",
		                      raw,
		                      img,
		                      NULL};
		assert_int_equal(run_status(argv), 0);
	}
	/* --force replaces it, built from the hex key file */
	run_gfs((const char *const[]){"--dir", src, "--out", img, "--key-file", keyfile, "--force",
	                              NULL},
	        &res);
	assert_int_equal(res.status, 0);
	test_proc_result_clear(&res);
	assert_dir_holds_only(outdir, (const char *const[]){"small.img", NULL});
}

/* ---------------------------------------------------------------------------------------------
 * 4. Failures leave nothing
 * ------------------------------------------------------------------------------------------- */

static void expect_failure(const char *const *args, int status, const char *msg,
                           const char *const *keep)
{
	struct test_proc_result res = {0};

	run_gfs(args, &res);
	if (res.status != status || !strstr(res.err, msg))
		fail_msg("expected exit %d with '%s', got %d: %s", status, msg, res.status,
		         res.err);
	assert_int_equal(res.out_len, 0);
	test_proc_result_clear(&res);
	assert_dir_holds_only(outdir, keep);
}

static void test_failures_leave_nothing(void **state)
{
	char img[700], key[700], gen[700], missing[700], bigsrc[700], big[800], shortkey[700];
	uint8_t k[32], *data;

	clean_outdir();
	snprintf(img, sizeof(img), "%s/f.img", outdir);
	snprintf(key, sizeof(key), "%s/k", tmpdir);
	snprintf(gen, sizeof(gen), "%s/gen.key", outdir);
	snprintf(missing, sizeof(missing), "%s/missing", tmpdir);
	snprintf(shortkey, sizeof(shortkey), "%s/short.key", tmpdir);
	assert_int_equal(RAND_bytes(k, sizeof(k)), 1);
	write_bytes(key, k, sizeof(k), 0600);
	write_bytes(shortkey, k, 16, 0600);

	/* the source is missing; the generated key is removed again */
	expect_failure(
	        (const char *const[]){"--dir", missing, "--out", img, "--generate-key", gen, NULL},
	        2, "missing", NULL);
	/* a key file of the wrong length */
	expect_failure(
	        (const char *const[]){"--dir", src, "--out", img, "--key-file", shortkey, NULL}, 2,
	        "holds 16 bytes", NULL);
	/* the tree is larger than --size */
	snprintf(bigsrc, sizeof(bigsrc), "%s/bigsrc", tmpdir);
	assert_int_equal(mkdir(bigsrc, 0755), 0);
	snprintf(big, sizeof(big), "%s/big.bin", bigsrc);
	data = malloc(20 * MIB);
	assert_non_null(data);
	assert_int_equal(RAND_bytes(data, 20 * MIB), 1);
	write_bytes(big, data, 20 * MIB, 0644);
	free(data);
	expect_failure((const char *const[]){"--dir", bigsrc, "--out", img, "--key-file", key,
	                                     "--size", "32M", NULL},
	               2, "use a larger --size or --auto-size", NULL);

	/* the output exists: refused, left intact */
	write_bytes(img, "precious", 8, 0644);
	expect_failure((const char *const[]){"--dir", src, "--out", img, "--key-file", key, NULL},
	               2, "--force", (const char *const[]){"f.img", NULL});
	assert_int_equal(file_size(img), 8);
	/* an existing --generate-key target is never overwritten */
	write_bytes(gen, "old", 3, 0600);
	expect_failure((const char *const[]){"--dir", src, "--out", img, "--generate-key", gen,
	                                     "--force", NULL},
	               2, "never overwritten", (const char *const[]){"f.img", "gen.key", NULL});
	assert_int_equal(file_size(gen), 3);
	assert_int_equal(file_size(img), 8);
}

static char tmpfs_dir[700];

static void umount_tmpfs(void *arg)
{
	(void)arg;
	if (tmpfs_dir[0])
		umount2(tmpfs_dir, MNT_DETACH);
}

/* A full disk: a 24 MiB tmpfs cannot hold a 40 MiB image. Needs root for the mount. */
static void test_disk_full(void **state)
{
	char img[800], key[700];
	uint8_t k[32];

	if (geteuid() != 0)
		skip();
	snprintf(tmpfs_dir, sizeof(tmpfs_dir), "%s/small-fs", tmpdir);
	snprintf(img, sizeof(img), "%s/f.img", tmpfs_dir);
	snprintf(key, sizeof(key), "%s/k", tmpdir);
	assert_int_equal(RAND_bytes(k, sizeof(k)), 1);
	write_bytes(key, k, sizeof(k), 0600);
	assert_int_equal(mkdir(tmpfs_dir, 0755), 0);
	assert_int_equal(mount("tmpfs", tmpfs_dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=24m"), 0);
	test_atexit(umount_tmpfs, NULL);

	struct test_proc_result res = {0};
	run_gfs((const char *const[]){"--dir", src, "--out", img, "--key-file", key, "--size",
	                              "40M", NULL},
	        &res);
	assert_int_equal(res.status, 1);
	assert_non_null(strstr(res.err, "out of disk space"));
	test_proc_result_clear(&res);
	assert_dir_holds_only(tmpfs_dir, NULL);
	assert_int_equal(umount2(tmpfs_dir, 0), 0);
	tmpfs_dir[0] = '\0';
}

/* ---------------------------------------------------------------------------------------------
 * 5. Upload
 * ------------------------------------------------------------------------------------------- */

static void assert_files_equal(const char *a, const char *b)
{
	const char *argv[] = {tool("cmp"), a, b, NULL};

	assert_int_equal(run_status(argv), 0);
}

static void test_upload_file_url(void **state)
{
	struct test_proc_result res = {0};
	char img[700], copy[700], url[800], key[700];
	uint8_t k[32];
	json_object *j;

	clean_outdir();
	snprintf(img, sizeof(img), "%s/u.img", outdir);
	snprintf(copy, sizeof(copy), "%s/uploaded.img", tmpdir);
	snprintf(url, sizeof(url), "file://%s", copy);
	snprintf(key, sizeof(key), "%s/k", tmpdir);
	assert_int_equal(RAND_bytes(k, sizeof(k)), 1);
	write_bytes(key, k, sizeof(k), 0600);
	run_gfs((const char *const[]){"--dir", src, "--out", img, "--key-file", key,
	                              "--read-only-verity", "--upload", url, NULL},
	        &res);
	if (res.status != 0)
		fail_msg("generatefs: %s", res.err);
	j = parse_summary(res.out);
	assert_string_equal(jstr(j, "uploaded_to"), url);
	json_object_put(j);
	test_proc_result_clear(&res);
	assert_files_equal(img, copy);
	unlink(copy);
}

static struct test_azurite az = {.pid = -1};

static void test_upload_azurite_sas(void **state)
{
	struct test_proc_result res = {0};
	char img[700], key[700], azdir[700], sig[256];
	_cleanup_free_ char *sas = NULL, *url = NULL, *local = NULL;
	_cleanup_free_ uint8_t *blob = NULL;
	size_t blob_len, local_len;
	uint8_t k[32];

	if (!test_azurite_bin()) {
		const char *allow = getenv("SKR_ALLOW_SKIP");

		if (allow && !strcmp(allow, "1"))
			skip();
		fail_msg("Azurite not installed (tools/install-deps.sh); SKR_ALLOW_SKIP=1 skips");
	}
	snprintf(azdir, sizeof(azdir), "%s/azurite", tmpdir);
	assert_int_equal(test_azurite_start(&az, azdir, true), 0);
	assert_int_equal(test_azurite_create_container(&az, "images", false), 0);
	sas = test_azurite_blob_sas("images", "app.img", "rcw", time(NULL) + 3600, NULL);
	assert_non_null(sas);
	url = test_azurite_blob_url(&az, 0, "images", "app.img", sas);
	assert_non_null(url);
	test_azurite_sas_signature(sas, sig, sizeof(sig));
	assert_true(strlen(sig) > 10);

	clean_outdir();
	snprintf(img, sizeof(img), "%s/az.img", outdir);
	snprintf(key, sizeof(key), "%s/k", tmpdir);
	assert_int_equal(RAND_bytes(k, sizeof(k)), 1);
	write_bytes(key, k, sizeof(k), 0600);
	run_gfs((const char *const[]){"--dir", src, "--out", img, "--key-file", key, "--upload",
	                              url, "--parallel", "3", NULL},
	        &res);
	if (res.status != 0)
		fail_msg("generatefs: %s", res.err);
	/* the SAS signature is a secret: redacted in the summary */
	assert_null(strstr(res.out, sig));
	assert_null(strstr(res.err, sig));
	test_proc_result_clear(&res);

	assert_int_equal(test_azurite_get_blob(&az, "images", "app.img", &blob, &blob_len), 0);
	assert_int_equal(read_file(img, 256 * MIB, &local, &local_len), 0);
	assert_int_equal(blob_len, local_len);
	assert_memory_equal(blob, local, local_len);
	test_azurite_stop(&az);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_help_and_usage_errors),
	        cmocka_unit_test(test_image_with_verity),
	        cmocka_unit_test(test_key_hex_sector_512_uuid),
	        cmocka_unit_test(test_failures_leave_nothing),
	        cmocka_unit_test(test_disk_full),
	        cmocka_unit_test(test_upload_file_url),
	        cmocka_unit_test(test_upload_azurite_sas),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
