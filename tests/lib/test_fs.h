/* SPDX-License-Identifier: MIT */
/*
 * Temporary directories of tests: removing one recursively (now, or when the test process
 * exits, whatever way it exits normally or through a failed group setup).
 */
#pragma once

/* Remove @path and everything below it (symlinks are not followed); 0 or -errno. */
int test_fs_rm_rf(const char *path);

/*
 * Remove @path (a buffer that stays valid: a static mkdtemp() template) at exit, after the
 * processes registered later with test_proc_kill_at_exit() are killed (test_atexit.h).
 */
void test_fs_remove_at_exit(const char *path);
