/* SPDX-License-Identifier: MIT */
/*
 * importkey's input handling (tools/importkey/config.c): importkeyconfig.json validation with
 * the field named in each error, the Go tool's flag spellings next to GNU long options, loading
 * of oct keys (hex or file) and RSA keys (PKCS#8 / PKCS#1 PEM), and the policy lint.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "b64.h"
#include "cleanup.h"
#include "importkey.h"
#include "ossl.h"
#include "secret.h"
#include "test_fs.h"

static char tmpdir[] = "/tmp/test_importkey_config.XXXXXX";
static EVP_PKEY *rsa_key_cache;

static void path_in_tmp(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", tmpdir, name);
}

static void write_tmp(const char *name, const void *data, size_t len)
{
	char path[256];
	FILE *f;

	path_in_tmp(path, sizeof(path), name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int group_setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(rsa_key_cache);
	return test_fs_rm_rf(tmpdir) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * importkeyconfig.json
 * ------------------------------------------------------------------------------------------- */

#define AUTH "\"authority\":{\"endpoint\":\"sharedeus.eus.attest.azure.net\"}"
#define AKV "\"akv\":{\"endpoint\":\"myvault.vault.azure.net\",\"api_version\":\"api-version=7.4\"}"
#define CLAIMS "\"claims\":[[{\"claim\":\"x-ms-sevsnpvm-hostdata\",\"equals\":\"ab\"}]]"

/* The Go tool's sample config, unchanged. */
static const char go_sample[] =
        "{\n"
        "  \"key\": {\n"
        "    \"kid\": \"myKey\",\n"
        "    \"kty\": \"RSA-HSM\",\n"
        "    \"key_ops\": [\"encrypt\", \"decrypt\"],\n"
        "    \"authority\": {\"endpoint\": \"sharedeus2.eus2.attest.azure.net\"},\n"
        "    \"akv\": {\"endpoint\": \"myhsm.managedhsm.azure.net\",\n"
        "            \"api_version\": \"api-version=7.4\",\n"
        "            \"bearer_token\": \"eyJ0eXAi.e30.sig\"}\n"
        "  },\n"
        "  \"key_derivation\": {\"salt\": \"92a631483ca875aad7e2477da755d58c\", \"label\": "
        "\"Model Encryption Key\"},\n"
        "  \"claims\": [\n"
        "    [{\"claim\": \"x-ms-sevsnpvm-hostdata\", \"equals\": \"0123\"},\n"
        "     {\"claim\": \"x-ms-compliance-status\", \"equals\": \"azure-compliant-uvm\"},\n"
        "     {\"claim\": \"x-ms-sevsnpvm-is-debuggable\", \"equals\": \"false\"}],\n"
        "    [{\"claim\": \"x-ms-sevsnpvm-snpfw-svn\", \"greaterOrEquals\": 8}]\n"
        "  ],\n"
        "  \"identity\": {\"client_id\": \"00000000-0000-0000-0000-000000000001\"}\n"
        "}\n";

static void test_config_go_sample(void **state)
{
	struct importkey_config c;
	struct skr_error err = {0};

	(void)state;
	assert_int_equal(importkey_config_parse(go_sample, strlen(go_sample), &c, &err), 0);
	assert_string_equal(c.kid, "myKey");
	assert_int_equal(c.type, SKR_KEY_RSA);
	assert_true(c.hsm);
	assert_int_equal(c.n_key_ops, 2);
	assert_string_equal(c.key_ops[0], "encrypt");
	assert_string_equal(c.key_ops[1], "decrypt");
	assert_string_equal(c.maa_endpoint, "sharedeus2.eus2.attest.azure.net");
	assert_string_equal(c.akv_endpoint, "myhsm.managedhsm.azure.net");
	assert_string_equal(c.akv_api_version, "api-version=7.4");
	assert_string_equal(c.bearer_token, "eyJ0eXAi.e30.sig");
	assert_string_equal(c.salt_hex, "92a631483ca875aad7e2477da755d58c");
	assert_string_equal(c.label, "Model Encryption Key");
	assert_string_equal(c.client_id, "00000000-0000-0000-0000-000000000001");
	assert_string_equal(
	        c.claims_json,
	        "[[{\"claim\":\"x-ms-sevsnpvm-hostdata\",\"equals\":\"0123\"},"
	        "{\"claim\":\"x-ms-compliance-status\",\"equals\":\"azure-compliant-uvm\"},"
	        "{\"claim\":\"x-ms-sevsnpvm-is-debuggable\",\"equals\":\"false\"}],"
	        "[{\"claim\":\"x-ms-sevsnpvm-snpfw-svn\",\"greaterOrEquals\":8}]]");
	importkey_config_clear(&c);
	importkey_config_clear(&c); /* idempotent */
}

