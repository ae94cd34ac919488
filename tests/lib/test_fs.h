/* SPDX-License-Identifier: MIT */
/*
 * Temporary directories of tests: removing one recursively (now, or when the test process
 * exits, whatever way it exits normally or through a failed group setup), and checking that a
 * test left nothing behind (no mount, no file, no key bytes in any file).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Remove @path and everything below it (symlinks are not followed); 0 or -errno. */
int test_fs_rm_rf(const char *path);

/*
 * Remove @path (a buffer that stays valid: a static mkdtemp() template) at exit, after the
 * processes registered later with test_proc_kill_at_exit() are killed (test_atexit.h).
 */
void test_fs_remove_at_exit(const char *path);

/*
 * Whether a mount point in /proc/self/mountinfo is @path or below it. Aborts if mountinfo
 * cannot be read: "nothing mounted" must not be the answer of a failed read.
 */
bool test_fs_mounted_below(const char *path);

/* The entries of directory @path except "." and ".."; 0 when it cannot be opened. */
size_t test_fs_count_entries(const char *path);

/*
 * Whether any regular file below @dir (symlinks not followed, files up to 256 MiB) holds the
 * @len bytes @needle: a key that must never reach a file.
 */
bool test_fs_find_bytes(const char *dir, const void *needle, size_t len);
