/* SPDX-License-Identifier: MIT */
/*
 * b64_decode on arbitrary text (tokens, JWKs, security-context values, THIM data all arrive as
 * base64). The first byte picks the accepted forms, the rest is the text. Properties: never
 * crash; whatever decodes is canonical (re-encoding gives the same characters up to alphabet
 * and padding, so one byte string has one spelling); the secret variant agrees byte for byte.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "secret.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Standard alphabet, no padding. */
static size_t normalize(const char *in, size_t len, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (c == '=')
			continue;
		out[n++] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text;
	size_t len, out_len, n1, n2;
	unsigned flags;
	uint8_t *out = NULL;
	struct secret *s = NULL;
	char *enc = NULL, *a, *b;
	int r, rs;

	if (size < 1)
		return 0;
	flags = data[0] & (B64_ACCEPT_STD | B64_ACCEPT_URL | B64_REQUIRE_PAD);
	text = (const char *)data + 1;
	len = size - 1;

	r = b64_decode(text, len, flags, &out, &out_len);
	rs = b64_decode_secret(text, len, flags, &s);
	if (r != rs || (r < 0 && (r != -EINVAL || out || s)))
		abort();
	if (r < 0)
		return 0;
	if (s->len != out_len || memcmp(s->data, out, out_len) != 0 || out[out_len] != 0 ||
	    s->data[out_len] != 0)
		abort();
	if (b64_encode(out, out_len, B64_STD, &enc) < 0)
		abort();
	a = malloc(len + 1);
	b = malloc(strlen(enc) + 1);
	if (!a || !b)
		abort();
	n1 = normalize(text, len, a);
	n2 = normalize(enc, strlen(enc), b);
	if (n1 != n2 || memcmp(a, b, n1) != 0)
		abort();
	free(a);
	free(b);
	free(enc);
	free(out);
	secret_free(s);
	return 0;
}