struct config_case {
	const char *name;
	const char *json;
	int code;               /* 0 or the expected error */
	const char *msg;        /* a fragment of the error (the field) */
	enum skr_key_type type; /* when accepted */
};

static const struct config_case config_cases[] = {
        {"minimal oct", "{\"key\":{\"kid\":\"k\"," AUTH "," AKV "}," CLAIMS "}", 0, NULL,
         SKR_KEY_OCT},
        {"kty empty → oct", "{\"key\":{\"kid\":\"k\",\"kty\":\"\"," AUTH "," AKV "}," CLAIMS "}", 0,
         NULL, SKR_KEY_OCT},
        {"kty oct", "{\"key\":{\"kid\":\"k\",\"kty\":\"oct\"," AUTH "," AKV "}," CLAIMS "}", 0,
         NULL, SKR_KEY_OCT},
        {"kty oct-HSM", "{\"key\":{\"kid\":\"k\",\"kty\":\"oct-HSM\"," AUTH "," AKV "}," CLAIMS "}",
         0, NULL, SKR_KEY_OCT},
        {"kty RSA", "{\"key\":{\"kid\":\"k\",\"kty\":\"RSA\"," AUTH "," AKV "}," CLAIMS "}", 0,
         NULL, SKR_KEY_RSA},
        {"Go's case-insensitive field names",
         "{\"Key\":{\"KID\":\"k\",\"Kty\":\"RSA-HSM\",\"Authority\":{\"Endpoint\":\"a.b\"},"
         "\"AKV\":{\"Endpoint\":\"v.b\"}},\"Claims\":[[{\"claim\":\"c\",\"equals\":\"1\"}]]}",
         0, NULL, SKR_KEY_RSA},
        {"operators other than equals",
         "{\"key\":{\"kid\":\"k\"," AUTH "," AKV "},\"claims\":[[{\"claim\":\"x-ms-sevsnpvm-"
         "snpfw-svn\",\"greaterOrEquals\":8},{\"claim\":\"x\",\"exists\":true}]]}",
         0, NULL, SKR_KEY_OCT},
        {"not JSON", "{\"key\":", -EINVAL, "config is not valid JSON", 0},
        {"not an object", "[1]", -EINVAL, "config: expected a JSON object", 0},
        {"missing key", "{" CLAIMS "}", -EINVAL, "key is missing", 0},
        {"missing kid", "{\"key\":{" AUTH "," AKV "}," CLAIMS "}", -EINVAL,
         "key.kid is missing or empty", 0},
        {"empty kid", "{\"key\":{\"kid\":\"\"," AUTH "," AKV "}," CLAIMS "}", -EINVAL,
         "key.kid is missing or empty", 0},
        {"kid not a string", "{\"key\":{\"kid\":7," AUTH "," AKV "}," CLAIMS "}", -EINVAL,
         "key.kid: expected a string", 0},
        {"kid with a slash", "{\"key\":{\"kid\":\"a/b\"," AUTH "," AKV "}," CLAIMS "}", -EINVAL,
         "key.kid", 0},
        {"unknown kty", "{\"key\":{\"kid\":\"k\",\"kty\":\"EC-HSM\"," AUTH "," AKV "}," CLAIMS "}",
         -EINVAL, "key.kty: unknown key type 'EC-HSM'", 0},
        {"key_ops not an array",
         "{\"key\":{\"kid\":\"k\",\"key_ops\":\"encrypt\"," AUTH "," AKV "}," CLAIMS "}", -EINVAL,
         "key.key_ops", 0},
        {"key_ops with a number",
         "{\"key\":{\"kid\":\"k\",\"key_ops\":[\"a\",1]," AUTH "," AKV "}," CLAIMS "}", -EINVAL,
         "key.key_ops[1]", 0},
        {"missing authority", "{\"key\":{\"kid\":\"k\"," AKV "}," CLAIMS "}", -EINVAL,
         "key.authority is missing", 0},
        {"missing authority endpoint",
         "{\"key\":{\"kid\":\"k\",\"authority\":{}," AKV "}," CLAIMS "}", -EINVAL,
         "key.authority.endpoint is missing", 0},
        {"authority endpoint with a scheme",
         "{\"key\":{\"kid\":\"k\",\"authority\":{\"endpoint\":\"https://a.b\"}," AKV "}," CLAIMS
         "}",
         -EINVAL, "key.authority.endpoint: give the host name only", 0},
        {"missing akv", "{\"key\":{\"kid\":\"k\"," AUTH "}," CLAIMS "}", -EINVAL,
         "key.akv is missing", 0},
        {"missing akv endpoint",
         "{\"key\":{\"kid\":\"k\"," AUTH ",\"akv\":{\"bearer_token\":\"t\"}}," CLAIMS "}", -EINVAL,
         "key.akv.endpoint is missing", 0},
        {"akv endpoint not a string",
         "{\"key\":{\"kid\":\"k\"," AUTH ",\"akv\":{\"endpoint\":[]}}," CLAIMS "}", -EINVAL,
         "key.akv.endpoint: expected a string", 0},
        {"salt not hex",
         "{\"key\":{\"kid\":\"k\"," AUTH "," AKV "},\"key_derivation\":{\"salt\":\"xyz\"}," CLAIMS
         "}",
         -EINVAL, "key_derivation.salt", 0},
        {"missing claims", "{\"key\":{\"kid\":\"k\"," AUTH "," AKV "}}", -EINVAL,
         "claims is missing", 0},
        {"claims an object", "{\"key\":{\"kid\":\"k\"," AUTH "," AKV "},\"claims\":{}}", -EINVAL,
         "claims: expected an array of arrays", 0},
        {"claims an array of objects",
         "{\"key\":{\"kid\":\"k\"," AUTH "," AKV "},\"claims\":[{\"claim\":\"c\",\"equals\":"
         "\"1\"}]}",
         -EINVAL, "claims[0]: expected an array of conditions", 0},
        {"claims empty", "{\"key\":{\"kid\":\"k\"," AUTH "," AKV "},\"claims\":[]}", -EINVAL,
         "claims: empty", 0},
        {"claims with an empty list",
         "{\"key\":{\"kid\":\"k\"," AUTH "," AKV "},\"claims\":[[{\"claim\":\"c\",\"equals\":"
         "\"1\"}],[]]}",
         -EINVAL, "claims[1]: empty", 0},
        {"claims with a string condition",
         "{\"key\":{\"kid\":\"k\"," AUTH "," AKV "},\"claims\":[[\"x\"]]}", -EINVAL,
         "claims[0][0]: expected an object", 0},
};

