/* SPDX-License-Identifier: MIT */
/*
 * The data area encrypted in userspace exactly as dm-crypt would write it through
 * `cryptsetup open` (aes-xts-plain64, LUKS2): one XTS data unit per encryption sector, the
 * tweak plain64 = the little-endian sector number in 512-byte units from the start of the
 * segment, whatever the sector size (dm-crypt shifts to 4096-byte numbering only with
 * iv_large_sectors, which cryptsetup sets for plain mode, never for LUKS2). The unit test
 * proves it against `cryptsetup reencrypt --encrypt`.
 *
 * Throughput: the file is cut into large chunks that worker threads take in order (pread,
 * encrypt in place, pwrite), so the disk sees big sequential requests and every core runs
 * AES-NI; the OpenSSL cipher is fetched once and each thread keeps one context.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "deadline.h"
#include "fileio.h"
#include "generatefs.h"
#include "ossl.h"

#define XTS_CHUNK_SIZE (8u * 1024 * 1024)
#define XTS_MAX_THREADS 64u
#define XTS_PROGRESS_MS 500

DEFINE_CLEANUP_FUNC(EVP_CIPHER *, EVP_CIPHER_free)

/* A context keyed once; the tweak is set per sector. */
static int xts_ctx_new(EVP_CIPHER *cipher, const struct secret *vk, bool encrypt,
                       EVP_CIPHER_CTX **out, struct skr_error *err)
{
	_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

	if (!ctx)
		return skr_error_set(err, -ENOMEM, "encrypt: out of memory");
	if (EVP_CipherInit_ex2(ctx, cipher, vk->data, NULL, encrypt ? 1 : 0, NULL) != 1)
		return ossl_error_set(err, -EINVAL, "encrypt: aes-256-xts key setup");
	*out = TAKE_PTR(ctx);
	return 0;
}

static int xts_run(EVP_CIPHER_CTX *ctx, unsigned sector_size, uint64_t sector512, uint8_t *buf,
                   size_t len, struct skr_error *err)
{
	uint64_t step = sector_size / 512;

	for (size_t pos = 0; pos < len; pos += sector_size, sector512 += step) {
		uint8_t iv[16] = {0};
		int outl = 0;

		/* plain64: the low 64 bits of the tweak, little-endian; the rest zero */
		for (unsigned i = 0; i < 8; i++)
			iv[i] = (uint8_t)(sector512 >> (8 * i));
		if (EVP_CipherInit_ex2(ctx, NULL, NULL, iv, -1, NULL) != 1 ||
		    EVP_CipherUpdate(ctx, buf + pos, &outl, buf + pos, (int)sector_size) != 1 ||
		    outl != (int)sector_size)
			return ossl_error_set(err, -EIO, "encrypt: aes-256-xts sector");
	}
	return 0;
}

static int xts_check(const struct secret *vk, unsigned sector_size, uint64_t len,
                     struct skr_error *err)
{
	if (!vk || vk->len != GENERATEFS_VOLUME_KEY_SIZE)
		return skr_error_set(err, -EINVAL, "encrypt: the volume key must be %u bytes",
		                     GENERATEFS_VOLUME_KEY_SIZE);
	if (sector_size != 512 && sector_size != 4096)
		return skr_error_set(err, -EINVAL, "encrypt: sector size %u: use 512 or 4096",
		                     sector_size);
	if (len % sector_size)
		return skr_error_set(err, -EINVAL,
		                     "encrypt: %" PRIu64 " bytes is not a whole number of %u-byte "
		                     "sectors",
		                     len, sector_size);
	return 0;
}

int generatefs_xts_buffer(const struct secret *volume_key, unsigned sector_size,
                          uint64_t first_sector512, uint8_t *buf, size_t len, bool encrypt,
                          struct skr_error *err)
{
	_cleanup_(EVP_CIPHER_freep) EVP_CIPHER *cipher = NULL;
	_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = NULL;
	int r = xts_check(volume_key, sector_size, len, err);

	if (r < 0)
		return r;
	cipher = EVP_CIPHER_fetch(NULL, "AES-256-XTS", NULL);
	if (!cipher)
		return ossl_error_set(err, -ENOSYS, "encrypt: OpenSSL has no AES-256-XTS");
	r = xts_ctx_new(cipher, volume_key, encrypt, &ctx, err);
	if (r < 0)
		return r;
	return xts_run(ctx, sector_size, first_sector512, buf, len, err);
}

/* Shared by the workers of one generatefs_xts_fd() call. */
struct xts_job {
	int fd;
	uint64_t data_offset, len;
	unsigned sector_size;
	bool encrypt;
	const struct secret *vk;
	EVP_CIPHER *cipher;
	const volatile sig_atomic_t *cancel;
	atomic_uint_fast64_t next_chunk;
	atomic_uint_fast64_t done_bytes;
	atomic_int failed; /* set by the first failing worker: the others stop */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned running;
	struct skr_error err; /* the first failure, under lock */
};

static void xts_job_fail(struct xts_job *job, const struct skr_error *e)
{
	pthread_mutex_lock(&job->lock);
	if (!atomic_exchange(&job->failed, 1))
		job->err = *e;
	pthread_mutex_unlock(&job->lock);
}

