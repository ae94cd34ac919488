/* SPDX-License-Identifier: MIT */
/*
 * Mounting the opened filesystem and handing it to the app. The app looks at mount_point; the
 * filesystem is mounted at a hidden sibling first and mount_point becomes a symlink to it in one
 * rename(2), so the app sees either nothing (or the empty directory it started with) or the
 * complete filesystem, never a half-mounted one.
 */
#include "encfs.h"
#include "mount_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <libmount.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "cleanup.h"
#include "fileio.h"
#include "log.h"

DEFINE_CLEANUP_FUNC(struct libmnt_context *, mnt_free_context)
DEFINE_CLEANUP_FUNC(DIR *, closedir)

#define UMOUNT_POLL_MS 100
#define UNPUBLISH_UMOUNT_TIMEOUT_MS 5000

/* Whether @path is the root of a mount: its device differs from its parent's. */
static int is_mount_point(const char *path)
{
	_cleanup_free_ char *parent = path_join(path, "..");
	struct stat st, pst;

	if (!parent)
		return -ENOMEM;
	if (lstat(path, &st) < 0 || stat(parent, &pst) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) && (st.st_dev != pst.st_dev || st.st_ino == pst.st_ino);
}

int encfs_mount_ext4(const char *device, const char *target, bool read_write, struct skr_error *err)
{
	_cleanup_(mnt_free_contextp) struct libmnt_context *cxt = NULL;
	const char *options = read_write ? "rw,nosuid,nodev" : "ro,noload,nosuid,nodev";
	bool created = false;
	struct stat st;
	int r;

	if (!device || !*device || !target || target[0] != '/')
		return skr_error_set(err, -EINVAL,
		                     "mount: device and an absolute target are needed");
	if (lstat(target, &st) < 0) {
		if (errno != ENOENT)
			return skr_error_set(err, -errno, "mount: %s: %s", target,
			                     skr_strerror(errno));
		r = mkdir_p(target, 0755);
		if (r < 0)
			return skr_error_set(err, r, "mount: cannot create %s: %s", target,
			                     skr_strerror(r));
		created = true;
	} else if (!S_ISDIR(st.st_mode)) {
		return skr_error_set(err, -ENOTDIR, "mount: %s exists and is not a directory",
		                     target);
	} else if (is_mount_point(target) > 0) {
		/* Mounting over it would stack a second filesystem; a leftover from a crash is for
		 * encfs_cleanup_stale(). */
		return skr_error_set(
		        err, -EBUSY,
		        "mount: %s is already a mount point (a leftover? stale cleanup "
		        "unmounts it)",
		        target);
	}

	cxt = mnt_new_context();
	if (!cxt) {
		r = skr_error_set(err, -ENOMEM, "mount: out of memory");
		goto fail;
	}
	/* Exactly this mount: no /sbin/mount.* helper, no fstab lookup, no path rewriting, and no
	 * silent read-only fallback when a read-write mount fails. */
	if (mnt_context_disable_helpers(cxt, 1) < 0 ||
	    mnt_context_disable_canonicalize(cxt, 1) < 0 ||
	    mnt_context_enable_rwonly_mount(cxt, read_write) < 0 ||
	    mnt_context_set_source(cxt, device) < 0 || mnt_context_set_target(cxt, target) < 0 ||
	    mnt_context_set_fstype(cxt, "ext4") < 0 || mnt_context_set_options(cxt, options) < 0) {
		r = skr_error_set(err, -ENOMEM, "mount: cannot set up the libmount context");
		goto fail;
	}
	r = mnt_context_mount(cxt);
	if (r != 0 || mnt_context_get_status(cxt) != 1) {
		char msg[256] = "";
		int sys = mnt_context_syscall_called(cxt) ? mnt_context_get_syscall_errno(cxt) : 0;

		mnt_context_get_excode(cxt, r, msg, sizeof(msg));
		r = skr_error_set(err, sys ? -sys : (r < 0 ? r : -EIO),
		                  "mount: ext4 %s at %s (%s) failed: %s%s", device, target, options,
		                  msg[0] ? msg : skr_strerror(sys ? sys : r),
		                  sys == EINVAL
		                          ? " (not an ext4 filesystem, or a wrong key made it "
		                            "unreadable?)"
		                          : "");
		goto fail;
	}
	log_info("mount: %s mounted at %s (%s)", device, target, options);
	return 0;

fail:
	if (created)
		rmdir(target);
	return r;
}