static void test_config_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(config_cases); i++) {
		const struct config_case *t = &config_cases[i];
		struct importkey_config c = {0};
		struct skr_error err = {0};
		int r = importkey_config_parse(t->json, strlen(t->json), &c, &err);

		if (r != t->code || (t->msg && !strstr(err.msg, t->msg)) ||
		    (r == 0 && c.type != t->type))
			fail_msg("case '%s': r=%d type=%d msg='%s'", t->name, r, (int)c.type,
			         err.msg);
		if (r < 0)
			assert_null(c.root);
		importkey_config_clear(&c);
	}
}

static void test_config_load(void **state)
{
	struct importkey_config c = {0};
	struct skr_error err = {0};
	char path[256];

	(void)state;
	write_tmp("config.json", go_sample, strlen(go_sample));
	path_in_tmp(path, sizeof(path), "config.json");
	assert_int_equal(importkey_config_load(path, &c, &err), 0);
	assert_string_equal(c.kid, "myKey");
	importkey_config_clear(&c);

	path_in_tmp(path, sizeof(path), "absent.json");
	assert_int_equal(importkey_config_load(path, &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "cannot read the config"));
}

/* ---------------------------------------------------------------------------------------------
 * Command line
 * ------------------------------------------------------------------------------------------- */

#define MAX_ARGS 16

