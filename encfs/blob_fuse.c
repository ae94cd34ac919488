/* SPDX-License-Identifier: MIT */
/*
 * The blob as a local file (encfs.h "The blob as a local file"): a FUSE filesystem (libfuse3
 * low-level API) with one regular file "data" whose bytes come from the block cache, served by
 * a fixed pool of threads of this process.
 *
 * The threads run our own receive loop instead of fuse_session_loop_mt(): they wait on the FUSE
 * device together with an eventfd, so unmounting can stop them at once even when the kernel
 * connection stays alive (a lazy unmount of a file still in use), where libfuse's loop would sit
 * in read(2) until the next request. Each thread waits in its own epoll instance holding the
 * device with EPOLLEXCLUSIVE, so a request wakes one idle thread, not all of them (measured
 * with poll(2): 8 threads woken per request, 13% of the process's time in context switches
 * during a sequential read).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "block_cache_internal.h"
#include "cleanup.h"
#include "encfs.h"
#include "fileio.h"
#include "log.h"

#define FUSE_THREADS 8
#define DATA_INO 2
#define DATA_NAME "data"
/* The file never changes size or identity: let the kernel keep lookups and attributes. */
#define ATTR_TIMEOUT_S 3600.0
/* EBUSY retries of a plain unmount before falling back to a lazy one. */
#define UNMOUNT_WAIT_MS 3000
#define UNMOUNT_RETRY_MS 50
/*
 * Kernel read-ahead on the file: 1 MiB (default 128 KiB) so sequential reads reach us as 1 MiB
 * requests (the most one FUSE request carries). Not more: the depth comes from the cache's own
 * read-ahead, and a deeper kernel window only competes with it for cache capacity (measured: a
 * 4 MiB window over a 16-block cache re-fetched 5% of the blocks).
 */
#define KERNEL_READAHEAD_KB 1024

struct blob_fuse {
	struct block_cache *cache;
	bool writable;
	char *dir;
	char *file;
	uid_t uid;
	gid_t gid;
	struct timespec mtime;
	struct fuse_session *se;
	int stop_fd;
	struct serve_ctx {
		struct blob_fuse *f;
		int ep; /* this thread's epoll instance: the device (exclusive) and stop_fd */
	} ctx[FUSE_THREADS];
	pthread_t threads[FUSE_THREADS];
	unsigned started;
};

/* ---- libfuse's messages into our log --------------------------------------------------------- */

__attribute__((format(printf, 2, 0))) static void fuse_log_forward(enum fuse_log_level level,
                                                                   const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;
	enum log_level l = level <= FUSE_LOG_ERR       ? LOG_LEVEL_ERROR
	                   : level <= FUSE_LOG_WARNING ? LOG_LEVEL_WARN
	                   : level <= FUSE_LOG_INFO    ? LOG_LEVEL_INFO
	                                               : LOG_LEVEL_DEBUG;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	log_msg(l, "libfuse: %s", msg);
}

/* ---- attributes ---------------------------------------------------------------------------- */

static void fill_attr(const struct blob_fuse *f, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = f->uid;
	st->st_gid = f->gid;
	st->st_atim = st->st_mtim = st->st_ctim = f->mtime;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | (f->writable ? 0700 : 0500);
		st->st_nlink = 2;
	} else {
		uint64_t size = block_cache_size(f->cache);

		st->st_mode = S_IFREG | (f->writable ? 0600 : 0400);
		st->st_nlink = 1;
		st->st_size = (off_t)size;
		st->st_blocks = (blkcnt_t)((size + 511) / 512);
		st->st_blksize = 4096;
	}
}

static bool known_ino(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID || ino == DATA_INO;
}

