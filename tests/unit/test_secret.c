/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdio.h>
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

/* Locked memory of this process in kB, from /proc/self/status. */
static long vm_locked_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#endif

static void test_secret_is_locked_when_allowed(void **state)
{
	long before = vm_locked_kb();
	struct secret *s = secret_new(100);

	assert_non_null(s);
#ifndef UNDER_ASAN
	/* ASan turns mlock() into a no-op; elsewhere, as root (CI), locking one page cannot fail. */
	if (geteuid() == 0) {
		assert_true(s->locked);
		assert_true(vm_locked_kb() >= before + (long)(s->mapped / 1024));
	}
#endif
	secret_free(s);
	if (geteuid() == 0)
		assert_true(vm_locked_kb() <= before);
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

/* A prefix on a failure path must never turn the failure into 0, with or without a struct. */
static void test_error_prefix_never_succeeds(void **state)
{
	struct skr_error err = {0};

	assert_int_equal(skr_error_set(NULL, -ESTALE, "inner"), -ESTALE);
	assert_int_equal(skr_error_prefix(NULL, "outer: "), -ESTALE);
	assert_int_equal(skr_error_set(&err, -EBADMSG, "bad signature"), -EBADMSG);
	assert_int_equal(skr_error_prefix(&err, "verify: "), -EBADMSG);
	skr_error_clear(&err);
	/* A callee that failed without filling the struct still yields a failure code. */
	assert_true(skr_error_prefix(&err, "step: ") < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_secret_alloc_copy_free),
	        cmocka_unit_test(test_secret_zero_length),
	        cmocka_unit_test(test_secret_is_locked_when_allowed),
	        cmocka_unit_test(test_error_keeps_first_reason),
	        cmocka_unit_test(test_error_prefix_never_succeeds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