struct options_case {
	const char *name;
	const char *args[MAX_ARGS]; /* without argv[0] */
	int code;
	const char *msg;
	/* expectations when accepted */
	const char *config, *key_hex, *key_pem, *salt;
	bool imds, out, force, immutable, policy_only, help;
};

static const struct options_case options_cases[] = {
        {.name = "Go spelling",
         .args = {"-c", "cfg.json", "-kh", "00ff", "-a", "-out"},
         .config = "cfg.json",
         .key_hex = "00ff",
         .imds = true,
         .out = true},
        {.name = "Go spelling with =",
         .args = {"-c=cfg.json", "-kp=key.pem"},
         .config = "cfg.json",
         .key_pem = "key.pem"},
        {.name = "GNU spelling",
         .args = {"--config", "cfg.json", "--key-hex=k.hex", "--imds", "--out", "--force",
                  "--immutable", "--ca-bundle", "ca.pem", "--imds-endpoint", "http://127.0.0.1:1"},
         .config = "cfg.json",
         .key_hex = "k.hex",
         .imds = true,
         .out = true,
         .force = true,
         .immutable = true},
        {.name = "double-dash Go names",
         .args = {"--c", "cfg.json", "--kp", "key.pem", "--a"},
         .config = "cfg.json",
         .key_pem = "key.pem",
         .imds = true},
        {.name = "attached short option", .args = {"-ccfg.json"}, .config = "cfg.json"},
        {.name = "salt and dry run",
         .args = {"-c", "cfg.json", "--salt", "00AAff", "--print-policy-only"},
         .config = "cfg.json",
         .salt = "00AAff",
         .policy_only = true},
        {.name = "help without config", .args = {"--help"}, .help = true},
        {.name = "-h", .args = {"-h"}, .help = true},
        {.name = "no config",
         .args = {"-kh", "00"},
         .code = -EINVAL,
         .msg = "-c/--config FILE is required"},
        {.name = "both keys",
         .args = {"-c", "x", "-kh", "00", "-kp", "k.pem"},
         .code = -EINVAL,
         .msg = "exclude each other"},
        {.name = "unknown option",
         .args = {"-c", "x", "--frobnicate"},
         .code = -EINVAL,
         .msg = "unknown option '--frobnicate'"},
        {.name = "missing argument",
         .args = {"-c", "x", "-kh"},
         .code = -EINVAL,
         .msg = "needs an argument"},
        {.name = "stray argument",
         .args = {"-c", "x", "extra"},
         .code = -EINVAL,
         .msg = "unexpected argument 'extra'"},
        {.name = "salt not hex",
         .args = {"-c", "x", "--salt", "zz"},
         .code = -EINVAL,
         .msg = "--salt: expected hex"},
        {.name = "salt odd length",
         .args = {"-c", "x", "--salt", "abc"},
         .code = -EINVAL,
         .msg = "--salt: expected hex"},
        {.name = "force without out",
         .args = {"-c", "x", "--force"},
         .code = -EINVAL,
         .msg = "--force only applies"},
};

static void test_options_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(options_cases); i++) {
		const struct options_case *t = &options_cases[i];
		char *argv[MAX_ARGS + 2] = {(char *)"importkey"};
		char storage[MAX_ARGS][128];
		struct importkey_options o;
		struct skr_error err = {0};
		int argc = 1, r;

		for (size_t j = 0; j < MAX_ARGS && t->args[j]; j++) {
			snprintf(storage[j], sizeof(storage[j]), "%s", t->args[j]);
			argv[argc++] = storage[j];
		}
		argv[argc] = NULL;
		r = importkey_options_parse(argc, argv, &o, &err);
		if (r != t->code || (t->msg && !strstr(err.msg, t->msg)))
			fail_msg("case '%s': r=%d msg='%s'", t->name, r, err.msg);
		if (r < 0)
			continue;
#define SAME(a, b) ((!(a) && !(b)) || ((a) && (b) && strcmp((a), (b)) == 0))
		if (!SAME(o.config_path, t->config) || !SAME(o.key_hex, t->key_hex) ||
		    !SAME(o.key_pem, t->key_pem) || !SAME(o.salt_hex, t->salt) ||
		    o.imds != t->imds || o.out != t->out || o.force != t->force ||
		    o.immutable != t->immutable || o.print_policy_only != t->policy_only ||
		    o.help != t->help)
			fail_msg("case '%s': options parsed wrongly", t->name);
#undef SAME
	}
}