static int xts_chunk(struct xts_job *job, EVP_CIPHER_CTX *ctx, uint8_t *buf, uint64_t start,
                     size_t n, struct skr_error *e)
{
	off_t off = (off_t)(job->data_offset + start);
	ssize_t got = pread_full(job->fd, buf, n, off);
	int r;

	if (got < 0 || (size_t)got < n)
		return skr_error_set(e, got < 0 ? (int)got : -EIO,
		                     "encrypt: reading the data area at %" PRIu64 ": %s",
		                     (uint64_t)off + (got < 0 ? 0 : (uint64_t)got),
		                     got < 0 ? skr_strerror((int)-got) : "unexpected end of file");
	r = xts_run(ctx, job->sector_size, start / 512, buf, n, e);
	if (r < 0)
		return r;
	r = pwrite_full(job->fd, buf, n, off);
	if (r < 0)
		return skr_error_set(e, r, "encrypt: writing the data area at %" PRIu64 ": %s",
		                     (uint64_t)off, skr_strerror(r));
	return 0;
}

static void *xts_worker(void *arg)
{
	struct xts_job *job = arg;
	_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = NULL;
	_cleanup_free_ uint8_t *buf = NULL;
	struct skr_error e = {0};
	uint64_t chunks = (job->len + XTS_CHUNK_SIZE - 1) / XTS_CHUNK_SIZE;
	int r;

	/* plaintext passes through this buffer: allocated per thread, erased before free */
	buf = malloc(XTS_CHUNK_SIZE);
	if (!buf) {
		skr_error_set(&e, -ENOMEM, "encrypt: out of memory for a %u MiB buffer",
		              XTS_CHUNK_SIZE >> 20);
		xts_job_fail(job, &e);
		goto out;
	}
	r = xts_ctx_new(job->cipher, job->vk, job->encrypt, &ctx, &e);
	if (r < 0) {
		xts_job_fail(job, &e);
		goto out;
	}
	while (!atomic_load(&job->failed)) {
		uint64_t i = atomic_fetch_add(&job->next_chunk, 1);
		uint64_t start = i * XTS_CHUNK_SIZE;
		size_t n;

		if (i >= chunks)
			break;
		if (job->cancel && *job->cancel) {
			skr_error_set(&e, -ECANCELED, "encrypt: interrupted");
			xts_job_fail(job, &e);
			break;
		}
		n = (size_t)(job->len - start < XTS_CHUNK_SIZE ? job->len - start : XTS_CHUNK_SIZE);
		r = xts_chunk(job, ctx, buf, start, n, &e);
		if (r < 0) {
			xts_job_fail(job, &e);
			break;
		}
		atomic_fetch_add(&job->done_bytes, n);
	}
out:
	if (buf)
		secure_erase(buf, XTS_CHUNK_SIZE);
	pthread_mutex_lock(&job->lock);
	job->running--;
	pthread_cond_signal(&job->cond);
	pthread_mutex_unlock(&job->lock);
	return NULL;
}

static unsigned xts_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : (n > (long)XTS_MAX_THREADS ? XTS_MAX_THREADS : (unsigned)n);
}

int generatefs_xts_fd(int fd, uint64_t data_offset, uint64_t len, const struct secret *volume_key,
                      unsigned sector_size, bool encrypt, unsigned threads,
                      const volatile sig_atomic_t *cancel, generatefs_progress_fn progress,
                      void *userdata, struct skr_error *err)
{
	_cleanup_(EVP_CIPHER_freep) EVP_CIPHER *cipher = NULL;
	pthread_t tids[XTS_MAX_THREADS];
	unsigned started = 0;
	struct xts_job job = {
	        .fd = fd,
	        .data_offset = data_offset,
	        .len = len,
	        .sector_size = sector_size,
	        .encrypt = encrypt,
	        .vk = volume_key,
	        .cancel = cancel,
	        .lock = PTHREAD_MUTEX_INITIALIZER,
	        .cond = PTHREAD_COND_INITIALIZER,
	};
	int r = xts_check(volume_key, sector_size, len, err);

	if (r < 0)
		return r;
	if (data_offset % 512)
		return skr_error_set(err, -EINVAL,
		                     "encrypt: data offset %" PRIu64 " is not sector aligned",
		                     data_offset);
	cipher = EVP_CIPHER_fetch(NULL, "AES-256-XTS", NULL);
	if (!cipher)
		return ossl_error_set(err, -ENOSYS, "encrypt: OpenSSL has no AES-256-XTS");
	job.cipher = cipher;
	if (threads == 0)
		threads = xts_default_threads();
	if (threads > XTS_MAX_THREADS)
		threads = XTS_MAX_THREADS;
	if ((uint64_t)threads > (len + XTS_CHUNK_SIZE - 1) / XTS_CHUNK_SIZE)
		threads = (unsigned)((len + XTS_CHUNK_SIZE - 1) / XTS_CHUNK_SIZE);

	pthread_mutex_lock(&job.lock);
	for (; started < threads; started++) {
		job.running++;
		r = pthread_create(&tids[started], NULL, xts_worker, &job);
		if (r != 0) {
			job.running--;
			if (started == 0) {
				pthread_mutex_unlock(&job.lock);
				return skr_error_set(err, -r, "encrypt: cannot start a thread: %s",
				                     skr_strerror(r));
			}
			break; /* fewer threads still finish the job */
		}
	}
	while (job.running > 0) {
		struct timespec ts;

		ts = deadline_after_ms(CLOCK_REALTIME, XTS_PROGRESS_MS);
		pthread_cond_timedwait(&job.cond, &job.lock, &ts);
		if (progress && job.running > 0) {
			pthread_mutex_unlock(&job.lock);
			progress(userdata, atomic_load(&job.done_bytes), len);
			pthread_mutex_lock(&job.lock);
		}
	}
	pthread_mutex_unlock(&job.lock);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	if (atomic_load(&job.failed))
		return skr_error_set(err, job.err.code ? job.err.code : -EIO, "%s",
		                     skr_error_message(&job.err));
	if (progress)
		progress(userdata, len, len);
	return 0;
}
