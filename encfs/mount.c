/* SPDX-License-Identifier: MIT */
/*
 * Mounting the opened filesystem and handing it to the app. The app looks at mount_point; the
 * filesystem is mounted at a hidden sibling first and mount_point becomes a symlink to it in one
 * rename(2), so the app sees either nothing (or the empty directory it started with) or the
 * complete filesystem, never a half-mounted one.
 *
 * The parent of mount_point is usually a volume the app container writes too, and the sidecar is
 * root: every path here is resolved without following symlinks (mount_internal.h), so a link
 * the app plants there ("/mnt/remote/.filesystem-0" -> "/etc") or swaps in between a check and
 * its use is refused, never followed. The mount itself goes onto "/proc/self/fd/<fd>" of an O_PATH
 * descriptor of the directory just checked: mount(2) then lands on exactly that directory, and
 * libmount (which the kernel's new fsmount API would bypass) still does the mounting.
 *
 * The app can still change the paths after publication (rename the parent away, swap a component
 * for a symlink). The pipeline therefore keeps the descriptors (struct encfs_mount_hold) and tears
 * down through them: the unmount goes to the held directory, the symlink is removed from the held
 * parent, whatever the paths lead to by then.
 */
#include "encfs.h"
#include "mount_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libmount.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "cleanup.h"
#include "log.h"

DEFINE_CLEANUP_FUNC(struct libmnt_context *, mnt_free_context)
DEFINE_CLEANUP_FUNC(DIR *, closedir)

#define UMOUNT_POLL_MS 100
#define UNPUBLISH_UMOUNT_TIMEOUT_MS 5000
/* "/proc/self/fd/<int>/<NAME_MAX bytes>" */
#define PROC_FD_PATH_MAX (sizeof("/proc/self/fd/") + 12 + NAME_MAX + 1)

/* Hand a descriptor out of a _cleanup_close_ variable. */
static inline int take_fd(int *fd)
{
	int r = *fd;

	*fd = -1;
	return r;
}

#define SYMLINK_HINT                                                                               \
	"refusing to follow it as root (it may have been planted in a directory the app can "      \
	"write; give a path without symlinks)"

/* ---------------------------------------------------------------------------------------------
 * Paths without symlinks
 * ------------------------------------------------------------------------------------------- */

/* The next component of @p (skipping '/'): its start, *@len; NULL at the end. */
static const char *next_component(const char *p, size_t *len)
{
	while (*p == '/')
		p++;
	if (!*p)
		return NULL;
	*len = strcspn(p, "/");
	return p;
}

static int check_component(const char *path, const char *c, size_t len, const char *what,
                           struct skr_error *err)
{
	if (len == 2 && c[0] == '.' && c[1] == '.')
		return skr_error_set(err, -EINVAL,
		                     "%s %s: \"..\" is not allowed here (give the path without it)",
		                     what, path);
	if (len > NAME_MAX)
		return skr_error_set(err, -ENAMETOOLONG, "%s %s: a component is longer than %d",
		                     what, path, NAME_MAX);
	return 0;
}

int encfs_path_split(const char *path, const char *what, char **parent, char **name,
                     struct skr_error *err)
{
	_cleanup_free_ char *norm = NULL;
	const char *c;
	size_t len, n = 0;
	char *slash;
	int r;

