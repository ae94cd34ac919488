/* SPDX-License-Identifier: MIT */
/*
 * After a crash (or a SIGKILL) the kernel keeps what the last run set up: ext4 mounts at the
 * hidden siblings of the mount points, FUSE mounts below the work directory whose server is
 * gone, dm-crypt and dm-verity mappings with our prefix. A restart must remove them first: the
 * names would collide, and a dead FUSE mount under a live mapping blocks everything.
 *
 * Order is the reverse of setup: mounts (deepest first), then mappings (crypt, which sits on
 * verity, before verity), then the loop devices below them. libcryptsetup attaches loop devices
 * with autoclear, so those detach by themselves when their mapping closes; one without autoclear
 * (attached by hand) is detached here.
 *
 * The parents of the mount points are often shared with the app container, which can plant
 * symlinks there: a parent is used only through a descriptor opened without following any
 * symlink (mount_internal.h), and a parent that is reached through one is skipped with a
 * warning, so nothing outside it is ever unmounted or removed.
 */
#include "encfs.h"
#include "luks_internal.h"
#include "mount_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <libmount.h>
#include <limits.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cleanup.h"
#include "crypt_lock.h"
#include "log.h"

DEFINE_CLEANUP_FUNC(struct libmnt_table *, mnt_unref_table)
DEFINE_CLEANUP_FUNC(struct libmnt_iter *, mnt_free_iter)
DEFINE_CLEANUP_FUNC(struct crypt_device *, crypt_free)
DEFINE_CLEANUP_FUNC(DIR *, closedir)

#define HIDDEN_PREFIX ".filesystem-"
#define MAX_MAPPINGS 256
#define MAX_SLAVES 8
/* Stale mounts have no legitimate user left; a short wait, then a lazy detach. */
#define STALE_UMOUNT_TIMEOUT_MS 500

struct str_list {
	char **v;
	size_t n, cap;
};

static void str_list_clear(struct str_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	*l = (struct str_list){0};
}

static int str_list_add(struct str_list *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = strdup(s);
	if (!l->v[l->n])
		return -ENOMEM;
	l->n++;
	return 0;
}

/* @path with symlinks resolved when it exists (mountinfo shows resolved paths), no trailing '/'. */
static char *canonical(const char *path)
{
	char *r = realpath(path, NULL);
	size_t n;

	if (r)
		return r;
	r = strdup(path);
	if (!r)
		return NULL;
	n = strlen(r);
	while (n > 1 && r[n - 1] == '/')
		r[--n] = '\0';
	return r;
}

static bool is_below(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return path[0] == '/' && path[1] != '\0';
	return strncmp(path, dir, n) == 0 && path[n] == '/' && path[n + 1] != '\0';
}

/* The parents of the mount points: normalized paths without symlinks, and their descriptors. */
struct parent_list {
	struct str_list paths;
	int *fds;
};

static void parent_list_clear(struct parent_list *l)
{
	for (size_t i = 0; i < l->paths.n; i++)
		close(l->fds[i]);
	free(l->fds);
	str_list_clear(&l->paths);
	l->fds = NULL;
}

/*
 * Add the parent of @mount_point when it exists and no component of it is a symlink. A missing
 * parent holds nothing of ours; one reached through a symlink cannot hold our mounts either
 * (encfs_mount_ext4 refuses those), so whatever is there belongs to someone else.
 */
static int parent_list_add(struct parent_list *l, const char *mount_point)
{
	_cleanup_free_ char *parent = NULL, *name = NULL;
	struct skr_error e = {0};
	int fd, *fds;

	if (encfs_path_split(mount_point, "mount point", &parent, &name, &e) < 0) {
		if (e.code == -ENOMEM)
			return -ENOMEM;
		log_warn("stale cleanup: %s; skipped", e.msg);
		return 0;
	}
	for (size_t i = 0; i < l->paths.n; i++)
		if (strcmp(l->paths.v[i], parent) == 0)
			return 0;
	fd = encfs_dir_open_nofollow(parent, false, 0, &e);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0) {
		log_warn("stale cleanup: the parent of %s: %s; nothing there is touched",
		         mount_point, e.msg);
		return 0;
	}
	fds = realloc(l->fds, (l->paths.n + 1) * sizeof(*fds));
	if (!fds) {
		close(fd);
		return -ENOMEM;
	}
	l->fds = fds;
	l->fds[l->paths.n] = fd;
	if (str_list_add(&l->paths, parent) < 0) {
		close(fd);
		return -ENOMEM;
	}
	return 0;
}

/*
 * "<parent>/.filesystem-*" for one of @parents: the index of that parent and the name in it
 * (*@name), or -1.
 */
