/* SPDX-License-Identifier: MIT */
/*
 * A secret has one home: page-aligned memory that is locked (never swapped), excluded from
 * core dumps, and erased before it is unmapped. Pass data/len to libraries that need the
 * secret; never copy it into a plain buffer.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "cleanup.h"

struct secret {
	uint8_t *data;
	size_t len;
	size_t mapped; /* bytes mapped (len rounded up to pages) */
	int locked;    /* 1 if mlock() succeeded; RLIMIT_MEMLOCK may refuse it */
};

/* Allocate a zeroed secret of @len bytes (len 0 allowed). Returns NULL on ENOMEM. */
struct secret *secret_new(size_t len);

/* A secret holding a copy of @len bytes at @src. */
struct secret *secret_new_copy(const void *src, size_t len);

/* Erase, unlock, unmap. NULL is a no-op. */
void secret_free(struct secret *s);

DEFINE_CLEANUP_FUNC(struct secret *, secret_free)
#define _cleanup_secret_ _cleanup_(secret_freep)

/* Erase a plain buffer the compiler may not optimise away (OPENSSL_cleanse). */
void secure_erase(void *p, size_t len);

/* free() after erasing @len bytes; for short-lived copies libraries forced on us. */
void secure_free(void *p, size_t len);

/*
 * Append @n bytes to the NUL-terminated heap buffer *@buf (*@len bytes used, *@cap allocated;
 * all zero/NULL at first). It grows by copying and erasing the old buffer, never by realloc(): a
 * body may hold a token or a key, and no copy is left in freed memory. 0 or -ENOMEM (the buffer
 * is unchanged).
 */
int secure_buf_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n);
