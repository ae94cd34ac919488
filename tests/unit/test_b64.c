/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "b64.h"
#include "cleanup.h"
#include "secret.h"

struct b64_case {
	const char *plain;
	const char *std;
	const char *url;
	const char *url_nopad;
};

/* RFC 4648 §10 vectors plus bytes that differ between the alphabets. */
static const struct b64_case cases[] = {
        {"", "", "", ""},
        {"f", "Zg==", "Zg==", "Zg"},
        {"fo", "Zm8=", "Zm8=", "Zm8"},
        {"foo", "Zm9v", "Zm9v", "Zm9v"},
        {"foob", "Zm9vYg==", "Zm9vYg==", "Zm9vYg"},
        {"fooba", "Zm9vYmE=", "Zm9vYmE=", "Zm9vYmE"},
        {"foobar", "Zm9vYmFy", "Zm9vYmFy", "Zm9vYmFy"},
        {"\xfb\xff\xbf", "+/+/", "-_-_", "-_-_"},
        {"\xfb\xff", "+/8=", "-_8=", "-_8"},
};

static void test_encode_vectors(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		size_t len = strlen(cases[i].plain);
		_cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;

		assert_int_equal(b64_encode(cases[i].plain, len, B64_STD, &a), 0);
		assert_int_equal(b64_encode(cases[i].plain, len, B64_URL, &b), 0);
		assert_int_equal(b64_encode(cases[i].plain, len, B64_URL_NOPAD, &c), 0);
		assert_string_equal(a, cases[i].std);
		assert_string_equal(b, cases[i].url);
		assert_string_equal(c, cases[i].url_nopad);
	}
}

static void check_decode(const char *in, unsigned flags, const char *expect)
{
	_cleanup_free_ uint8_t *out = NULL;
	size_t len = 0;

	assert_int_equal(b64_decode(in, strlen(in), flags, &out, &len), 0);
	assert_int_equal(len, strlen(expect));
	assert_memory_equal(out, expect, len);
	assert_int_equal(out[len], 0);
}

static void test_decode_vectors(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		check_decode(cases[i].std, B64_ACCEPT_ANY, cases[i].plain);
		check_decode(cases[i].url, B64_ACCEPT_ANY, cases[i].plain);
		check_decode(cases[i].url_nopad, B64_ACCEPT_ANY, cases[i].plain);
		check_decode(cases[i].std, B64_ACCEPT_STD | B64_REQUIRE_PAD, cases[i].plain);
	}
}

static void test_decode_rejects(void **state)
{
	static const struct {
		const char *in;
		unsigned flags;
	} bad[] = {
	        {"Zg=", B64_ACCEPT_ANY},                  /* padding not to a multiple of 4 */
	        {"Z===", B64_ACCEPT_ANY},                 /* too much padding */
	        {"Z", B64_ACCEPT_ANY},                    /* impossible length */
	        {"Zm 9v", B64_ACCEPT_ANY},                /* whitespace */
	        {"Zm9v\n", B64_ACCEPT_ANY},               /* newline */
	        {"Zm=v", B64_ACCEPT_ANY},                 /* padding inside */
	        {"-_8=", B64_ACCEPT_STD},                 /* url alphabet refused */
	        {"+/8=", B64_ACCEPT_URL},                 /* std alphabet refused */
	        {"+_8=", B64_ACCEPT_ANY},                 /* mixed alphabets */
	        {"Zg", B64_ACCEPT_STD | B64_REQUIRE_PAD}, /* Go StdEncoding needs padding */
	        {"Zm9v*", B64_ACCEPT_ANY},                /* not base64 at all */
	        /* Non-canonical: bits after the data in the last character (RFC 4648 §3.5). */
	        {"QR==", B64_ACCEPT_ANY},   /* "A" is "QQ==" */
	        {"QR", B64_ACCEPT_URL},     /* ... also without padding */
	        {"QUJ=", B64_ACCEPT_ANY},   /* "AB" is "QUI=" */
	        {"Zm9vYh", B64_ACCEPT_ANY}, /* "foob" is "Zm9vYg" */
	        {"-_9=", B64_ACCEPT_ANY},   /* 0xfb 0xff is "-_8=" */
	};

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		uint8_t *out = NULL;
		size_t len;

		assert_int_equal(b64_decode(bad[i].in, strlen(bad[i].in), bad[i].flags, &out, &len),
		                 -EINVAL);
		assert_null(out);
	}
}