/* Whether @dir has no entries besides "." and "..". */
static int dir_is_empty(const char *dir)
{
	_cleanup_(closedirp) DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return -errno;
	errno = 0;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			return 0;
	return errno ? -errno : 1;
}

/* The symlink text for @target seen from @mount_point's directory: relative for siblings. */
static char *link_text(const char *target, const char *mount_point)
{
	_cleanup_free_ char *t = strdup(target), *m = strdup(mount_point);
	_cleanup_free_ char *tb = NULL;

	if (!t || !m)
		return NULL;
	tb = strdup(target);
	if (!tb)
		return NULL;
	if (strcmp(dirname(t), dirname(m)) == 0)
		return strdup(basename(tb));
	return strdup(target);
}

int encfs_publish(const char *target, const char *mount_point, struct skr_error *err)
{
	_cleanup_free_ char *text = NULL, *mp_copy = NULL, *tmp = NULL;
	static unsigned counter;
	const char *parent;
	bool replace_dir = false;
	struct stat st;
	int r;

	if (!target || !*target || !mount_point || mount_point[0] != '/')
		return skr_error_set(err, -EINVAL,
		                     "publish: a target and an absolute mount point are needed");
	text = link_text(target, mount_point);
	mp_copy = strdup(mount_point);
	if (!text || !mp_copy)
		return skr_error_set(err, -ENOMEM, "publish: out of memory");
	parent = dirname(mp_copy);
	r = mkdir_p(parent, 0755);
	if (r < 0)
		return skr_error_set(err, r, "publish: cannot create %s: %s", parent,
		                     skr_strerror(r));

	if (lstat(mount_point, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			r = dir_is_empty(mount_point);
			if (r < 0)
				return skr_error_set(err, r, "publish: cannot read %s: %s",
				                     mount_point, skr_strerror(r));
			if (r == 0)
				return skr_error_set(
				        err, -ENOTEMPTY,
				        "publish: %s is a non-empty directory; refusing to "
				        "hide its content behind the filesystem (empty it or "
				        "choose another mount_point)",
				        mount_point);
			replace_dir = true;
		} else if (!S_ISLNK(st.st_mode)) {
			return skr_error_set(err, -EEXIST,
			                     "publish: %s exists and is neither a directory nor a "
			                     "symlink; refusing to replace it",
			                     mount_point);
		}
	} else if (errno != ENOENT) {
		return skr_error_set(err, -errno, "publish: %s: %s", mount_point,
		                     skr_strerror(errno));
	}

	for (int attempt = 0;; attempt++) {
		free(tmp);
		if (asprintf(&tmp, "%s/.publish-%d-%u", parent, (int)getpid(),
		             __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED)) < 0) {
			tmp = NULL;
			return skr_error_set(err, -ENOMEM, "publish: out of memory");
		}
		if (symlink(text, tmp) == 0)
			break;
		if (errno != EEXIST || attempt == 10)
			return skr_error_set(err, -errno, "publish: cannot create symlink %s: %s",
			                     tmp, skr_strerror(errno));
	}

	if (replace_dir) {
		/* Swap the empty directory and the symlink in one step, then drop the directory. */
		if (renameat2(AT_FDCWD, tmp, AT_FDCWD, mount_point, RENAME_EXCHANGE) == 0) {
			if (rmdir(tmp) < 0)
				log_warn("publish: the directory that was at %s could not be "
				         "removed "
				         "from %s: %s",
				         mount_point, tmp, skr_strerror(errno));
			goto done;
		}
		if (errno != EINVAL && errno != ENOSYS) {
			r = -errno;
			goto fail;
		}
		/* A filesystem without RENAME_EXCHANGE: the empty directory goes first. */
		if (rmdir(mount_point) < 0 && errno != ENOENT) {
			r = -errno;
			goto fail;
		}
	}
	if (rename(tmp, mount_point) < 0) {
		r = -errno;
		goto fail;
	}
