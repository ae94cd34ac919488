/* SPDX-License-Identifier: MIT */
/*
 * dm-verity over a whole image (encfs/verity.c), everything that runs without device-mapper:
 *   1. the hash area size, table-driven, against the size veritysetup itself produces, and
 *      verity_layout_from_total() as its exact inverse (and refusing totals no layout fills);
 *   2. verity_format(): `veritysetup verify` (userspace) accepts the printed root hash at the
 *      data size as hash offset, and refuses it after one flipped byte in the data or in the
 *      tree; with a given salt the root hash equals the one `veritysetup format` computes;
 *   3. verity_open() without a name (userspace check of the whole tree) accepts the image and
 *      rejects a wrong root hash, a modified image, a bad hash string and a non-verity file;
 *   4. verity_open() with a name on a host without device-mapper fails with a reason (the
 *      activation itself is tested in the QEMU guest).
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/rand.h>

#include "cleanup.h"
#include "encfs.h"
#include "test_fs.h"
#include "test_proc.h"

#define MIB (1024u * 1024u)

static char tmpdir[] = "/tmp/test_verity.XXXXXX";

static const char *veritysetup(void)
{
	static const char *const paths[] = {"/usr/sbin/veritysetup", "/sbin/veritysetup",
	                                    "/usr/bin/veritysetup"};

	for (size_t i = 0; i < ELEMENTSOF(paths); i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	fail_msg("veritysetup not installed (package cryptsetup-bin)");
	return NULL;
}

static int run(const char *const *argv, char **out)
{
	struct test_proc_result res = {0};
	int status;

	assert_int_equal(test_proc_run(argv, NULL, &res), 0);
	status = res.status;
	if (out) {
		*out = res.out;
		res.out = NULL;
	}
	test_proc_result_clear(&res);
	return status;
}

/* A file of @size random bytes. */
static void make_random_file(const char *path, uint64_t size)
{
	uint8_t buf[65536];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	for (uint64_t done = 0; done < size; done += sizeof(buf)) {
		size_t n = size - done < sizeof(buf) ? (size_t)(size - done) : sizeof(buf);

		assert_int_equal(RAND_bytes(buf, (int)n), 1);
		assert_int_equal(write(fd, buf, n), (ssize_t)n);
	}
	close(fd);
}

