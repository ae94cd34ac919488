/* SPDX-License-Identifier: MIT */
/* common/http_body: bounded request bodies, the 413 early answer, draining and dropping. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http_body.h"

static void test_stored_in_pieces(void **state)
{
	struct http_body b;
	char big[3000];

	(void)state;
	memset(big, 'x', sizeof(big));
	http_body_init(&b, 4096, 8192);
	assert_false(http_body_announce(&b, "3005", NULL));
	assert_int_equal(http_body_receive(&b, "{\"a\":", 5), 0);
	assert_int_equal(http_body_receive(&b, big, sizeof(big)), 0); /* grows past the first cap */
	assert_int_equal(b.len, 3005);
	assert_int_equal(b.data[b.len], '\0');
	assert_memory_equal(b.data, "{\"a\":xxx", 8);
	assert_int_equal(http_body_size(&b), 3005);
	http_body_erase(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	http_body_erase(&b); /* twice is harmless */
}

static void test_limits(void **state)
{
	static const struct {
		const char *content_length, *expect;
		bool early;
	} announce[] = {
	        {NULL, NULL, false},
	        {"100", NULL, false},
	        {"100", "100-continue", false}, /* within the limit: read it */
	        {"101", NULL, false},           /* over, but drained to answer cleanly */
	        {"101", "100-Continue", true},  /* the client waits: answer at once */
	        {"400", NULL, false},
	        {"401", NULL, true},                      /* over drain_max */
	        {"99999999999999999999999", NULL, false}, /* malformed: left to libmicrohttpd */
	        {"12x", NULL, false},
	        {"", NULL, false},
	};
	struct http_body b;
	char chunk[150];

	(void)state;
	for (size_t i = 0; i < sizeof(announce) / sizeof(announce[0]); i++) {
		http_body_init(&b, 100, 400);
		if (http_body_announce(&b, announce[i].content_length, announce[i].expect) !=
		    announce[i].early)
			fail_msg("Content-Length %s, Expect %s", announce[i].content_length,
			         announce[i].expect);
	}

	/* Sent without announcing: stored up to the limit, then erased and drained, then dropped. */
	memset(chunk, 'k', sizeof(chunk));
	http_body_init(&b, 100, 400);
	assert_int_equal(http_body_receive(&b, chunk, 60), 0);
	assert_int_equal(http_body_receive(&b, chunk, 40), 0); /* exactly the limit */
	assert_int_equal(b.len, 100);
	assert_int_equal(http_body_receive(&b, chunk, 1), -E2BIG);
	assert_true(b.too_large);
	assert_null(b.data); /* erased at once */
	assert_int_equal(http_body_receive(&b, chunk, 150), -E2BIG);
	assert_int_equal(http_body_size(&b), 251);
	assert_int_equal(http_body_receive(&b, chunk, 150), -ECONNABORTED);

	/* Announced too large: nothing is ever stored, the size named is the announced one. */
	http_body_init(&b, 100, 400);
	assert_false(http_body_announce(&b, "300", NULL));
	assert_int_equal(http_body_receive(&b, chunk, 10), -E2BIG);
	assert_null(b.data);
	assert_int_equal(http_body_size(&b), 300);

	/* drain_max below max means max. */
	http_body_init(&b, 100, 0);
	assert_int_equal(b.drain_max, 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_stored_in_pieces),
	        cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
