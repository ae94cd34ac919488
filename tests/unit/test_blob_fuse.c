/* SPDX-License-Identifier: MIT */
/*
 * The blob as a local file (encfs.h): a real FUSE mount served by this process over a file://
 * blob. Whole-file SHA-256, random offsets and concurrent readers equal the source; sequential
 * reads go through the cache's read-ahead; a blob changed underneath gives EIO to read(2);
 * writes and fsync reach the blob; an ext4 image attached with losetup and mounted (also with
 * mount -o loop) through the file reads back its files; a busy file is unmounted lazily within
 * the bound; no /dev/fuse gives the error that points to the download mode. Also blob_download.
 * Every mount, loop device and FUSE mount is undone by the teardown when an assertion fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cleanup.h"
#include "encfs.h"
#include "test_fs.h"
#include "test_proc.h"

#define KIB 1024u
#define MIB (1024u * 1024)

static char tmpdir[] = "/tmp/test_blob_fuse.XXXXXX";

/* What a test set up, undone by the teardown even when an assertion fails. */
static struct {
	char path[300]; /* the blob's file */
	char url[320];
	char dir[256]; /* FUSE mount directory */
	char mnt[256]; /* ext4 mount point */
	uint8_t *data; /* the source bytes */
	size_t size;
	struct blob *blob;
	struct block_cache *cache;
	struct blob_fuse *fuse;
} W;

static int group_setup(void **state)
{
	if (!mkdtemp(tmpdir))
		return -1;
	test_fs_remove_at_exit(tmpdir);
	return 0;
}

/* The path of a system tool (test_proc_run() does not search PATH). */
static const char *tool(const char *name)
{
	static const char *const dirs[] = {"/usr/sbin", "/usr/bin", "/sbin", "/bin"};
	static char found[8][64];
	static unsigned next;
	char *p = found[next++ % ELEMENTSOF(found)];

	for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
		snprintf(p, sizeof(found[0]), "%s/%s", dirs[i], name);
		if (access(p, X_OK) == 0)
			return p;
	}
	return name;
}

/* Run a system tool (argv[0] a bare name); its stdout in *@out when @out. */
static int run(const char *const *args, char **out)
{
	const char *argv[16];
	struct test_proc_result res = {0};
	size_t n = 0;
	int r;

	argv[n++] = tool(args[0]);
	while (args[n] && n < ELEMENTSOF(argv) - 1) {
		argv[n] = args[n];
		n++;
	}
	argv[n] = NULL;
	r = test_proc_run(argv, NULL, &res);

	if (r == 0 && res.status != 0) {
		fprintf(stderr, "%s exited with %d: %s", argv[0], res.status, res.err);
		r = -EIO;
	}
	if (out && r == 0) {
		*out = res.out;
		res.out = NULL;
	}
	test_proc_result_clear(&res);
	return r;
}

/* Unmount the ext4 mount and detach every loop device on the FUSE file. */
static void undo_loops(void)
{
	_cleanup_free_ char *out = NULL;

	if (W.mnt[0] && umount2(W.mnt, 0) < 0 && errno != EINVAL && errno != ENOENT)
		fprintf(stderr, "umount %s: %s\n", W.mnt, strerror(errno));
	if (!W.fuse)
		return;
	if (run((const char *const[]){"losetup", "-j", blob_fuse_file(W.fuse), NULL}, &out) < 0)
		return;
	/* "/dev/loop3: [0045]:2 (/tmp/.../data)" a line */
	for (char *line = out, *next; line && *line; line = next) {
		char *colon = strchr(line, ':');

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!colon)
			continue;
		*colon = '\0';
		if (run((const char *const[]){"losetup", "-d", line, NULL}, NULL) < 0)
			fprintf(stderr, "cannot detach %s\n", line);
	}
}

static int teardown(void **state)
{
	struct skr_error err = {0};

	undo_loops();
	if (W.fuse && blob_fuse_unmount(W.fuse, &err) < 0)
		fprintf(stderr, "blob_fuse_unmount: %s\n", err.msg);
	block_cache_free(W.cache);
	if (W.blob)
		blob_close(W.blob);
	free(W.data);
	if (W.path[0])
		unlink(W.path);
	memset(&W, 0, sizeof(W));
	return 0;
}