done:
	log_info("publish: %s -> %s", mount_point, text);
	return 0;

fail:
	unlink(tmp);
	return skr_error_set(err, r, "publish: cannot replace %s with a symlink to %s: %s",
	                     mount_point, text, skr_strerror(r));
}

int encfs_umount_bounded(const char *path, unsigned timeout_ms, bool *lazy, struct skr_error *err)
{
	unsigned waited = 0;

	if (lazy)
		*lazy = false;
	for (;;) {
		if (umount2(path, UMOUNT_NOFOLLOW) == 0)
			return 1;
		if (errno == EINVAL || errno == ENOENT)
			return 0; /* not (or no longer) a mount point */
		if (errno != EBUSY)
			return skr_error_set(err, -errno, "unmount %s: %s", path,
			                     skr_strerror(errno));
		if (waited >= timeout_ms)
			break;
		sleep_ms(UMOUNT_POLL_MS);
		waited += UMOUNT_POLL_MS;
	}
	/* Still in use (an app holding a file open): detach now, the kernel finishes later. */
	if (umount2(path, UMOUNT_NOFOLLOW | MNT_DETACH) < 0 && errno != EINVAL)
		return skr_error_set(err, -errno, "unmount %s (lazy): %s", path,
		                     skr_strerror(errno));
	log_warn("unmount: %s was busy for %u ms, detached lazily", path, timeout_ms);
	if (lazy)
		*lazy = true;
	return 1;
}

int encfs_unpublish(const char *target, const char *mount_point, struct skr_error *err)
{
	_cleanup_free_ char *text = NULL;
	char current[4096];
	struct stat st;
	ssize_t n;
	int r, ret = 0;

	if (!target || !*target || !mount_point || !*mount_point)
		return skr_error_set(err, -EINVAL,
		                     "unpublish: a target and a mount point are needed");
	text = link_text(target, mount_point);
	if (!text)
		return skr_error_set(err, -ENOMEM, "unpublish: out of memory");

	/* The symlink first: the app then sees the path vanish, never an empty directory. Only
	 * ours is removed; someone else's symlink or directory there is left alone. */
	if (lstat(mount_point, &st) == 0 && S_ISLNK(st.st_mode)) {
		n = readlink(mount_point, current, sizeof(current) - 1);
		if (n >= 0) {
			current[n] = '\0';
			if (strcmp(current, text) == 0 || strcmp(current, target) == 0) {
				if (unlink(mount_point) < 0 && errno != ENOENT)
					ret = skr_error_set(err, -errno,
					                    "unpublish: removing %s: %s",
					                    mount_point, skr_strerror(errno));
			} else {
				log_warn("unpublish: %s points at %s, not at %s: left in place",
				         mount_point, current, text);
			}
		}
	}

	r = encfs_umount_bounded(target, UNPUBLISH_UMOUNT_TIMEOUT_MS, NULL, err);
	if (r < 0)
		return ret < 0 ? ret : r;
	if (r > 0)
		log_info("unpublish: %s unmounted", target);
	if (rmdir(target) < 0 && errno != ENOENT) {
		r = skr_error_set(err, -errno, "unpublish: removing %s: %s", target,
		                  skr_strerror(errno));
		return ret < 0 ? ret : r;
	}
	return ret;
}
