/* SPDX-License-Identifier: MIT */
/*
 * Security-context discovery and precedence, against temporary directories standing for "/"
 * (snp_security_context_load_at) and the UVM_* environment.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cleanup.h"
#include "fileio.h"
#include "skr.h"
#include "snp_security_context.h"
#include "test_fs.h"

static const char *const env_vars[] = {"UVM_SECURITY_CONTEXT_DIR", "UVM_SECURITY_POLICY",
                                       "UVM_HOST_AMD_CERTIFICATE", "UVM_REFERENCE_INFO"};

static int setup_root(void **state)
{
	char *root = strdup("/tmp/test-sc-XXXXXX");

	assert_non_null(root);
	assert_non_null(mkdtemp(root));
	for (size_t i = 0; i < ELEMENTSOF(env_vars); i++)
		unsetenv(env_vars[i]);
	*state = root;
	return 0;
}

static int teardown_root(void **state)
{
	assert_int_equal(test_fs_rm_rf(*state), 0);
	free(*state);
	for (size_t i = 0; i < ELEMENTSOF(env_vars); i++)
		unsetenv(env_vars[i]);
	return 0;
}

static char *mkpath(const char *root, const char *rel)
{
	char *p = path_join(root, rel);

	assert_non_null(p);
	return p;
}

static void make_dir(const char *root, const char *rel)
{
	_cleanup_free_ char *p = mkpath(root, rel);

	assert_int_equal(mkdir_p(p, 0700), 0);
}

static void write_text(const char *root, const char *rel, const char *text, size_t len)
{
	_cleanup_free_ char *p = mkpath(root, rel);

	assert_int_equal(write_file_atomic(p, text, len, 0600), 0);
}

static char *dir_file(const char *dir, const char *name)
{
	static char buf[4096];
	_cleanup_free_ char *p = path_join(dir, name);

	snprintf(buf, sizeof(buf), "%s", p);
	return buf;
}

#define WRITE(root, rel, s) write_text(root, rel, s, strlen(s))

static void test_explicit_dir_reads_and_trims(void **state)
{
	const char *root = *state;
	_cleanup_free_ char *dir = mkpath(root, "ctx");
	struct snp_security_context sc;
	struct skr_error err = {0};

	make_dir(root, "ctx");
	WRITE(root, "ctx/security-policy-base64", "cG9saWN5\n");
	WRITE(root, "ctx/host-amd-cert-base64", "dGhpbQ== \r\n\t\n");
	WRITE(root, "ctx/reference-info-base64", "cmVm");
	assert_int_equal(snp_security_context_load(dir, &sc, &err), 0);
	assert_string_equal(sc.dir, dir);
	assert_string_equal(sc.security_policy_b64, "cG9saWN5");
	assert_string_equal(sc.host_amd_cert_b64, "dGhpbQ==");
	assert_string_equal(sc.reference_info_b64, "cmVm");
	snp_security_context_clear(&sc);
	assert_null(sc.dir);
	snp_security_context_clear(&sc);
}

/* One source for all three values: the files, or the environment as a set (§3.4). */
static void test_files_or_env_as_a_set(void **state)
{
	const char *root = *state;
	_cleanup_free_ char *dir = mkpath(root, "ctx");
	_cleanup_free_ char *ref = mkpath(root, "ctx/reference-info-base64");
	struct snp_security_context sc;
	struct skr_error err = {0};

	make_dir(root, "ctx");
	WRITE(root, "ctx/security-policy-base64", "ZmlsZQ==\n");
	WRITE(root, "ctx/host-amd-cert-base64", "  \n"); /* empty = absent */
	WRITE(root, "ctx/reference-info-base64", "cmVm\n");
	setenv("UVM_SECURITY_POLICY", "ZW52", 1);
	setenv("UVM_HOST_AMD_CERTIFICATE", "ZW52LWNlcnQ=\n", 1);
	setenv("UVM_REFERENCE_INFO", "ZW52LXJlZg==", 1);

	/* Reference info in the files: the files only; the missing THIM value is NOT the env's. */
	assert_int_equal(snp_security_context_load(dir, &sc, &err), 0);
	assert_string_equal(sc.security_policy_b64, "ZmlsZQ==");
	assert_null(sc.host_amd_cert_b64);
	assert_string_equal(sc.reference_info_b64, "cmVm");
	snp_security_context_clear(&sc);

	/* No reference info in the files: all three from the environment, none from the files. */
	assert_int_equal(unlink(ref), 0);
	assert_int_equal(snp_security_context_load(dir, &sc, &err), 0);
	assert_string_equal(sc.dir, dir);
	assert_string_equal(sc.security_policy_b64, "ZW52");
	assert_string_equal(sc.host_amd_cert_b64, "ZW52LWNlcnQ=");
	assert_string_equal(sc.reference_info_b64, "ZW52LXJlZg==");
	snp_security_context_clear(&sc);

	/* ... unless the environment has nothing: then what the files have. */
	unsetenv("UVM_SECURITY_POLICY");
	unsetenv("UVM_HOST_AMD_CERTIFICATE");
	unsetenv("UVM_REFERENCE_INFO");
	assert_int_equal(snp_security_context_load(dir, &sc, &err), 0);
	assert_string_equal(sc.security_policy_b64, "ZmlsZQ==");
	assert_null(sc.host_amd_cert_b64);
	assert_null(sc.reference_info_b64);
	snp_security_context_clear(&sc);
}

