/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fileio.h"
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

/* Key files land in locked memory in one piece, whatever their size relative to a page. */
static void test_read_file_secret(void **state)
{
	static const size_t sizes[] = {0, 1, 4095, 4096, 4097, 9000};
	char dir[] = "/tmp/test-secret-XXXXXX";
	char path[64];
	struct secret *s = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/key.pem", dir);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		char *data = malloc(n + 1);

		assert_non_null(data);
		for (size_t k = 0; k < n; k++)
			data[k] = (char)('a' + k % 26);
		assert_int_equal(write_file_atomic(path, data, n, 0600), 0);
		assert_int_equal(read_file_secret(path, 16384, &s), 0);
		assert_int_equal(s->len, n);
		assert_memory_equal(s->data, data, n);
		assert_int_equal(s->data[n], 0);
		secret_free(s);
		s = NULL;
		/* Over the limit: -EFBIG, nothing returned. */
		if (n > 0) {
			assert_int_equal(read_file_secret(path, n - 1, &s), -EFBIG);
			assert_null(s);
		}
		free(data);
	}
	assert_int_equal(read_file_secret(dir, 16384, &s), -EINVAL); /* a directory */
	unlink(path);
	assert_int_equal(read_file_secret(path, 16384, &s), -ENOENT);
	assert_null(s);
	rmdir(dir);
}

/* One path joiner for everyone: exactly one '/', and "" is never the root. */
static void test_path_join(void **state)
{
	static const struct {
		const char *dir, *name, *expect;
	} cases[] = {
	        {"/", "dev/sev", "/dev/sev"},
	        {"/", "/dev/sev", "/dev/sev"},
	        {"/tmp/", "x", "/tmp/x"},
	        {"/tmp//", "//x", "/tmp/x"},
	        {"rel", "x", "rel/x"},
	        {"//", "x", "/x"},
	        {"/a", "", "/a/"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *p = path_join(cases[i].dir, cases[i].name);

		assert_non_null(p);
		assert_string_equal(p, cases[i].expect);
		free(p);
	}
	assert_null(path_join("", "x"));
	assert_int_equal(mkdir_p("", 0700), -EINVAL);
}

static void test_secure_buf_append(void **state)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	char chunk[700];

	(void)state;
	memset(chunk, 'z', sizeof(chunk));
	assert_int_equal(secure_buf_append(&buf, &len, &cap, "ab", 2), 0);
	assert_string_equal(buf, "ab");
	for (int i = 0; i < 5; i++) /* grows past the first capacity several times */
		assert_int_equal(secure_buf_append(&buf, &len, &cap, chunk, sizeof(chunk)), 0);
	assert_int_equal(len, 2 + 5 * sizeof(chunk));
	assert_true(cap > len);
	assert_int_equal(buf[len], '\0');
	assert_int_equal(buf[len - 1], 'z');
	assert_int_equal(secure_buf_append(&buf, &len, &cap, "", 0), 0);
	assert_int_equal(len, 2 + 5 * sizeof(chunk));
	/* a length that cannot fit is refused, the buffer unchanged */
	assert_int_equal(secure_buf_append(&buf, &len, &cap, chunk, SIZE_MAX - 1), -ENOMEM);
	assert_int_equal(len, 2 + 5 * sizeof(chunk));
	secure_free(buf, cap);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_secret_alloc_copy_free),
	        cmocka_unit_test(test_secure_buf_append),
	        cmocka_unit_test(test_secret_zero_length),
	        cmocka_unit_test(test_secret_is_locked_when_allowed),
	        cmocka_unit_test(test_error_keeps_first_reason),
	        cmocka_unit_test(test_error_prefix_never_succeeds),
	        cmocka_unit_test(test_read_file_secret),
	        cmocka_unit_test(test_path_join),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
