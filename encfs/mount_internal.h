/* SPDX-License-Identifier: MIT */
/*
 * Private to libencfs (mount.c, cleanup_stale.c): paths resolved without following symlinks,
 * and unmounting with a bound.
 *
 * The sidecar runs as root and works in directories the app container can write (the parent of
 * a mount point is often a volume shared with it). A path there is only used as a chain of
 * directory file descriptors opened with O_NOFOLLOW, one component at a time; the final
 * operation (mkdirat, symlinkat, renameat, unlinkat, a mount or unmount through
 * /proc/self/fd/<fd>) is relative to the last one. A symlink planted at any component, or swapped
 * in between a check and its use, is refused instead of followed.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "skr_error.h"

/*
 * Split the absolute @path into its normalized parent ("/a/b": no repeated '/', no "." and no
 * trailing '/') and its last component. "..", an empty last component ("/") or a component
 * longer than NAME_MAX is refused (-EINVAL/-ENAMETOOLONG); @what names the path in the error.
 */
int encfs_path_split(const char *path, const char *what, char **parent, char **name,
                     struct skr_error *err);

/*
 * An O_PATH file descriptor of the directory @path (absolute, without ".."), reached from "/"
 * one component at a time with O_NOFOLLOW. With @create, missing components are made with
 * @mode. -ELOOP names the component that is a symlink, -ENOTDIR one that is no directory,
 * -ENOENT one that is missing.
 */
int encfs_dir_open_nofollow(const char *path, bool create, mode_t mode, struct skr_error *err);

/*
 * Unmount @name in the directory @dir_fd (from encfs_dir_open_nofollow), never following a
 * symlink there: retry while busy for up to @timeout_ms, then detach lazily (the filesystem goes
 * once its last user closes it). @display is the path errors name. 1 when something was
 * unmounted, 0 when it is not a mount point or does not exist, or a negative errno; *@lazy (may
 * be NULL) tells whether the detach was lazy.
 */
int encfs_umount_at(int dir_fd, const char *name, const char *display, unsigned timeout_ms,
                    bool *lazy, struct skr_error *err);

/* encfs_umount_at() for the absolute @path, its parent opened with encfs_dir_open_nofollow(). */
int encfs_umount_bounded(const char *path, unsigned timeout_ms, bool *lazy, struct skr_error *err);