/* Wrapped base64 (Go's decoder skips CR/LF): line breaks inside a value are dropped. */
static void test_line_breaks_dropped(void **state)
{
	const char *root = *state;
	_cleanup_free_ char *dir = mkpath(root, "ctx");
	struct snp_security_context sc;
	struct skr_error err = {0};

	make_dir(root, "ctx");
	WRITE(root, "ctx/security-policy-base64", "cG9s\r\naWN5\n");
	WRITE(root, "ctx/host-amd-cert-base64", "\n\n");
	WRITE(root, "ctx/reference-info-base64", "cm\nVm\r\n");
	assert_int_equal(snp_security_context_load(dir, &sc, &err), 0);
	assert_string_equal(sc.security_policy_b64, "cG9saWN5");
	assert_null(sc.host_amd_cert_b64);
	assert_string_equal(sc.reference_info_b64, "cmVm");
	snp_security_context_clear(&sc);

	/* The environment form too. */
	assert_int_equal(unlink(dir_file(dir, "reference-info-base64")), 0);
	setenv("UVM_REFERENCE_INFO", "ZW52\nLXJlZg==\n", 1);
	assert_int_equal(snp_security_context_load(dir, &sc, &err), 0);
	assert_string_equal(sc.reference_info_b64, "ZW52LXJlZg==");
	assert_null(sc.security_policy_b64);
	snp_security_context_clear(&sc);
}

static void test_env_dir_and_missing_dirs(void **state)
{
	const char *root = *state;
	_cleanup_free_ char *dir = mkpath(root, "from-env"), *missing = mkpath(root, "nope");
	_cleanup_free_ char *file = mkpath(root, "plain");
	struct snp_security_context sc;
	struct skr_error err = {0};

	make_dir(root, "from-env");
	WRITE(root, "from-env/reference-info-base64", "cmVm\n");
	setenv("UVM_SECURITY_CONTEXT_DIR", dir, 1);
	assert_int_equal(snp_security_context_load_at(root, NULL, &sc, &err), 0);
	assert_string_equal(sc.dir, dir);
	assert_null(sc.security_policy_b64);
	assert_null(sc.host_amd_cert_b64);
	assert_string_equal(sc.reference_info_b64, "cmVm");
	snp_security_context_clear(&sc);

	/* An explicit directory beats the environment, and must exist. */
	assert_int_equal(snp_security_context_load(missing, &sc, &err), -ENOENT);
	assert_non_null(strstr(err.msg, missing));
	assert_non_null(strstr(err.msg, "configured"));

	/* So must the one the environment names. */
	skr_error_clear(&err);
	setenv("UVM_SECURITY_CONTEXT_DIR", missing, 1);
	assert_int_equal(snp_security_context_load_at(root, NULL, &sc, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "UVM_SECURITY_CONTEXT_DIR"));

	skr_error_clear(&err);
	WRITE(root, "plain", "x");
	assert_int_equal(snp_security_context_load(file, &sc, &err), -ENOTDIR);
	assert_non_null(strstr(err.msg, file));
}

static void test_discovery_under_root(void **state)
{
	const char *root = *state;
	_cleanup_free_ char *expect = mkpath(root, "security-context-b");
	struct snp_security_context sc;
	struct skr_error err = {0};

	/* A file with the marker is skipped; among directories the byte-wise first wins. */
	WRITE(root, "security-context-a", "not a directory");
	make_dir(root, "security-context-c");
	make_dir(root, "security-context-b");
	make_dir(root, "unrelated");
	make_dir(root, "opt/confidential-containers/share/kata-containers");
	WRITE(root, "security-context-b/security-policy-base64", "Yg==");
	WRITE(root, "security-context-c/security-policy-base64", "Yw==");
	assert_int_equal(snp_security_context_load_at(root, NULL, &sc, &err), 0);
	assert_string_equal(sc.dir, expect);
	assert_string_equal(sc.security_policy_b64, "Yg==");
	snp_security_context_clear(&sc);
}

