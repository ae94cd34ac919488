/* SPDX-License-Identifier: MIT */
/* Private to libencfs (mount.c, cleanup_stale.c): unmounting with a bound. */
#pragma once

#include <stdbool.h>

#include "skr_error.h"

/*
 * Unmount @path (never following a symlink there): retry while busy for up to @timeout_ms, then
 * detach lazily (the filesystem goes once its last user closes it). 1 when something was
 * unmounted, 0 when @path is not a mount point or does not exist, or a negative errno;
 * *@lazy (may be NULL) tells whether the detach was lazy.
 */
int encfs_umount_bounded(const char *path, unsigned timeout_ms, bool *lazy, struct skr_error *err);
