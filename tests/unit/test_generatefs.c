/* SPDX-License-Identifier: MIT */
/*
 * generatefs' library (tools/generatefs/generatefs.h):
 *   1. size parsing, tree measurement and auto-size (table-driven);
 *   2. the encryption convention, proven against cryptsetup itself: an ext4 image encrypted by
 *      `cryptsetup reencrypt --encrypt` (userspace, rootless) must equal our encryption of the
 *      same plaintext under its volume key, byte for byte, for 512- and 4096-byte sectors, in
 *      the single-buffer and the threaded file variants; and our decryption of its ciphertext
 *      gives the plaintext back;
 *   3. generatefs_run(): the header as libcryptsetup reads it (LUKS2, aes xts-plain64, 512-bit
 *      key, sector size, data offset, pbkdf2-sha256 1000 iterations), the key opens the keyslot
 *      (check only, like `cryptsetup open --test-passphrase`) and a wrong key does not, the
 *      sidecar's LUKS2 header allowlist (encfs luks_header_check_file) accepts it, the
 *      decrypted ext4 holds the tree (contents, modes, owners, a symlink, an xattr, the root
 *      directory's mode) as debugfs reads it without mounting;
 *   4. reproducibility with a UUID: identical ext4 bytes, identical LUKS2 JSON except salts and
 *      digests; different volume keys;
 *   5. failures (missing source, existing output, a tree larger than the size, a bad key,
 *      cancellation) leave no file at all in the output directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <libcryptsetup.h>
#include <openssl/rand.h>

#include "cleanup.h"
#include "encfs.h"
#include "fileio.h"
#include "generatefs.h"
#include "secret.h"
#include "test_fs.h"
#include "test_proc.h"

#define MIB (1024u * 1024u)

static char tmpdir[] = "/tmp/test_generatefs.XXXXXX";
static char src[600];
static const uint8_t key_bytes[32] = "generatefs-unit-test-key-32bytes";

DEFINE_CLEANUP_FUNC(struct crypt_device *, crypt_free)

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

static void write_bytes(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static uint8_t *read_range(const char *path, uint64_t off, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_non_null(buf);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
	return buf;
}

/* Run @argv (NULL-terminated) and return its exit status; output in *@out if non-NULL. */
static int run(const char *const *argv, char **out)
{
	struct test_proc_result res = {0};
	int status;

	assert_int_equal(test_proc_run(argv, NULL, &res), 0);
	status = res.status;
	if (status != 0)
		print_message("%s exited %d: %s%s\n", argv[0], status, res.out, res.err);
	if (out) {
		*out = res.out;
		res.out = NULL;
	}
	test_proc_result_clear(&res);
	return status;
}

/* A tree with random data, a symlink, modes, owners and an xattr. */
static void make_tree(const char *dir)
{
	char p[700];
	uint8_t data[200000];

	assert_int_equal(mkdir_p(dir, 0755), 0);
	snprintf(p, sizeof(p), "%s/sub", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(RAND_bytes(data, sizeof(data)), 1);
	snprintf(p, sizeof(p), "%s/sub/random.bin", dir);
	write_bytes(p, data, sizeof(data));
	snprintf(p, sizeof(p), "%s/hello.txt", dir);
	write_bytes(p, "hello, confidential world\n", 26);
	assert_int_equal(chmod(p, 0640), 0);
	assert_int_equal(chown(p, 1234, 5678), 0);
	assert_int_equal(setxattr(p, "user.origin", "unit-test", 9, 0), 0);
	snprintf(p, sizeof(p), "%s/link", dir);
	assert_int_equal(symlink("hello.txt", p), 0);
	assert_int_equal(chmod(dir, 0750), 0);
}

static struct secret *test_key(void)
{
	struct secret *k = secret_new_copy(key_bytes, sizeof(key_bytes));

	assert_non_null(k);
	return k;
}

/* No file other than @keep (may be NULL) in @dir. */
static void assert_dir_holds_only(const char *dir, const char *keep)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (keep && !strcmp(e->d_name, keep))
			continue;
		fail_msg("unexpected file left in %s: %s", dir, e->d_name);
	}
	closedir(d);
}

