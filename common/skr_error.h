/* SPDX-License-Identifier: MIT */
/*
 * The project's one error type: a negative errno travels as the return value, the human reason
 * travels beside it in a caller-owned struct, filled once by the code that knows the most.
 */
#pragma once

#include <errno.h>
#include <stddef.h>

#define SKR_ERROR_MSG_MAX 512

struct skr_error {
	int code;                    /* negative errno, 0 when unset */
	char msg[SKR_ERROR_MSG_MAX]; /* one line, names the field or step and, where known, the fix */
};

/*
 * Fill @err (may be NULL) with @code and a formatted reason and return @code, so that
 * `return skr_error_set(err, -EINVAL, "...")` reads naturally. A second call on an already
 * filled error keeps the first reason: the innermost code knows the most.
 */
int skr_error_set(struct skr_error *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Like skr_error_set() but always overwrites: for callers that retry and replace a reason. */
int skr_error_reset(struct skr_error *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/*
 * Prepend context ("attest: ") to an already filled reason. Returns the failure's code: err->code,
 * or with a NULL @err the last code set on this thread, never 0 (use it on failure paths only).
 */
int skr_error_prefix(struct skr_error *err, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

void skr_error_clear(struct skr_error *err);

/*
 * The description of errno @code (either sign), e.g. "No such file or directory". Thread-safe,
 * unlike strerror(): libskr builds messages on several threads. Never NULL.
 */
const char *skr_strerror(int code);

/* The reason, or skr_strerror() of @code when nothing was filled. Never NULL. */
const char *skr_error_message(const struct skr_error *err);