/* ---- operations ---------------------------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* Parallel reads of one file, including the kernel's read-ahead requests. */
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	/* The data never changes behind the kernel's back: no invalidation on attribute reads. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	/* Enough read-ahead requests in flight to keep every serving thread busy. */
	conn->max_background = 2 * FUSE_THREADS;
	conn->congestion_threshold = 3 * FUSE_THREADS / 2;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct blob_fuse *f = fuse_req_userdata(req);
	struct fuse_entry_param e = {
	        .ino = DATA_INO,
	        .attr_timeout = ATTR_TIMEOUT_S,
	        .entry_timeout = ATTR_TIMEOUT_S,
	};

	if (parent != FUSE_ROOT_ID || strcmp(name, DATA_NAME) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(f, DATA_INO, &e.attr);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct blob_fuse *f = fuse_req_userdata(req);
	struct stat st;

	if (!known_ino(ino)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(f, ino, &st);
	fuse_reply_attr(req, &st, ATTR_TIMEOUT_S);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
	struct blob_fuse *f = fuse_req_userdata(req);
	struct stat st;

	if (!known_ino(ino)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(f, ino, &st);
	/* The blob's size, owner and mode are fixed; time updates are accepted and forgotten. */
	if ((to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != st.st_size) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fuse_reply_attr(req, &st, ATTR_TIMEOUT_S);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct blob_fuse *f = fuse_req_userdata(req);

	if (ino == FUSE_ROOT_ID) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (ino != DATA_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY && !f->writable) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (fi->flags & O_TRUNC) {
		fuse_reply_err(req, EPERM);
		return;
	}
	/*
	 * Only this process changes the blob, and only through this file (a changed blob fails
	 * reads with EIO), so pages cached by an earlier open are still right.
	 */
	fi->keep_cache = 1;
	fi->noflush = !f->writable;
	fuse_reply_open(req, fi);
}

static void reply_read(void *userdata, const struct iovec *iov, int n)
{
	fuse_reply_iov(userdata, iov, n);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	struct blob_fuse *f = fuse_req_userdata(req);
	struct skr_error err = {0};
	ssize_t n;

	/* The reply goes from the cached blocks to the kernel (one copy less than a buffer). */
	n = block_cache_read_in_place(f->cache, size, (uint64_t)off, reply_read, req, &err);
	if (n < 0) {
		log_error("%s: read of %zu bytes at %jd: %s", f->file, size, (intmax_t)off,
		          skr_error_message(&err));
		fuse_reply_err(req, n == -ENOMEM ? ENOMEM : EIO);
	}
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	struct blob_fuse *f = fuse_req_userdata(req);
	struct skr_error err = {0};
	ssize_t n = block_cache_write(f->cache, buf, size, (uint64_t)off, &err);

	if (n < 0) {
		/* Past the end or read-only: the writer's mistake, and write(2) says so. */
		log_msg(n == -ENOSPC || n == -EROFS ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR,
		        "%s: write of %zu bytes at %jd: %s", f->file, size, (intmax_t)off,
		        skr_error_message(&err));
		fuse_reply_err(req, n == -EROFS || n == -ENOSPC || n == -ENOMEM ? (int)-n : EIO);
		return;
	}
	fuse_reply_write(req, (size_t)n);
}

static void reply_flush(fuse_req_t req, struct blob_fuse *f, const char *what)
{
	struct skr_error err = {0};

	if (f->writable && block_cache_flush(f->cache, &err) < 0) {
		log_error("%s: %s: %s", f->file, what, skr_error_message(&err));
		fuse_reply_err(req, EIO);
		return;
	}
	fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	reply_flush(req, fuse_req_userdata(req), "flush on close");
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	reply_flush(req, fuse_req_userdata(req), "fsync");
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, known_ino(ino) ? ENOTDIR : ENOENT);
		return;
	}
	fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	static const struct {
		const char *name;
		fuse_ino_t ino;
		mode_t mode;
	} entries[] = {
	        {".", FUSE_ROOT_ID, S_IFDIR},
	        {"..", FUSE_ROOT_ID, S_IFDIR},
	        {DATA_NAME, DATA_INO, S_IFREG},
	};
	char buf[512];
	size_t used = 0;

	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (size > sizeof(buf))
		size = sizeof(buf);
	/* @off is the index of the next entry: each entry's offset is the one after it. */
	for (size_t i = off < 0 ? 0 : (size_t)off; i < ELEMENTSOF(entries); i++) {
		struct stat st = {.st_ino = entries[i].ino, .st_mode = entries[i].mode};
		size_t need = fuse_add_direntry(req, buf + used, size - used, entries[i].name, &st,
		                                (off_t)(i + 1));

		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct blob_fuse *f = fuse_req_userdata(req);
	struct statvfs sv = {
	        .f_bsize = 4096,
	        .f_frsize = 4096,
	        .f_blocks = (block_cache_size(f->cache) + 4095) / 4096,
	        .f_files = 2,
	        .f_namemax = 255,
	};

	fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops blob_fuse_ops = {
        .init = op_init,
        .lookup = op_lookup,
        .getattr = op_getattr,
        .setattr = op_setattr,
        .open = op_open,
        .read = op_read,
        .write = op_write,
        .flush = op_flush,
        .fsync = op_fsync,
        .opendir = op_opendir,
        .readdir = op_readdir,
        .statfs = op_statfs,
};

/* ---- serving threads ----------------------------------------------------------------------- */

/* The epoll instance of one serving thread; -errno on failure. */
static int serve_epoll_new(const struct blob_fuse *f)
{
	struct epoll_event dev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = 0};
	struct epoll_event stop = {.events = EPOLLIN, .data.fd = 1};
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		return -errno;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fuse_session_fd(f->se), &dev) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, f->stop_fd, &stop) < 0) {
		int r = -errno;

		close(ep);
		return r;
	}
	return ep;
}

