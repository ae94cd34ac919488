/* SPDX-License-Identifier: MIT */
/*
 * Private to encfs/block_cache.c and its FUSE front end (blob_fuse.c): reading cached blocks in
 * place, without copying them into a caller's buffer first.
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "encfs.h"

/* Receives the bytes of a read as @n pieces of cached blocks; they stay valid until it returns. */
typedef void (*block_cache_consume_fn)(void *userdata, const struct iovec *iov, int n);

/*
 * Like block_cache_read(), but hands the bytes to @consume in place (the blocks pinned and
 * read-locked meanwhile) instead of copying them: the FUSE read reply goes from the cache
 * straight to the kernel. @consume is called exactly once when the result is ≥ 0 (with n = 0 at
 * the end of the blob), never on failure. Reads spanning more blocks than the cache pins at once
 * are copied through a temporary buffer.
 */
ssize_t block_cache_read_in_place(struct block_cache *c, size_t len, uint64_t off,
                                  block_cache_consume_fn consume, void *userdata,
                                  struct skr_error *err);
