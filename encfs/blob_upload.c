/* SPDX-License-Identifier: MIT */
/*
 * blob_upload_page_blob (generatefs --upload): create a page blob of the image's size (Put Blob,
 * x-ms-blob-type: PageBlob), then fill it with parallel Put Page calls of 4 MiB read from the
 * image with pread. A new page blob reads as zeros, so all-zero chunks are skipped: a fresh
 * LUKS image is mostly unused space and uploads in a fraction of its size.
 *
 * The writes go through an ordinary writable blob handle, so they get the same retry policy
 * and error messages as a read-write mount. A failed upload deletes what it created: a blob
 * that is half an image must not be mistaken for one.
 */
#include "blob_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"

#define UPLOAD_CHUNK BLOB_MAX_WRITE
#define UPLOAD_DEFAULT_PARALLEL 4u
#define UPLOAD_MAX_PARALLEL 64u

struct upload {
	struct blob *b;
	int fd;
	uint64_t size;

	pthread_mutex_t lock;
	uint64_t next; /* offset of the next chunk to hand out */
	int r;         /* first failure; stops the other workers */
	struct skr_error err;
	uint64_t sent, skipped;
};

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static void upload_fail(struct upload *u, int r, const struct skr_error *e)
{
	pthread_mutex_lock(&u->lock);
	if (u->r == 0) {
		u->r = r;
		u->err = *e;
	}
	pthread_mutex_unlock(&u->lock);
}

static void *upload_worker(void *userdata)
{
	struct upload *u = userdata;
	_cleanup_free_ uint8_t *buf = malloc(UPLOAD_CHUNK);
	struct skr_error e = {0};

	if (!buf) {
		skr_error_set(&e, -ENOMEM, "upload: out of memory");
		upload_fail(u, -ENOMEM, &e);
		return NULL;
	}
	for (;;) {
		uint64_t off;
		size_t len, done = 0;
		int r;

		pthread_mutex_lock(&u->lock);
		off = u->next;
		if (u->r != 0 || off >= u->size) {
			pthread_mutex_unlock(&u->lock);
			return NULL;
		}
		len = u->size - off < UPLOAD_CHUNK ? (size_t)(u->size - off) : UPLOAD_CHUNK;
		u->next += len;
		pthread_mutex_unlock(&u->lock);

		while (done < len) {
			ssize_t n = pread(u->fd, buf + done, len - done, (off_t)(off + done));

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				r = n < 0 ? -errno : -EIO;
				skr_error_set(&e, r,
				              "upload: reading the image at %" PRIu64 " failed: %s",
				              off + done,
				              n < 0 ? skr_strerror(r)
				                    : "it is shorter than the size to upload");
				upload_fail(u, r, &e);
				return NULL;
			}
			done += (size_t)n;
		}
		if (all_zero(buf, len)) {
			pthread_mutex_lock(&u->lock);
			u->skipped += len;
			pthread_mutex_unlock(&u->lock);
			continue;
		}
		r = blob_write(u->b, buf, len, off, &e);
		if (r < 0) {
			upload_fail(u, r, &e);
			return NULL;
		}
		pthread_mutex_lock(&u->lock);
		u->sent += len;
		pthread_mutex_unlock(&u->lock);
	}
}

static int upload_remove(struct blob *h, bool file)
{
	struct skr_error e = {0};
	int r = file ? blob_file_delete(h, &e) : blob_http_delete(h, &e);

	if (r < 0)
		log_warn("upload: could not remove the incomplete blob %s: %s; delete it by hand",
		         h->display_url, skr_error_message(&e));
	return r;
}

int blob_upload_page_blob(const struct blob_options *o, int fd, uint64_t size, unsigned parallel,
                          bool overwrite, struct skr_error *err)
{
	struct blob_options wo;
	struct blob *h = NULL, *b = NULL;
	struct upload u = {.fd = fd, .size = size};
	pthread_t threads[UPLOAD_MAX_PARALLEL];
	unsigned started = 0;
	enum blob_kind kind;
	bool file;
	int r;

	if (!o)
		return skr_error_set(err, -EINVAL, "upload: no options given");
	if (fd < 0)
		return skr_error_set(err, -EBADF, "upload: no image file descriptor");
	if (size % BLOB_PAGE_SIZE)
		return skr_error_set(err, -EINVAL,
		                     "upload: a page blob's size must be a multiple of 512 bytes, "
		                     "not %" PRIu64,
		                     size);
	r = blob_kind_from_url(o->url, o->token_fn != NULL, &kind, err);
	if (r < 0)
		return skr_error_prefix(err, "upload: ");
	file = kind == BLOB_KIND_FILE;
	/* Any http(s) URL names a blob to create; its host name need not say "blob". */
	r = blob_new_handle(o, file ? BLOB_KIND_FILE : BLOB_KIND_AZURE, &h, err);
	if (r < 0)
		return r;
	r = file ? blob_file_create(h, size, overwrite, err)
	         : blob_http_create_page_blob(h, size, overwrite, err);
	if (r < 0) {
		skr_error_prefix(err, "upload to %s: ", h->display_url);
		blob_close(h);
		return r;
	}

	wo = *o;
	wo.writable = true;
	r = blob_open(&wo, &b, err);
	if (r == 0 && blob_get_properties(b)->size != size)
		r = skr_error_set(err, -EPROTO,
		                  "upload to %s: the new blob has %" PRIu64 " bytes, not %" PRIu64,
		                  h->display_url, blob_get_properties(b)->size, size);
	if (r < 0)
		goto fail;

	if (parallel == 0)
		parallel = UPLOAD_DEFAULT_PARALLEL;
	if (parallel > UPLOAD_MAX_PARALLEL)
		parallel = UPLOAD_MAX_PARALLEL;
	u.b = b;
	pthread_mutex_init(&u.lock, NULL);
	for (; started < parallel; started++) {
		int q = pthread_create(&threads[started], NULL, upload_worker, &u);

		if (q != 0) {
			if (started == 0) {
				skr_error_set(&u.err, -q, "upload: cannot start a thread: %s",
				              skr_strerror(q));
				u.r = -q;
			}
			break; /* fewer workers: slower, still correct */
		}
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	pthread_mutex_destroy(&u.lock);
	if (u.r < 0) {
		r = skr_error_set(err, u.r, "%s", skr_error_message(&u.err));
		goto fail;
	}
	log_info("upload to %s: %" PRIu64 " bytes written, %" PRIu64 " zero bytes skipped",
	         h->display_url, u.sent, u.skipped);
	blob_close(b); /* a file is synced here */
	blob_close(h);
	return 0;

fail:
	blob_close(b);
	upload_remove(h, file);
	blob_close(h);
	return r;
}
