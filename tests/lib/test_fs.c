/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

#define AT_EXIT_MAX 8
static const char *at_exit_paths[AT_EXIT_MAX];
static size_t n_at_exit;

static void remove_at_exit(void)
{
	for (size_t i = n_at_exit; i-- > 0;)
		if (test_fs_rm_rf(at_exit_paths[i]) < 0)
			fprintf(stderr, "cannot remove %s\n", at_exit_paths[i]);
}

void test_fs_remove_at_exit(const char *path)
{
	if (n_at_exit == 0)
		atexit(remove_at_exit);
	if (n_at_exit == AT_EXIT_MAX) {
		fprintf(stderr, "test_fs_remove_at_exit: more than %d paths\n", AT_EXIT_MAX);
		abort();
	}
	at_exit_paths[n_at_exit++] = path;
}