static void test_options_endpoints(void **state)
{
	char *argv[] = {(char *)"importkey",
	                (char *)"-c",
	                (char *)"c.json",
	                (char *)"--ca-bundle",
	                (char *)"ca.pem",
	                (char *)"--imds-endpoint",
	                (char *)"http://127.0.0.1:9",
	                NULL};
	struct importkey_options o;
	struct skr_error err = {0};

	(void)state;
	assert_int_equal(importkey_options_parse(7, argv, &o, &err), 0);
	assert_string_equal(o.ca_bundle, "ca.pem");
	assert_string_equal(o.imds_endpoint, "http://127.0.0.1:9");
}

/* ---------------------------------------------------------------------------------------------
 * Keys
 * ------------------------------------------------------------------------------------------- */

static const char key_hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

static void expect_key_bytes(const struct secret *k)
{
	assert_int_equal(k->len, 32);
	for (size_t i = 0; i < 32; i++)
		assert_int_equal(k->data[i], i);
}

static void test_oct_key_sources(void **state)
{
	struct secret *k = NULL;
	struct skr_error err = {0};
	uint8_t raw[32];
	char path[256], upper[65], text[80];

	(void)state;
	/* the argument itself, either case */
	assert_int_equal(importkey_load_oct_key(key_hex, &k, &err), 0);
	expect_key_bytes(k);
	secret_free(k);
	for (size_t i = 0; i < 64; i++)
		upper[i] = (char)(key_hex[i] >= 'a' ? key_hex[i] - 32 : key_hex[i]);
	upper[64] = 0;
	assert_int_equal(importkey_load_oct_key(upper, &k, &err), 0);
	expect_key_bytes(k);
	secret_free(k);

	/* a file with hex and a newline */
	snprintf(text, sizeof(text), "  %s\n", key_hex);
	write_tmp("key.hex", text, strlen(text));
	path_in_tmp(path, sizeof(path), "key.hex");
	assert_int_equal(importkey_load_oct_key(path, &k, &err), 0);
	expect_key_bytes(k);
	secret_free(k);

	/* a file with 32 raw bytes */
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)i;
	write_tmp("key.bin", raw, sizeof(raw));
	path_in_tmp(path, sizeof(path), "key.bin");
	assert_int_equal(importkey_load_oct_key(path, &k, &err), 0);
	expect_key_bytes(k);
	secret_free(k);
}

struct oct_bad_case {
	const char *name;
	const char *arg;     /* or NULL: a file with @content */
	const char *content; /* file content */
	size_t content_len;
	const char *msg;
};

static const struct oct_bad_case oct_bad_cases[] = {
        {"hex too short", "00010203", NULL, 0,
         "the argument has 8 hex digits; an oct key must be 64"},
        {"hex too long", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20", NULL,
         0, "has 66 hex digits"},
        {"no such file", "/nonexistent/key.hex", NULL, 0, "cannot read the key file"},
        {"file with 31 raw bytes", NULL,
         "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d"
         "\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a"
         "\x1b\x1c\x1d\x1e\x1f",
         31, "holds 31 bytes; expected 32 raw bytes or 64 hex digits"},
        {"file with short hex", NULL, "abcd\n", 5, "holds 5 bytes"},
        {"file with non-hex", NULL,
         "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 64,
         "the key file is not hex"},
};

static void test_oct_key_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(oct_bad_cases); i++) {
		const struct oct_bad_case *t = &oct_bad_cases[i];
		struct secret *k = NULL;
		struct skr_error err = {0};
		char path[256];
		const char *arg = t->arg;
		int r;

		if (!arg) {
			write_tmp("bad.key", t->content, t->content_len);
			path_in_tmp(path, sizeof(path), "bad.key");
			arg = path;
		}
		r = importkey_load_oct_key(arg, &k, &err);
		if (r != -EINVAL || !strstr(err.msg, t->msg) || k)
			fail_msg("case '%s': r=%d msg='%s'", t->name, r, err.msg);
		/* never quote key material */
		if (strstr(err.msg, "0001020304"))
			fail_msg("case '%s': the error quotes the key: %s", t->name, err.msg);
	}
}