static ssize_t hidden_mount_parent(const char *path, const struct parent_list *parents,
                                   const char **name)
{
	const char *slash = strrchr(path, '/');

	if (!slash || strncmp(slash + 1, HIDDEN_PREFIX, strlen(HIDDEN_PREFIX)) != 0)
		return -1;
	for (size_t i = 0; i < parents->paths.n; i++) {
		const char *p = parents->paths.v[i];
		size_t n = strlen(p);

		if (strcmp(p, "/") == 0 ? slash == path
		                        : (size_t)(slash - path) == n && strncmp(path, p, n) == 0) {
			*name = slash + 1;
			return (ssize_t)i;
		}
	}
	return -1;
}

/* Deeper paths first, so a mount is removed before the one it sits on. */
static int cmp_deeper_first(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	size_t lx = strlen(x), ly = strlen(y);

	return lx != ly ? (lx > ly ? -1 : 1) : strcmp(x, y);
}

static int unmount_stale(const char *work_dir, const struct parent_list *parents, unsigned *count,
                         struct skr_error *err)
{
	_cleanup_(mnt_unref_tablep) struct libmnt_table *tb = NULL;
	_cleanup_(mnt_free_iterp) struct libmnt_iter *itr = NULL;
	_cleanup_free_ char *wd = work_dir ? canonical(work_dir) : NULL;
	struct str_list found = {0};
	struct libmnt_fs *fs;
	int r, ret = 0;

	if (work_dir && !wd)
		return skr_error_set(err, -ENOMEM, "stale cleanup: out of memory");
	tb = mnt_new_table_from_file("/proc/self/mountinfo");
	itr = mnt_new_iter(MNT_ITER_FORWARD);
	if (!tb || !itr)
		return skr_error_set(err, -EIO, "stale cleanup: cannot read /proc/self/mountinfo");
	while (mnt_table_next_fs(tb, itr, &fs) == 0) {
		const char *target = mnt_fs_get_target(fs), *name;

		if (!target)
			continue;
		if ((wd && is_below(target, wd)) ||
		    hidden_mount_parent(target, parents, &name) >= 0) {
			if (str_list_add(&found, target) < 0) {
				str_list_clear(&found);
				return skr_error_set(err, -ENOMEM, "stale cleanup: out of memory");
			}
		}
	}
	if (found.n)
		qsort(found.v, found.n, sizeof(*found.v), cmp_deeper_first);
	for (size_t i = 0; i < found.n; i++) {
		struct skr_error uerr = {0};
		bool lazy = false;
		const char *name = NULL;
		ssize_t p = hidden_mount_parent(found.v[i], parents, &name);

		/* Through the parent's descriptor for hidden mounts; other paths are walked again
		 * without following symlinks (mountinfo's are symlink-free when it was read). */
		if (p >= 0)
			r = encfs_umount_at(parents->fds[p], name, found.v[i],
			                    STALE_UMOUNT_TIMEOUT_MS, &lazy, &uerr);
		else
			r = encfs_umount_bounded(found.v[i], STALE_UMOUNT_TIMEOUT_MS, &lazy, &uerr);
		if (r == 0)
			continue; /* gone meanwhile (below one unmounted lazily) */
		if (r < 0) {
			log_warn("stale cleanup: %s", uerr.msg);
			if (ret == 0)
				ret = skr_error_set(err, r, "stale cleanup: %s", uerr.msg);
			continue;
		}
		log_info("stale cleanup: unmounted %s%s", found.v[i],
		         lazy ? " (lazily: busy)" : "");
		(*count)++;
		/* The hidden directory was ours; an empty one goes with its mount. */
		if (p >= 0)
			unlinkat(parents->fds[p], name, AT_REMOVEDIR);
	}
	str_list_clear(&found);
	return ret;
}

/*
 * Empty "<parent>/.filesystem-*" directories left by a crash between mkdir and mount. rmdir
 * relative to the parent's descriptor never follows a symlink planted under such a name.
 */