static void *serve_thread(void *arg)
{
	struct serve_ctx *ctx = arg;
	struct blob_fuse *f = ctx->f;
	int ep = ctx->ep;
	struct fuse_buf buf = {0};

	while (!fuse_session_exited(f->se)) {
		struct epoll_event ev[2];
		bool stopping = false;
		int r = epoll_wait(ep, ev, ELEMENTSOF(ev), -1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			log_error("%s: waiting on the FUSE device: %s", f->dir,
			          skr_strerror(errno));
			break;
		}
		for (int i = 0; i < r; i++)
			stopping = stopping || ev[i].data.fd == 1;
		if (stopping)
			break;
		/* Non-blocking: the threads race for each request, the losers see EAGAIN. */
		r = fuse_session_receive_buf(f->se, &buf);
		if (r == -EAGAIN || r == -EINTR)
			continue;
		if (r <= 0) {
			/* 0: the kernel ended the connection (unmounted or aborted). */
			if (r < 0)
				log_error("%s: reading the FUSE device: %s", f->dir,
				          skr_strerror(r));
			break;
		}
		fuse_session_process_buf(f->se, &buf);
	}
	free(buf.mem);
	return NULL;
}

static void stop_threads(struct blob_fuse *f)
{
	uint64_t one = 1;

	if (f->stop_fd >= 0 && write(f->stop_fd, &one, sizeof(one)) != sizeof(one))
		log_warn("%s: waking the FUSE threads: %s", f->dir, skr_strerror(errno));
	for (unsigned i = 0; i < f->started; i++)
		pthread_join(f->threads[i], NULL);
	f->started = 0;
}

/* ---- mount and unmount --------------------------------------------------------------------- */

/* Created if missing (0700); must be an empty directory. */
static int prepare_dir(const char *dir, struct skr_error *err)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	bool empty = true;
	int r = mkdir_p(dir, 0700);

	if (r < 0)
		return skr_error_set(err, r, "creating the FUSE mount directory %s: %s", dir,
		                     skr_strerror(r));
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return skr_error_set(err, -ENOTDIR, "FUSE mount point %s is not a directory", dir);
	d = opendir(dir);
	if (!d)
		return skr_error_set(err, -errno, "opening the FUSE mount directory %s: %s", dir,
		                     skr_strerror(errno));
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			empty = false;
			break;
		}
	closedir(d);
	if (!empty)
		return skr_error_set(
		        err, -ENOTEMPTY,
		        "FUSE mount directory %s is not empty (a stale mount or another "
		        "filesystem's files?): clean it or use another work_dir",
		        dir);
	return 0;
}

/*
 * Raise the kernel's read-ahead for this mount (its backing device info, named after the
 * mount's anonymous device number). Best effort: without it reads still work, only smaller.
 */