static int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	test_fs_remove_at_exit(tmpdir);
	snprintf(src, sizeof(src), "%s/src", tmpdir);
	make_tree(src);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * 1. Sizes and trees
 * ------------------------------------------------------------------------------------------- */

static void test_parse_size(void **state)
{
	static const struct {
		const char *in;
		int r;
		uint64_t v;
	} cases[] = {
	        {"0", 0, 0},
	        {"4096", 0, 4096},
	        {"64M", 0, 64ull << 20},
	        {"64MiB", 0, 64ull << 20},
	        {"1G", 0, 1ull << 30},
	        {"2g", 0, 2ull << 30},
	        {"3K", 0, 3072},
	        {"1T", 0, 1ull << 40},
	        {"", -EINVAL, 0},
	        {"M", -EINVAL, 0},
	        {"-5M", -EINVAL, 0},
	        {"12X", -EINVAL, 0},
	        {"1.5G", -EINVAL, 0},
	        {"99999999999999999999", -EINVAL, 0},
	        {"99999999999999T", -EINVAL, 0},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		uint64_t v = 12345;
		int r = generatefs_parse_size(cases[i].in, &v);

		if (r != cases[i].r || (r == 0 && v != cases[i].v))
			fail_msg("parse_size('%s') = %d, %llu", cases[i].in, r,
			         (unsigned long long)v);
	}
}

static void test_scan_tree(void **state)
{
	struct generatefs_tree_stats st;
	struct skr_error err = {0};
	char missing[700], file[700];

	assert_int_equal(generatefs_scan_tree(src, &st, &err), 0);
	/* root, sub, sub/random.bin, hello.txt, link */
	assert_int_equal(st.inodes, 5);
	/* 200000 bytes = 49 blocks at least, plus directories */
	assert_true(st.data_blocks >= 49 + 2);
	assert_true(st.data_blocks < 49 + 20);
	assert_true(st.newest_mtime > 0);

	snprintf(missing, sizeof(missing), "%s/missing", tmpdir);
	assert_int_equal(generatefs_scan_tree(missing, &st, &err), -ENOENT);
	assert_non_null(strstr(err.msg, missing));
	skr_error_clear(&err);
	snprintf(file, sizeof(file), "%s/hello.txt", src);
	assert_int_equal(generatefs_scan_tree(file, &st, &err), -ENOTDIR);
}

static void test_auto_size(void **state)
{
	static const struct {
		uint64_t inodes, data_blocks;
	} cases[] = {
	        {1, 1},         {5, 60}, {1000, 1000}, {100000, 100000}, {10, 262144 /* 1 GiB */},
	        {200000, 1000},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct generatefs_tree_stats st = {.inodes = cases[i].inodes,
		                                   .data_blocks = cases[i].data_blocks};
		uint64_t s = generatefs_auto_fs_size(&st);
		uint64_t inodes = generatefs_auto_inodes(&st, s);

		assert_int_equal(s % MIB, 0);
		assert_true(s >= GENERATEFS_MIN_FS_SIZE);
		/* room for the data and the journal, not absurdly more */
		assert_true(s > st.data_blocks * 4096 + st.data_blocks * 4096 / 20);
		assert_true(s < st.data_blocks * 4096 * 2 + 64ull * MIB + st.inodes * 512);
		/* enough inodes, given explicitly when the default ratio is short */
		if (inodes)
			assert_true(inodes > st.inodes);
		else
			assert_true(s / 4096 >= st.inodes); /* ratio ≤ 16384 would give s/16384 */
	}
}

/* ---------------------------------------------------------------------------------------------
 * 2. The encryption convention against cryptsetup
 * ------------------------------------------------------------------------------------------- */

/* The volume key of a LUKS image opened with @key (libcryptsetup, as luksDump --dump-volume-key). */
static struct secret *volume_key_of(const char *img, const struct secret *key)
{
	_cleanup_(crypt_freep) struct crypt_device *cd = NULL;
	struct secret *vk = secret_new(64);
	size_t len = 64;

