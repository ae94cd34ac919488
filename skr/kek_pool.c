/* SPDX-License-Identifier: MIT */
/*
 * Key-encryption keys generated ahead of time (kek_pool.h).
 *
 * One background thread keeps up to @target RSA-2048 keys ready. It generates outside the lock
 * (a generation takes ~100–500 ms) and sleeps on a condition variable while the pool is full.
 * kek_pool_free() sets a flag the key generation's progress callback polls, so a generation in
 * flight is abandoned instead of delaying shutdown.
 */
#include "kek_pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "cleanup.h"
#include "log.h"
#include "ossl.h"

/* After a failed background generation (ENOMEM, entropy), wait before trying again. */
#define KEK_POOL_RETRY_SEC 1

struct kek_pool {
	pthread_mutex_t lock;
	pthread_cond_t wake; /* signalled on take (room to refill) and on free (stop) */
	pthread_t thread;
	bool has_thread;
	bool stopping; /* written under @lock; read lock-free by the keygen callback */
	size_t target;
	size_t n_ready;
	EVP_PKEY *ready[KEK_POOL_MAX_TARGET];
};

/* OpenSSL calls this during prime generation; returning 0 aborts the generation. */
static int keygen_progress(EVP_PKEY_CTX *ctx)
{
	struct kek_pool *p = EVP_PKEY_CTX_get_app_data(ctx);

	return !(p && __atomic_load_n(&p->stopping, __ATOMIC_ACQUIRE));
}

static int kek_generate(struct kek_pool *p, EVP_PKEY **out)
{
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *key = NULL;

	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, KEK_POOL_RSA_BITS) != 1)
		return -ENOMEM;
	if (p) {
		EVP_PKEY_CTX_set_app_data(ctx, p);
		EVP_PKEY_CTX_set_cb(ctx, keygen_progress);
	}
	if (EVP_PKEY_generate(ctx, &key) != 1)
		return -EIO;
	*out = key;
	return 0;
}

static void *kek_pool_thread(void *arg)
{
	struct kek_pool *p = arg;
	struct sched_param idle = {0};

	/*
	 * Refilling is background work: at SCHED_IDLE it never takes a core from a release in
	 * progress (measured on 2 cores: p50 of a release under load 22 ms → 8 ms). Under sustained
	 * load the pool refills more slowly and a release may generate its key inline, which is the
	 * behaviour without a pool. Needs no privilege; failure only costs that gain.
	 */
	if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle) != 0)
		log_debug("wrapping-key pool: SCHED_IDLE refused; refilling at normal priority");

	pthread_mutex_lock(&p->lock);
	for (;;) {
		EVP_PKEY *key = NULL;
		struct timespec until;
		int r;

		while (!p->stopping && p->n_ready >= p->target)
			pthread_cond_wait(&p->wake, &p->lock);
		if (p->stopping)
			break;
		pthread_mutex_unlock(&p->lock);

		r = kek_generate(p, &key);

		pthread_mutex_lock(&p->lock);
		if (r < 0) {
			ERR_clear_error();
			if (p->stopping)
				break;
			log_warn(
			        "wrapping key pool: background RSA key generation failed; retrying "
			        "in %d s",
			        KEK_POOL_RETRY_SEC);
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += KEK_POOL_RETRY_SEC;
			while (!p->stopping &&
			       pthread_cond_timedwait(&p->wake, &p->lock, &until) != ETIMEDOUT)
				;
			continue;
		}
		if (p->stopping || p->n_ready >= p->target) {
			EVP_PKEY_free(key);
			continue;
		}
		p->ready[p->n_ready++] = key;
	}
	pthread_mutex_unlock(&p->lock);
	/* Release this thread's OpenSSL state (DRBG, error queue) now rather than at exit. */
	OPENSSL_thread_stop();
	return NULL;
}

int kek_pool_new(size_t target, struct kek_pool **out, struct skr_error *err)
{
	struct kek_pool *p;
	int r;

	if (target > KEK_POOL_MAX_TARGET)
		return skr_error_set(err, -EINVAL, "wrapping key pool: size %zu is above %d",
		                     target, KEK_POOL_MAX_TARGET);
	p = calloc(1, sizeof(*p));
	if (!p)
		return skr_error_set(err, -ENOMEM, "wrapping key pool: out of memory");
	p->target = target;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	if (target > 0) {
		r = pthread_create(&p->thread, NULL, kek_pool_thread, p);
		if (r != 0) {
			kek_pool_free(p);
			return skr_error_set(err, -r, "wrapping key pool: starting the thread: %s",
			                     strerror(r));
		}
		p->has_thread = true;
	}
	*out = p;
	return 0;
}

int kek_pool_take(struct kek_pool *p, EVP_PKEY **out, struct skr_error *err)
{
	EVP_PKEY *key = NULL;
	int r;

	if (!out)
		return skr_error_set(err, -EINVAL, "wrapping key pool: no output given");
	if (p) {
		pthread_mutex_lock(&p->lock);
		if (p->n_ready > 0) {
			/* Handed out once: the slot is cleared, the key now belongs to the caller. */
			key = p->ready[--p->n_ready];
			p->ready[p->n_ready] = NULL;
		}
		pthread_cond_signal(&p->wake);
		pthread_mutex_unlock(&p->lock);
		if (key) {
			*out = key;
			return 0;
		}
	}
	/* Nothing ready: generate here rather than wait for the background thread. */
	r = kek_generate(NULL, &key);
	if (r < 0)
		return ossl_error_set(err, r, "wrapping key: RSA-2048 key generation");
	*out = key;
	return 0;
}

size_t kek_pool_ready(struct kek_pool *p)
{
	size_t n;

	if (!p)
		return 0;
	pthread_mutex_lock(&p->lock);
	n = p->n_ready;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void kek_pool_free(struct kek_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	__atomic_store_n(&p->stopping, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	if (p->has_thread)
		pthread_join(p->thread, NULL);
	/* EVP_PKEY_free → RSA_free clears d, p, q, dp, dq, qi (BN_clear_free). */
	for (size_t i = 0; i < p->n_ready; i++)
		EVP_PKEY_free(p->ready[i]);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
