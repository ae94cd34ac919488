/* SPDX-License-Identifier: MIT */
#include "skr_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/*
 * The code of the last error set on this thread, also when the caller passed no struct: lets
 * skr_error_prefix() return the right failure code with a NULL @err instead of 0 ("success").
 */
static _Thread_local int last_code;

__attribute__((format(printf, 3, 0))) static int error_vset(struct skr_error *err, int code,
                                                            const char *fmt, va_list ap)
{
	last_code = code;
	if (!err)
		return code;
	err->code = code;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return code;
}

int skr_error_set(struct skr_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	last_code = code;
	if (!err || err->msg[0])
		return code;
	va_start(ap, fmt);
	error_vset(err, code, fmt, ap);
	va_end(ap);
	return code;
}

int skr_error_reset(struct skr_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_vset(err, code, fmt, ap);
	va_end(ap);
	return code;
}

int skr_error_prefix(struct skr_error *err, const char *fmt, ...)
{
	char prefix[SKR_ERROR_MSG_MAX];
	size_t plen, olen;
	va_list ap;

	/* Only ever called on a failure path: never let it turn a failure into 0. */
	int code = err && err->code < 0 ? err->code : last_code < 0 ? last_code : -EIO;

	if (!err)
		return code;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	plen = strlen(prefix);
	olen = strnlen(err->msg, sizeof(err->msg) - 1);
	if (plen > sizeof(err->msg) - 1)
		plen = sizeof(err->msg) - 1;
	/* Keep as much of the original reason as fits after the prefix. */
	if (plen + olen > sizeof(err->msg) - 1)
		olen = sizeof(err->msg) - 1 - plen;
	memmove(err->msg + plen, err->msg, olen);
	memcpy(err->msg, prefix, plen);
	err->msg[plen + olen] = '\0';
	return code;
}

void skr_error_clear(struct skr_error *err)
{
	if (!err)
		return;
	err->code = 0;
	err->msg[0] = '\0';
}

const char *skr_error_message(const struct skr_error *err)
{
	if (!err)
		return "unknown error";
	if (err->msg[0])
		return err->msg;
	if (err->code)
		return skr_strerror(err->code);
	return "no error";
}

const char *skr_strerror(int code)
{
	/* glibc's table of constant strings: no shared buffer, unlike strerror(). */
	const char *s = strerrordesc_np(code < 0 ? -code : code);

	return s ? s : "unknown error";
}