/* One RSA-2048 key per test binary: key generation is slow. */
static EVP_PKEY *rsa_key(void)
{
	if (!rsa_key_cache)
		rsa_key_cache = EVP_RSA_gen(2048);
	assert_non_null(rsa_key_cache);
	return rsa_key_cache;
}

static void expect_pkcs8_of(const struct secret *der, EVP_PKEY *pkey)
{
	char *expected = NULL;
	_cleanup_(BIO_free_allp) BIO *mem = BIO_new(BIO_s_mem());
	long n;

	assert_non_null(mem);
	assert_int_equal(i2d_PKCS8PrivateKey_bio(mem, pkey, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(mem, &expected);
	assert_int_equal((long)der->len, n);
	assert_memory_equal(der->data, expected, der->len);
}

static void write_pem(const char *name, EVP_PKEY *pkey, bool traditional, bool encrypted)
{
	char path[256];
	_cleanup_(BIO_free_allp) BIO *bio = NULL;

	path_in_tmp(path, sizeof(path), name);
	bio = BIO_new_file(path, "w");
	assert_non_null(bio);
	if (encrypted)
		assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, pkey, EVP_aes_256_cbc(), "pw",
		                                               2, NULL, NULL),
		                 1);
	else if (traditional)
		assert_int_equal(
		        PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0, NULL, NULL),
		        1);
	else
		assert_int_equal(
		        PEM_write_bio_PKCS8PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
}

static void test_rsa_key_formats(void **state)
{
	struct secret *der = NULL;
	struct skr_error err = {0};
	char path[256];

	(void)state;
	write_pem("pkcs8.pem", rsa_key(), false, false);
	path_in_tmp(path, sizeof(path), "pkcs8.pem");
	assert_int_equal(importkey_load_rsa_key(path, &der, &err), 0);
	expect_pkcs8_of(der, rsa_key());
	secret_free(der);

	write_pem("pkcs1.pem", rsa_key(), true, false);
	path_in_tmp(path, sizeof(path), "pkcs1.pem");
	assert_int_equal(importkey_load_rsa_key(path, &der, &err), 0);
	expect_pkcs8_of(der, rsa_key());
	secret_free(der);
}

static void test_rsa_key_errors(void **state)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ec = EVP_EC_gen("P-256");
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *small = EVP_RSA_gen(1024);
	struct secret *der = NULL;
	struct skr_error err = {0};
	char path[256];
	static const struct {
		const char *file, *msg;
	} cases[] = {
	        {"ec.pem", "a EC key, not RSA"},
	        {"small.pem", "RSA key of 1024 bits"},
	        {"encrypted.pem", "not an unencrypted PEM private key"},
	        {"garbage.pem", "not an unencrypted PEM private key"},
	        {"absent.pem", "cannot read the key file"},
	};

	(void)state;
	assert_non_null(ec);
	assert_non_null(small);
	write_pem("ec.pem", ec, false, false);
	write_pem("small.pem", small, false, false);
	write_pem("encrypted.pem", rsa_key(), false, true);
	write_tmp("garbage.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n", 33);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		skr_error_clear(&err);
		path_in_tmp(path, sizeof(path), cases[i].file);
		assert_int_equal(importkey_load_rsa_key(path, &der, &err), -EINVAL);
		assert_null(der);
		if (!strstr(err.msg, cases[i].msg))
			fail_msg("%s: '%s'", cases[i].file, err.msg);
	}
}

/* ---------------------------------------------------------------------------------------------
 * Policy lint
 * ------------------------------------------------------------------------------------------- */

#define COND(c, op, v) "{\"claim\":\"" c "\",\"" op "\":" v "}"
#define DBG_FALSE COND("x-ms-sevsnpvm-is-debuggable", "equals", "\"false\"")
#define VMPL_ZERO COND("x-ms-sevsnpvm-vmpl", "equals", "\"0\"")
#define HOST COND("x-ms-sevsnpvm-hostdata", "equals", "\"ab\"")
#define AUTHORITY(conds) "{\"authority\":\"https://a.b\",\"allOf\":[" conds "]}"
#define POLICY(auths) "{\"version\":\"1.0.0\",\"anyOf\":[" auths "]}"