static void tune_readahead(const struct blob_fuse *f, dev_t dev)
{
	char path[128], val[32];
	_cleanup_close_ int fd = -1;
	int n;

	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major(dev), minor(dev));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	n = snprintf(val, sizeof(val), "%d", KERNEL_READAHEAD_KB);
	if (fd < 0 || write(fd, val, (size_t)n) != n)
		log_debug("%s: kernel read-ahead left at its default (%s: %s)", f->dir, path,
		          skr_strerror(errno));
}

static void blob_fuse_free(struct blob_fuse *f)
{
	if (!f)
		return;
	if (f->stop_fd >= 0)
		close(f->stop_fd);
	for (unsigned i = 0; i < FUSE_THREADS; i++)
		if (f->ctx[i].ep >= 0)
			close(f->ctx[i].ep);
	free(f->dir);
	free(f->file);
	free(f);
}

/*
 * Unmount @f->dir while the threads still serve (unmounting may need them), retrying for up to
 * UNMOUNT_WAIT_MS while it is busy. Returns 0 when unmounted, 1 when still busy, or a negative
 * errno (e.g. -EPERM without CAP_SYS_ADMIN: fuse_session_unmount() then goes through
 * fusermount3).
 */
static int unmount_dir(const struct blob_fuse *f)
{
	struct timespec pause = {.tv_nsec = UNMOUNT_RETRY_MS * 1000000L};

	for (int waited = 0;; waited += UNMOUNT_RETRY_MS) {
		if (umount2(f->dir, UMOUNT_NOFOLLOW) == 0)
			return 0;
		if (errno != EBUSY)
			return -errno;
		if (waited >= UNMOUNT_WAIT_MS)
			return 1;
		nanosleep(&pause, NULL);
	}
}

/*
 * Stop serving and release the session. After a plain unmount the kernel has ended the
 * connection and fuse_session_unmount() only closes the device; when the file is still busy,
 * closing the device aborts the connection (its users get errors instead of hanging) and
 * libfuse detaches the mount lazily.
 */
static void session_end(struct blob_fuse *f, int unmounted)
{
	if (unmounted == 1)
		log_warn("%s: still in use after %d ms (a loop device on %s?): unmounting lazily; "
		         "its users now get I/O errors",
		         f->dir, UNMOUNT_WAIT_MS, f->file);
	else if (unmounted < 0)
		log_debug("%s: umount: %s", f->dir, skr_strerror(unmounted));
	stop_threads(f);
	if (unmounted == 0) {
		/*
		 * The connection ends when the last reference to the mount goes, which another
		 * task (a reader of /proc/self/mountinfo) may hold a moment longer. Until then
		 * libfuse would take it for still mounted and try (and fail) to unmount again.
		 */
		struct pollfd p = {.fd = fuse_session_fd(f->se)};

		if (poll(&p, 1, UNMOUNT_WAIT_MS) == 0)
			log_debug("%s: FUSE connection still open after unmounting", f->dir);
	}
	fuse_session_exit(f->se);
	fuse_session_unmount(f->se);
	fuse_session_destroy(f->se);
	f->se = NULL;
}

