/* SPDX-License-Identifier: MIT */
#include "http_body.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "secret.h"

void http_body_init(struct http_body *b, size_t max, size_t drain_max)
{
	*b = (struct http_body){.max = max, .drain_max = drain_max < max ? max : drain_max};
}

bool http_body_announce(struct http_body *b, const char *content_length, const char *expect)
{
	unsigned long long n;
	char *end;

	if (!content_length)
		return false;
	errno = 0;
	n = strtoull(content_length, &end, 10);
	if (errno != 0 || end == content_length || *end != '\0')
		return false; /* libmicrohttpd refuses such a request itself */
	b->announced = n > SIZE_MAX ? SIZE_MAX : (size_t)n;
	if (b->announced <= b->max)
		return false;
	b->too_large = true;
	if (expect && strcasecmp(expect, "100-continue") == 0)
		return true;
	return b->announced > b->drain_max;
}

size_t http_body_size(const struct http_body *b)
{
	if (!b->too_large)
		return b->len;
	return b->received > b->announced ? b->received : b->announced;
}

void http_body_erase(struct http_body *b)
{
	if (b->data)
		secure_free(b->data, b->cap);
	b->data = NULL;
	b->cap = b->len = 0;
}

int http_body_receive(struct http_body *b, const char *data, size_t n)
{
	b->received = b->received + n < b->received ? SIZE_MAX : b->received + n;
	if (b->too_large || n > b->max - b->len) {
		b->too_large = true;
		http_body_erase(b);
		return b->received > b->drain_max ? -ECONNABORTED : -E2BIG;
	}
	return secure_buf_append(&b->data, &b->len, &b->cap, data, n);
}
