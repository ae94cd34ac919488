/* SPDX-License-Identifier: MIT */
/*
 * The whole blob to a local file, for environments without FUSE (encfs.h blob_download): fixed
 * chunks handed out to @parallel threads, each a range read followed by a pwrite. The file is
 * sized first and chunks that read as zeros are not written, so an image that is mostly empty
 * stays sparse on disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "encfs.h"
#include "fileio.h"
#include "log.h"

#define CHUNK_SIZE (4u * 1024 * 1024)
#define PARALLEL_DEFAULT 4u
#define PARALLEL_MAX 64u

struct download {
	struct blob *blob;
	const char *path;
	int fd;
	uint64_t size;
	pthread_mutex_t lock;
	uint64_t next; /* offset of the next chunk to hand out */
	int error;     /* first failure; stops the others */
	struct skr_error err;
};

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static void download_fail(struct download *d, int code, const struct skr_error *e)
{
	pthread_mutex_lock(&d->lock);
	if (d->error == 0) {
		d->error = code;
		d->err = *e;
	}
	pthread_mutex_unlock(&d->lock);
}

static void *download_thread(void *arg)
{
	struct download *d = arg;
	_cleanup_free_ uint8_t *buf = malloc(CHUNK_SIZE);

	if (!buf) {
		struct skr_error e = {0};

		download_fail(d, skr_error_set(&e, -ENOMEM, "out of memory"), &e);
		return NULL;
	}
	for (;;) {
		struct skr_error e = {0};
		uint64_t off;
		size_t len;
		int r;

		pthread_mutex_lock(&d->lock);
		off = d->next;
		if (d->error != 0 || off >= d->size) {
			pthread_mutex_unlock(&d->lock);
			break;
		}
		len = d->size - off < CHUNK_SIZE ? (size_t)(d->size - off) : CHUNK_SIZE;
		d->next += len;
		pthread_mutex_unlock(&d->lock);

		r = blob_read(d->blob, buf, len, off, &e);
		if (r < 0) {
			download_fail(d, r, &e);
			break;
		}
		if (all_zero(buf, len))
			continue; /* the file was sized with holes: they read as zeros */
		r = pwrite_full(d->fd, buf, len, (off_t)off);
		if (r < 0) {
			skr_error_set(&e, r, "writing %s at %" PRIu64 ": %s", d->path, off,
			              skr_strerror(r));
			download_fail(d, r, &e);
			return NULL;
		}
	}
	return NULL;
}

int blob_download(struct blob *b, const char *path, unsigned parallel, struct skr_error *err)
{
	struct download d = {
	        .blob = b,
	        .path = path,
	        .size = blob_get_properties(b)->size,
	        .lock = PTHREAD_MUTEX_INITIALIZER,
	};
	pthread_t threads[PARALLEL_MAX];
	unsigned started = 0;
	struct stat st;
	int r = 0;

	if (parallel == 0)
		parallel = PARALLEL_DEFAULT;
	if (parallel > PARALLEL_MAX)
		parallel = PARALLEL_MAX;
	if (d.size > 0 && parallel > (d.size + CHUNK_SIZE - 1) / CHUNK_SIZE)
		parallel = (unsigned)((d.size + CHUNK_SIZE - 1) / CHUNK_SIZE);

	d.fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (d.fd < 0)
		return skr_error_set(err, -errno, "download of %s: creating %s: %s",
		                     blob_display_url(b), path, skr_strerror(errno));
	if (ftruncate(d.fd, (off_t)d.size) < 0) {
		r = skr_error_set(err, -errno, "download of %s: sizing %s to %" PRIu64 " bytes: %s",
		                  blob_display_url(b), path, d.size, skr_strerror(errno));
		goto fail;
	}
	log_info("downloading %s (%" PRIu64 " bytes) to %s with %u parallel requests",
	         blob_display_url(b), d.size, path, parallel);

	for (unsigned i = 0; i < parallel; i++) {
		int e = pthread_create(&threads[i], NULL, download_thread, &d);

		if (e != 0) {
			struct skr_error se = {0};

			skr_error_set(&se, -e, "starting a download thread: %s", skr_strerror(e));
			download_fail(&d, -e, &se);
			break;
		}
		started++;
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	if (d.error < 0) {
		r = skr_error_set(err, d.error, "download of %s to %s: %s", blob_display_url(b),
		                  path, skr_error_message(&d.err));
		goto fail;
	}
	if (fsync(d.fd) < 0) {
		r = skr_error_set(err, -errno, "download of %s: fsync of %s: %s",
		                  blob_display_url(b), path, skr_strerror(errno));
		goto fail;
	}
	/* The size is the one thing a reader of the file cannot check by itself. */
	if (fstat(d.fd, &st) < 0)
		st.st_size = -1;
	if ((uint64_t)st.st_size != d.size) {
		r = skr_error_set(err, -EIO,
		                  "download of %s: %s has %jd bytes instead of the blob's %" PRIu64,
		                  blob_display_url(b), path, (intmax_t)st.st_size, d.size);
		goto fail;
	}
	close(d.fd);
	pthread_mutex_destroy(&d.lock);
	return 0;

fail:
	close(d.fd);
	if (unlink(path) < 0)
		log_warn("download: removing the partial %s: %s", path, skr_strerror(errno));
	pthread_mutex_destroy(&d.lock);
	return r;
}