static void test_kata_fallback_and_nothing(void **state)
{
	const char *root = *state;
	_cleanup_free_ char *kata =
	        mkpath(root, "opt/confidential-containers/share/kata-containers");
	_cleanup_free_ char *slash = NULL;
	struct snp_security_context sc;
	struct skr_error err = {0};

	/* Nothing anywhere: no directory, no values, not an error (outside ACI). */
	assert_int_equal(snp_security_context_load_at(root, NULL, &sc, &err), 0);
	assert_null(sc.dir);
	assert_null(sc.security_policy_b64);
	snp_security_context_clear(&sc);

	/* Environment only (older hcsshim). */
	setenv("UVM_SECURITY_POLICY", "ZW52", 1);
	assert_int_equal(snp_security_context_load_at(root, NULL, &sc, &err), 0);
	assert_null(sc.dir);
	assert_string_equal(sc.security_policy_b64, "ZW52");
	snp_security_context_clear(&sc);

	make_dir(root, "opt/confidential-containers/share/kata-containers");
	WRITE(root, "opt/confidential-containers/share/kata-containers/host-amd-cert-base64",
	      "a2F0YQ==");
	/* A trailing slash on the root must not matter. */
	assert_true(asprintf(&slash, "%s/", root) > 0);
	assert_int_equal(snp_security_context_load_at(slash, NULL, &sc, &err), 0);
	assert_string_equal(sc.dir, kata);
	/* No reference info in the files and a UVM_* variable set: the environment's set. */
	assert_null(sc.host_amd_cert_b64);
	assert_string_equal(sc.security_policy_b64, "ZW52");
	snp_security_context_clear(&sc);
	unsetenv("UVM_SECURITY_POLICY");
	assert_int_equal(snp_security_context_load_at(slash, NULL, &sc, &err), 0);
	assert_string_equal(sc.dir, kata);
	assert_string_equal(sc.host_amd_cert_b64, "a2F0YQ==");
	snp_security_context_clear(&sc);
}

static void test_bad_files(void **state)
{
	const char *root = *state;
	_cleanup_free_ char *dir = mkpath(root, "ctx");
	_cleanup_free_ char *big = malloc((4u << 20) + 2);
	_cleanup_free_ char *policy = mkpath(root, "ctx/security-policy-base64");
	struct snp_security_context sc;
	struct skr_error err = {0};

	make_dir(root, "ctx");
	write_text(root, "ctx/security-policy-base64", "ab\0cd", 5);
	assert_int_equal(snp_security_context_load(dir, &sc, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "security-policy-base64"));
	assert_null(sc.dir);

	skr_error_clear(&err);
	memset(big, 'A', (4u << 20) + 1);
	write_text(root, "ctx/security-policy-base64", big, (4u << 20) + 1);
	assert_int_equal(snp_security_context_load(dir, &sc, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "security-policy-base64"));

	/* Exactly at the cap is accepted. */
	write_text(root, "ctx/security-policy-base64", big, 4u << 20);
	assert_int_equal(snp_security_context_load(dir, &sc, &err), 0);
	assert_int_equal(strlen(sc.security_policy_b64), 4u << 20);
	snp_security_context_clear(&sc);

	skr_error_clear(&err);
	unlink(policy);
	make_dir(root, "ctx/host-amd-cert-base64");
	assert_int_equal(snp_security_context_load(dir, &sc, &err), -EISDIR);
	assert_non_null(strstr(err.msg, "host-amd-cert-base64"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_explicit_dir_reads_and_trims, setup_root,
	                                        teardown_root),
	        cmocka_unit_test_setup_teardown(test_line_breaks_dropped, setup_root,
	                                        teardown_root),
	        cmocka_unit_test_setup_teardown(test_files_or_env_as_a_set, setup_root,
	                                        teardown_root),
	        cmocka_unit_test_setup_teardown(test_env_dir_and_missing_dirs, setup_root,
	                                        teardown_root),
	        cmocka_unit_test_setup_teardown(test_discovery_under_root, setup_root,
	                                        teardown_root),
	        cmocka_unit_test_setup_teardown(test_kata_fallback_and_nothing, setup_root,
	                                        teardown_root),
	        cmocka_unit_test_setup_teardown(test_bad_files, setup_root, teardown_root),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