static void write_file(const char *path, const void *data, size_t size)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, size), (ssize_t)size);
}

/* A source file of @size random bytes (a zero run in the middle when @holes). */
static void make_source(const char *name, size_t size, bool holes)
{
	snprintf(W.path, sizeof(W.path), "%s/%s", tmpdir, name);
	snprintf(W.url, sizeof(W.url), "file://%s", W.path);
	W.size = size;
	W.data = malloc(size);
	assert_non_null(W.data);
	assert_int_equal(RAND_bytes(W.data, (int)size), 1);
	if (holes)
		memset(W.data + size / 4, 0, size / 2);
	write_file(W.path, W.data, size);
}

static void use_source(const char *path)
{
	struct stat st;

	snprintf(W.path, sizeof(W.path), "%s", path);
	snprintf(W.url, sizeof(W.url), "file://%s", W.path);
	assert_int_equal(stat(path, &st), 0);
	W.size = (size_t)st.st_size;
}

static void open_blob(bool writable)
{
	struct blob_options bo = {.url = W.url, .writable = writable};
	struct skr_error err = {0};

	if (blob_open(&bo, &W.blob, &err) < 0)
		fail_msg("blob_open: %s", err.msg);
}

static void mount_blob(const char *name, bool writable, const struct block_cache_options *o)
{
	struct skr_error err = {0};

	open_blob(writable);
	if (block_cache_new(W.blob, o, &W.cache, &err) < 0)
		fail_msg("block_cache_new: %s", err.msg);
	snprintf(W.dir, sizeof(W.dir), "%s/%s", tmpdir, name);
	if (blob_fuse_mount(W.cache, W.dir, writable, &W.fuse, &err) < 0)
		fail_msg("blob_fuse_mount: %s", err.msg);
}

