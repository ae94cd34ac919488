/* SPDX-License-Identifier: MIT */
#include "b64.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cleanup.h"
#include "secret.h"

int b64_encode(const void *in, size_t len, enum b64_variant variant, char **out)
{
	size_t cap, n;
	char *s;

	if (len > (size_t)INT32_MAX / 2)
		return -EINVAL;
	cap = 4 * ((len + 2) / 3) + 1;
	s = malloc(cap);
	if (!s)
		return -ENOMEM;
	n = (size_t)EVP_EncodeBlock((unsigned char *)s, in, (int)len);
	if (variant != B64_STD) {
		for (size_t i = 0; i < n; i++) {
			if (s[i] == '+')
				s[i] = '-';
			else if (s[i] == '/')
				s[i] = '_';
		}
	}
	if (variant == B64_URL_NOPAD)
		while (n > 0 && s[n - 1] == '=')
			n--;
	s[n] = '\0';
	*out = s;
	return 0;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : 63; /* '/' after normalization */
}

/* Checks @in and how long its data part is; sets *padded_len (data rounded up to a quad). */
static int b64_shape(const char *in, size_t len, unsigned flags, size_t *data_len,
                     size_t *padded_len)
{
	size_t d = len, pad;

	/* Strip padding first; it may only be at the end and at most two characters. */
	while (d > 0 && in[d - 1] == '=')
		d--;
	pad = len - d;
	if (pad > 2 || d % 4 == 1)
		return -EINVAL;
	if (pad && (len % 4) != 0)
		return -EINVAL;
	if ((flags & B64_REQUIRE_PAD) && len % 4 != 0)
		return -EINVAL;
	if (len > (size_t)INT32_MAX / 2)
		return -EINVAL;
	*data_len = d;
	*padded_len = (d + 3) / 4 * 4;
	return 0;
}

/*
 * Decode into @buf (room for padded_len / 4 * 3 + 1 bytes). The normalized copy of the input is
 * erased before it is freed: the input may be key material.
 */
static int b64_decode_into(const char *in, size_t data_len, size_t padded_len, unsigned flags,
                           uint8_t *buf, size_t *out_len)
{
	bool seen_std = false, seen_url = false;
	char *norm;
	int n, r = 0;

	norm = malloc(padded_len + 1);
	if (!norm)
		return -ENOMEM;
	for (size_t i = 0; i < data_len && r == 0; i++) {
		char c = in[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			norm[i] = c;
		} else if (c == '+' || c == '/') {
			seen_std = true;
			norm[i] = c;
		} else if (c == '-' || c == '_') {
			seen_url = true;
			norm[i] = c == '-' ? '+' : '/';
		} else {
			r = -EINVAL;
		}
	}
	if (r == 0 && ((seen_std && !(flags & B64_ACCEPT_STD)) ||
	               (seen_url && !(flags & B64_ACCEPT_URL)) || (seen_std && seen_url)))
		r = -EINVAL;
	/*
	 * Canonical encodings only: the bits of the last character beyond the data (4 of them
	 * after 2 characters, 2 after 3) must be zero, so that one byte string has one spelling
	 * ("QQ==" is "A"; "QR==" is refused) and encoded values can be compared as text.
	 */
	if (r == 0 && data_len % 4 != 0 &&
	    (b64_value(norm[data_len - 1]) & (data_len % 4 == 2 ? 0x0F : 0x03)) != 0)
		r = -EINVAL;
	if (r == 0) {
		for (size_t i = data_len; i < padded_len; i++)
			norm[i] = '=';
		norm[padded_len] = '\0';
		n = EVP_DecodeBlock(buf, (unsigned char *)norm, (int)padded_len);
		if (n < 0) {
			r = -EINVAL;
		} else {
			/* EVP_DecodeBlock counts the zero bytes that padding stands for. */
			n -= (int)(padded_len - data_len);
			buf[n] = 0;
			*out_len = (size_t)n;
		}
	}
	secure_free(norm, padded_len + 1);
	return r;
}

int b64_decode(const char *in, size_t len, unsigned flags, uint8_t **out, size_t *out_len)
{
	size_t data_len, padded_len, cap;
	uint8_t *buf;
	int r;

	r = b64_shape(in, len, flags, &data_len, &padded_len);
	if (r < 0)
		return r;
	cap = padded_len / 4 * 3 + 1;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	r = b64_decode_into(in, data_len, padded_len, flags, buf, out_len);
	if (r < 0) {
		secure_free(buf, cap);
		return r;
	}
	*out = buf;
	return 0;
}

int b64_decode_secret(const char *in, size_t len, unsigned flags, struct secret **out)
{
	_cleanup_secret_ struct secret *s = NULL;
	size_t data_len, padded_len, n;
	int r;

	r = b64_shape(in, len, flags, &data_len, &padded_len);
	if (r < 0)
		return r;
	s = secret_new(padded_len / 4 * 3 + 1);
	if (!s)
		return -ENOMEM;
	r = b64_decode_into(in, data_len, padded_len, flags, s->data, &n);
	if (r < 0)
		return r;
	s->len = n;
	*out = TAKE_PTR(s);
	return 0;
}

void hex_encode(const void *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *p = in;

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0xf];
	}
	out[2 * len] = '\0';
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_decode(const char *in, size_t in_len, uint8_t *out, size_t len)
{
	if (in_len != 2 * len)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int hi = hex_digit(in[2 * i]), lo = hex_digit(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int hex_decode_alloc(const char *in, size_t in_len, uint8_t **out, size_t *out_len)
{
	_cleanup_free_ uint8_t *buf = NULL;
	int r;

	if (in_len % 2)
		return -EINVAL;
	buf = malloc(in_len / 2 + 1);
	if (!buf)
		return -ENOMEM;
	r = hex_decode(in, in_len, buf, in_len / 2);
	if (r < 0)
		return r;
	*out_len = in_len / 2;
	*out = TAKE_PTR(buf);
	return 0;
}
