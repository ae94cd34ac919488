/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libcryptsetup.h>

#include "cleanup.h"
#include "fileio.h"
#include "test_encfs.h"
#include "test_proc.h"

/* e2fsprogs (Debian: /usr/sbin, also /sbin through the merged /usr) */
#define MKFS_EXT4 "/usr/sbin/mkfs.ext4"

int test_encfs_make_file(const char *path, uint64_t size)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	int r = fd < 0 || ftruncate(fd, (off_t)size) < 0 ? -1 : 0;

	if (fd >= 0)
		close(fd);
	return r;
}

int test_encfs_make_ext4(const char *path, uint64_t size, const char *src_dir)
{
	const char *const plain[] = {MKFS_EXT4, "-q", "-F", "-b", "4096", path, NULL};
	const char *const tree[] = {MKFS_EXT4, "-q", "-F", "-b", "4096", "-d", src_dir, path, NULL};
	const char *const *argv = src_dir ? tree : plain;
	struct test_proc_result res = {0};
	int r;

	if (test_encfs_make_file(path, size) < 0)
		return -1;
	r = test_proc_run(argv, NULL, &res);
	if (r == 0 && res.status != 0) {
		fprintf(stderr, "%s failed (%d): %s%s\n", argv[0], res.status, res.out, res.err);
		r = -1;
	}
	test_proc_result_clear(&res);
	return r;
}

int test_encfs_make_luks(const char *path, uint64_t size, const uint8_t *key, size_t key_len)
{
	struct crypt_device *cd = NULL;
	struct crypt_pbkdf_type pbkdf = {
	        .type = CRYPT_KDF_PBKDF2,
	        .hash = "sha256",
	        .iterations = 1000,
	        .flags = CRYPT_PBKDF_NO_BENCHMARK,
	};
	struct crypt_params_luks2 params = {.sector_size = 4096};
	int r;

	if (test_encfs_make_file(path, size) < 0)
		return -1;
	r = crypt_init(&cd, path);
	if (r == 0)
		r = crypt_set_pbkdf_type(cd, &pbkdf);
	if (r == 0)
		r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, NULL, 64, &params);
	if (r == 0)
		r = crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, NULL, 0, (const char *)key,
		                                    key_len);
	crypt_free(cd);
	if (r < 0) {
		fprintf(stderr, "LUKS format of %s: %s\n", path, strerror(-r));
		return -1;
	}
	return 0;
}

bool test_encfs_kernel_has_dm(void)
{
	_cleanup_free_ char *misc = NULL;
	size_t len;

	return read_file("/proc/misc", 1 << 16, &misc, &len) == 0 &&
	       strstr(misc, " device-mapper\n") != NULL;
}

char *test_encfs_file_url(const char *path)
{
	char *url;

	if (asprintf(&url, "file://%s", path) < 0)
		abort();
	return url;
}
