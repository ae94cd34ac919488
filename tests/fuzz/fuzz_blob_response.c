/* SPDX-License-Identifier: MIT */
/*
 * What the blob back end parses from a server's answer: header lines (status line,
 * Content-Length, Content-Range, ETag, x-ms-blob-type, x-ms-error-code, Retry-After), the
 * Content-Range and Retry-After values on their own, and the <Code> of an Azure error body.
 * Input: header lines separated by '\n'; after an empty line, the error body.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blob_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct blob_http_resp r;
	const char *p = (const char *)data, *end = p + size;
	char code[64], *copy;
	unsigned ms;
	uint64_t s, e, t;

	memset(&r, 0, sizeof(r));
	/* Lines exactly as libcurl hands them over: not NUL-terminated. */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		bool blank = len <= 2 && (len == 0 || p[0] == '\n' || p[0] == '\r');

		blob_http_parse_header(&r, p, len);
		p += len;
		if (blank)
			break;
	}
	if (r.has_content_range && (r.range_end < r.range_start ||
	                            (r.range_total != UINT64_MAX && r.range_end >= r.range_total)))
		abort();
	if (strnlen(r.etag, sizeof(r.etag)) >= sizeof(r.etag) ||
	    strnlen(r.error_code, sizeof(r.error_code)) >= sizeof(r.error_code))
		abort();
	blob_parse_error_code(p, (size_t)(end - p), code, sizeof(code));

	/* The value parsers on the whole input as one string. */
	copy = malloc(size + 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	if (blob_parse_content_range(copy, &s, &e, &t) == 0 &&
	    (e < s || (t != UINT64_MAX && e >= t)))
		abort();
	(void)blob_parse_retry_after(copy, 1700000000, &ms);
	(void)blob_parse_u64(copy, &s);
	/* Not a server answer, but a parser all the same: URLs go through it into every log. */
	free(blob_url_redact(copy));
	free(copy);
	return 0;
}
