/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_atexit.h"
#include "test_fs.h"

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
		return errno; /* positive: nftw stops and returns it */
	return 0;
}

int test_fs_rm_rf(const char *path)
{
	int r = nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);

	if (r < 0) /* nftw itself: a missing @path is already removed */
		return errno == ENOENT ? 0 : -errno;
	return -r;
}

static void remove_at_exit(void *path)
{
	if (test_fs_rm_rf(path) < 0)
		fprintf(stderr, "cannot remove %s\n", (const char *)path);
}

void test_fs_remove_at_exit(const char *path)
{
	test_atexit(remove_at_exit, (void *)path);
}