static bool is_mount_point(const char *dir)
{
	char parent[300];
	struct stat a, b;

	snprintf(parent, sizeof(parent), "%s/..", dir);
	return stat(dir, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

static void unmount_blob(void)
{
	struct skr_error err = {0};
	int r = blob_fuse_unmount(W.fuse, &err);

	W.fuse = NULL;
	if (r < 0)
		fail_msg("blob_fuse_unmount: %s", err.msg);
	assert_false(is_mount_point(W.dir));
}

static void sha256_fd(int fd, uint8_t md[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	_cleanup_free_ uint8_t *buf = malloc(MIB);
	ssize_t n;

	assert_non_null(ctx);
	assert_non_null(buf);
	assert_int_equal(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
	while ((n = read(fd, buf, MIB)) > 0)
		assert_int_equal(EVP_DigestUpdate(ctx, buf, (size_t)n), 1);
	assert_int_equal(n, 0);
	assert_int_equal(EVP_DigestFinal_ex(ctx, md, NULL), 1);
	EVP_MD_CTX_free(ctx);
}

/* ---- reads ----------------------------------------------------------------------------------- */

static void test_bytes_equal_source(void **state)
{
	struct block_cache_options o = {.capacity_blocks = 16};
	uint8_t want[32], got[32];
	struct block_cache_stats st;
	struct stat sb;
	_cleanup_close_ int fd = -1;
	unsigned seed = 4242;

	size_t nblocks;

	make_source("src.img", 20 * MIB + 777, false);
	nblocks = (W.size + 512 * KIB - 1) / (512 * KIB);
	mount_blob("fuse-read", false, &o);
	{
		char want_path[300];

		snprintf(want_path, sizeof(want_path), "%s/data", W.dir);
		assert_string_equal(blob_fuse_file(W.fuse), want_path);
	}
	assert_int_equal(stat(blob_fuse_file(W.fuse), &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0400);
	assert_int_equal(sb.st_size, (off_t)W.size);

	fd = open(blob_fuse_file(W.fuse), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	sha256_fd(fd, got);
	EVP_Digest(W.data, W.size, want, NULL, EVP_sha256(), NULL);
	assert_memory_equal(got, want, sizeof(want));
	/* Most blocks came by read-ahead, and hardly any twice (evicted before being read). */
	block_cache_get_stats(W.cache, &st);
	if (st.readahead_blocks < nblocks / 2 || st.misses > nblocks / 4 ||
	    st.fetched_bytes > W.size + W.size / 10)
		fail_msg("sequential read: read-ahead %llu blocks, %llu misses of %zu blocks, "
		         "%llu bytes fetched",
		         (unsigned long long)st.readahead_blocks, (unsigned long long)st.misses,
		         nblocks, (unsigned long long)st.fetched_bytes);

	for (int i = 0; i < 200; i++) {
		uint8_t buf[70000];
		uint64_t off = (uint64_t)rand_r(&seed) % W.size;
		size_t len = (size_t)rand_r(&seed) % sizeof(buf) + 1;
		size_t want_len = W.size - off < len ? W.size - off : len;

		assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)want_len);
		assert_memory_equal(buf, W.data + off, want_len);
	}
	/* The directory holds exactly "data". */
	{
		char ls[300];
		_cleanup_free_ char *out = NULL;

		snprintf(ls, sizeof(ls), "%s", W.dir);
		assert_int_equal(run((const char *const[]){"ls", "-a", ls, NULL}, &out), 0);
		assert_string_equal(out, ".\n..\ndata\n");
	}
	close(fd);
	fd = -1;
	unmount_blob();
}

struct reader_arg {
	const char *file;
	unsigned seed;
	int failures;
	char msg[200];
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	int fd = open(a->file, O_RDONLY | O_CLOEXEC);
	uint8_t *buf = malloc(300 * KIB);

	if (fd < 0 || !buf) {
		snprintf(a->msg, sizeof(a->msg), "open: %s", strerror(errno));
		a->failures++;
		goto out;
	}
	for (int i = 0; i < 150; i++) {
		uint64_t off = (uint64_t)rand_r(&a->seed) % W.size;
		size_t len = (size_t)rand_r(&a->seed) % (300 * KIB) + 1;
		size_t want = W.size - off < len ? W.size - off : len;
		ssize_t n = pread(fd, buf, len, (off_t)off);

		if (n != (ssize_t)want || memcmp(buf, W.data + off, want) != 0) {
			snprintf(a->msg, sizeof(a->msg), "pread %zu at %llu: %zd (%s)", len,
			         (unsigned long long)off, n, n < 0 ? strerror(errno) : "bytes");
			a->failures++;
		}
	}
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* Six threads, their own descriptors, a cache much smaller than the file. */
static void test_concurrent_readers(void **state)
{
	struct block_cache_options o = {.block_size = 128 * KIB, .capacity_blocks = 8};
	struct reader_arg args[6];
	pthread_t th[6];

	make_source("conc.img", 16 * MIB + 5, false);
	mount_blob("fuse-conc", false, &o);
	for (int i = 0; i < 6; i++) {
		args[i] = (struct reader_arg){.file = blob_fuse_file(W.fuse),
		                              .seed = 10u + (unsigned)i};
		assert_int_equal(pthread_create(&th[i], NULL, reader, &args[i]), 0);
	}
	for (int i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 6; i++)
		if (args[i].failures)
			fail_msg("reader %d: %d failures, last: %s", i, args[i].failures,
			         args[i].msg);
	unmount_blob();
}

/* The blob file rewritten after the mount: reads of what was not cached fail with EIO. */
static void test_changed_blob_gives_eio(void **state)
{
	struct timespec times[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = 1000000000}};
	uint8_t buf[4096];
	_cleanup_close_ int fd = -1, src = -1;

	make_source("stale.img", 20 * MIB, false);
	mount_blob("fuse-stale", false, NULL);
	fd = open(blob_fuse_file(W.fuse), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));

	src = open(W.path, O_WRONLY | O_CLOEXEC);
	assert_true(src >= 0);
	assert_int_equal(pwrite(src, "other bytes", 11, 16 * MIB), 11);
	assert_int_equal(futimens(src, times), 0);

	errno = 0;
	assert_int_equal(pread(fd, buf, sizeof(buf), 16 * MIB), -1);
	assert_int_equal(errno, EIO);
	close(fd);
	fd = -1;
	unmount_blob();
}

/* ---- writes ---------------------------------------------------------------------------------- */

/* @path holds W.size bytes equal to @want. */
static void check_file(const char *path, const uint8_t *want)
{
	_cleanup_free_ uint8_t *buf = malloc(W.size);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_non_null(buf);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, W.size, 0), (ssize_t)W.size);
	for (size_t i = 0; i < W.size; i++)
		if (buf[i] != want[i])
			fail_msg("%s: byte %zu is %u, expected %u", path, i, buf[i], want[i]);
}

static void test_write_fsync_persists(void **state)
{
	struct block_cache_options o = {.block_size = 64 * KIB, .capacity_blocks = 8};
	_cleanup_free_ uint8_t *model = NULL;
	_cleanup_free_ uint8_t *src = malloc(300 * KIB);
	_cleanup_close_ int fd = -1;
	struct stat sb;
	static const struct {
		size_t len;
		uint64_t off;
	} writes[] = {
	        {10, 5},
	        {200 * KIB, 1 * MIB + 3},
	        {64 * KIB, 2 * MIB},
	        {100, 4 * MIB - 100},
	};

	assert_non_null(src);
	assert_int_equal(RAND_bytes(src, 300 * KIB), 1);
	make_source("rw.img", 4 * MIB, false);
	model = malloc(W.size);
	assert_non_null(model);
	memcpy(model, W.data, W.size);
	mount_blob("fuse-rw", true, &o);
	assert_int_equal(stat(blob_fuse_file(W.fuse), &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);

	fd = open(blob_fuse_file(W.fuse), O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	for (size_t i = 0; i < ELEMENTSOF(writes); i++) {
		assert_int_equal(pwrite(fd, src + i * 1000, writes[i].len, (off_t)writes[i].off),
		                 (ssize_t)writes[i].len);
		memcpy(model + writes[i].off, src + i * 1000, writes[i].len);
	}
	assert_int_equal(fsync(fd), 0);
	check_file(W.path, model);

	/* Fixed size: no growth, no truncation. */
	errno = 0;
	assert_int_equal(pwrite(fd, src, 10, (off_t)W.size), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(ftruncate(fd, 1000), -1);
	assert_int_equal(errno, EPERM);

	/* Written again, then only closed: close flushes. */
	assert_int_equal(pwrite(fd, src + 5000, 3000, 3 * MIB + 1), 3000);
	memcpy(model + 3 * MIB + 1, src + 5000, 3000);
	assert_int_equal(close(fd), 0);
	fd = -1;
	check_file(W.path, model);
	unmount_blob();
	check_file(W.path, model);
}

static void test_read_only_refuses_writes(void **state)
{
	make_source("ro.img", 1 * MIB, false);
	mount_blob("fuse-ro", false, NULL);
	errno = 0;
	assert_int_equal(open(blob_fuse_file(W.fuse), O_RDWR | O_CLOEXEC), -1);
	assert_int_equal(errno, EROFS);
	unmount_blob();
}

/* ---- ext4 through a loop device -------------------------------------------------------------- */

static void compare_file(const char *path, const uint8_t *want, size_t len)
{
	_cleanup_free_ uint8_t *buf = malloc(len + 1);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_non_null(buf);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, len + 1), (ssize_t)len);
	assert_memory_equal(buf, want, len);
}

static void test_ext4_through_loop_device(void **state)
{
	char srcdir[300], big[320], small[320], img[300], file[320];
	static const char hello[] = "hello from ext4 through FUSE\n";
	_cleanup_free_ uint8_t *content = malloc(3 * MIB);
	_cleanup_free_ char *dev = NULL;

	assert_non_null(content);
	assert_int_equal(RAND_bytes(content, 3 * MIB), 1);
	snprintf(srcdir, sizeof(srcdir), "%s/ext4src", tmpdir);
	snprintf(big, sizeof(big), "%s/big.bin", srcdir);
	snprintf(small, sizeof(small), "%s/hello.txt", srcdir);
	snprintf(img, sizeof(img), "%s/ext4.img", tmpdir);
	assert_int_equal(mkdir(srcdir, 0700), 0);
	write_file(big, content, 3 * MIB);
	write_file(small, hello, strlen(hello));
	assert_int_equal(run((const char *const[]){"mkfs.ext4", "-q", "-b", "4096", "-d", srcdir,
	                                           img, "16M", NULL},
	                     NULL),
	                 0);
	use_source(img);
	mount_blob("fuse-ext4", false, NULL);
	snprintf(W.mnt, sizeof(W.mnt), "%s/mnt", tmpdir);
	assert_int_equal(mkdir(W.mnt, 0700), 0);

	/* losetup, then mount the device. */
	assert_int_equal(run((const char *const[]){"losetup", "--find", "--show", "--read-only",
	                                           blob_fuse_file(W.fuse), NULL},
	                     &dev),
	                 0);
	dev[strcspn(dev, "\n")] = '\0';
	assert_int_equal(
	        run((const char *const[]){"mount", "-t", "ext4", "-o", "ro", dev, W.mnt, NULL},
	            NULL),
	        0);
	snprintf(file, sizeof(file), "%s/big.bin", W.mnt);
	compare_file(file, content, 3 * MIB);
	snprintf(file, sizeof(file), "%s/hello.txt", W.mnt);
	compare_file(file, (const uint8_t *)hello, strlen(hello));
	assert_int_equal(umount2(W.mnt, 0), 0);
	assert_int_equal(run((const char *const[]){"losetup", "-d", dev, NULL}, NULL), 0);

	/* mount -o ro,loop on the file itself. */
	assert_int_equal(run((const char *const[]){"mount", "-t", "ext4", "-o", "ro,loop",
	                                           blob_fuse_file(W.fuse), W.mnt, NULL},
	                     NULL),
	                 0);
	snprintf(file, sizeof(file), "%s/big.bin", W.mnt);
	compare_file(file, content, 3 * MIB);
	assert_int_equal(umount2(W.mnt, 0), 0);
	undo_loops(); /* mount's loop device is auto-cleared; this detaches it if not */
	unmount_blob();
}

/* ---- unmounting and errors ------------------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An open file keeps the mount busy: unmounting still returns, lazily, within its bound. */
static void test_unmount_busy_is_bounded(void **state)
{
	uint8_t buf[4096];
	_cleanup_close_ int fd = -1;
	double t0;

	make_source("busy.img", 4 * MIB, false);
	mount_blob("fuse-busy", false, NULL);
	fd = open(blob_fuse_file(W.fuse), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	t0 = now_s();
	unmount_blob();
	assert_true(now_s() - t0 < 10.0);
	/* The connection is gone: uncached reads fail instead of hanging. */
	assert_int_equal(pread(fd, buf, sizeof(buf), 3 * MIB), -1);
}

static void test_mount_dir_must_be_empty(void **state)
{
	struct skr_error err = {0};
	char stray[300];

	make_source("notempty.img", 1 * MIB, false);
	open_blob(false);
	assert_int_equal(block_cache_new(W.blob, NULL, &W.cache, &err), 0);
	snprintf(W.dir, sizeof(W.dir), "%s/fuse-notempty", tmpdir);
	assert_int_equal(mkdir(W.dir, 0700), 0);
	snprintf(stray, sizeof(stray), "%s/stray", W.dir);
	write_file(stray, "x", 1);
	assert_int_equal(blob_fuse_mount(W.cache, W.dir, false, &W.fuse, &err), -ENOTEMPTY);
	assert_null(W.fuse);
	assert_non_null(strstr(err.msg, "not empty"));
	assert_false(is_mount_point(W.dir));
	unlink(stray);

	/* A missing directory is created (parents too). */
	snprintf(W.dir, sizeof(W.dir), "%s/fuse-new/a/b", tmpdir);
	if (blob_fuse_mount(W.cache, W.dir, false, &W.fuse, &err) < 0)
		fail_msg("blob_fuse_mount: %s", err.msg);
	unmount_blob();
}

/* In a mount namespace whose /dev has no fuse device: the error names the way out. */
static void test_no_dev_fuse(void **state)
{
	char dir[300];
	pid_t pid;
	int status;

	make_source("nofuse.img", 1 * MIB, false);
	snprintf(dir, sizeof(dir), "%s/fuse-none", tmpdir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct blob_options bo = {.url = W.url};
		struct skr_error err = {0};
		struct blob *b = NULL;
		struct block_cache *c = NULL;
		struct blob_fuse *f = NULL;
		int r;

		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("tmpfs", "/dev", "tmpfs", 0, NULL) < 0) {
			perror("namespace");
			_exit(2);
		}
		if (blob_open(&bo, &b, &err) < 0 || block_cache_new(b, NULL, &c, &err) < 0) {
			fprintf(stderr, "%s\n", err.msg);
			_exit(3);
		}
		r = blob_fuse_mount(c, dir, false, &f, &err);
		if (r != -ENODEV || f || !strstr(err.msg, "/dev/fuse missing") ||
		    !strstr(err.msg, "download access mode")) {
			fprintf(stderr, "blob_fuse_mount: %d %s\n", r, err.msg);
			_exit(1);
		}
		block_cache_free(c);
		blob_close(b);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- download -------------------------------------------------------------------------------- */

static void test_download(void **state)
{
	char out[300];
	struct skr_error err = {0};
	struct stat sb;

	make_source("dl.img", 13 * MIB + 4321, true);
	open_blob(false);
	snprintf(out, sizeof(out), "%s/dl.out", tmpdir);
	if (blob_download(W.blob, out, 3, &err) < 0)
		fail_msg("blob_download: %s", err.msg);
	assert_int_equal(stat(out, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	check_file(out, W.data);

	/* An existing file is never replaced. */
	skr_error_clear(&err);
	assert_int_equal(blob_download(W.blob, out, 3, &err), -EEXIST);
	assert_non_null(strstr(err.msg, out));
	assert_int_equal(stat(out, &sb), 0);
	assert_int_equal(sb.st_size, (off_t)W.size);
	unlink(out);
}

static void test_download_failure_leaves_nothing(void **state)
{
	struct timespec times[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = 1000000000}};
	char out[300];
	struct skr_error err = {0};

	make_source("dlfail.img", 9 * MIB, false);
	open_blob(false);
	assert_int_equal(utimensat(AT_FDCWD, W.path, times, 0), 0);
	snprintf(out, sizeof(out), "%s/dlfail.out", tmpdir);
	assert_true(blob_download(W.blob, out, 4, &err) < 0);
	assert_non_null(strstr(err.msg, "changed"));
	assert_int_equal(access(out, F_OK), -1);
	assert_int_equal(errno, ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_bytes_equal_source, teardown),
	        cmocka_unit_test_teardown(test_concurrent_readers, teardown),
	        cmocka_unit_test_teardown(test_changed_blob_gives_eio, teardown),
	        cmocka_unit_test_teardown(test_write_fsync_persists, teardown),
	        cmocka_unit_test_teardown(test_read_only_refuses_writes, teardown),
	        cmocka_unit_test_teardown(test_ext4_through_loop_device, teardown),
	        cmocka_unit_test_teardown(test_unmount_busy_is_bounded, teardown),
	        cmocka_unit_test_teardown(test_mount_dir_must_be_empty, teardown),
	        cmocka_unit_test_teardown(test_no_dev_fuse, teardown),
	        cmocka_unit_test_teardown(test_download, teardown),
	        cmocka_unit_test_teardown(test_download_failure_leaves_nothing, teardown),
	};

	if (geteuid() != 0) {
		fprintf(stderr, "FUSE mounts, loop devices and mount(2) need root\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