static bool still_mounted(const char *dir)
{
	char parent[PATH_MAX];
	struct stat a, b;

	snprintf(parent, sizeof(parent), "%s/..", dir);
	/* A dead FUSE mount answers stat with ENOTCONN. */
	if (stat(dir, &a) < 0)
		return errno == ENOTCONN;
	return stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

int blob_fuse_mount(struct block_cache *c, const char *dir, bool writable, struct blob_fuse **out,
                    struct skr_error *err)
{
	char opts[256];
	char *argv[] = {"encfs-blob", "-o", opts, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	struct blob_fuse *f;
	struct stat st;
	int r;

	*out = NULL;
	if (access("/dev/fuse", F_OK) < 0)
		return skr_error_set(err, -ENODEV,
		                     "FUSE is not available (/dev/fuse missing): use the download "
		                     "access mode");
	r = prepare_dir(dir, err);
	if (r < 0)
		return r;

	f = calloc(1, sizeof(*f));
	if (!f)
		return skr_error_set(err, -ENOMEM, "out of memory");
	f->stop_fd = -1;
	for (unsigned i = 0; i < FUSE_THREADS; i++)
		f->ctx[i] = (struct serve_ctx){.f = f, .ep = -1};
	f->cache = c;
	f->writable = writable;
	f->uid = geteuid();
	f->gid = getegid();
	clock_gettime(CLOCK_REALTIME, &f->mtime);
	f->dir = strdup(dir);
	f->file = path_join(dir, DATA_NAME);
	if (!f->dir || !f->file) {
		blob_fuse_free(f);
		return skr_error_set(err, -ENOMEM, "out of memory");
	}

	/*
	 * allow_other + default_permissions: the kernel checks the file's mode (root only) for
	 * every process instead of FUSE refusing all but the mounter, so the loop device and
	 * cryptsetup reach the file whatever credentials they run I/O with.
	 */
	snprintf(opts, sizeof(opts),
	         "fsname=encfs-blob,subtype=encfs,allow_other,default_permissions,noatime,%s",
	         writable ? "rw" : "ro");
	fuse_set_log_func(fuse_log_forward);
	f->se = fuse_session_new(&args, &blob_fuse_ops, sizeof(blob_fuse_ops), f);
	fuse_opt_free_args(&args);
	if (!f->se) {
		blob_fuse_free(f);
		return skr_error_set(err, -EINVAL,
		                     "creating the FUSE session failed (see the log)");
	}
	errno = 0;
	if (fuse_session_mount(f->se, dir) != 0) {
		r = errno > 0 ? -errno : -EPERM;
		fuse_session_destroy(f->se);
		blob_fuse_free(f);
		return skr_error_set(
		        err, r,
		        "mounting FUSE at %s failed (needs CAP_SYS_ADMIN or fusermount3; "
		        "see the log)",
		        dir);
	}

	f->stop_fd = eventfd(0, EFD_CLOEXEC);
	r = f->stop_fd < 0 ? -errno : 0;
	if (r == 0 && fcntl(fuse_session_fd(f->se), F_SETFL,
	                    fcntl(fuse_session_fd(f->se), F_GETFL) | O_NONBLOCK) < 0)
		r = -errno;
	for (unsigned i = 0; r == 0 && i < FUSE_THREADS; i++) {
		f->ctx[i].ep = serve_epoll_new(f);
		r = f->ctx[i].ep < 0
		            ? f->ctx[i].ep
		            : -pthread_create(&f->threads[i], NULL, serve_thread, &f->ctx[i]);
		if (r == 0)
			f->started++;
	}
	if (r < 0) {
		skr_error_set(err, r, "starting the FUSE threads for %s: %s", dir, skr_strerror(r));
		goto fail;
	}

	/* The first request through the mount: proves it is served (FUSE_INIT done). */
	if (stat(dir, &st) < 0) {
		r = skr_error_set(err, -errno, "FUSE mount at %s does not answer: %s", dir,
		                  skr_strerror(errno));
		goto fail;
	}
	tune_readahead(f, st.st_dev);
	log_info("blob exposed as %s (%" PRIu64 " bytes, %s)", f->file, block_cache_size(c),
	         writable ? "read-write" : "read-only");
	*out = f;
	return 0;

fail:
	session_end(f, unmount_dir(f));
	blob_fuse_free(f);
	return r;
}

const char *blob_fuse_file(const struct blob_fuse *f)
{
	return f->file;
}

int blob_fuse_unmount(struct blob_fuse *f, struct skr_error *err)
{
	int r = 0;

	if (!f)
		return 0;
	/* Writes reach the cache synchronously (no kernel write-back cache): flushing it is all. */
	if (f->writable)
		r = block_cache_flush(f->cache, err);
	session_end(f, unmount_dir(f));
	if (still_mounted(f->dir) && r == 0)
		r = skr_error_set(err, -EBUSY, "unmounting FUSE at %s failed: still mounted",
		                  f->dir);
	blob_fuse_free(f);
	return r;
}
