/* SPDX-License-Identifier: MIT */
/*
 * Mounting and publication (encfs.h "Mounting and publication") with real ext4 filesystems on
 * loop devices: read-only and read-write mounts and their options, refusals, the symlink
 * publication (atomic: an observer never sees the path missing), unpublish, and the stale
 * cleanup after a "crash". The parent of a mount point is writable by the app: symlinks planted
 * there (at the hidden directory, at a parent component, or swapped in while mounting) are
 * refused, and nothing is ever mounted, created, unmounted or removed behind them. Once mounted
 * and published, the pipeline's teardown goes through held descriptors (mount_internal.h): the
 * app renaming the parent away or swapping a component for a symlink neither blocks it nor
 * redirects it to something that is not ours.
 *
 * Needs root and loop devices. The test runs in its own mount namespace, so whatever it mounts
 * disappears with it even if it dies; its loop devices are attached with autoclear, so they
 * detach once unmounted (or when the namespace goes).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <libmount.h>

#include "cleanup.h"
#include "encfs.h"
#include "fileio.h"
#include "log.h"
#include "mount_internal.h"
#include "test_atexit.h"
#include "test_fs.h"
#include "test_proc.h"

#define HELLO "hello from ext4\n"

static char tmpdir[] = "/tmp/test-encfs-mount-XXXXXX";
static bool available;

static char *tmp_path(const char *name)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/%s", tmpdir, name) > 0);
	return p;
}

static int run_quiet(const char *const *argv)
{
	struct test_proc_result res;
	int r = test_proc_run(argv, tmpdir, &res);

	if (r == 0 && res.status != 0) {
		fprintf(stderr, "%s failed: %s\n", argv[0], res.err);
		r = -EIO;
	}
	test_proc_result_clear(&res);
	return r;
}

/* A 16 MiB ext4 image with hello.txt, or (with !ext4) 16 MiB of zeros. */
static int make_image(const char *name, bool ext4)
{
	_cleanup_free_ char *p = tmp_path(name), *src = tmp_path("src");
	const char *argv[] = {"/usr/bin/truncate", "-s", "16M", p, NULL};
	int r = run_quiet(argv);

	if (r < 0 || !ext4)
		return r;
	{
		const char *mkfs[] = {
		        "/usr/sbin/mkfs.ext4", "-q", "-F", "-b", "4096", "-d", src, p, NULL};
		return run_quiet(mkfs);
	}
}

/* Attach @file to a free loop device with autoclear; the open fd is returned (close it once the
 * device is mounted: the mount then holds it, and the device detaches after the unmount). */
static int loop_attach(const char *name, char dev[32])
{
	_cleanup_free_ char *file = tmp_path(name);
	_cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	_cleanup_close_ int backing = open(file, O_RDWR | O_CLOEXEC);

	if (ctl < 0 || backing < 0)
		return -errno;
	for (int attempt = 0; attempt < 10; attempt++) {
		struct loop_config cfg = {.fd = (uint32_t)backing};
		int n = ioctl(ctl, LOOP_CTL_GET_FREE), fd;

		if (n < 0)
			return -errno;
		snprintf(dev, 32, "/dev/loop%d", n);
		fd = open(dev, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0)
			return fd;
		close(fd);
		if (errno != EBUSY)
			return -errno;
	}
	return -EBUSY;
}

/* The mount at @path in this namespace: its VFS and filesystem options, "" if not mounted. */
static bool mount_options(const char *path, char *vfs, char *fs, size_t size)
{
	struct libmnt_table *tb = mnt_new_table_from_file("/proc/self/mountinfo");
	struct libmnt_fs *f;
	bool found = false;

	assert_non_null(tb);
	f = mnt_table_find_target(tb, path, MNT_ITER_BACKWARD);
	if (f) {
		snprintf(vfs, size, "%s",
		         mnt_fs_get_vfs_options(f) ? mnt_fs_get_vfs_options(f) : "");
		snprintf(fs, size, "%s", mnt_fs_get_fs_options(f) ? mnt_fs_get_fs_options(f) : "");
		found = true;
	}
	mnt_unref_table(tb);
	return found;
}

static bool is_mounted(const char *path)
{
	char a[512], b[512];

	return mount_options(path, a, b, sizeof(a));
}

static bool has_option(const char *list, const char *opt)
{
	return mnt_optstr_get_option(list, opt, NULL, NULL) == 0;
}

/* Whatever a failed test left mounted under tmpdir goes before the directory is removed. */
static void detach_all(void *arg)
{
	(void)arg;
	for (int round = 0; round < 8; round++) {
		struct libmnt_table *tb = mnt_new_table_from_file("/proc/self/mountinfo");
		struct libmnt_iter *itr = mnt_new_iter(MNT_ITER_BACKWARD);
		struct libmnt_fs *f;
		bool any = false;

		while (tb && itr && mnt_table_next_fs(tb, itr, &f) == 0) {
			const char *t = mnt_fs_get_target(f);

			if (t && strncmp(t, tmpdir, strlen(tmpdir)) == 0) {
				umount2(t, MNT_DETACH);
				any = true;
			}
		}
		mnt_free_iter(itr);
		mnt_unref_table(tb);
		if (!any)
			break;
	}
}