	assert_non_null(vk);
	assert_int_equal(crypt_init(&cd, img), 0);
	assert_int_equal(crypt_load(cd, CRYPT_LUKS2, NULL), 0);
	assert_true(crypt_volume_key_get(cd, CRYPT_ANY_SLOT, (char *)vk->data, &len,
	                                 (const char *)key->data, key->len) >= 0);
	assert_int_equal(len, 64);
	return vk;
}

static void check_against_cryptsetup(unsigned sector_size)
{
	_cleanup_secret_ struct secret *key = test_key(), *vk = NULL;
	_cleanup_free_ uint8_t *plain = NULL, *theirs = NULL, *ours = NULL;
	const size_t fs_len = 32 * MIB; /* ext4 size; the file is 64 MiB */
	char plain_img[700], enc_img[700], key_file[700], ours_img[700], sector[16];
	struct skr_error err = {0};
	int fd;

	snprintf(plain_img, sizeof(plain_img), "%s/plain-%u.img", tmpdir, sector_size);
	snprintf(enc_img, sizeof(enc_img), "%s/cryptsetup-%u.img", tmpdir, sector_size);
	snprintf(ours_img, sizeof(ours_img), "%s/ours-%u.img", tmpdir, sector_size);
	snprintf(key_file, sizeof(key_file), "%s/key-%u", tmpdir, sector_size);
	snprintf(sector, sizeof(sector), "%u", sector_size);
	write_bytes(key_file, key->data, key->len);

	/* plaintext ext4 in the first 32 MiB of a 64 MiB file (reencrypt needs the rest) */
	fd = open(plain_img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 64 * MIB), 0);
	close(fd);
	{
		const char *argv[] = {tool("mke2fs"), "-q", "-t",      "ext4", "-b", "4096",
		                      "-d",           src,  plain_img, "8192", NULL};
		assert_int_equal(run(argv, NULL), 0);
	}
	plain = read_range(plain_img, 0, fs_len);
	{
		const char *argv[] = {"/bin/cp", plain_img, enc_img, NULL};
		assert_int_equal(run(argv, NULL), 0);
	}
	{
		const char *argv[] = {tool("cryptsetup"),
		                      "reencrypt",
		                      "--encrypt",
		                      "--type",
		                      "luks2",
		                      "--reduce-device-size",
		                      "32M",
		                      "--sector-size",
		                      sector,
		                      "--pbkdf",
		                      "pbkdf2",
		                      "--pbkdf-force-iterations",
		                      "1000",
		                      "--key-file",
		                      key_file,
		                      "-q",
		                      enc_img,
		                      NULL};
		assert_int_equal(run(argv, NULL), 0);
	}
	vk = volume_key_of(enc_img, key);
	/* cryptsetup moved the data behind its 16 MiB header */
	theirs = read_range(enc_img, GENERATEFS_DATA_OFFSET, fs_len);
	assert_memory_not_equal(theirs, plain, 4096);

	/* buffer variant: encrypt the plaintext, compare everything */
	ours = malloc(fs_len);
	assert_non_null(ours);
	memcpy(ours, plain, fs_len);
	assert_int_equal(generatefs_xts_buffer(vk, sector_size, 0, ours, fs_len, true, &err), 0);
	assert_memory_equal(ours, theirs, fs_len);
	/* and decrypt cryptsetup's ciphertext back to the plaintext */
	memcpy(ours, theirs, fs_len);
	assert_int_equal(generatefs_xts_buffer(vk, sector_size, 0, ours, fs_len, false, &err), 0);
	assert_memory_equal(ours, plain, fs_len);

	/* threaded file variant, data at 16 MiB like in an image, 3 threads over 4 chunks */
	fd = open(ours_img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, plain, fs_len, GENERATEFS_DATA_OFFSET), (ssize_t)fs_len);
	assert_int_equal(generatefs_xts_fd(fd, GENERATEFS_DATA_OFFSET, fs_len, vk, sector_size,
	                                   true, 3, NULL, NULL, NULL, &err),
	                 0);
	close(fd);
	free(ours);
	ours = read_range(ours_img, GENERATEFS_DATA_OFFSET, fs_len);
	assert_memory_equal(ours, theirs, fs_len);

	unlink(plain_img);
	unlink(enc_img);
	unlink(ours_img);
}

