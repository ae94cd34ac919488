/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "secret.h"
#include "skr_error.h"

static void test_secret_alloc_copy_free(void **state)
{
	const char key[] = "0123456789abcdef0123456789abcdef";
	struct secret *s = secret_new_copy(key, 32);

	assert_non_null(s);
	assert_int_equal(s->len, 32);
	assert_memory_equal(s->data, key, 32);
	assert_true(s->mapped >= 32);
	assert_int_equal(s->mapped % (size_t)sysconf(_SC_PAGESIZE), 0);
	secret_free(s);
	secret_free(NULL);
}

static void test_secret_zero_length(void **state)
{
	_cleanup_secret_ struct secret *s = secret_new(0);

	assert_non_null(s);
	assert_int_equal(s->len, 0);
}

static void test_secret_is_locked_when_allowed(void **state)
{
	_cleanup_secret_ struct secret *s = secret_new(100);
	unsigned char vec = 0;

	assert_non_null(s);
	/* As root (CI) mlock cannot fail for a page; then the page must be resident. */
	if (geteuid() == 0) {
		assert_true(s->locked);
		assert_int_equal(mincore(s->data, s->mapped, &vec), 0);
		assert_true(vec & 1);
	}
}

static void test_error_keeps_first_reason(void **state)
{
	struct skr_error err = {0};

	assert_int_equal(skr_error_set(&err, -EINVAL, "field '%s' is missing", "x"), -EINVAL);
	assert_int_equal(skr_error_set(&err, -EIO, "outer"), -EIO);
	assert_string_equal(err.msg, "field 'x' is missing");
	assert_int_equal(err.code, -EINVAL);
	skr_error_prefix(&err, "config: ");
	assert_string_equal(skr_error_message(&err), "config: field 'x' is missing");
	skr_error_clear(&err);
	assert_int_equal(skr_error_set(NULL, -EPERM, "ignored"), -EPERM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secret_alloc_copy_free),
		cmocka_unit_test(test_secret_zero_length),
		cmocka_unit_test(test_secret_is_locked_when_allowed),
		cmocka_unit_test(test_error_keeps_first_reason),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
