/* SPDX-License-Identifier: MIT */
/*
 * Private to libskr: a pool of RSA-2048 key-encryption keys (KEKs, the wrapping keys of secure
 * key release, protocols.md §7.5) generated ahead of time by a background thread, so that a
 * release does not wait ~100–500 ms for RSA key generation on its request path.
 *
 * - Every key is handed out exactly once and removed from the pool: a KEK is never reused
 *   across releases (a second release wrapped to the same key would let whoever saw the first
 *   transcript replay it).
 * - kek_pool_take() never blocks on the background thread: an empty pool means the key is
 *   generated on the caller's thread, and the background thread refills to the target.
 * - Keys are freed with EVP_PKEY_free(), which erases them: OpenSSL's RSA_free() releases
 *   d, p, q, dp, dq, qi with BN_clear_free(). The caller of kek_pool_take() owns the key and
 *   must EVP_PKEY_free() it as soon as the release is unwrapped.
 * - Thread-safe: any number of threads may take from one pool.
 */
#pragma once

#include <stddef.h>

#include <openssl/evp.h>

#include "skr_error.h"

#define KEK_POOL_RSA_BITS 2048
/* Upper bound on the target: more ready keys only cost memory and start-up CPU. */
#define KEK_POOL_MAX_TARGET 64

struct kek_pool;

/*
 * A pool keeping @target keys ready (0 = no thread: every take generates inline; at most
 * KEK_POOL_MAX_TARGET). The thread starts filling at once.
 */
int kek_pool_new(size_t target, struct kek_pool **out, struct skr_error *err);

/*
 * A fresh RSA-2048 key (private; owned by the caller): a ready one when the pool has one, else
 * generated now on this thread. @p may be NULL (generate inline).
 */
int kek_pool_take(struct kek_pool *p, EVP_PKEY **out, struct skr_error *err);

/* Keys ready right now (for tests and diagnostics). */
size_t kek_pool_ready(struct kek_pool *p);

/*
 * Stop the thread (a key generation in progress is aborted through its progress callback, so
 * this returns promptly), erase and free the ready keys. NULL is a no-op.
 */
void kek_pool_free(struct kek_pool *p);