static void test_xts_matches_cryptsetup_4096(void **state)
{
	check_against_cryptsetup(4096);
}

static void test_xts_matches_cryptsetup_512(void **state)
{
	check_against_cryptsetup(512);
}

/* The tweak is the 512-byte sector number: the same plaintext block at another position, or
 * with the other sector size, encrypts differently; the offset of a sub-buffer is honoured. */
static void test_xts_tweak(void **state)
{
	_cleanup_secret_ struct secret *vk = secret_new(64);
	uint8_t a[8192] = {0}, b[4096] = {0};
	struct skr_error err = {0};

	assert_non_null(vk);
	assert_int_equal(RAND_bytes(vk->data, 64), 1);
	assert_int_equal(generatefs_xts_buffer(vk, 4096, 0, a, sizeof(a), true, &err), 0);
	assert_memory_not_equal(a, a + 4096, 4096);
	/* the second 4096-byte sector of a buffer starting at sector 0 is sector512 = 8 */
	assert_int_equal(generatefs_xts_buffer(vk, 4096, 8, b, sizeof(b), true, &err), 0);
	assert_memory_equal(a + 4096, b, 4096);
	memset(b, 0, sizeof(b));
	assert_int_equal(generatefs_xts_buffer(vk, 512, 0, b, sizeof(b), true, &err), 0);
	assert_memory_equal(a, b, 512); /* first 512 bytes: same key, same tweak 0 */
	assert_memory_not_equal(a + 512, b + 512, 512);

	/* bad parameters */
	assert_int_equal(generatefs_xts_buffer(vk, 1024, 0, b, sizeof(b), true, &err), -EINVAL);
	assert_int_equal(generatefs_xts_buffer(vk, 4096, 0, b, 1000, true, &err), -EINVAL);
	vk->len = 32;
	assert_int_equal(generatefs_xts_buffer(vk, 4096, 0, b, sizeof(b), true, &err), -EINVAL);
	vk->len = 64;
}

/* ---------------------------------------------------------------------------------------------
 * 3. Whole images
 * ------------------------------------------------------------------------------------------- */

static int make_image(const char *out, const char *uuid, unsigned sector, uint64_t size,
                      const struct secret *key, struct generatefs_result *res,
                      struct skr_error *err)
{
	struct generatefs_options o = {
	        .src_dir = src,
	        .out_path = out,
	        .key = key,
	        .size = size,
	        .sector_size = sector,
	        .label = "unit",
	        .uuid = uuid,
	        .threads = 2,
	};

	return generatefs_run(&o, res, err);
}