static int group_setup(void **state)
{
	_cleanup_free_ char *src = NULL, *hello = NULL;

	(void)state;
	if (geteuid() != 0 || access("/dev/loop-control", W_OK) < 0) {
		fprintf(stderr, "not root or no loop devices: mount tests skipped\n");
		return 0;
	}
	/* A private mount namespace: nothing mounted here is seen outside or outlives us. */
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		fprintf(stderr, "no mount namespace (%m): mount tests skipped\n");
		return 0;
	}
	if (!mkdtemp(tmpdir))
		return -1;
	test_fs_remove_at_exit(tmpdir);
	test_atexit(detach_all, NULL);
	src = tmp_path("src");
	hello = tmp_path("src/hello.txt");
	if (mkdir(src, 0755) < 0 || write_file_atomic(hello, HELLO, strlen(HELLO), 0644) < 0)
		return -1;
	if (make_image("ro.img", true) < 0 || make_image("rw.img", true) < 0 ||
	    make_image("zeros.img", false) < 0 || make_image("stale.img", true) < 0)
		return -1;
	available = true;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (!available)
		return 0;
	detach_all(NULL);
	return test_fs_rm_rf(tmpdir);
}

#define REQUIRE_AVAILABLE()                                                                        \
	do {                                                                                       \
		if (!available)                                                                    \
			skip();                                                                    \
	} while (0)

static void read_hello(const char *dir)
{
	_cleanup_free_ char *p = NULL, *text = NULL;
	size_t len;

	assert_true(asprintf(&p, "%s/hello.txt", dir) > 0);
	assert_int_equal(read_file(p, 4096, &text, &len), 0);
	assert_string_equal(text, HELLO);
}

static void test_mount_read_only(void **state)
{
	_cleanup_free_ char *target = NULL, *file = NULL;
	char dev[32], vfs[512], fs[512];
	struct skr_error err = {0};
	struct stat st;
	int fd;

	(void)state;
	REQUIRE_AVAILABLE();
	target = tmp_path("ro/.filesystem-0");
	fd = loop_attach("ro.img", dev);
	assert_true(fd >= 0);
	assert_int_equal(encfs_mount_ext4(dev, target, false, &err), 0);
	close(fd);
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);

	assert_true(mount_options(target, vfs, fs, sizeof(vfs)));
	assert_true(has_option(vfs, "ro"));
	assert_true(has_option(vfs, "nosuid"));
	assert_true(has_option(vfs, "nodev"));
	/* ext4 reports noload as norecovery. */
	assert_true(has_option(fs, "norecovery"));
	read_hello(target);

	file = tmp_path("ro/.filesystem-0/new.txt");
	assert_int_equal(open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), -1);
	assert_int_equal(errno, EROFS);

	assert_int_equal(encfs_unpublish(target, "/nonexistent-mount-point", &err), 0);
	assert_false(is_mounted(target));
	assert_int_equal(access(target, F_OK), -1);
}

static void test_mount_read_write(void **state)
{
	_cleanup_free_ char *target = NULL, *file = NULL, *text = NULL;
	char dev[32], vfs[512], fs[512];
	struct skr_error err = {0};
	size_t len;
	int fd;

	(void)state;
	REQUIRE_AVAILABLE();
	target = tmp_path("rw/.filesystem-1");
	fd = loop_attach("rw.img", dev);
	assert_true(fd >= 0);
	assert_int_equal(encfs_mount_ext4(dev, target, true, &err), 0);
	close(fd);
	assert_true(mount_options(target, vfs, fs, sizeof(vfs)));
	assert_true(has_option(vfs, "rw"));
	assert_true(has_option(vfs, "nosuid"));
	assert_true(has_option(vfs, "nodev"));
	assert_false(has_option(fs, "norecovery"));

	file = tmp_path("rw/.filesystem-1/written.txt");
	assert_int_equal(write_file_atomic(file, "data", 4, 0644), 0);
	assert_int_equal(encfs_unpublish(target, "/nonexistent-mount-point", &err), 0);
	assert_false(is_mounted(target));

	/* The write reached the image: mount it again and read it back. */
	fd = loop_attach("rw.img", dev);
	assert_true(fd >= 0);
	assert_int_equal(encfs_mount_ext4(dev, target, false, &err), 0);
	close(fd);
	assert_int_equal(read_file(file, 4096, &text, &len), 0);
	assert_string_equal(text, "data");
	assert_int_equal(encfs_unpublish(target, "/nonexistent-mount-point", &err), 0);
}

static void test_mount_refusals(void **state)
{
	_cleanup_free_ char *target = NULL, *file = NULL, *busy = NULL;
	char dev[32];
	struct skr_error err = {0};
	int fd;

	(void)state;
	REQUIRE_AVAILABLE();
	/* Not ext4 (what a wrong key would give, too): an error naming the mount, no directory
	 * left behind. */
	target = tmp_path("bad/.filesystem-2");
	fd = loop_attach("zeros.img", dev);
	assert_true(fd >= 0);
	assert_true(encfs_mount_ext4(dev, target, false, &err) < 0);
	close(fd);
	assert_non_null(strstr(err.msg, "mount: ext4"));
	assert_non_null(strstr(err.msg, target));
	assert_int_equal(access(target, F_OK), -1);
	assert_int_equal(errno, ENOENT);

	/* Not a directory. */
	skr_error_clear(&err);
	file = tmp_path("src/hello.txt");
	assert_int_equal(encfs_mount_ext4("/dev/null", file, false, &err), -ENOTDIR);

	/* Already a mount point: no stacking. */
	skr_error_clear(&err);
	busy = tmp_path("busy");
	assert_int_equal(mkdir(busy, 0755), 0);
	assert_int_equal(mount("tmpfs", busy, "tmpfs", 0, "size=1m"), 0);
	assert_int_equal(encfs_mount_ext4("/dev/null", busy, false, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "already a mount point"));
	assert_int_equal(umount2(busy, 0), 0);

	skr_error_clear(&err);
	assert_int_equal(encfs_mount_ext4(dev, "relative/path", false, &err), -EINVAL);
	skr_error_clear(&err);
	assert_int_equal(encfs_mount_ext4(dev, "/tmp/../etc/.filesystem-0", false, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "\"..\""));
}