static void remove_empty_hidden_dirs(const struct parent_list *parents)
{
	for (size_t i = 0; i < parents->paths.n; i++) {
		int fd = openat(parents->fds[i], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		_cleanup_(closedirp) DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *de;

		if (!d) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		while ((de = readdir(d))) {
			if (strncmp(de->d_name, HIDDEN_PREFIX, strlen(HIDDEN_PREFIX)) != 0 ||
			    (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
				continue;
			if (unlinkat(parents->fds[i], de->d_name, AT_REMOVEDIR) == 0)
				log_info("stale cleanup: removed the empty directory %s/%s",
				         strcmp(parents->paths.v[i], "/") == 0
				                 ? ""
				                 : parents->paths.v[i],
				         de->d_name);
		}
	}
}

/* "<index>": the name filesystem.c gives its directory below the work directory. */
static bool is_index_name(const char *name)
{
	return name[0] && strspn(name, "0123456789") == strlen(name);
}

/*
 * Downloads "<work_dir>/<index>/image" and the "<work_dir>/<index>" directories of a crashed run
 * (FUSE mount points, unmounted above). The pipeline makes that directory afresh and refuses an
 * existing one, so a leftover would fail every restart at step "blob"; the image is fetched
 * again anyway. Anything else found there is not ours and stays (and keeps its directory).
 */
static void remove_stale_work_dirs(const char *work_dir, unsigned *count)
{
	_cleanup_free_ char *wd = canonical(work_dir);
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int fd;

	if (!wd)
		return;
	/* The work directory is the sidecar's own; below it nothing is followed. */
	fd = open(wd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		_cleanup_close_ int sub = -1;
		struct stat st;

		if (!is_index_name(de->d_name))
			continue;
		sub = openat(fd, de->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue;
		if (fstatat(sub, "image", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
			if (unlinkat(sub, "image", 0) == 0) {
				log_info("stale cleanup: removed the download %s/%s/image", wd,
				         de->d_name);
				(*count)++;
			} else {
				log_warn("stale cleanup: removing %s/%s/image: %s", wd, de->d_name,
				         skr_strerror(errno));
			}
		}
		if (unlinkat(fd, de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			log_warn("stale cleanup: %s/%s is left in place: %s", wd, de->d_name,
			         skr_strerror(errno));
	}
}

static int read_line(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "re");
	bool ok;

	if (!f)
		return -errno;
	ok = fgets(buf, (int)size, f) != NULL;
	fclose(f);
	if (!ok)
		return -EIO;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* Mapping names from sysfs (present even without /dev/mapper nodes) and /dev/mapper. */
static int list_mappings(const char *prefix, struct str_list *out)
{
	DIR *d;
	struct dirent *de;
	size_t plen = strlen(prefix);
	int r = 0;

	d = opendir("/sys/block");
	if (d) {
		while (r == 0 && (de = readdir(d))) {
			char path[PATH_MAX], name[256];

			if (strncmp(de->d_name, "dm-", 3) != 0)
				continue;
			snprintf(path, sizeof(path), "/sys/block/%s/dm/name", de->d_name);
			if (read_line(path, name, sizeof(name)) == 0 &&
			    strncmp(name, prefix, plen) == 0)
				r = str_list_add(out, name);
		}
		closedir(d);
	}
	d = opendir("/dev/mapper");
	if (d) {
		while (r == 0 && (de = readdir(d)))
			if (strcmp(de->d_name, "control") != 0 &&
			    strncmp(de->d_name, prefix, plen) == 0)
				r = str_list_add(out, de->d_name);
		closedir(d);
	}
	return r;
}

/* crypt before everything else: it sits on verity when both exist. */
static int cmp_crypt_first(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	bool cx = strstr(x, "crypt") != NULL, cy = strstr(y, "crypt") != NULL;

	return cx != cy ? (cx ? -1 : 1) : strcmp(x, y);
}

/* The loop devices directly below mapping @name ("loop3"), from sysfs. */
static size_t mapping_loop_slaves(const char *name, char slaves[MAX_SLAVES][32])
{
	char path[PATH_MAX];
	struct stat st;
	DIR *d;
	struct dirent *de;
	size_t n = 0;

	snprintf(path, sizeof(path), "/dev/mapper/%s", name);
	if (stat(path, &st) < 0 || !S_ISBLK(st.st_mode))
		return 0;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/slaves", major(st.st_rdev),
	         minor(st.st_rdev));
	d = opendir(path);
	if (!d)
		return 0;
	while (n < MAX_SLAVES && (de = readdir(d)))
		if (strncmp(de->d_name, "loop", 4) == 0 && strlen(de->d_name) < 32)
			snprintf(slaves[n++], 32, "%s", de->d_name);
	closedir(d);
	return n;
}

static void release_loop(const char *loop)
{
	char path[PATH_MAX], value[16];
	int fd;

	snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", loop);
	if (access(path, F_OK) < 0) {
		log_info("stale cleanup: /dev/%s detached itself (autoclear)", loop);
		return;
	}
	snprintf(path, sizeof(path), "/sys/block/%s/loop/autoclear", loop);
	if (read_line(path, value, sizeof(value)) == 0 && strcmp(value, "1") == 0) {
		log_info("stale cleanup: /dev/%s has autoclear and detaches once unused", loop);
		return;
	}
	snprintf(path, sizeof(path), "/dev/%s", loop);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, LOOP_CLR_FD, 0) < 0)
		log_warn("stale cleanup: cannot detach %s: %s", path, skr_strerror(errno));
	else
		log_info("stale cleanup: detached %s", path);
	if (fd >= 0)
		close(fd);
}

static int close_mapping(const char *name, uint32_t flags)
{
	CRYPT_SESSION_SCOPE;
	_cleanup_(crypt_freep) struct crypt_device *cd = NULL;
	int r = crypt_init_by_name(&cd, name);

	if (r == -ENODEV)
		return 0; /* gone meanwhile */
	if (r < 0)
		return r;
	return crypt_deactivate_by_name(cd, name, flags);
}

static int close_stale_mappings(const char *prefix, unsigned *count, struct skr_error *err)
{
	struct str_list names = {0};
	int r, ret = 0;

	luks_log_setup();
	r = list_mappings(prefix, &names);
	if (r < 0) {
		str_list_clear(&names);
		return skr_error_set(err, r, "stale cleanup: listing device-mapper devices: %s",
		                     skr_strerror(r));
	}
	if (names.n)
		qsort(names.v, names.n, sizeof(*names.v), cmp_crypt_first);

	/* A mapping still held by another (an unexpected stacking) is retried after the rest. */
	for (int pass = 0; pass < 3 && names.n; pass++) {
		size_t kept = 0;

		for (size_t i = 0; i < names.n; i++) {
			char slaves[MAX_SLAVES][32];
			size_t ns = mapping_loop_slaves(names.v[i], slaves);

			r = close_mapping(names.v[i], 0);
			if (r == -EBUSY && pass < 2) {
				names.v[kept++] = names.v[i];
				continue;
			}
			if (r == -EBUSY) {
				/* Removed by the kernel when its last user goes; the name stays
				 * taken until then, so this run cannot reuse it. */
				close_mapping(names.v[i], CRYPT_DEACTIVATE_DEFERRED);
				log_warn(
				        "stale cleanup: /dev/mapper/%s is in use; deferred removal "
				        "scheduled",
				        names.v[i]);
				if (ret == 0)
					ret = skr_error_set(
					        err, -EBUSY,
					        "stale cleanup: /dev/mapper/%s is still in "
					        "use (a process holds it open); its removal is "
					        "deferred until then",
					        names.v[i]);
			} else if (r < 0) {
				log_warn("stale cleanup: closing /dev/mapper/%s: %s", names.v[i],
				         skr_strerror(r));
				if (ret == 0)
					ret = skr_error_set(
					        err, r, "stale cleanup: closing /dev/mapper/%s: %s",
					        names.v[i], skr_strerror(r));
			} else {
				log_info("stale cleanup: closed /dev/mapper/%s", names.v[i]);
				(*count)++;
				for (size_t s = 0; s < ns; s++)
					release_loop(slaves[s]);
			}
			free(names.v[i]);
		}
		names.n = kept;
	}
	str_list_clear(&names);
	return ret;
}

int encfs_cleanup_stale(const char *work_dir, const char *dm_prefix,
                        const char *const *mount_points, size_t n, struct skr_error *err)
{
	struct parent_list parents = {0};
	unsigned mounts = 0, mappings = 0, downloads = 0;
	int r, ret = 0;

	if (!dm_prefix || !*dm_prefix)
		return skr_error_set(err, -EINVAL,
		                     "stale cleanup: an empty device-mapper prefix would match "
		                     "mappings that are not ours");
	for (size_t i = 0; i < n; i++) {
		if (!mount_points[i])
			continue;
		if (parent_list_add(&parents, mount_points[i]) < 0) {
			parent_list_clear(&parents);
			return skr_error_set(err, -ENOMEM, "stale cleanup: out of memory");
		}
	}

	r = unmount_stale(work_dir, &parents, &mounts, err);
	if (r < 0)
		ret = r;
	remove_empty_hidden_dirs(&parents);
	parent_list_clear(&parents);
	r = close_stale_mappings(dm_prefix, &mappings, err);
	if (r < 0 && ret == 0)
		ret = r;
	/* After the mappings: a stale one may still read the download through a loop device. */
	if (work_dir)
		remove_stale_work_dirs(work_dir, &downloads);
	if (mounts || mappings || downloads)
		log_info("stale cleanup: %u mount(s), %u mapping(s) and %u download(s) of an "
		         "earlier "
		         "run removed",
		         mounts, mappings, downloads);
	else
		log_debug("stale cleanup: nothing left from an earlier run");
	return ret;
}