/* Decrypt the data area of @img into @plain (0600, the caller removes it). */
static void decrypt_image(const char *img, const struct secret *key, unsigned sector,
                          const char *plain)
{
	_cleanup_secret_ struct secret *vk = volume_key_of(img, key);
	struct skr_error err = {0};
	struct stat st;
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	int fd;

	assert_int_equal(stat(img, &st), 0);
	len = (size_t)st.st_size - GENERATEFS_DATA_OFFSET;
	buf = read_range(img, GENERATEFS_DATA_OFFSET, len);
	assert_int_equal(generatefs_xts_buffer(vk, sector, 0, buf, len, false, &err), 0);
	fd = open(plain, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static char *debugfs(const char *img, const char *cmd)
{
	char *out = NULL;
	const char *argv[] = {tool("debugfs"), "-R", cmd, img, NULL};

	assert_int_equal(run(argv, &out), 0);
	return out;
}

static void check_image(unsigned sector)
{
	_cleanup_secret_ struct secret *key = test_key(), *wrong = test_key();
	_cleanup_(crypt_freep) struct crypt_device *cd = NULL;
	struct generatefs_result res;
	struct crypt_pbkdf_type pbkdf;
	struct skr_error err = {0};
	char img[700], plain[700];
	struct stat st;
	char *out;

	snprintf(img, sizeof(img), "%s/image-%u.img", tmpdir, sector);
	snprintf(plain, sizeof(plain), "%s/image-%u.plain", tmpdir, sector);
	assert_int_equal(make_image(img, NULL, sector, 0, key, &res, &err), 0);
	assert_int_equal(stat(img, &st), 0);
	assert_int_equal((uint64_t)st.st_size, res.image_size);
	assert_int_equal(res.luks_size, res.image_size);
	assert_int_equal(res.fs_size + GENERATEFS_DATA_OFFSET, res.luks_size);
	assert_true(res.auto_sized);

	/* the header, as `cryptsetup luksDump` would show it */
	assert_int_equal(crypt_init(&cd, img), 0);
	assert_int_equal(crypt_load(cd, CRYPT_LUKS2, NULL), 0);
	assert_string_equal(crypt_get_type(cd), CRYPT_LUKS2);
	assert_string_equal(crypt_get_cipher(cd), "aes");
	assert_string_equal(crypt_get_cipher_mode(cd), "xts-plain64");
	assert_int_equal(crypt_get_volume_key_size(cd), 64);
	assert_int_equal(crypt_get_sector_size(cd), (int)sector);
	assert_int_equal(crypt_get_data_offset(cd), GENERATEFS_DATA_OFFSET / 512);
	assert_string_equal(crypt_get_uuid(cd), res.luks_uuid);
	assert_string_equal(crypt_get_label(cd), "unit");
	assert_int_equal(crypt_keyslot_status(cd, 0), CRYPT_SLOT_ACTIVE_LAST);
	assert_int_equal(crypt_keyslot_get_pbkdf(cd, 0, &pbkdf), 0);
	assert_string_equal(pbkdf.type, CRYPT_KDF_PBKDF2);
	assert_string_equal(pbkdf.hash, "sha256");
	assert_int_equal(pbkdf.iterations, GENERATEFS_PBKDF2_ITERATIONS);

	/* the sidecar's allowlist for headers from untrusted storage accepts it */
	if (luks_header_check_file(img, &err) < 0)
		fail_msg("luks_header_check_file: %s", err.msg);

	/* the key opens the keyslot (name NULL: check only), a wrong key does not */
	assert_int_equal(crypt_activate_by_passphrase(cd, NULL, CRYPT_ANY_SLOT,
	                                              (const char *)key->data, key->len, 0),
	                 0);
	wrong->data[31] ^= 1;
	assert_int_equal(crypt_activate_by_passphrase(cd, NULL, CRYPT_ANY_SLOT,
	                                              (const char *)wrong->data, wrong->len, 0),
	                 -EPERM);

	/* the decrypted filesystem holds the tree */
	decrypt_image(img, key, sector, plain);
	out = debugfs(plain, "cat /hello.txt");
	assert_non_null(strstr(out, "hello, confidential world"));
	free(out);
	out = debugfs(plain, "stat /hello.txt");
	assert_non_null(strstr(out, "Mode:  0640"));
	assert_non_null(strstr(out, "User:  1234"));
	assert_non_null(strstr(out, "Group:  5678"));
	free(out);
	out = debugfs(plain, "ea_get /hello.txt user.origin");
	assert_non_null(strstr(out, "unit-test"));
	free(out);
	out = debugfs(plain, "stat /link");
	assert_non_null(strstr(out, "Type: symlink"));
	assert_non_null(strstr(out, "Fast link dest: \"hello.txt\""));
	free(out);
	out = debugfs(plain, "stat /");
	assert_non_null(strstr(out, "Mode:  0750"));
	free(out);
	out = debugfs(plain, "stat /sub");
	assert_non_null(strstr(out, "Mode:  0700"));
	free(out);
	{
		/* the random file byte for byte */
		char dump_cmd[800], dumped[700], orig[700];
		_cleanup_free_ char *a = NULL, *b = NULL;
		size_t alen, blen;

		snprintf(dumped, sizeof(dumped), "%s/dumped.bin", tmpdir);
		snprintf(orig, sizeof(orig), "%s/sub/random.bin", src);
		snprintf(dump_cmd, sizeof(dump_cmd), "dump /sub/random.bin %s", dumped);
		free(debugfs(plain, dump_cmd));
		assert_int_equal(read_file(dumped, 1 << 20, &a, &alen), 0);
		assert_int_equal(read_file(orig, 1 << 20, &b, &blen), 0);
		assert_int_equal(alen, blen);
		assert_memory_equal(a, b, alen);
		unlink(dumped);
	}
	{
		const char *argv[] = {tool("e2fsck"), "-fn", plain, NULL};
		assert_int_equal(run(argv, NULL), 0);
	}
	unlink(plain);
	unlink(img);
}

static void test_image_4096(void **state)
{
	check_image(4096);
}

static void test_image_512(void **state)
{
	check_image(512);
}

/* ---------------------------------------------------------------------------------------------
 * 4. Reproducibility
 * ------------------------------------------------------------------------------------------- */

/* Drop the fields that are random by design: salts and digests. */
static void strip_random(json_object *o)
{
	if (json_object_is_type(o, json_type_object)) {
		json_object_object_del(o, "salt");
		json_object_object_del(o, "digest");
		json_object_object_foreach(o, k, v)
		{
			(void)k;
			strip_random(v);
		}
	}
}

static json_object *luks_json(const char *img)
{
	/* the JSON area follows the 4096-byte binary header (LUKS2 on-disk format) */
	_cleanup_free_ uint8_t *area = read_range(img, 4096, 16384 - 4096);
	json_object *j = json_tokener_parse((const char *)area);

	assert_non_null(j);
	strip_random(j);
	return j;
}

static void test_reproducible_with_uuid(void **state)
{
	static const char uuid[] = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
	_cleanup_secret_ struct secret *key = test_key(), *vk1 = NULL, *vk2 = NULL;
	struct generatefs_result r1, r2;
	struct skr_error err = {0};
	char img1[700], img2[700], p1[700], p2[700];
	_cleanup_free_ char *a = NULL, *b = NULL;
	size_t alen, blen;
	json_object *j1, *j2;

	snprintf(img1, sizeof(img1), "%s/repro1.img", tmpdir);
	snprintf(img2, sizeof(img2), "%s/repro2.img", tmpdir);
	snprintf(p1, sizeof(p1), "%s/repro1.plain", tmpdir);
	snprintf(p2, sizeof(p2), "%s/repro2.plain", tmpdir);
	setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
	assert_int_equal(make_image(img1, uuid, 4096, 0, key, &r1, &err), 0);
	assert_int_equal(make_image(img2, uuid, 4096, 0, key, &r2, &err), 0);
	unsetenv("SOURCE_DATE_EPOCH");
	assert_string_equal(r1.luks_uuid, uuid);
	assert_string_equal(r2.luks_uuid, uuid);

	/* LUKS2 metadata: equal once salts and digests are removed */
	j1 = luks_json(img1);
	j2 = luks_json(img2);
	assert_true(json_object_equal(j1, j2));
	json_object_put(j1);
	json_object_put(j2);

	/* the ext4 bytes: identical */
	decrypt_image(img1, key, 4096, p1);
	decrypt_image(img2, key, 4096, p2);
	assert_int_equal(read_file(p1, 256 * MIB, &a, &alen), 0);
	assert_int_equal(read_file(p2, 256 * MIB, &b, &blen), 0);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);

	/* the volume keys (and so the ciphertext) differ: a random key per image */
	vk1 = volume_key_of(img1, key);
	vk2 = volume_key_of(img2, key);
	assert_memory_not_equal(vk1->data, vk2->data, 64);
	unlink(img1);
	unlink(img2);
	unlink(p1);
	unlink(p2);
}

/* ---------------------------------------------------------------------------------------------
 * 5. Failures leave nothing
 * ------------------------------------------------------------------------------------------- */

static void test_failures_leave_nothing(void **state)
{
	_cleanup_secret_ struct secret *key = test_key(), *short_key = secret_new(16);
	struct generatefs_result res;
	struct skr_error err = {0};
	char outdir[700], img[800], missing[700], bigsrc[700], big[800];
	uint8_t *data;
	int r;

	snprintf(outdir, sizeof(outdir), "%s/out", tmpdir);
	snprintf(img, sizeof(img), "%s/fail.img", outdir);
	assert_int_equal(mkdir(outdir, 0755), 0);

	/* missing source */
	snprintf(missing, sizeof(missing), "%s/no-such-dir", tmpdir);
	struct generatefs_options o = {.src_dir = missing, .out_path = img, .key = key};
	assert_int_equal(generatefs_run(&o, &res, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no-such-dir"));
	assert_dir_holds_only(outdir, NULL);

	/* a key of the wrong length */
	skr_error_clear(&err);
	o.src_dir = src;
	o.key = short_key;
	assert_int_equal(generatefs_run(&o, &res, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "32 bytes"));
	assert_dir_holds_only(outdir, NULL);
	o.key = key;

	/* a tree larger than --size: mke2fs runs out of blocks */
	snprintf(bigsrc, sizeof(bigsrc), "%s/bigsrc", tmpdir);
	assert_int_equal(mkdir(bigsrc, 0755), 0);
	snprintf(big, sizeof(big), "%s/big.bin", bigsrc);
	data = malloc(12 * MIB);
	assert_non_null(data);
	assert_int_equal(RAND_bytes(data, 12 * MIB), 1);
	write_bytes(big, data, 12 * MIB);
	free(data);
	skr_error_clear(&err);
	o.src_dir = bigsrc;
	o.size = 24 * MIB; /* 8 MiB of ext4 */
	assert_int_equal(generatefs_run(&o, &res, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "use a larger --size or --auto-size"));
	assert_dir_holds_only(outdir, NULL);
	/* auto-size fits it */
	skr_error_clear(&err);
	o.size = 0;
	r = generatefs_run(&o, &res, &err);
	if (r < 0)
		fail_msg("auto-size: %s", err.msg);
	assert_true(res.fs_size > 12 * MIB);
	assert_dir_holds_only(outdir, "fail.img");

	/* the output exists: refused without force, replaced with it */
	skr_error_clear(&err);
	o.src_dir = src;
	assert_int_equal(generatefs_run(&o, &res, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "--force"));
	assert_dir_holds_only(outdir, "fail.img");
	o.force = true;
	assert_int_equal(generatefs_run(&o, &res, &err), 0);
	assert_dir_holds_only(outdir, "fail.img");
	assert_int_equal(unlink(img), 0);

	/* cancelled (a signal handler sets the flag): no file */
	volatile sig_atomic_t cancel = 1;
	o.force = false;
	o.cancel = &cancel;
	skr_error_clear(&err);
	assert_int_equal(generatefs_run(&o, &res, &err), -ECANCELED);
	assert_dir_holds_only(outdir, NULL);

	/* bad options */
	static const struct {
		uint64_t size;
		unsigned sector;
		const char *label, *uuid;
	} bad[] = {
	        {20 * MIB + 1, 0, NULL, NULL}, {16 * MIB, 0, NULL, NULL},
	        {0, 1024, NULL, NULL},         {0, 0, "a-label-longer-than-16", NULL},
	        {0, 0, NULL, "not-a-uuid"},    {0, 0, NULL, "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0fZ"},
	};
	o.cancel = NULL;
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		o.size = bad[i].size;
		o.sector_size = bad[i].sector;
		o.label = bad[i].label;
		o.uuid = bad[i].uuid;
		skr_error_clear(&err);
		assert_int_equal(generatefs_run(&o, &res, &err), -EINVAL);
		assert_true(err.msg[0] != '\0');
		assert_dir_holds_only(outdir, NULL);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_size),
	        cmocka_unit_test(test_scan_tree),
	        cmocka_unit_test(test_auto_size),
	        cmocka_unit_test(test_xts_tweak),
	        cmocka_unit_test(test_xts_matches_cryptsetup_4096),
	        cmocka_unit_test(test_xts_matches_cryptsetup_512),
	        cmocka_unit_test(test_image_4096),
	        cmocka_unit_test(test_image_512),
	        cmocka_unit_test(test_reproducible_with_uuid),
	        cmocka_unit_test(test_failures_leave_nothing),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