/* Nothing mounted at or below @dir in this namespace. */
static bool nothing_mounted_below(const char *dir)
{
	struct libmnt_table *tb = mnt_new_table_from_file("/proc/self/mountinfo");
	struct libmnt_iter *itr = mnt_new_iter(MNT_ITER_FORWARD);
	struct libmnt_fs *f;
	size_t n = strlen(dir);
	bool none = true;

	assert_non_null(tb);
	assert_non_null(itr);
	while (mnt_table_next_fs(tb, itr, &f) == 0) {
		const char *t = mnt_fs_get_target(f);

		if (t && strncmp(t, dir, n) == 0 && (t[n] == '\0' || t[n] == '/'))
			none = false;
	}
	mnt_free_iter(itr);
	mnt_unref_table(tb);
	return none;
}

static bool is_symlink(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

/* A symlink planted at the hidden directory (".filesystem-0" -> a victim such as /etc). */
static void test_symlink_at_target(void **state)
{
	_cleanup_free_ char *victim = tmp_path("planted/victim");
	_cleanup_free_ char *remote = tmp_path("planted/remote");
	_cleanup_free_ char *target = tmp_path("planted/remote/.filesystem-0");
	struct skr_error err = {0};
	char dev[32];
	int fd;

	(void)state;
	REQUIRE_AVAILABLE();
	assert_int_equal(mkdir_p(victim, 0755), 0);
	assert_int_equal(mkdir_p(remote, 0755), 0);
	assert_int_equal(symlink(victim, target), 0);
	fd = loop_attach("ro.img", dev);
	assert_true(fd >= 0);

	assert_int_equal(encfs_mount_ext4(dev, target, false, &err), -ELOOP);
	assert_non_null(strstr(err.msg, target));
	assert_non_null(strstr(err.msg, "symbolic link"));
	assert_true(nothing_mounted_below(victim));
	assert_true(is_symlink(target));

	/* Read-write alike. */
	skr_error_clear(&err);
	assert_int_equal(encfs_mount_ext4(dev, target, true, &err), -ELOOP);
	assert_true(nothing_mounted_below(victim));
	close(fd);
}

/* A symlink at a component of the parent ("remote" -> victim): mount, publish, unpublish and
 * the stale cleanup all refuse to work through it. */
static void test_symlink_in_parent(void **state)
{
	_cleanup_free_ char *victim = tmp_path("linked/victim");
	_cleanup_free_ char *link = tmp_path("linked/remote");
	_cleanup_free_ char *target = tmp_path("linked/remote/.filesystem-1");
	_cleanup_free_ char *mp = tmp_path("linked/remote/data");
	_cleanup_free_ char *deep_mp = tmp_path("linked/remote/new/data");
	_cleanup_free_ char *v_target = tmp_path("linked/victim/.filesystem-1");
	_cleanup_free_ char *v_mp = tmp_path("linked/victim/data");
	_cleanup_free_ char *v_new = tmp_path("linked/victim/new");
	_cleanup_free_ char *v_mounted = tmp_path("linked/victim/.filesystem-2");
	_cleanup_free_ char *v_empty = tmp_path("linked/victim/.filesystem-3");
	_cleanup_free_ char *mp2 = tmp_path("linked/remote/data2");
	_cleanup_free_ char *target2 = tmp_path("linked/remote/.filesystem-2");
	const char *mps[] = {mp2};
	struct skr_error err = {0};
	char dev[32];
	DIR *d;
	struct dirent *de;
	int fd;

	(void)state;
	REQUIRE_AVAILABLE();
	assert_int_equal(mkdir_p(victim, 0755), 0);
	assert_int_equal(symlink(victim, link), 0);
	fd = loop_attach("ro.img", dev);
	assert_true(fd >= 0);

	/* mount: refused, naming the component that is a link; nothing made in the victim. */
	assert_int_equal(encfs_mount_ext4(dev, target, false, &err), -ELOOP);
	close(fd);
	assert_non_null(strstr(err.msg, link));
	assert_non_null(strstr(err.msg, "symbolic link"));
	assert_true(nothing_mounted_below(victim));
	assert_int_equal(access(v_target, F_OK), -1);

	/* publish: no symlink (temporary or final) and no directory made in the victim. */
	skr_error_clear(&err);
	assert_int_equal(encfs_publish(target, mp, &err), -ELOOP);
	assert_non_null(strstr(err.msg, link));
	skr_error_clear(&err);
	assert_int_equal(encfs_publish(target, deep_mp, &err), -ELOOP);
	assert_int_equal(access(v_mp, F_OK), -1);
	assert_int_equal(access(v_new, F_OK), -1);
	d = opendir(victim);
	assert_non_null(d);
	while ((de = readdir(d)))
		assert_null(strstr(de->d_name, ".publish-"));
	closedir(d);

	/* unpublish: what looks like ours behind the link (a symlink "data" -> ".filesystem-2"
	 * and a mount there) is someone else's and stays. */
	assert_int_equal(mkdir(v_mounted, 0755), 0);
	assert_int_equal(mount("tmpfs", v_mounted, "tmpfs", 0, "size=1m"), 0);
	assert_int_equal(symlink(".filesystem-2", v_mp), 0);
	skr_error_clear(&err);
	assert_int_equal(encfs_unpublish(target2, mp, &err), -ELOOP);
	assert_non_null(strstr(err.msg, link));
	assert_true(is_symlink(v_mp));
	assert_true(is_mounted(v_mounted));

	/* stale cleanup: the hidden mount and the empty hidden directory behind the link are not
	 * ours; a warning, and both stay. */
	assert_int_equal(mkdir(v_empty, 0755), 0);
	skr_error_clear(&err);
	assert_int_equal(encfs_cleanup_stale(NULL, "encfs-test-stale-", mps, 1, &err), 0);
	assert_true(is_mounted(v_mounted));
	assert_int_equal(access(v_empty, F_OK), 0);
	assert_int_equal(umount2(v_mounted, 0), 0);
}

/* The stale cleanup never follows a symlink planted under a hidden name. */
static void test_cleanup_stale_planted(void **state)
{
	_cleanup_free_ char *victim = tmp_path("stale-planted/victim");
	_cleanup_free_ char *remote = tmp_path("stale-planted/remote");
	_cleanup_free_ char *planted = tmp_path("stale-planted/remote/.filesystem-4");
	_cleanup_free_ char *inner = tmp_path("stale-planted/victim/.filesystem-4");
	_cleanup_free_ char *mp = tmp_path("stale-planted/remote/data");
	const char *mps[] = {mp};
	struct skr_error err = {0};

	(void)state;
	REQUIRE_AVAILABLE();
	assert_int_equal(mkdir_p(inner, 0755), 0);
	assert_int_equal(mkdir_p(remote, 0755), 0);
	assert_int_equal(symlink(victim, planted), 0);
	assert_int_equal(mount("tmpfs", inner, "tmpfs", 0, "size=1m"), 0);

	assert_int_equal(encfs_cleanup_stale(NULL, "encfs-test-stale-", mps, 1, &err), 0);
	assert_true(is_symlink(planted));
	assert_int_equal(access(victim, F_OK), 0);
	assert_true(is_mounted(inner));
	assert_int_equal(umount2(inner, 0), 0);
}

struct swapper {
	const char *dir, *link; /* exchanged with each other until stop */
	atomic_bool stop;
	atomic_ulong swaps;
	int error; /* errno of a failed exchange (cmocka asserts belong to the main thread) */
};

static void *swap_loop(void *arg)
{
	struct swapper *s = arg;

	while (!atomic_load(&s->stop)) {
		if (renameat2(AT_FDCWD, s->dir, AT_FDCWD, s->link, RENAME_EXCHANGE) < 0) {
			s->error = errno;
			atomic_fetch_add(&s->swaps, 1);
			break;
		}
		atomic_fetch_add(&s->swaps, 1);
	}
	return NULL;
}

/*
 * Check against use: a parent component flips between a directory and a symlink to a victim
 * while mounting. Every attempt either mounts in the real directory or is refused; nothing is
 * ever made or mounted in the victim.
 */
static void test_symlink_swapped_while_mounting(void **state)
{
	_cleanup_free_ char *victim = tmp_path("race/victim");
	_cleanup_free_ char *real = tmp_path("race/remote"), *alt = tmp_path("race/remote-alt");
	_cleanup_free_ char *target = tmp_path("race/remote/.filesystem-5");
	_cleanup_free_ char *v_target = tmp_path("race/victim/.filesystem-5");
	struct skr_error err = {0};
	unsigned mounted = 0, refused = 0;
	char dev[32];
	int fd;

	(void)state;
	REQUIRE_AVAILABLE();
	assert_int_equal(mkdir_p(victim, 0755), 0);
	assert_int_equal(mkdir_p(real, 0755), 0);
	assert_int_equal(symlink(victim, alt), 0);
	/* Held open: the loop device (autoclear) stays attached across the unmounts. */
	fd = loop_attach("ro.img", dev);
	assert_true(fd >= 0);
	log_set_level(LOG_LEVEL_ERROR);
	for (int i = 0; i < 100; i++) {
		struct swapper s = {.dir = real, .link = alt};
		pthread_t t;
		int r;

		assert_int_equal(pthread_create(&t, NULL, swap_loop, &s), 0);
		while (atomic_load(&s.swaps) < 1)
			;
		skr_error_clear(&err);
		r = encfs_mount_ext4(dev, target, false, &err);
		atomic_store(&s.stop, true);
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(s.error, 0);
		if (is_symlink(real))
			assert_int_equal(renameat2(AT_FDCWD, real, AT_FDCWD, alt, RENAME_EXCHANGE),
			                 0);
		assert_true(nothing_mounted_below(victim));
		assert_int_equal(access(v_target, F_OK), -1);
		if (r == 0) {
			mounted++;
			assert_true(is_mounted(target));
			assert_int_equal(encfs_unpublish(target, "/nonexistent-mount-point", &err),
			                 0);
		} else {
			assert_true(r == -ELOOP || r == -ENOTDIR);
			refused++;
		}
	}
	log_set_level(LOG_LEVEL_INFO);
	close(fd);
	fprintf(stderr, "swapped while mounting: %u mounted, %u refused\n", mounted, refused);
	assert_int_equal(mounted + refused, 100);
}

static void test_publish(void **state)
{
	_cleanup_free_ char *dir = tmp_path("pub"), *target = tmp_path("pub/.filesystem-0");
	_cleanup_free_ char *mp = tmp_path("pub/data"), *other = tmp_path("elsewhere/t");
	_cleanup_free_ char *mp2 = tmp_path("pub/data2"), *file = tmp_path("pub/file");
	_cleanup_free_ char *full = tmp_path("pub/full"), *inside = tmp_path("pub/full/keep");
	_cleanup_free_ char *empty = tmp_path("pub/empty");
	char link[512];
	struct skr_error err = {0};
	struct stat st;
	ssize_t n;

	(void)state;
	REQUIRE_AVAILABLE();
	assert_int_equal(mkdir_p(target, 0755), 0);

	/* Siblings: a relative symlink. */
	assert_int_equal(encfs_publish(target, mp, &err), 0);
	n = readlink(mp, link, sizeof(link) - 1);
	assert_true(n > 0);
	link[n] = '\0';
	assert_string_equal(link, ".filesystem-0");

	/* Not siblings: absolute. Replaces the existing symlink. */
	assert_int_equal(encfs_publish(other, mp, &err), 0);
	n = readlink(mp, link, sizeof(link) - 1);
	link[n] = '\0';
	assert_string_equal(link, other);

	/* An empty directory is replaced. */
	assert_int_equal(mkdir(empty, 0755), 0);
	assert_int_equal(encfs_publish(target, empty, &err), 0);
	assert_int_equal(lstat(empty, &st), 0);
	assert_true(S_ISLNK(st.st_mode));

	/* A non-empty directory is refused and left as it was. */
	assert_int_equal(mkdir(full, 0755), 0);
	assert_int_equal(write_file_atomic(inside, "x", 1, 0644), 0);
	assert_int_equal(encfs_publish(target, full, &err), -ENOTEMPTY);
	assert_non_null(strstr(err.msg, "non-empty directory"));
	assert_int_equal(access(inside, F_OK), 0);

	/* A regular file is refused. */
	skr_error_clear(&err);
	assert_int_equal(write_file_atomic(file, "x", 1, 0644), 0);
	assert_int_equal(encfs_publish(target, file, &err), -EEXIST);
	assert_int_equal(lstat(file, &st), 0);
	assert_true(S_ISREG(st.st_mode));

	/* A missing parent is created. */
	free(mp2);
	mp2 = tmp_path("pub/new/parent/data");
	assert_int_equal(encfs_publish(target, mp2, &err), 0);
	n = readlink(mp2, link, sizeof(link) - 1);
	link[n] = '\0';
	assert_string_equal(link, target);

	/* No temporary symlinks left behind. */
	{
		DIR *d = opendir(dir);
		struct dirent *de;

		assert_non_null(d);
		while ((de = readdir(d)))
			assert_null(strstr(de->d_name, ".publish-"));
		closedir(d);
	}
}

struct observer {
	const char *path;
	atomic_bool stop;
	atomic_ulong looks, missing;
};

static void *observe(void *arg)
{
	struct observer *o = arg;
	struct stat st;

	while (!atomic_load(&o->stop)) {
		if (lstat(o->path, &st) < 0 && errno == ENOENT)
			atomic_fetch_add(&o->missing, 1);
		atomic_fetch_add(&o->looks, 1);
	}
	return NULL;
}

/* Replacement is one rename(2): a concurrent observer never finds the path missing. */
static void test_publish_atomic(void **state)
{
	_cleanup_free_ char *a = tmp_path("atomic/.filesystem-a");
	_cleanup_free_ char *b = tmp_path("atomic/.filesystem-b");
	_cleanup_free_ char *mp = tmp_path("atomic/data");
	struct observer o = {.path = mp};
	struct skr_error err = {0};
	pthread_t t;

	(void)state;
	REQUIRE_AVAILABLE();
	assert_int_equal(mkdir_p(a, 0755), 0);
	assert_int_equal(mkdir_p(b, 0755), 0);
	/* From an empty directory too (RENAME_EXCHANGE). */
	assert_int_equal(mkdir(mp, 0755), 0);
	assert_int_equal(pthread_create(&t, NULL, observe, &o), 0);
	while (atomic_load(&o.looks) < 100)
		;
	log_set_level(LOG_LEVEL_WARN); /* 2000 lines of "publish" otherwise */
	for (int i = 0; i < 2000; i++)
		assert_int_equal(encfs_publish(i % 2 ? a : b, mp, &err), 0);
	log_set_level(LOG_LEVEL_INFO);
	atomic_store(&o.stop, true);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(atomic_load(&o.looks) > 100);
	assert_int_equal(atomic_load(&o.missing), 0);
}

static void test_unpublish(void **state)
{
	_cleanup_free_ char *target = tmp_path("unpub/.filesystem-0");
	_cleanup_free_ char *mp = tmp_path("unpub/data"), *mp_other = tmp_path("unpub/other");
	_cleanup_free_ char *in_use = NULL;
	struct skr_error err = {0};
	char dev[32];
	struct stat st;
	int fd, held;

	(void)state;
	REQUIRE_AVAILABLE();
	fd = loop_attach("ro.img", dev);
	assert_true(fd >= 0);
	assert_int_equal(encfs_mount_ext4(dev, target, false, &err), 0);
	close(fd);
	assert_int_equal(encfs_publish(target, mp, &err), 0);
	read_hello(mp);

	/* A symlink that is not ours stays. */
	assert_int_equal(symlink("/somewhere/else", mp_other), 0);

	/* A file held open: the unmount waits, then detaches lazily; the path goes anyway. */
	in_use = tmp_path("unpub/data/hello.txt");
	held = open(in_use, O_RDONLY | O_CLOEXEC);
	assert_true(held >= 0);
	assert_int_equal(encfs_unpublish(target, mp, &err), 0);
	assert_int_equal(lstat(mp, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_false(is_mounted(target));
	assert_int_equal(access(target, F_OK), -1);
	close(held);

	assert_int_equal(encfs_unpublish(target, mp_other, &err), 0);
	assert_int_equal(lstat(mp_other, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
}

/* After a "crash": a hidden ext4 mount and FUSE-like mounts under the work directory. */
static void test_cleanup_stale(void **state)
{
	_cleanup_free_ char *hidden = tmp_path("remote/.filesystem-3");
	_cleanup_free_ char *mp = tmp_path("remote/data");
	_cleanup_free_ char *work = tmp_path("work"), *fuse = tmp_path("work/3/fuse");
	_cleanup_free_ char *nested = tmp_path("work/3/fuse/inner");
	_cleanup_free_ char *unrelated = tmp_path("remote/unrelated");
	_cleanup_free_ char *leftover = tmp_path("remote/.filesystem-9");
	_cleanup_free_ char *download = tmp_path("work/7/image"), *empty = tmp_path("work/8");
	_cleanup_free_ char *foreign = tmp_path("work/9/notes"), *named = tmp_path("work/x/image");
	_cleanup_free_ char *dir7 = tmp_path("work/7"), *dir9 = tmp_path("work/9");
	_cleanup_free_ char *dirx = tmp_path("work/x");
	const char *mps[] = {mp};
	struct skr_error err = {0};
	char dev[32];
	int fd;

	(void)state;
	REQUIRE_AVAILABLE();
	fd = loop_attach("stale.img", dev);
	assert_true(fd >= 0);
	assert_int_equal(encfs_mount_ext4(dev, hidden, false, &err), 0);
	close(fd);
	assert_int_equal(encfs_publish(hidden, mp, &err), 0);
	assert_int_equal(mkdir_p(fuse, 0755), 0);
	assert_int_equal(mount("tmpfs", fuse, "tmpfs", 0, "size=1m"), 0);
	assert_int_equal(mkdir(nested, 0755), 0);
	assert_int_equal(mount("tmpfs", nested, "tmpfs", 0, "size=1m"), 0);
	assert_int_equal(mkdir(unrelated, 0755), 0);
	assert_int_equal(mount("tmpfs", unrelated, "tmpfs", 0, "size=1m"), 0);
	assert_int_equal(mkdir(leftover, 0755), 0);
	/* A download of a crashed run, an empty FUSE directory; not ours: other files. */
	assert_int_equal(mkdir_p(dir7, 0700), 0);
	assert_int_equal(write_file_atomic(download, "ciphertext", 10, 0600), 0);
	assert_int_equal(mkdir_p(empty, 0700), 0);
	assert_int_equal(mkdir_p(dir9, 0700), 0);
	assert_int_equal(write_file_atomic(foreign, "x", 1, 0600), 0);
	assert_int_equal(mkdir_p(dirx, 0700), 0);
	assert_int_equal(write_file_atomic(named, "x", 1, 0600), 0);
	/* A busy one: detached lazily. */
	{
		_cleanup_free_ char *h = tmp_path("remote/.filesystem-3/hello.txt");

		fd = open(h, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
	}

	assert_int_equal(encfs_cleanup_stale(work, "encfs-test-stale-", mps, 1, &err), 0);
	close(fd);
	assert_false(is_mounted(hidden));
	assert_false(is_mounted(fuse));
	assert_false(is_mounted(nested));
	assert_int_equal(access(hidden, F_OK), -1);
	assert_int_equal(access(leftover, F_OK), -1);
	/* The next pipeline makes <work_dir>/<index> afresh: nothing of the crashed run stays. */
	assert_int_equal(access(download, F_OK), -1);
	assert_int_equal(access(dir7, F_OK), -1);
	assert_int_equal(access(empty, F_OK), -1);
	assert_int_equal(access(foreign, F_OK), 0);
	assert_int_equal(access(named, F_OK), 0);
	/* Not ours: left alone. */
	assert_true(is_mounted(unrelated));
	assert_int_equal(umount2(unrelated, 0), 0);

	/* Nothing left: a second run finds nothing and succeeds. */
	assert_int_equal(encfs_cleanup_stale(work, "encfs-test-stale-", mps, 1, &err), 0);

	skr_error_clear(&err);
	assert_int_equal(encfs_cleanup_stale(work, "", mps, 1, &err), -EINVAL);
}

static void assert_link_text(const char *path, const char *want)
{
	char text[512];
	ssize_t n = readlink(path, text, sizeof(text) - 1);

	assert_true(n > 0);
	text[n] = '\0';
	assert_string_equal(text, want);
}

/*
 * After publication the app swaps a component of a nested mount point (…/remote/a/b, the app
 * owning …/remote/a) for a symlink to a victim that looks like ours: a hidden directory with a
 * mount on it and a "b" -> ".filesystem-6" symlink. Teardown through the held descriptors
 * unmounts our mount and removes our symlink where they now are; the victim stays as it was.
 */
static void test_held_teardown_component_swapped(void **state)
{
	static const struct {
		const char *swapped; /* the component replaced by a symlink to swap/victim */
		const char *decoy;   /* where the old paths of ours now lead */
	} cases[] = {
	        {"swap/remote/a", "swap/victim"}, /* the mount point's parent */
	        {"swap/remote", "swap/victim/a"}, /* a component above it */
	};

	(void)state;
	REQUIRE_AVAILABLE();
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct encfs_mount_hold h = ENCFS_MOUNT_HOLD_INIT;
		_cleanup_free_ char *top = tmp_path("swap");
		_cleanup_free_ char *parent = tmp_path("swap/remote/a");
		_cleanup_free_ char *target = tmp_path("swap/remote/a/.filesystem-6");
		_cleanup_free_ char *mp = tmp_path("swap/remote/a/b");
		_cleanup_free_ char *swapped = tmp_path(cases[i].swapped);
		_cleanup_free_ char *victim = tmp_path("swap/victim");
		_cleanup_free_ char *v_hidden = NULL, *v_link = NULL, *v_keep = NULL;
		_cleanup_free_ char *moved = NULL, *m_target = NULL, *m_mp = NULL;
		struct skr_error err = {0};
		char dev[32];
		int fd;

		print_message("swapped: %s\n", cases[i].swapped);
		assert_true(asprintf(&v_hidden, "%s/%s/.filesystem-6", tmpdir, cases[i].decoy) > 0);
		assert_true(asprintf(&v_link, "%s/%s/b", tmpdir, cases[i].decoy) > 0);
		assert_true(asprintf(&v_keep, "%s/%s/keep", tmpdir, cases[i].decoy) > 0);
		assert_int_equal(mkdir_p(parent, 0755), 0);
		fd = loop_attach("ro.img", dev);
		assert_true(fd >= 0);
		assert_int_equal(encfs_mount_ext4_held(dev, target, false, &h, &err), 0);
		close(fd);
		assert_int_equal(encfs_publish_held(&h, mp, &err), 0);
		assert_link_text(mp, ".filesystem-6");
		read_hello(mp);

		/* The victim: a mount, a symlink with our text and a file, all someone else's. */
		assert_int_equal(mkdir_p(v_hidden, 0755), 0);
		assert_int_equal(mount("tmpfs", v_hidden, "tmpfs", 0, "size=1m"), 0);
		assert_int_equal(symlink(".filesystem-6", v_link), 0);
		assert_int_equal(write_file_atomic(v_keep, "x", 1, 0644), 0);
		/* Our directories move aside, a symlink takes the component's name. */
		assert_true(asprintf(&moved, "%s-old", swapped) > 0);
		assert_int_equal(rename(swapped, moved), 0);
		assert_int_equal(symlink(victim, swapped), 0);
		assert_true(asprintf(&m_target, "%s%s", moved, target + strlen(swapped)) > 0);
		assert_true(asprintf(&m_mp, "%s%s", moved, mp + strlen(swapped)) > 0);
		assert_true(is_mounted(m_target));
		/* The old paths now lead to the decoy: the victim's mount and symlink. */
		assert_true(is_mounted(v_hidden));
		assert_true(is_symlink(mp));
		read_hello(m_mp);
		/* The path-based teardown refuses the symlink: the mount would stay. */
		assert_int_equal(encfs_unpublish(target, mp, &err), -ELOOP);
		assert_true(is_mounted(m_target));

		skr_error_clear(&err);
		assert_int_equal(encfs_unpublish_held(&h, 0, &err), 0);
		assert_int_equal(h.target_fd, -1);
		/* Ours: unmounted, symlink and hidden directory gone where they had moved. */
		assert_false(is_mounted(m_target));
		assert_int_equal(faccessat(AT_FDCWD, m_mp, F_OK, AT_SYMLINK_NOFOLLOW), -1);
		assert_int_equal(errno, ENOENT);
		assert_int_equal(access(m_target, F_OK), -1);
		assert_int_equal(errno, ENOENT);
		/* Not ours: untouched. */
		assert_true(is_symlink(swapped));
		assert_true(is_mounted(v_hidden));
		assert_link_text(v_link, ".filesystem-6");
		assert_int_equal(access(v_keep, F_OK), 0);

		assert_int_equal(umount2(v_hidden, 0), 0);
		assert_true(nothing_mounted_below(top));
		assert_int_equal(test_fs_rm_rf(top), 0);
	}
}

/*
 * The app renames the mount point's parent into another directory while a file in the mount is
 * open: teardown still unmounts ours (lazily, after the wait) and removes our symlink and hidden
 * directory where they now live. A symlink the app puts in place of ours (same text, another
 * inode) is not ours and stays.
 */
static void test_held_teardown_parent_renamed(void **state)
{
	struct encfs_mount_hold h = ENCFS_MOUNT_HOLD_INIT;
	_cleanup_free_ char *top = tmp_path("renamed");
	_cleanup_free_ char *parent = tmp_path("renamed/remote/a");
	_cleanup_free_ char *target = tmp_path("renamed/remote/a/.filesystem-7");
	_cleanup_free_ char *mp = tmp_path("renamed/remote/a/b");
	_cleanup_free_ char *elsewhere = tmp_path("renamed/elsewhere");
	_cleanup_free_ char *moved = tmp_path("renamed/elsewhere/a");
	_cleanup_free_ char *m_target = tmp_path("renamed/elsewhere/a/.filesystem-7");
	_cleanup_free_ char *m_mp = tmp_path("renamed/elsewhere/a/b");
	_cleanup_free_ char *m_file = tmp_path("renamed/elsewhere/a/b/hello.txt");
	_cleanup_free_ char *tmp_link = tmp_path("renamed/elsewhere/a/app-link");
	struct skr_error err = {0};
	char dev[32];
	int fd, held;

	(void)state;
	REQUIRE_AVAILABLE();
	assert_int_equal(mkdir_p(parent, 0755), 0);
	assert_int_equal(mkdir_p(elsewhere, 0755), 0);
	fd = loop_attach("ro.img", dev);
	assert_true(fd >= 0);
	assert_int_equal(encfs_mount_ext4_held(dev, target, false, &h, &err), 0);
	close(fd);
	assert_int_equal(encfs_publish_held(&h, mp, &err), 0);

	/* Renamed away; the old path no longer exists at all. */
	assert_int_equal(rename(parent, moved), 0);
	assert_int_equal(access(parent, F_OK), -1);
	assert_true(is_mounted(m_target));
	read_hello(m_mp);
	held = open(m_file, O_RDONLY | O_CLOEXEC);
	assert_true(held >= 0);

	assert_int_equal(encfs_unpublish_held(&h, 200, &err), 0);
	close(held);
	assert_false(is_mounted(m_target));
	assert_int_equal(faccessat(AT_FDCWD, m_mp, F_OK, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(access(m_target, F_OK), -1);
	assert_int_equal(access(moved, F_OK), 0);
	assert_true(nothing_mounted_below(top));

	/* Again, and the app replaces our symlink with its own equal one: that one stays. */
	fd = loop_attach("ro.img", dev);
	assert_true(fd >= 0);
	assert_int_equal(encfs_mount_ext4_held(dev, m_target, false, &h, &err), 0);
	close(fd);
	assert_int_equal(encfs_publish_held(&h, m_mp, &err), 0);
	assert_int_equal(symlink(".filesystem-7", tmp_link), 0);
	assert_int_equal(rename(tmp_link, m_mp), 0);
	assert_int_equal(encfs_unpublish_held(&h, 0, &err), 0);
	assert_false(is_mounted(m_target));
	assert_link_text(m_mp, ".filesystem-7");
	assert_int_equal(access(m_target, F_OK), -1);
	assert_true(nothing_mounted_below(top));
	assert_int_equal(test_fs_rm_rf(top), 0);
}

/*
 * In another mount namespace (the app's, when the mount does not propagate there) the hidden
 * directory is no mount point, so the app can rename it and make a new one under its name.
 * Run as such an app: a child in a namespace of its own, where the mount is detached first.
 */
static int app_replace_dir(const char *dir, const char *aside)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (unshare(CLONE_NEWNS) < 0 || umount2(dir, MNT_DETACH) < 0 ||
		    rename(dir, aside) < 0 || mkdir(dir, 0755) < 0)
			_exit(1);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/*
 * The hidden directory moved aside within its parent and a new one made under its name (by the
 * app, in its own namespace): the moved one is still unmounted here (the mount is ours, wherever
 * it went) and left where it is; the new one under the old name is not ours and stays.
 */
static void test_held_teardown_target_replaced(void **state)
{
	struct encfs_mount_hold h = ENCFS_MOUNT_HOLD_INIT;
	_cleanup_free_ char *top = tmp_path("replaced");
	_cleanup_free_ char *target = tmp_path("replaced/remote/.filesystem-8");
	_cleanup_free_ char *aside = tmp_path("replaced/remote/aside");
	_cleanup_free_ char *mp = tmp_path("replaced/remote/data");
	struct skr_error err = {0};
	struct stat st;
	char dev[32];
	int fd;

	(void)state;
	REQUIRE_AVAILABLE();
	fd = loop_attach("ro.img", dev);
	assert_true(fd >= 0);
	assert_int_equal(encfs_mount_ext4_held(dev, target, false, &h, &err), 0);
	close(fd);
	assert_int_equal(encfs_publish_held(&h, mp, &err), 0);
	/* Here a mount point cannot be renamed; in the app's namespace it can. */
	assert_int_equal(rename(target, aside), -1);
	assert_int_equal(errno, EBUSY);
	assert_int_equal(app_replace_dir(target, aside), 0);
	assert_true(is_mounted(aside));
	assert_false(is_mounted(target));

	assert_int_equal(encfs_unpublish_held(&h, 0, &err), 0);
	assert_true(nothing_mounted_below(top));
	assert_int_equal(lstat(target, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(lstat(aside, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* Our symlink (to ".filesystem-8", now the app's directory) is gone all the same. */
	assert_int_equal(lstat(mp, &st), -1);
	assert_int_equal(test_fs_rm_rf(top), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_mount_read_only),
	        cmocka_unit_test(test_mount_read_write),
	        cmocka_unit_test(test_mount_refusals),
	        cmocka_unit_test(test_publish),
	        cmocka_unit_test(test_publish_atomic),
	        cmocka_unit_test(test_unpublish),
	        cmocka_unit_test(test_cleanup_stale),
	        cmocka_unit_test(test_symlink_at_target),
	        cmocka_unit_test(test_symlink_in_parent),
	        cmocka_unit_test(test_cleanup_stale_planted),
	        cmocka_unit_test(test_symlink_swapped_while_mounting),
	        cmocka_unit_test(test_held_teardown_component_swapped),
	        cmocka_unit_test(test_held_teardown_parent_renamed),
	        cmocka_unit_test(test_held_teardown_target_replaced),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