/* Every last character for one and two trailing bytes: exactly the canonical ones decode. */
static void test_decode_canonical_only(void **state)
{
	static const char alphabet[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned accepted2 = 0, accepted3 = 0;

	for (int v = 0; v < 64; v++) {
		char two[5] = {'Q', alphabet[v], '=', '=', 0},
		     three[5] = {'Q', 'U', alphabet[v], '=', 0};
		uint8_t *out = NULL;
		size_t len;
		int r;

		r = b64_decode(two, 4, B64_ACCEPT_ANY, &out, &len);
		assert_int_equal(r, (v & 0x0F) ? -EINVAL : 0);
		accepted2 += r == 0;
		free(out);
		out = NULL;
		r = b64_decode(three, 4, B64_ACCEPT_ANY, &out, &len);
		assert_int_equal(r, (v & 0x03) ? -EINVAL : 0);
		accepted3 += r == 0;
		free(out);
	}
	/* 4 values of the 2-bit remainder after one byte, 16 of the 4-bit one after two bytes. */
	assert_int_equal(accepted2, 4);
	assert_int_equal(accepted3, 16);
}

static void test_decode_secret(void **state)
{
	struct secret *s = NULL;

	assert_int_equal(b64_decode_secret("Zm9vYmE", 7, B64_ACCEPT_URL, &s), 0);
	assert_non_null(s);
	assert_int_equal(s->len, 5);
	assert_memory_equal(s->data, "fooba", 5);
	assert_int_equal(s->data[5], 0);
	secret_free(s);
	s = NULL;
	assert_int_equal(b64_decode_secret("", 0, B64_ACCEPT_ANY, &s), 0);
	assert_int_equal(s->len, 0);
	secret_free(s);
	s = NULL;
	assert_int_equal(b64_decode_secret("QR==", 4, B64_ACCEPT_ANY, &s), -EINVAL);
	assert_null(s);
	assert_int_equal(b64_decode_secret("Zm9v\n", 5, B64_ACCEPT_ANY, &s), -EINVAL);
	assert_null(s);
}

static void test_roundtrip_all_bytes(void **state)
{
	uint8_t data[300];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	for (size_t n = 0; n <= sizeof(data); n += 1) {
		for (int v = B64_STD; v <= B64_URL_NOPAD; v++) {
			_cleanup_free_ char *enc = NULL;
			_cleanup_free_ uint8_t *dec = NULL;
			size_t len;

			assert_int_equal(b64_encode(data, n, (enum b64_variant)v, &enc), 0);
			assert_int_equal(b64_decode(enc, strlen(enc), B64_ACCEPT_ANY, &dec, &len),
			                 0);
			assert_int_equal(len, n);
			assert_memory_equal(dec, data, n);
		}
	}
}

static void test_hex(void **state)
{
	uint8_t bytes[4] = {0x00, 0xab, 0x7f, 0xff}, back[4];
	char text[9];
	_cleanup_free_ uint8_t *alloc = NULL;
	size_t len;

	hex_encode(bytes, sizeof(bytes), text);
	assert_string_equal(text, "00ab7fff");
	assert_int_equal(hex_decode("00AB7fFF", 8, back, 4), 0);
	assert_memory_equal(back, bytes, 4);
	assert_int_equal(hex_decode("00ab7ff", 7, back, 4), -EINVAL);
	assert_int_equal(hex_decode("00ab7fgf", 8, back, 4), -EINVAL);
	assert_int_equal(hex_decode_alloc("abc", 3, &alloc, &len), -EINVAL);
	assert_int_equal(hex_decode_alloc("abcd", 4, &alloc, &len), 0);
	assert_int_equal(len, 2);
	assert_int_equal(alloc[0], 0xab);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_encode_vectors),
	        cmocka_unit_test(test_decode_vectors),
	        cmocka_unit_test(test_decode_rejects),
	        cmocka_unit_test(test_decode_canonical_only),
	        cmocka_unit_test(test_decode_secret),
	        cmocka_unit_test(test_roundtrip_all_bytes),
	        cmocka_unit_test(test_hex),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