	*parent = *name = NULL;
	if (!path || path[0] != '/')
		return skr_error_set(err, -EINVAL, "%s %s: an absolute path is needed", what,
		                     path ? path : "(none)");
	norm = malloc(strlen(path) + 1);
	if (!norm)
		return skr_error_set(err, -ENOMEM, "out of memory");
	for (c = path; (c = next_component(c, &len)); c += len) {
		if (len == 1 && c[0] == '.')
			continue;
		r = check_component(path, c, len, what, err);
		if (r < 0)
			return r;
		norm[n++] = '/';
		memcpy(norm + n, c, len);
		n += len;
	}
	norm[n] = '\0';
	if (n == 0)
		return skr_error_set(err, -EINVAL, "%s %s: the root directory is not allowed here",
		                     what, path);
	slash = strrchr(norm, '/');
	*name = strdup(slash + 1);
	*parent = slash == norm ? strdup("/") : strndup(norm, (size_t)(slash - norm));
	if (!*name || !*parent) {
		free(*name);
		free(*parent);
		*parent = *name = NULL;
		return skr_error_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

/* Why opening @name in @dir_fd failed with @e: a symlink gets its own, explicit reason. */
static int open_error(int dir_fd, const char *name, int e, const char *path, size_t path_len,
                      struct skr_error *err)
{
	struct stat st;

	if ((e == ENOTDIR || e == ELOOP) && fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		return skr_error_set(err, -ELOOP, "%.*s is a symbolic link; " SYMLINK_HINT,
		                     (int)path_len, path);
	if (e == ENOTDIR)
		return skr_error_set(err, -ENOTDIR, "%.*s is not a directory", (int)path_len, path);
	return skr_error_set(err, -e, "%.*s: %s", (int)path_len, path, skr_strerror(e));
}

int encfs_dir_open_nofollow(const char *path, bool create, mode_t mode, struct skr_error *err)
{
	_cleanup_close_ int fd = -1;
	char name[NAME_MAX + 1];
	const char *c;
	size_t len;
	int r;

	if (!path || path[0] != '/')
		return skr_error_set(err, -EINVAL, "%s: an absolute path is needed",
		                     path ? path : "(none)");
	fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return skr_error_set(err, -errno, "/: %s", skr_strerror(errno));
	for (c = path; (c = next_component(c, &len)); c += len) {
		int next;

		if (len == 1 && c[0] == '.')
			continue;
		r = check_component(path, c, len, "directory", err);
		if (r < 0)
			return r;
		memcpy(name, c, len);
		name[len] = '\0';
		/* O_PATH|O_NOFOLLOW alone would open a symlink itself; O_DIRECTORY refuses it. */
		next = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && errno == ENOENT && create) {
			if (mkdirat(fd, name, mode) < 0 && errno != EEXIST)
				return skr_error_set(err, -errno, "cannot create %.*s: %s",
				                     (int)(c + len - path), path,
				                     skr_strerror(errno));
			next = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (next < 0)
			return open_error(fd, name, errno, path, (size_t)(c + len - path), err);
		close(fd);
		fd = next;
	}
	r = fd;
	fd = -1;
	return r;
}

/* "/proc/self/fd/<fd>[/<name>]": the path that reaches exactly what @fd (and @name) names. */
static int proc_fd_path(char buf[PROC_FD_PATH_MAX], int fd, const char *name, const char *display,
                        struct skr_error *err)
{
	/* Without /proc the magic path would look like a missing file, not like an error. */
	if (access("/proc/self/fd", X_OK) < 0)
		return skr_error_set(err, -errno,
		                     "%s: /proc/self/fd is not available (%s); /proc must be "
		                     "mounted to mount and unmount without following symlinks",
		                     display, skr_strerror(errno));
	snprintf(buf, PROC_FD_PATH_MAX, "/proc/self/fd/%d%s%s", fd, name ? "/" : "",
	         name ? name : "");
	return 0;
}

/* Whether the directory @fd is the root of a mount (@parent_fd is its parent's directory). */
static int is_mount_root(int fd, int parent_fd)
{
	struct statx sx, psx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx) < 0)
		return -errno;
	if (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
		return !!(sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
	/* Older kernels: a different device than the parent's (a bind mount of the same
	 * filesystem goes unnoticed there). */
	if (statx(parent_fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &psx) < 0)
		return -errno;
	return sx.stx_dev_major != psx.stx_dev_major || sx.stx_dev_minor != psx.stx_dev_minor;
}

/* ---------------------------------------------------------------------------------------------
 * Mount
 * ------------------------------------------------------------------------------------------- */

static int mount_fd(const char *device, int target_fd, const char *target, bool read_write,
                    struct skr_error *err)
{
	_cleanup_(mnt_free_contextp) struct libmnt_context *cxt = NULL;
	const char *options = read_write ? "rw,nosuid,nodev" : "ro,noload,nosuid,nodev";
	char path[PROC_FD_PATH_MAX];
	int r;

	r = proc_fd_path(path, target_fd, NULL, target, err);
	if (r < 0)
		return skr_error_prefix(err, "mount: ");
	cxt = mnt_new_context();
	if (!cxt)
		return skr_error_set(err, -ENOMEM, "mount: out of memory");
	/* Exactly this mount: no /sbin/mount.* helper, no fstab lookup, no path rewriting (the
	 * magic link must reach mount(2) as it is), no silent read-only fallback when a
	 * read-write mount fails. */
	if (mnt_context_disable_helpers(cxt, 1) < 0 ||
	    mnt_context_disable_canonicalize(cxt, 1) < 0 ||
	    mnt_context_enable_rwonly_mount(cxt, read_write) < 0 ||
	    mnt_context_set_source(cxt, device) < 0 || mnt_context_set_target(cxt, path) < 0 ||
	    mnt_context_set_fstype(cxt, "ext4") < 0 || mnt_context_set_options(cxt, options) < 0)
		return skr_error_set(err, -ENOMEM, "mount: cannot set up the libmount context");
	r = mnt_context_mount(cxt);
	if (r != 0 || mnt_context_get_status(cxt) != 1) {
		char msg[256] = "";
		int sys = mnt_context_syscall_called(cxt) ? mnt_context_get_syscall_errno(cxt) : 0;

		mnt_context_get_excode(cxt, r, msg, sizeof(msg));
		return skr_error_set(err, sys ? -sys : (r < 0 ? r : -EIO),
		                     "mount: ext4 %s at %s (%s) failed: %s%s", device, target,
		                     options, msg[0] ? msg : skr_strerror(sys ? sys : r),
		                     sys == EINVAL
		                             ? " (not an ext4 filesystem, or a wrong key made it "
		                               "unreadable?)"
		                             : "");
	}
	log_info("mount: %s mounted at %s (%s)", device, target, options);
	return 0;
}

int encfs_mount_ext4_held(const char *device, const char *target, bool read_write,
                          struct encfs_mount_hold *h, struct skr_error *err)
{
	_cleanup_free_ char *parent = NULL, *name = NULL, *target_copy = NULL;
	_cleanup_close_ int parent_fd = -1, fd = -1;
	bool created = false;
	struct stat st;
	int r;

	if (h->target_fd >= 0)
		return skr_error_set(err, -EBUSY,
		                     "mount: encfs_mount_ext4_held() on a hold that has a mount");
	if (!device || !*device || !target || target[0] != '/')
		return skr_error_set(err, -EINVAL,
		                     "mount: device and an absolute target are needed");
	r = encfs_path_split(target, "mount: target", &parent, &name, err);
	if (r < 0)
		return r;
	target_copy = strdup(target);
	if (!target_copy)
		return skr_error_set(err, -ENOMEM, "mount: out of memory");
	parent_fd = encfs_dir_open_nofollow(parent, true, 0755, err);
	if (parent_fd < 0)
		return skr_error_prefix(err, "mount: target %s: ", target);

	if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			return skr_error_set(err, -errno, "mount: %s: %s", target,
			                     skr_strerror(errno));
		if (mkdirat(parent_fd, name, 0755) < 0)
			return skr_error_set(err, -errno, "mount: cannot create %s: %s", target,
			                     skr_strerror(errno));
		created = true;
	} else if (S_ISLNK(st.st_mode)) {
		return skr_error_set(err, -ELOOP, "mount: %s is a symbolic link; " SYMLINK_HINT,
		                     target);
	} else if (!S_ISDIR(st.st_mode)) {
		return skr_error_set(err, -ENOTDIR, "mount: %s exists and is not a directory",
		                     target);
	}

	/* From here on the directory is this descriptor, whatever happens to the name. */
	fd = openat(parent_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = open_error(parent_fd, name, errno, target, strlen(target), err);
		skr_error_prefix(err, "mount: %s", created ? "replaced right after mkdir: " : "");
		created = false; /* what is there now is not the directory made above */
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		r = skr_error_set(err, -errno, "mount: %s: %s", target, skr_strerror(errno));
		goto fail;
	}
	if (created && st.st_uid != geteuid()) {
		/* Someone swapped in a directory of theirs between mkdirat and openat. */
		r = skr_error_set(err, -EPERM,
		                  "mount: %s was replaced by a directory owned by uid %u right "
		                  "after it was created; refusing to mount there",
		                  target, (unsigned)st.st_uid);
		created = false; /* not ours to remove */
		goto fail;
	}
	r = is_mount_root(fd, parent_fd);
	if (r < 0) {
		r = skr_error_set(err, r, "mount: %s: %s", target, skr_strerror(r));
		goto fail;
	}
	if (r > 0) {
		/* Mounting over it would stack a second filesystem; a leftover from a crash is for
		 * encfs_cleanup_stale(). */
		r = skr_error_set(err, -EBUSY,
		                  "mount: %s is already a mount point (a leftover? stale cleanup "
		                  "unmounts it)",
		                  target);
		goto fail;
	}
	r = mount_fd(device, fd, target, read_write, err);
	if (r < 0)
		goto fail;
	/* fd stays the directory below the mount, parent_fd its parent: teardown goes through them. */
	h->target = TAKE_PTR(target_copy);
	h->target_name = TAKE_PTR(name);
	h->target_parent_fd = take_fd(&parent_fd);
	h->target_fd = take_fd(&fd);
	return 0;

fail:
	/* rmdir relative to the parent: it never follows a symlink, and a non-empty directory
	 * (someone else's) stays. */
	if (created)
		unlinkat(parent_fd, name, AT_REMOVEDIR);
	return r;
}

int encfs_mount_ext4(const char *device, const char *target, bool read_write, struct skr_error *err)
{
	struct encfs_mount_hold h = ENCFS_MOUNT_HOLD_INIT;
	int r = encfs_mount_ext4_held(device, target, read_write, &h, err);

	encfs_mount_hold_clear(&h);
	return r;
}

/* ---------------------------------------------------------------------------------------------
 * Publication
 * ------------------------------------------------------------------------------------------- */

/* Whether @name in @dir_fd is a directory with no entries besides "." and "..". */
static int dir_is_empty_at(int dir_fd, const char *name)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	errno = 0;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			return 0;
	return errno ? -errno : 1;
}

/* The symlink text for @target seen from @mount_parent: relative for siblings. */
static char *link_text(const char *target, const char *mount_parent)
{
	_cleanup_free_ char *parent = NULL, *name = NULL;

	if (target[0] == '/' && encfs_path_split(target, "", &parent, &name, NULL) == 0 &&
	    strcmp(parent, mount_parent) == 0)
		return TAKE_PTR(name);
	return strdup(target);
}

/*
 * Make @name in @parent_fd (the directory @parent) a symlink with @text, atomically; *@link
 * (may be NULL) receives the symlink's own stat.
 */
static int publish_at(int parent_fd, const char *parent, const char *name, const char *mount_point,
                      const char *text, struct stat *link, struct skr_error *err)
{
	static unsigned counter;
	char tmp[64];
	bool replace_dir = false;
	struct stat st;
	int r;

	if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(st.st_mode)) {
			r = dir_is_empty_at(parent_fd, name);
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
			/* A symlink there is replaced (never followed): rename(2) swaps names. */
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
		snprintf(tmp, sizeof(tmp), ".publish-%d-%u", (int)getpid(),
		         __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
		if (symlinkat(text, parent_fd, tmp) == 0)
			break;
		if (errno != EEXIST || attempt == 10)
			return skr_error_set(err, -errno,
			                     "publish: cannot create symlink %s/%s: %s", parent,
			                     tmp, skr_strerror(errno));
	}
	/* Its inode goes along with the renames below: teardown removes this one symlink only. */
	if (link && fstatat(parent_fd, tmp, link, AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		goto fail;
	}

	if (replace_dir) {
		/* Swap the empty directory and the symlink in one step, then drop the directory. */
		if (renameat2(parent_fd, tmp, parent_fd, name, RENAME_EXCHANGE) == 0) {
			if (unlinkat(parent_fd, tmp, AT_REMOVEDIR) < 0)
				log_warn("publish: the directory that was at %s could not be "
				         "removed from %s/%s: %s",
				         mount_point, parent, tmp, skr_strerror(errno));
			goto done;
		}
		if (errno != EINVAL && errno != ENOSYS) {
			r = -errno;
			goto fail;
		}
		/* A filesystem without RENAME_EXCHANGE: the empty directory goes first. */
		if (unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
			r = -errno;
			goto fail;
		}
	}
	if (renameat(parent_fd, tmp, parent_fd, name) < 0) {
		r = -errno;
		goto fail;
	}
done:
	log_info("publish: %s -> %s", mount_point, text);
	return 0;

fail:
	unlinkat(parent_fd, tmp, 0);
	return skr_error_set(err, r, "publish: cannot replace %s with a symlink to %s: %s",
	                     mount_point, text, skr_strerror(r));
}

int encfs_publish(const char *target, const char *mount_point, struct skr_error *err)
{
	_cleanup_free_ char *text = NULL, *parent = NULL, *name = NULL;
	_cleanup_close_ int parent_fd = -1;
	int r;

	if (!target || !*target || !mount_point || mount_point[0] != '/')
		return skr_error_set(err, -EINVAL,
		                     "publish: a target and an absolute mount point are needed");
	r = encfs_path_split(mount_point, "publish: mount point", &parent, &name, err);
	if (r < 0)
		return r;
	text = link_text(target, parent);
	if (!text)
		return skr_error_set(err, -ENOMEM, "publish: out of memory");
	parent_fd = encfs_dir_open_nofollow(parent, true, 0755, err);
	if (parent_fd < 0)
		return skr_error_prefix(err, "publish: mount point %s: ", mount_point);
	return publish_at(parent_fd, parent, name, mount_point, text, NULL, err);
}

int encfs_publish_held(struct encfs_mount_hold *h, const char *mount_point, struct skr_error *err)
{
	_cleanup_free_ char *text = NULL, *parent = NULL, *name = NULL, *mp = NULL;
	_cleanup_free_ char *tparent = NULL, *tname = NULL;
	_cleanup_close_ int parent_fd = -1;
	struct stat st;
	int r;

	if (h->target_fd < 0 || h->link_parent_fd >= 0)
		return skr_error_set(err, -EINVAL,
		                     "publish: encfs_publish_held() needs a mount held by "
		                     "encfs_mount_ext4_held() and not yet published");
	if (!mount_point || mount_point[0] != '/')
		return skr_error_set(err, -EINVAL,
		                     "publish: a target and an absolute mount point are needed");
	r = encfs_path_split(mount_point, "publish: mount point", &parent, &name, err);
	if (r < 0)
		return r;
	r = encfs_path_split(h->target, "publish: target", &tparent, &tname, err);
	if (r < 0)
		return r;
	text = link_text(h->target, parent);
	mp = strdup(mount_point);
	if (!text || !mp)
		return skr_error_set(err, -ENOMEM, "publish: out of memory");
	if (strcmp(parent, tparent) == 0) {
		/* The directory mounted in, even if its path leads elsewhere by now: the relative
		 * link must sit next to the hidden directory it names. */
		parent_fd = fcntl(h->target_parent_fd, F_DUPFD_CLOEXEC, 3);
		if (parent_fd < 0)
			return skr_error_set(err, -errno, "publish: %s: %s", parent,
			                     skr_strerror(errno));
	} else {
		parent_fd = encfs_dir_open_nofollow(parent, true, 0755, err);
		if (parent_fd < 0)
			return skr_error_prefix(err, "publish: mount point %s: ", mount_point);
	}
	r = publish_at(parent_fd, parent, name, mount_point, text, &st, err);
	if (r < 0)
		return r;
	h->mount_point = TAKE_PTR(mp);
	h->link_name = TAKE_PTR(name);
	h->link_text = TAKE_PTR(text);
	h->link_parent_fd = take_fd(&parent_fd);
	h->link_dev = st.st_dev;
	h->link_ino = st.st_ino;
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Unmount and unpublish
 * ------------------------------------------------------------------------------------------- */

int encfs_umount_at(int dir_fd, const char *name, const char *display, unsigned timeout_ms,
                    bool *lazy, struct skr_error *err)
{
	char path[PROC_FD_PATH_MAX];
	unsigned waited = 0;
	int flags, r;

	if (lazy)
		*lazy = false;
	if (name && (strlen(name) > NAME_MAX || strchr(name, '/')))
		return skr_error_set(err, -EINVAL, "unmount %s: not a single path component",
		                     display);
	r = proc_fd_path(path, dir_fd, name, display, err);
	if (r < 0)
		return skr_error_prefix(err, "unmount: ");
	/*
	 * With @name, the magic link reaches @dir_fd's directory and UMOUNT_NOFOLLOW covers @name.
	 * Without, the magic link is the last component and must be followed: it is our own
	 * descriptor of the directory below the mount, and umount's lookup goes down to what is
	 * mounted on it (a descriptor of the mount's root would itself keep the mount busy).
	 */
	flags = name ? UMOUNT_NOFOLLOW : 0;
	for (;;) {
		if (umount2(path, flags) == 0)
			return 1;
		if (errno == EINVAL || errno == ENOENT)
			return 0; /* not (or no longer) a mount point */
		if (errno != EBUSY)
			return skr_error_set(err, -errno, "unmount %s: %s", display,
			                     skr_strerror(errno));
		if (waited >= timeout_ms)
			break;
		sleep_ms(UMOUNT_POLL_MS);
		waited += UMOUNT_POLL_MS;
	}
	/* Still in use (an app holding a file open): detach now, the kernel finishes later. */
	if (umount2(path, flags | MNT_DETACH) < 0 && errno != EINVAL)
		return skr_error_set(err, -errno, "unmount %s (lazy): %s", display,
		                     skr_strerror(errno));
	log_warn("unmount: %s was busy for %u ms, detached lazily", display, timeout_ms);
	if (lazy)
		*lazy = true;
	return 1;
}

int encfs_umount_bounded(const char *path, unsigned timeout_ms, bool *lazy, struct skr_error *err)
{
	_cleanup_free_ char *parent = NULL, *name = NULL;
	_cleanup_close_ int parent_fd = -1;
	int r;

	if (lazy)
		*lazy = false;
	r = encfs_path_split(path, "unmount", &parent, &name, err);
	if (r < 0)
		return r;
	parent_fd = encfs_dir_open_nofollow(parent, false, 0, err);
	if (parent_fd == -ENOENT) {
		skr_error_clear(err);
		return 0; /* nothing there to unmount */
	}
	if (parent_fd < 0)
		return skr_error_prefix(err, "unmount %s: ", path);
	return encfs_umount_at(parent_fd, name, path, timeout_ms, lazy, err);
}

/*
 * Remove @name in @parent_fd when it is our symlink: its text is @text or @target (may be NULL),
 * and with @ours (may be NULL) it is that very symlink, not an equal one made since by someone
 * else.
 */
static int unlink_our_symlink(int parent_fd, const char *name, const char *mount_point,
                              const char *text, const char *target, const struct stat *ours,
                              struct skr_error *err)
{
	char current[PATH_MAX];
	struct stat st;
	ssize_t n;

	if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(st.st_mode))
		return 0;
	n = readlinkat(parent_fd, name, current, sizeof(current) - 1);
	if (n < 0)
		return 0;
	current[n] = '\0';
	if (strcmp(current, text) != 0 && (!target || strcmp(current, target) != 0)) {
		log_warn("unpublish: %s points at %s, not at %s: left in place", mount_point,
		         current, text);
		return 0;
	}
	if (ours && (st.st_dev != ours->st_dev || st.st_ino != ours->st_ino)) {
		log_warn("unpublish: %s is not the symlink published there (it was replaced): left "
		         "in place",
		         mount_point);
		return 0;
	}
	if (unlinkat(parent_fd, name, 0) < 0 && errno != ENOENT)
		return skr_error_set(err, -errno, "unpublish: removing %s: %s", mount_point,
		                     skr_strerror(errno));
	return 0;
}

int encfs_unpublish(const char *target, const char *mount_point, struct skr_error *err)
{
	_cleanup_free_ char *text = NULL, *mparent = NULL, *mname = NULL;
	_cleanup_free_ char *tparent = NULL, *tname = NULL;
	_cleanup_close_ int mparent_fd = -1, tparent_fd = -1;
	int r, ret = 0;

	if (!target || !*target || !mount_point || !*mount_point)
		return skr_error_set(err, -EINVAL,
		                     "unpublish: a target and a mount point are needed");
	r = encfs_path_split(target, "unpublish: target", &tparent, &tname, err);
	if (r < 0)
		return r;
	r = encfs_path_split(mount_point, "unpublish: mount point", &mparent, &mname, err);
	if (r < 0)
		return r;
	text = link_text(target, mparent);
	if (!text)
		return skr_error_set(err, -ENOMEM, "unpublish: out of memory");

	/* The symlink first: the app then sees the path vanish, never an empty directory. Only
	 * ours is removed; someone else's symlink or directory there is left alone, and so is
	 * anything reached through a symlink in the parent. */
	mparent_fd = encfs_dir_open_nofollow(mparent, false, 0, err);
	if (mparent_fd >= 0)
		ret = unlink_our_symlink(mparent_fd, mname, mount_point, text, target, NULL, err);
	else if (mparent_fd == -ENOENT)
		skr_error_clear(err);
	else
		ret = skr_error_prefix(err, "unpublish: mount point %s: ", mount_point);

	tparent_fd = encfs_dir_open_nofollow(tparent, false, 0, err);
	if (tparent_fd == -ENOENT) {
		if (ret == 0)
			skr_error_clear(err);
		return ret;
	}
	if (tparent_fd < 0) {
		r = skr_error_prefix(err, "unpublish: target %s: ", target);
		return ret < 0 ? ret : r;
	}
	r = encfs_umount_at(tparent_fd, tname, target, UNPUBLISH_UMOUNT_TIMEOUT_MS, NULL, err);
	if (r < 0)
		return ret < 0 ? ret : r;
	if (r > 0)
		log_info("unpublish: %s unmounted", target);
	if (unlinkat(tparent_fd, tname, AT_REMOVEDIR) < 0 && errno != ENOENT) {
		r = skr_error_set(err, -errno, "unpublish: removing %s: %s", target,
		                  skr_strerror(errno));
		return ret < 0 ? ret : r;
	}
	return ret;
}

/* rmdir the held hidden directory, if its name in the held parent is still that directory. */
static int remove_held_dir(const struct encfs_mount_hold *h, struct skr_error *err)
{
	struct stat held, now;

	if (fstat(h->target_fd, &held) < 0)
		return skr_error_set(err, -errno, "unpublish: %s: %s", h->target,
		                     skr_strerror(errno));
	if (fstatat(h->target_parent_fd, h->target_name, &now, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			return skr_error_set(err, -errno, "unpublish: %s: %s", h->target,
			                     skr_strerror(errno));
		now = (struct stat){0};
	}
	if (now.st_dev != held.st_dev || now.st_ino != held.st_ino) {
		/* Moved within or out of its parent, or replaced: what has the name now is not
		 * ours, and where ours went is not known. Empty and unmounted, it harms nobody. */
		log_warn(
		        "unpublish: %s is no longer the directory that was mounted there (moved or "
		        "replaced); the empty directory is left where it is",
		        h->target);
		return 0;
	}
	/* rmdir never follows a symlink and leaves a non-empty directory alone. */
	if (unlinkat(h->target_parent_fd, h->target_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return skr_error_set(err, -errno, "unpublish: removing %s: %s", h->target,
		                     skr_strerror(errno));
	return 0;
}

int encfs_unpublish_held(struct encfs_mount_hold *h, unsigned timeout_ms, struct skr_error *err)
{
	int r, ret = 0;

	if (timeout_ms == 0)
		timeout_ms = UNPUBLISH_UMOUNT_TIMEOUT_MS;
	/* The symlink first, as encfs_unpublish() does: the app sees the path vanish. */
	if (h->link_parent_fd >= 0) {
		struct stat ours = {.st_dev = h->link_dev, .st_ino = h->link_ino};

		ret = unlink_our_symlink(h->link_parent_fd, h->link_name, h->mount_point,
		                         h->link_text, NULL, &ours, err);
	}
	if (h->target_fd >= 0) {
		struct skr_error e = {0};

		r = encfs_umount_at(h->target_fd, NULL, h->target, timeout_ms, NULL, &e);
		if (r > 0)
			log_info("unpublish: %s unmounted", h->target);
		if (r >= 0)
			r = remove_held_dir(h, &e);
		if (r < 0 && ret == 0) {
			if (err)
				*err = e;
			ret = r;
		}
	}
	encfs_mount_hold_clear(h);
	return ret;
}

void encfs_mount_hold_clear(struct encfs_mount_hold *h)
{
	if (h->target_parent_fd >= 0)
		close(h->target_parent_fd);
	if (h->target_fd >= 0)
		close(h->target_fd);
	if (h->link_parent_fd >= 0)
		close(h->link_parent_fd);
	free(h->target);
	free(h->target_name);
	free(h->mount_point);
	free(h->link_name);
	free(h->link_text);
	*h = (struct encfs_mount_hold)ENCFS_MOUNT_HOLD_INIT;
}