static void flip_byte(const char *path, uint64_t off)
{
	uint8_t b;
	int fd = open(path, O_RDWR | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x01;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

static int veritysetup_verify(const char *img, uint64_t data_size, const char *root)
{
	char off[32];

	snprintf(off, sizeof(off), "--hash-offset=%llu", (unsigned long long)data_size);
	const char *argv[] = {veritysetup(), "verify", off, img, img, root, NULL};
	return run(argv, NULL);
}

static int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	test_fs_remove_at_exit(tmpdir);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * 1. Layout
 * ------------------------------------------------------------------------------------------- */

static void test_hash_area_size_table(void **state)
{
	/* superblock + levels of ceil(n / 128^k) blocks, for 4096-byte blocks and sha256 */
	static const struct {
		uint64_t data_blocks, area_blocks;
	} cases[] = {
	        {1, 1 + 0}, /* one block: the root is the block's own hash */
	        {2, 1 + 1},
	        {128, 1 + 1},
	        {129, 1 + 2 + 1},
	        {4096, 1 + 32 + 1},
	        {16384, 1 + 128 + 1},
	        {16385, 1 + 129 + 2 + 1},
	        {262144 /* 1 GiB */, 1 + 2048 + 16 + 1},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		uint64_t data = cases[i].data_blocks * 4096, got = 0;
		struct skr_error err = {0};

		assert_int_equal(verity_hash_area_size(data), cases[i].area_blocks * 4096);
		/* the inverse finds the data size again */
		if (cases[i].data_blocks > 1) {
			assert_int_equal(verity_layout_from_total(
			                         data + cases[i].area_blocks * 4096, &got, &err),
			                 0);
			assert_int_equal(got, data);
		}
	}
}

/* What veritysetup writes for the sizes a real image has (small ones are quick to hash). */
static void test_hash_area_size_matches_veritysetup(void **state)
{
	static const uint64_t data_blocks[] = {2, 128, 129, 4096, 4097, 20000};

	for (size_t i = 0; i < ELEMENTSOF(data_blocks); i++) {
		char path[600], off[48], blocks[48];
		uint64_t data = data_blocks[i] * 4096;

		snprintf(path, sizeof(path), "%s/vs-%zu.img", tmpdir, i);
		make_random_file(path, data);
		snprintf(off, sizeof(off), "--hash-offset=%llu", (unsigned long long)data);
		snprintf(blocks, sizeof(blocks), "--data-blocks=%llu",
		         (unsigned long long)data_blocks[i]);
		const char *argv[] = {veritysetup(), "format", off, blocks, path, path, NULL};
		assert_int_equal(run(argv, NULL), 0);
		/* veritysetup grows the file to exactly the end of the tree */
		assert_int_equal(file_size(path), data + verity_hash_area_size(data));
		unlink(path);
	}
}

static void test_layout_from_total_refuses(void **state)
{
	/* unaligned, too small, or in a gap: 128 data blocks give 130 in all, 129 give 133 */
	static const uint64_t bad[] = {0, 4095, 4096, 16 * MIB + 512, 131 * 4096, 132 * 4096};

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		uint64_t got = 0;
		struct skr_error err = {0};

		assert_int_equal(verity_layout_from_total(bad[i], &got, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "verity"));
	}
}

/* ---------------------------------------------------------------------------------------------
 * 2., 3. Format, verify
 * ------------------------------------------------------------------------------------------- */

static void test_format_and_verify(void **state)
{
	const uint64_t data = 20 * MIB;
	char img[600], root[65], root2[65];
	struct skr_error err = {0};
	char *dm_path = (char *)1;

	snprintf(img, sizeof(img), "%s/image.img", tmpdir);
	make_random_file(img, data);
	assert_int_equal(verity_format(img, data, NULL, root, &err), 0);
	assert_int_equal(strlen(root), 64);
	assert_int_equal(file_size(img), data + verity_hash_area_size(data));

	/* veritysetup (userspace) agrees */
	assert_int_equal(veritysetup_verify(img, data, root), 0);
	/* our own check without device-mapper */
	assert_int_equal(verity_open(img, NULL, root, &dm_path, &err), 0);
	assert_null(dm_path);

	/* a wrong root hash */
	memcpy(root2, root, sizeof(root));
	root2[0] = root2[0] == '0' ? '1' : '0';
	assert_int_not_equal(veritysetup_verify(img, data, root2), 0);
	assert_int_equal(verity_open(img, NULL, root2, NULL, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "modified"));

	/* bad root hash strings */
	static const char *const bad_roots[] = {"", "abc", "zz", NULL};
	for (size_t i = 0; i < ELEMENTSOF(bad_roots); i++) {
		skr_error_clear(&err);
		assert_int_equal(verity_open(img, NULL, bad_roots[i], NULL, &err), -EINVAL);
	}

	/* one flipped byte in the data (here: inside what would be the LUKS header) */
	flip_byte(img, 1000);
	assert_int_not_equal(veritysetup_verify(img, data, root), 0);
	skr_error_clear(&err);
	assert_int_equal(verity_open(img, NULL, root, NULL, &err), -EBADMSG);
	flip_byte(img, 1000);
	assert_int_equal(veritysetup_verify(img, data, root), 0);

	/* one flipped byte in the tree (the first hash block after the superblock) */
	flip_byte(img, data + 4096 + 7);
	assert_int_not_equal(veritysetup_verify(img, data, root), 0);
	skr_error_clear(&err);
	assert_int_equal(verity_open(img, NULL, root, NULL, &err), -EBADMSG);
	unlink(img);
}

static void test_format_with_salt_matches_veritysetup(void **state)
{
	static const char salt[] =
	        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	const uint64_t data = 4 * MIB;
	char a[600], b[600], root_a[65], root_b[65], off[48], *out = NULL;
	struct skr_error err = {0};

	snprintf(a, sizeof(a), "%s/salt-a.img", tmpdir);
	snprintf(b, sizeof(b), "%s/salt-b.img", tmpdir);
	make_random_file(a, data);
	{
		const char *argv[] = {"/bin/cp", a, b, NULL};
		assert_int_equal(run(argv, NULL), 0);
	}
	assert_int_equal(verity_format(a, data, salt, root_a, &err), 0);
	/* the same again: reproducible, the whole hash area included (UUID from the salt) */
	assert_int_equal(verity_format(b, data, salt, root_b, &err), 0);
	assert_string_equal(root_a, root_b);
	{
		const char *argv[] = {"/usr/bin/cmp", a, b, NULL};
		assert_int_equal(run(argv, NULL), 0);
	}
	/* veritysetup computes the same root hash for that salt */
	assert_int_equal(truncate(b, (off_t)data), 0);
	snprintf(off, sizeof(off), "--hash-offset=%llu", (unsigned long long)data);
	const char *argv[] = {veritysetup(), "format", off, "--salt", salt, b, b, NULL};
	assert_int_equal(run(argv, &out), 0);
	assert_non_null(strstr(out, root_a));
	free(out);

	/* a malformed salt */
	assert_int_equal(verity_format(a, data, "0011", root_a, &err), -EINVAL);
	unlink(a);
	unlink(b);
}

static void test_format_refuses(void **state)
{
	char img[600], root[65];
	struct skr_error err = {0};

	snprintf(img, sizeof(img), "%s/small.img", tmpdir);
	make_random_file(img, 8192);
	assert_int_equal(verity_format(img, 12288, NULL, root, &err), -EINVAL); /* past the end */
	skr_error_clear(&err);
	assert_int_equal(verity_format(img, 5000, NULL, root, &err), -EINVAL); /* unaligned */
	skr_error_clear(&err);
	assert_int_equal(verity_format(tmpdir, 4096, NULL, root, &err) < 0, 1); /* a directory */
	assert_int_equal(file_size(img), 8192);                                 /* untouched */

	/* no superblock where the layout puts it: a file of a verity-like size with no tree */
	{
		uint64_t data = 4096 * 4096;
		char fake[600];

		snprintf(fake, sizeof(fake), "%s/fake.img", tmpdir);
		make_random_file(fake, data + verity_hash_area_size(data));
		skr_error_clear(&err);
		assert_true(verity_open(fake, NULL,
		                        "00000000000000000000000000000000000000000000000"
		                        "00000000000000000",
		                        NULL, &err) < 0);
		assert_non_null(strstr(err.msg, "superblock"));
		unlink(fake);
	}
	unlink(img);
}

/* ---------------------------------------------------------------------------------------------
 * 4. Activation needs device-mapper
 * ------------------------------------------------------------------------------------------- */

static void test_open_without_device_mapper(void **state)
{
	const uint64_t data = 4 * MIB;
	char img[600], root[65];
	struct skr_error err = {0};
	char *dm_path = NULL;

	/* the node may exist without the driver (open fails with ENODEV), as on this host */
	int ctl = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
	if (ctl >= 0) {
		close(ctl);
		skip(); /* a host with device-mapper: activation is tested in the guest */
	}
	snprintf(img, sizeof(img), "%s/nodm.img", tmpdir);
	make_random_file(img, data);
	assert_int_equal(verity_format(img, data, NULL, root, &err), 0);
	assert_true(verity_open(img, "csc-test-verity", root, &dm_path, &err) < 0);
	assert_null(dm_path);
	assert_non_null(strstr(err.msg, "csc-test-verity"));
	/* closing what is not open is not an error */
	skr_error_clear(&err);
	assert_int_equal(verity_close("csc-test-verity", &err), 0);
	assert_int_equal(verity_close("", &err), -EINVAL);
	unlink(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_hash_area_size_table),
	        cmocka_unit_test(test_hash_area_size_matches_veritysetup),
	        cmocka_unit_test(test_layout_from_total_refuses),
	        cmocka_unit_test(test_format_and_verify),
	        cmocka_unit_test(test_format_with_salt_matches_veritysetup),
	        cmocka_unit_test(test_format_refuses),
	        cmocka_unit_test(test_open_without_device_mapper),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