struct lint_case {
	const char *name;
	const char *policy;
	int warnings;
	const char *msg;
};

static const struct lint_case lint_cases[] = {
        {"both pinned", POLICY(AUTHORITY(HOST "," DBG_FALSE "," VMPL_ZERO)), 0, NULL},
        {"JSON literals",
         POLICY(AUTHORITY(COND("x-ms-sevsnpvm-is-debuggable", "equals",
                               "false") "," COND("x-ms-sevsnpvm-vmpl", "equals", "0"))),
         0, NULL},
        {"notEquals true and lessOrEquals 0",
         POLICY(AUTHORITY(COND("x-ms-sevsnpvm-is-debuggable", "notEquals",
                               "true") "," COND("x-ms-sevsnpvm-vmpl", "lessOrEquals", "0"))),
         0, NULL},
        {"vmpl missing", POLICY(AUTHORITY(HOST "," DBG_FALSE)), 1, "x-ms-sevsnpvm-vmpl == 0"},
        {"debuggable missing", POLICY(AUTHORITY(HOST "," VMPL_ZERO)), 1,
         "x-ms-sevsnpvm-is-debuggable == false"},
        {"debuggable true",
         POLICY(AUTHORITY(COND("x-ms-sevsnpvm-is-debuggable", "equals", "true") "," VMPL_ZERO)), 1,
         "is-debuggable"},
        {"vmpl 1", POLICY(AUTHORITY(DBG_FALSE "," COND("x-ms-sevsnpvm-vmpl", "equals", "1"))), 1,
         "vmpl"},
        {"second authority lacks both",
         POLICY(AUTHORITY(DBG_FALSE "," VMPL_ZERO) "," AUTHORITY(HOST)), 2,
         "release policy entry 1"},
        {"pinned on every anyOf branch",
         POLICY("{\"authority\":\"https://a.b\",\"anyOf\":[{\"allOf\":[" DBG_FALSE "," VMPL_ZERO
                "]},{\"allOf\":[" HOST "," DBG_FALSE "," VMPL_ZERO "]}]}"),
         0, NULL},
        {"pinned on one anyOf branch only",
         POLICY("{\"authority\":\"https://a.b\",\"anyOf\":[{\"allOf\":[" DBG_FALSE "," VMPL_ZERO
                "]}," HOST "]}"),
         2, "entry 0"},
};

static void test_policy_lint(void **state)
{
	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(lint_cases); i++) {
		const struct lint_case *t = &lint_cases[i];
		_cleanup_free_ char *warnings = NULL;
		struct skr_error err = {0};
		int r = importkey_policy_lint(t->policy, strlen(t->policy), &warnings, &err);

		if (r != t->warnings || (t->msg && (!warnings || !strstr(warnings, t->msg))) ||
		    (r == 0 && warnings))
			fail_msg("case '%s': r=%d warnings='%s' err='%s'", t->name, r,
			         warnings ? warnings : "", err.msg);
	}
}

static void test_policy_lint_not_a_policy(void **state)
{
	char *warnings = NULL;
	struct skr_error err = {0};

	(void)state;
	assert_int_equal(importkey_policy_lint("{}", 2, &warnings, &err), -EINVAL);
	assert_null(warnings);
	assert_int_equal(importkey_policy_lint("nope", 4, &warnings, &err), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_config_go_sample),
	        cmocka_unit_test(test_config_cases),
	        cmocka_unit_test(test_config_load),
	        cmocka_unit_test(test_options_cases),
	        cmocka_unit_test(test_options_endpoints),
	        cmocka_unit_test(test_oct_key_sources),
	        cmocka_unit_test(test_oct_key_errors),
	        cmocka_unit_test(test_rsa_key_formats),
	        cmocka_unit_test(test_rsa_key_errors),
	        cmocka_unit_test(test_policy_lint),
	        cmocka_unit_test(test_policy_lint_not_a_policy),
	};
	int r = cmocka_run_group_tests(tests, group_setup, group_teardown);

	return r;
}
