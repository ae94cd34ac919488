/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"
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

bool test_fs_mounted_below(const char *path)
{
	_cleanup_free_ char *text = NULL;
	size_t len, n = strlen(path);
	char *line, *save = NULL;

	if (read_file("/proc/self/mountinfo", 1 << 20, &text, &len) < 0) {
		fprintf(stderr, "cannot read /proc/self/mountinfo\n");
		abort();
	}
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char mp[4096];

		/* id parent major:minor root mount-point ... */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && strncmp(mp, path, n) == 0 &&
		    (mp[n] == '\0' || mp[n] == '/'))
			return true;
	}
	return false;
}

size_t test_fs_count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	size_t n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

bool test_fs_find_bytes(const char *dir, const void *needle, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;

	if (!d)
		return false;
	while (!found && (e = readdir(d))) {
		char path[4096];
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			found = test_fs_find_bytes(path, needle, len);
		} else if (S_ISREG(st.st_mode)) {
			_cleanup_free_ char *text = NULL;
			size_t n;

			found = read_file(path, 256u << 20, &text, &n) == 0 &&
			        memmem(text, n, needle, len) != NULL;
		}
	}
	closedir(d);
	return found;
}
