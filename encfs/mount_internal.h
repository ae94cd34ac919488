/* SPDX-License-Identifier: MIT */
/*
 * Private to libencfs (mount.c, cleanup_stale.c, filesystem.c): paths resolved without following
 * symlinks, unmounting with a bound, and a mount held by descriptors for its teardown.
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
 * once its last user closes it). @name NULL: unmount what is mounted on the directory @dir_fd
 * itself (an O_PATH descriptor opened before the mount), wherever that directory is now.
 * @display is the path errors name. 1 when something was unmounted, 0 when it is not a mount
 * point or does not exist, or a negative errno; *@lazy (may be NULL) tells whether the detach was
 * lazy.
 */
int encfs_umount_at(int dir_fd, const char *name, const char *display, unsigned timeout_ms,
                    bool *lazy, struct skr_error *err);

/* encfs_umount_at() for the absolute @path, its parent opened with encfs_dir_open_nofollow(). */
int encfs_umount_bounded(const char *path, unsigned timeout_ms, bool *lazy, struct skr_error *err);

/*
 * A mount and its publication held by descriptors, from encfs_mount_ext4_held() until
 * encfs_unpublish_held(): the pipeline's teardown reaches the hidden directory, its parent and the
 * symlink's parent through these, never through their paths again. The app may rename the parent
 * away or swap any component of the paths for a symlink after publication; teardown still
 * unmounts exactly our mount and removes exactly our symlink (wherever its directory now is), and
 * touches nothing else.
 */
struct encfs_mount_hold {
	char *target;         /* the hidden directory's path when mounted; messages only */
	char *target_name;    /* its last component, in target_parent_fd */
	int target_parent_fd; /* O_PATH: the directory holding the hidden directory */
	int target_fd;        /* O_PATH: the hidden directory itself, below the mount */
	char *mount_point;    /* messages only */
	char *link_name;      /* the symlink's name, in link_parent_fd */
	char *link_text;      /* what it points at */
	int link_parent_fd;   /* O_PATH: the directory holding the symlink */
	dev_t link_dev;       /* the symlink itself: a replaced one is someone else's */
	ino_t link_ino;
};

#define ENCFS_MOUNT_HOLD_INIT                                                                      \
	{                                                                                          \
		.target_parent_fd = -1, .target_fd = -1, .link_parent_fd = -1                      \
	}

/* encfs_mount_ext4(), keeping the descriptors in @h (ENCFS_MOUNT_HOLD_INIT, nothing held yet). */
int encfs_mount_ext4_held(const char *device, const char *target, bool read_write,
                          struct encfs_mount_hold *h, struct skr_error *err);
/* encfs_publish() of @h's mount at @mount_point. A sibling of the hidden directory is published
 * in the directory mounted in (its held descriptor), so the relative link is next to the mount
 * whatever happened to the path since. */
int encfs_publish_held(struct encfs_mount_hold *h, const char *mount_point, struct skr_error *err);
/* encfs_unpublish() through the descriptors: our symlink (the same inode, the same text) is
 * removed, the mount on the held directory is unmounted (lazily after @timeout_ms, 0 = 5000), and
 * the directory is removed when it is still the one in its parent. Releases @h in every case. */
int encfs_unpublish_held(struct encfs_mount_hold *h, unsigned timeout_ms, struct skr_error *err);
/* Close and free what @h holds; the mount (if any) stays. */
void encfs_mount_hold_clear(struct encfs_mount_hold *h);
