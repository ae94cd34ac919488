/* SPDX-License-Identifier: MIT */
/*
 * The file:// back end: pread/pwrite on one descriptor (thread-safe, no shared offset).
 *
 * Its "ETag" is built from the file's identity and version — device, inode, size, mtime — so
 * the guarantees of the HTTP back end hold here too: a file replaced (renamed over) or changed
 * in place after open fails reads with -ESTALE instead of mixing bytes. Each read checks the
 * path after the pread: the bytes came from the descriptor, and if the path still names the
 * same unmodified file then, they are that file's. (A change within one tick of the kernel's
 * timestamp clock that keeps the size can go unseen; that is the limit of what stat offers.)
 */
#include "blob_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"
#include "log.h"

struct blob_file {
	int fd;
	char *path;
};

static void file_etag(const struct stat *st, char etag[BLOB_ETAG_MAX])
{
	snprintf(etag, BLOB_ETAG_MAX, "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "-%" PRIx64 ".%09ld\"",
	         (uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size,
	         (uint64_t)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
}

static int file_open(struct blob *b, struct blob_attempt *a, struct skr_error *err)
{
	_cleanup_free_ struct blob_file *f = NULL;
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -1;
	struct stat st;
	int r;

	(void)a; /* local errors are not retried */
	r = blob_file_path_from_url(b->url, &path, err);
	if (r < 0)
		return r;
	fd = open(path, (b->o.writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		return skr_error_set(err, r, "cannot open %s%s: %s", path,
		                     b->o.writable ? " read-write" : "", skr_strerror(r));
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		return skr_error_set(err, r, "cannot stat %s: %s", path, skr_strerror(r));
	}
	if (!S_ISREG(st.st_mode))
		return skr_error_set(err, -EINVAL, "%s is not a regular file", path);
	f = calloc(1, sizeof(*f));
	if (!f)
		return skr_error_set(err, -ENOMEM, "out of memory");
	b->props.size = (uint64_t)st.st_size;
	b->props.page_blob = false;
	file_etag(&st, b->props.etag);
	f->fd = fd;
	fd = -1;
	f->path = TAKE_PTR(path);
	b->be_data = TAKE_PTR(f);
	return 0;
}

/* The ETag of what the path names now; -ESTALE when it names nothing. */
static int path_etag(struct blob_file *f, char etag[BLOB_ETAG_MAX], struct skr_error *err)
{
	struct stat st;

	if (stat(f->path, &st) < 0) {
		int r = -errno;

		if (r == -ENOENT)
			return skr_error_set(err, -ESTALE, "%s was removed after it was opened",
			                     f->path);
		return skr_error_set(err, r, "cannot stat %s: %s", f->path, skr_strerror(r));
	}
	file_etag(&st, etag);
	return 0;
}

static int file_read(struct blob *b, const struct iovec *iov, unsigned iovcnt, size_t len,
                     uint64_t off, const char *etag, blob_seg_done_fn seg_done, void *seg_userdata,
                     struct blob_attempt *a, struct skr_error *err)
{
	struct blob_file *f = b->be_data;
	char now[BLOB_ETAG_MAX];
	size_t done = 0;
	int r;

	(void)a;
	for (unsigned i = 0; i < iovcnt && done < len; i++) {
		ssize_t n = pread_full(f->fd, iov[i].iov_base, iov[i].iov_len, (off_t)(off + done));

		if (n < 0)
			return skr_error_set(err, (int)n, "read of %s at %" PRIu64 " failed: %s",
			                     f->path, off + done, skr_strerror((int)n));
		done += (size_t)n;
		if ((size_t)n < iov[i].iov_len)
			break; /* shrank: the ETag check below says so */
	}
	r = path_etag(f, now, err);
	if (r < 0)
		return r;
	if (etag[0] && strcmp(now, etag) != 0)
		return skr_error_set(
		        err, -ESTALE,
		        "%s changed since it was opened (replaced or modified; ETag %s, "
		        "expected %s); remount to use the new content",
		        f->path, now, etag);
	if (done < len)
		return skr_error_set(err, -EIO, "short read of %s: %zu of %zu bytes at %" PRIu64,
		                     f->path, done, len, off);
	/* Only now are the bytes known to be the blob's (the ETag check after the reads). */
	for (unsigned i = 0; seg_done && i < iovcnt; i++)
		seg_done(seg_userdata, i);
	return 0;
}

static int file_write(struct blob *b, const void *buf, size_t len, uint64_t off,
                      char etag_out[BLOB_ETAG_MAX], struct blob_attempt *a, struct skr_error *err)
{
	struct blob_file *f = b->be_data;
	struct stat st;
	int r;

	(void)a;
	etag_out[0] = '\0';
	r = pwrite_full(f->fd, buf, len, (off_t)off);
	if (r < 0)
		return skr_error_set(err, r, "write to %s at %" PRIu64 " failed: %s", f->path, off,
		                     skr_strerror(r));
	if (fstat(f->fd, &st) == 0)
		file_etag(&st, etag_out);
	return 0;
}

static int file_current_etag(struct blob *b, char etag_out[BLOB_ETAG_MAX], struct blob_attempt *a,
                             struct skr_error *err)
{
	(void)a;
	return path_etag(b->be_data, etag_out, err);
}

static void file_close(struct blob *b)
{
	struct blob_file *f = b->be_data;

	if (!f)
		return;
	/* Put Page is durable when it answers; a file is when synced. */
	if (b->o.writable && fdatasync(f->fd) < 0)
		log_error("blob %s: fdatasync failed: %s", b->display_url, skr_strerror(-errno));
	close(f->fd);
	free(f->path);
	free(f);
	b->be_data = NULL;
}

int blob_file_create(struct blob *b, uint64_t size, bool overwrite, struct skr_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	r = blob_file_path_from_url(b->url, &path, err);
	if (r < 0)
		return r;
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | (overwrite ? O_TRUNC : O_EXCL),
	          0600);
	if (fd < 0) {
		r = -errno;
		if (r == -EEXIST)
			return skr_error_set(err, r, "%s exists (overwrite to replace it)", path);
		return skr_error_set(err, r, "cannot create %s: %s", path, skr_strerror(r));
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		r = -errno;
		(void)unlink(path);
		return skr_error_set(err, r, "cannot size %s to %" PRIu64 " bytes: %s", path, size,
		                     skr_strerror(r));
	}
	return 0;
}

int blob_file_delete(struct blob *b, struct skr_error *err)
{
	_cleanup_free_ char *path = NULL;
	int r = blob_file_path_from_url(b->url, &path, err);

	if (r < 0)
		return r;
	if (unlink(path) < 0 && errno != ENOENT) {
		r = -errno;
		return skr_error_set(err, r, "cannot remove %s: %s", path, skr_strerror(r));
	}
	return 0;
}

const struct blob_backend blob_file_backend = {
        .name = "file",
        .open = file_open,
        .read = file_read,
        .write = file_write,
        .current_etag = file_current_etag,
        .close = file_close,
};
