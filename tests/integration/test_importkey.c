/* SPDX-License-Identifier: MIT */
/*
 * The real `importkey` binary against a real `devcloud` (attestation service, key vault and
 * IMDS on ephemeral loopback ports, HTTPS with devcloud's CA):
 *   1. bad configurations and flags → exit 2, one line naming the field, nothing sent (the
 *      devcloud request log shows no PUT and no token request);
 *   2. an oct key imported with -a (token from devcloud's IMDS): key id, fingerprint, keyfile.bin
 *      (0600, the key itself), the printed policy equals the one the vault stores, and the key
 *      released through the SKR client on the virtual platform is the imported one;
 *   3. a generated RSA key imported with a bearer token fetched from IMDS by the test (curl):
 *      private_key.pem (0600), the printed random salt, keyfile.bin equals skr_key_derive() of
 *      the generated key and of the released key, a warning for a policy without vmpl == 0;
 *   4. refusal to overwrite keyfile.bin / private_key.pem, --force, --immutable,
 *      --print-policy-only (nothing sent), a bad bearer token → exit 1 with the vault's reason;
 *   5. no key material (hex of the key or of keyfile.bin) ever appears in the output.
 * devcloud is always killed at the end, even on failure.
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
#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "ossl.h"
#include "secret.h"
#include "skr.h"
#include "test_devcloud.h"
#include "test_fs.h"
#include "test_http_client.h"
#include "test_proc.h"

#define OUT_MAX (1024 * 1024)

static char tmpdir[] = "/tmp/test_importkey.XXXXXX";
static const char *importkey_bin;
static struct test_devcloud dc = {.pid = -1};
static char host_hex[65];

/* ---------------------------------------------------------------------------------------------
 * Processes
 * ------------------------------------------------------------------------------------------- */

/* Run importkey in @cwd with @args (NULL-terminated); stdout/stderr captured. */
static void run_importkey(const char *cwd, const char *const *args, struct test_proc_result *res)
{
	const char *argv[40] = {importkey_bin};
	size_t n = 1;

	for (; args[n - 1] && n < 39; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	assert_int_equal(test_proc_run(argv, cwd, res), 0);
}

static int group_setup(void **state)
{
	uint8_t host_data[32];
	char state_dir[512], log_path[600];

	(void)state;
	importkey_bin = getenv("IMPORTKEY_BIN");
	if (!importkey_bin || !test_devcloud_bin()) {
		fprintf(stderr, "IMPORTKEY_BIN and DEVCLOUD_BIN must be set (meson test does)\n");
		return -1;
	}
	if (!mkdtemp(tmpdir))
		return -1;
	test_fs_remove_at_exit(tmpdir);
	snprintf(state_dir, sizeof(state_dir), "%s/state", tmpdir);
	snprintf(log_path, sizeof(log_path), "%s/devcloud.log", tmpdir);
	if (RAND_bytes(host_data, sizeof(host_data)) != 1)
		return -1;
	hex_encode(host_data, sizeof(host_data), host_hex);
	{
		const char *const init_args[] = {"--host-data", host_hex, NULL};
		/* info: the request log is how the tests see that nothing was sent */
		const char *const serve_args[] = {"--log-level", "info", NULL};

		if (test_devcloud_init(&dc, state_dir, log_path, init_args) < 0)
			return -1;
		return test_devcloud_serve(&dc, serve_args);
	}
}

static int group_teardown(void **state)
{
	(void)state;
	test_devcloud_kill(&dc);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

/* GET @url with @headers; the body (malloc'ed) or NULL; *status the HTTP status. */
static char *http_get(const char *url, const char *const *headers, long *status)
{
	struct test_http_client_response r;
	char *body;

	*status = test_http_client_request(&(struct test_http_client_request){.url = url,
	                                                                      .ca_bundle = dc.ca,
	                                                                      .headers = headers},
	                                   &r);
	body = r.rc == CURLE_OK ? TAKE_PTR(r.body) : NULL;
	test_http_client_response_clear(&r);
	return body;
}

/* A vault token from devcloud's IMDS, the way an operator would get one with curl. */
static char *imds_token(void)
{
	char *token = test_devcloud_vault_token(&dc);

	assert_non_null(token);
	return token;
}

/* The key's release_policy object as the vault returns it (GET /keys/{name}). */
static json_object *vault_key(const char *kid, const char *token)
{
	_cleanup_free_ char *auth = NULL, *body = NULL;
	char url[300];
	long status = 0;

	assert_true(asprintf(&auth, "Authorization: Bearer %s", token) > 0);
	const char *headers[] = {auth, NULL};

	snprintf(url, sizeof(url), "https://%s/keys/%s?api-version=7.4", dc.kv, kid);
	body = http_get(url, headers, &status);
	assert_non_null(body);
	assert_int_equal(status, 200);
	return json_tokener_parse(body);
}

static void make_dir(const char *name, char *out, size_t size)
{
	snprintf(out, size, "%s/%s", tmpdir, name);
	assert_int_equal(mkdir(out, 0700), 0);
}

static void write_text(const char *path, const char *text)
{
	assert_int_equal(write_file_atomic(path, text, strlen(text), 0600), 0);
}

/* The platform's claims: what a production policy pins. */
static void platform_claims(char *out, size_t size, bool with_vmpl)
{
	snprintf(out, size,
	         "[[{\"claim\": \"x-ms-sevsnpvm-hostdata\", \"equals\": \"%s\"},"
	         " {\"claim\": \"x-ms-compliance-status\", \"equals\": \"azure-compliant-uvm\"},"
	         " {\"claim\": \"x-ms-sevsnpvm-is-debuggable\", \"equals\": \"false\"}%s]]",
	         host_hex,
	         with_vmpl ? ", {\"claim\": \"x-ms-sevsnpvm-vmpl\", \"equals\": \"0\"}" : "");
}

static void write_config(const char *path, const char *kid, const char *kty, const char *claims,
                         const char *token, const char *extra)
{
	char *text = NULL;

	assert_true(asprintf(&text,
	                     "{\"key\": {\"kid\": \"%s\", \"kty\": \"%s\",\n"
	                     "  \"authority\": {\"endpoint\": \"%s\"},\n"
	                     "  \"akv\": {\"endpoint\": \"%s\", \"api_version\": "
	                     "\"api-version=7.4\"%s%s%s}},\n"
	                     " \"claims\": %s%s}\n",
	                     kid, kty, dc.attest, dc.kv, token ? ", \"bearer_token\": \"" : "",
	                     token ? token : "", token ? "\"" : "", claims,
	                     extra ? extra : "") > 0);
	write_text(path, text);
	free(text);
}

/* "label: value" of importkey's output, copied to @out. */
static void output_field(const char *out, const char *label, char *value, size_t size)
{
	const char *p = strstr(out, label);
	size_t n;

	if (!p)
		fail_msg("no '%s' in the output:\n%s", label, out);
	p += strlen(label);
	n = strcspn(p, " \n");
	assert_true(n < size);
	memcpy(value, p, n);
	value[n] = 0;
}

static json_object *printed_policy(const char *out)
{
	const char *p = strstr(out, "release policy:\n");

	if (!p)
		fail_msg("no policy in the output:\n%s", out);
	return json_tokener_parse(p + strlen("release policy:\n"));
}

static void expect_mode_0600(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	if ((st.st_mode & 07777) != 0600)
		fail_msg("%s has mode %o, not 0600", path, (unsigned)(st.st_mode & 07777));
}

static void expect_no_secret(const struct test_proc_result *r, const uint8_t *key, size_t len)
{
	char hex[2 * 64 + 1], upper[2 * 64 + 1];

	assert_true(len <= 64);
	hex_encode(key, len, hex);
	for (size_t i = 0; i <= 2 * len; i++)
		upper[i] = (char)(hex[i] >= 'a' && hex[i] <= 'f' ? hex[i] - 32 : hex[i]);
	/* 16 hex digits of the key anywhere would already be a leak */
	hex[16] = upper[16] = 0;
	if (strstr(r->out, hex) || strstr(r->err, hex) || strstr(r->out, upper) ||
	    strstr(r->err, upper))
		fail_msg("key material in importkey's output:\n%s\n%s", r->out, r->err);
	if (strstr(r->out, "PRIVATE KEY") || strstr(r->err, "PRIVATE KEY"))
		fail_msg("a private key in importkey's output");
}

static struct skr_attester *virtual_attester(void)
{
	struct skr_attest_config cfg = {
	        .source = {.kind = SNP_SOURCE_VIRTUAL, .virtual_dir = dc.platform},
	        .ca_bundle = dc.ca,
	        .identity = {.imds_endpoint = dc.imds},
	};
	struct skr_attester *a = NULL;
	struct skr_error err = {0};

	cfg.certcache.ca_bundle = dc.ca;
	if (skr_attester_new(&cfg, &a, &err) < 0)
		fail_msg("attester: %s", err.msg);
	return a;
}

static struct skr_key *release(const char *kid)
{
	struct skr_attester *a = virtual_attester();
	struct skr_release_request req = {
	        .maa_endpoint = dc.attest, .akv_endpoint = dc.kv, .kid = kid};
	struct skr_key *k = NULL;
	struct skr_error err = {0};
	int r = skr_release_key(a, &req, &k, &err);

	skr_attester_free(a);
	if (r < 0)
		fail_msg("release of %s: %s", kid, err.msg);
	return k;
}

/* ---------------------------------------------------------------------------------------------
 * 1. Bad input: exit 2, one line naming the field, nothing sent
 * ------------------------------------------------------------------------------------------- */

struct bad_case {
	const char *name;
	const char *config;  /* written to bad.json; NULL = a valid oct config */
	const char *args[8]; /* after "-c bad.json"; {"-"} = no -c at all */
	const char *msg;
};

#define GOOD_KEY                                                                                   \
	"\"authority\": {\"endpoint\": \"a.b\"}, \"akv\": {\"endpoint\": \"v.b\", "                \
	"\"bearer_token\": \"t\"}"
#define GOOD_CLAIMS "\"claims\": [[{\"claim\": \"x-ms-sevsnpvm-vmpl\", \"equals\": \"0\"}]]"

static const struct bad_case bad_cases[] = {
        {"missing kid", "{\"key\": {" GOOD_KEY "}, " GOOD_CLAIMS "}", {NULL}, "key.kid"},
        {"unknown kty",
         "{\"key\": {\"kid\": \"k\", \"kty\": \"EC-HSM\", " GOOD_KEY "}, " GOOD_CLAIMS "}",
         {NULL},
         "key.kty"},
        {"claims not an array of arrays",
         "{\"key\": {\"kid\": \"k\", " GOOD_KEY "}, \"claims\": [{\"claim\": \"c\", \"equals\": "
         "\"1\"}]}",
         {NULL},
         "claims[0]"},
        {"claims with an unknown operator",
         "{\"key\": {\"kid\": \"k\", " GOOD_KEY "}, \"claims\": [[{\"claim\": \"c\", \"frobs\": "
         "\"1\"}]]}",
         {NULL},
         "claims"},
        {"missing akv endpoint",
         "{\"key\": {\"kid\": \"k\", \"authority\": {\"endpoint\": \"a.b\"}, \"akv\": "
         "{\"bearer_token\": \"t\"}}, " GOOD_CLAIMS "}",
         {NULL},
         "key.akv.endpoint"},
        {"missing authority endpoint",
         "{\"key\": {\"kid\": \"k\", \"authority\": {}, \"akv\": {\"endpoint\": "
         "\"v.b\"}}, " GOOD_CLAIMS "}",
         {NULL},
         "key.authority.endpoint"},
        {"not JSON", "{\"key\": ", {NULL}, "not valid JSON"},
        {"unreadable key file", NULL, {"-kh", "/nonexistent/key.hex"}, "cannot read the key file"},
        {"hex of the wrong length", NULL, {"-kh", "abcdef0123"}, "10 hex digits"},
        {"RSA key for an oct config", NULL, {"-kp", "/etc/hostname"}, "-kp/--key-pem"},
        {"unknown flag", NULL, {"--frobnicate"}, "unknown option"},
        {"no config flag", NULL, {"-"}, "-c/--config"},
        {"no bearer token and no -a",
         "{\"key\": {\"kid\": \"k\", \"authority\": {\"endpoint\": \"a.b\"}, \"akv\": "
         "{\"endpoint\": \"v.b\"}}, " GOOD_CLAIMS "}",
         {NULL},
         "key.akv.bearer_token"},
};

static void test_bad_input(void **state)
{
	char dir[600], cfg[700];
	size_t puts = test_devcloud_log_count(&dc, "PUT /keys"),
	       tokens = test_devcloud_log_count(&dc, "/metadata/identity");

	(void)state;
	make_dir("bad", dir, sizeof(dir));
	snprintf(cfg, sizeof(cfg), "%s/bad.json", dir);
	for (size_t i = 0; i < ELEMENTSOF(bad_cases); i++) {
		const struct bad_case *t = &bad_cases[i];
		const char *args[16] = {"-c", cfg};
		size_t n = 2, lines = 0;
		struct test_proc_result r = {0};

		write_text(cfg, t->config ? t->config
		                          : "{\"key\": {\"kid\": \"k\", " GOOD_KEY "}, " GOOD_CLAIMS
		                            "}");
		if (t->args[0] && strcmp(t->args[0], "-") == 0)
			n = 0;
		else
			for (size_t j = 0; t->args[j]; j++)
				args[n++] = t->args[j];
		args[n++] = "-a"; /* would ask IMDS for a token if anything went that far */
		args[n++] = "--imds-endpoint";
		args[n++] = dc.imds;
		args[n] = NULL;
		if (strcmp(t->name, "no bearer token and no -a") == 0)
			args[n - 3] = NULL;
		run_importkey(dir, args, &r);
		for (const char *p = r.err; *p; p++)
			lines += *p == '\n';
		if (r.status != 2 || lines != 1 || !strstr(r.err, t->msg) || r.out[0])
			fail_msg("case '%s': exit %d, stderr '%s', stdout '%s'", t->name, r.status,
			         r.err, r.out);
		test_proc_result_clear(&r);
	}
	/* nothing reached the vault or IMDS */
	assert_int_equal(test_devcloud_log_count(&dc, "PUT /keys"), puts);
	assert_int_equal(test_devcloud_log_count(&dc, "/metadata/identity"), tokens);
}

/* ---------------------------------------------------------------------------------------------
 * 2. oct key with -a (managed identity through IMDS)
 * ------------------------------------------------------------------------------------------- */

static void test_oct_import_with_imds(void **state)
{
	char dir[600], cfg[700], keyfile_path[700], hexfile[700], claims[1024];
	char kid_url[300], expected_prefix[200], fp[SKR_FINGERPRINT_STR_SIZE], printed_fp[64];
	uint8_t key[32];
	char key_hex[66]; /* 64 hex digits, newline, NUL */
	_cleanup_free_ char *keyfile = NULL, *token = NULL, *vault_policy = NULL;
	_cleanup_json_ json_object *printed = NULL, *stored = NULL;
	struct skr_error err = {0};
	struct skr_key *released;
	struct test_proc_result r = {0};
	size_t len;

	(void)state;
	make_dir("oct", dir, sizeof(dir));
	snprintf(cfg, sizeof(cfg), "%s/importkeyconfig.json", dir);
	snprintf(hexfile, sizeof(hexfile), "%s/key.hex", dir);
	snprintf(keyfile_path, sizeof(keyfile_path), "%s/keyfile.bin", dir);
	platform_claims(claims, sizeof(claims), true);
	write_config(cfg, "oct-key", "oct-HSM", claims, NULL, NULL);
	assert_int_equal(RAND_bytes(key, sizeof(key)), 1);
	hex_encode(key, sizeof(key), key_hex);
	strcat(key_hex, "\n");
	write_text(hexfile, key_hex);

	{
		const char *args[] = {
		        "-c",    cfg,           "-kh", hexfile, "-a", "--imds-endpoint",
		        dc.imds, "--ca-bundle", dc.ca, "-out",  NULL};

		run_importkey(dir, args, &r);
	}
	if (r.status != 0)
		fail_msg("importkey failed (%d):\n%s", r.status, r.err);
	/* a policy with both pins: no warning */
	assert_null(strstr(r.err, "warning"));
	output_field(r.out, "key id: ", kid_url, sizeof(kid_url));
	snprintf(expected_prefix, sizeof(expected_prefix), "https://%s/keys/oct-key/", dc.kv);
	assert_true(strncmp(kid_url, expected_prefix, strlen(expected_prefix)) == 0);
	skr_key_fingerprint(key, sizeof(key), fp);
	output_field(r.out, "key fingerprint: ", printed_fp, sizeof(printed_fp));
	assert_string_equal(printed_fp, fp);
	expect_no_secret(&r, key, sizeof(key));

	/* keyfile.bin: 0600, the key itself */
	expect_mode_0600(keyfile_path);
	assert_int_equal(read_file(keyfile_path, 64, &keyfile, &len), 0);
	assert_int_equal(len, sizeof(key));
	assert_memory_equal(keyfile, key, sizeof(key));

	/* the printed policy is the stored one */
	token = imds_token();
	assert_int_equal(skr_akv_get_release_policy(dc.kv, NULL, "oct-key", token, dc.ca,
	                                            &vault_policy, &err),
	                 0);
	printed = printed_policy(r.out);
	stored = json_tokener_parse(vault_policy);
	assert_non_null(printed);
	assert_non_null(stored);
	if (!json_object_equal(printed, stored))
		fail_msg("printed policy %s != stored %s", json_object_to_json_string(printed),
		         vault_policy);

	/* released on the virtual platform: the same key */
	released = release("oct-key");
	assert_int_equal(released->type, SKR_KEY_OCT);
	assert_int_equal(released->material->len, sizeof(key));
	assert_memory_equal(released->material->data, key, sizeof(key));
	skr_key_free(released);
	test_proc_result_clear(&r);

	/* again: keyfile.bin exists → refused before anything is sent; --force replaces it */
	{
		size_t puts = test_devcloud_log_count(&dc, "PUT /keys");
		const char *args[] = {
		        "-c",    cfg,           "-kh", hexfile, "-a", "--imds-endpoint",
		        dc.imds, "--ca-bundle", dc.ca, "-out",  NULL};

		run_importkey(dir, args, &r);
		assert_int_equal(r.status, 2);
		assert_non_null(strstr(r.err, "keyfile.bin exists"));
		assert_int_equal(test_devcloud_log_count(&dc, "PUT /keys"), puts);
		test_proc_result_clear(&r);
	}
	{
		const char *args[] = {"-c",      cfg,           "-a",  "--imds-endpoint",
		                      dc.imds,   "--ca-bundle", dc.ca, "--out",
		                      "--force", "--immutable", NULL};
		_cleanup_free_ char *again = NULL;
		_cleanup_json_ json_object *key_obj = NULL;
		json_object *rp, *imm;
		char kid2[300];

		/* no -kh: a fresh random key, a new version */
		run_importkey(dir, args, &r);
		if (r.status != 0)
			fail_msg("importkey --force failed (%d):\n%s", r.status, r.err);
		output_field(r.out, "key id: ", kid2, sizeof(kid2));
		assert_string_not_equal(kid2, kid_url);
		assert_int_equal(read_file(keyfile_path, 64, &again, &len), 0);
		assert_int_equal(len, 32);
		assert_memory_not_equal(again, key, 32);
		expect_no_secret(&r, (const uint8_t *)again, 32);
		skr_key_fingerprint((const uint8_t *)again, 32, fp);
		output_field(r.out, "key fingerprint: ", printed_fp, sizeof(printed_fp));
		assert_string_equal(printed_fp, fp);
		expect_mode_0600(keyfile_path);
		/* --immutable reached the vault */
		key_obj = vault_key("oct-key", token);
		assert_non_null(key_obj);
		assert_true(json_object_object_get_ex(key_obj, "release_policy", &rp));
		assert_true(json_object_object_get_ex(rp, "immutable", &imm));
		assert_true(json_object_get_boolean(imm));
		test_proc_result_clear(&r);
	}
	secure_erase(keyfile, 32);
}

/* ---------------------------------------------------------------------------------------------
 * 3. generated RSA key with a bearer token from IMDS (curl)
 * ------------------------------------------------------------------------------------------- */

static struct secret *pkcs8_of_pem_file(const char *path)
{
	_cleanup_(BIO_free_allp) BIO *bio = BIO_new_file(path, "r");
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	PKCS8_PRIV_KEY_INFO *p8;
	struct secret *der;
	unsigned char *p;
	int len;

	assert_non_null(bio);
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	assert_non_null(pkey);
	assert_int_equal(EVP_PKEY_get_bits(pkey), 2048);
	p8 = EVP_PKEY2PKCS8(pkey);
	assert_non_null(p8);
	len = i2d_PKCS8_PRIV_KEY_INFO(p8, NULL);
	der = secret_new((size_t)len);
	assert_non_null(der);
	p = der->data;
	assert_int_equal(i2d_PKCS8_PRIV_KEY_INFO(p8, &p), len);
	PKCS8_PRIV_KEY_INFO_free(p8);
	return der;
}

static void test_rsa_import_with_token(void **state)
{
	char dir[600], cfg[700], keyfile_path[700], pem_path[700], claims[1024];
	char salt[80], fp[SKR_FINGERPRINT_STR_SIZE], printed_fp[64];
	_cleanup_free_ char *token = NULL, *keyfile = NULL;
	_cleanup_secret_ struct secret *der = NULL, *derived = NULL, *from_release = NULL;
	struct skr_key local = {.type = SKR_KEY_RSA};
	struct skr_key *released;
	struct skr_error err = {0};
	struct test_proc_result r = {0};
	size_t len;

	(void)state;
	make_dir("rsa", dir, sizeof(dir));
	snprintf(cfg, sizeof(cfg), "%s/importkeyconfig.json", dir);
	snprintf(keyfile_path, sizeof(keyfile_path), "%s/keyfile.bin", dir);
	snprintf(pem_path, sizeof(pem_path), "%s/private_key.pem", dir);
	platform_claims(claims, sizeof(claims), false); /* no vmpl pin: expect a warning */
	token = imds_token();
	write_config(cfg, "rsa-key", "RSA-HSM", claims, token,
	             ", \"key_derivation\": {\"label\": \"Model Encryption Key\"}");
	{
		const char *args[] = {"-c", cfg, "--ca-bundle", dc.ca, "-out", NULL};

		run_importkey(dir, args, &r);
	}
	if (r.status != 0)
		fail_msg("importkey failed (%d):\n%s", r.status, r.err);
	assert_non_null(strstr(r.err, "warning"));
	assert_non_null(strstr(r.err, "x-ms-sevsnpvm-vmpl == 0"));
	assert_non_null(strstr(r.out, "private key: ./private_key.pem (generated"));
	expect_mode_0600(pem_path);
	expect_mode_0600(keyfile_path);

	/* the printed salt is 32 random bytes; with it, keyfile.bin = HKDF of the key */
	output_field(r.out, "key derivation salt: ", salt, sizeof(salt));
	assert_int_equal(strlen(salt), 64);
	der = pkcs8_of_pem_file(pem_path);
	skr_key_fingerprint(der->data, der->len, fp);
	output_field(r.out, "private key fingerprint: ", printed_fp, sizeof(printed_fp));
	assert_string_equal(printed_fp, fp);
	local.material = der;
	assert_int_equal(skr_key_derive(&local, salt, "Model Encryption Key", &derived, &err), 0);
	assert_int_equal(read_file(keyfile_path, 64, &keyfile, &len), 0);
	assert_int_equal(len, SKR_DERIVED_KEY_SIZE);
	assert_memory_equal(keyfile, derived->data, len);
	skr_key_fingerprint(derived->data, derived->len, fp);
	output_field(r.out, "derived key fingerprint: ", printed_fp, sizeof(printed_fp));
	assert_string_equal(printed_fp, fp);
	expect_no_secret(&r, derived->data, derived->len);

	/* the released key derives to the same LUKS key */
	released = release("rsa-key");
	assert_int_equal(released->type, SKR_KEY_RSA);
	assert_int_equal(
	        skr_key_derive(released, salt, "Model Encryption Key", &from_release, &err), 0);
	assert_memory_equal(from_release->data, derived->data, SKR_DERIVED_KEY_SIZE);
	skr_key_free(released);
	test_proc_result_clear(&r);

	/* a second run would generate a new key over private_key.pem: refused, nothing sent */
	{
		size_t puts = test_devcloud_log_count(&dc, "PUT /keys");
		const char *args[] = {"-c", cfg, "--ca-bundle", dc.ca, NULL};

		run_importkey(dir, args, &r);
		assert_int_equal(r.status, 2);
		assert_non_null(strstr(r.err, "private_key.pem exists"));
		assert_int_equal(test_devcloud_log_count(&dc, "PUT /keys"), puts);
		test_proc_result_clear(&r);
	}
	/* the same key given with -kp and --salt: the same derived key, a new version */
	{
		const char *args[] = {"-c", cfg,           "-kp", pem_path, "--salt",
		                      salt, "--ca-bundle", dc.ca, NULL};

		run_importkey(dir, args, &r);
		if (r.status != 0)
			fail_msg("importkey -kp failed (%d):\n%s", r.status, r.err);
		output_field(r.out, "derived key fingerprint: ", printed_fp, sizeof(printed_fp));
		assert_string_equal(printed_fp, fp);
		assert_null(strstr(r.out, "(generated"));
		test_proc_result_clear(&r);
	}
	secure_erase(keyfile, len);
}

/* ---------------------------------------------------------------------------------------------
 * 4. dry run and runtime failures
 * ------------------------------------------------------------------------------------------- */

static void test_print_policy_only(void **state)
{
	char dir[600], cfg[700], claims[1024];
	_cleanup_free_ char *expected = NULL;
	_cleanup_json_ json_object *printed = NULL, *built = NULL;
	struct skr_error err = {0};
	size_t puts = test_devcloud_log_count(&dc, "PUT /keys");
	struct test_proc_result r = {0};

	(void)state;
	make_dir("dry", dir, sizeof(dir));
	snprintf(cfg, sizeof(cfg), "%s/importkeyconfig.json", dir);
	platform_claims(claims, sizeof(claims), true);
	write_config(cfg, "dry-key", "RSA-HSM", claims, NULL, NULL);
	{
		const char *args[] = {"-c", cfg, "--print-policy-only", NULL};

		run_importkey(dir, args, &r);
	}
	if (r.status != 0)
		fail_msg("importkey --print-policy-only failed (%d):\n%s", r.status, r.err);
	assert_int_equal(skr_policy_build(dc.attest, claims, strlen(claims), &expected, &err), 0);
	printed = printed_policy(r.out);
	built = json_tokener_parse(expected);
	assert_non_null(printed);
	assert_true(json_object_equal(printed, built));
	assert_int_equal(test_devcloud_log_count(&dc, "PUT /keys"), puts);
	{
		char pem_path[700];

		/* a dry run generates nothing */
		snprintf(pem_path, sizeof(pem_path), "%s/private_key.pem", dir);
		assert_int_equal(access(pem_path, F_OK), -1);
	}
	test_proc_result_clear(&r);
}

static void test_vault_refusal(void **state)
{
	char dir[600], cfg[700], claims[1024];
	struct test_proc_result r = {0};

	(void)state;
	make_dir("refused", dir, sizeof(dir));
	snprintf(cfg, sizeof(cfg), "%s/importkeyconfig.json", dir);
	platform_claims(claims, sizeof(claims), true);
	write_config(cfg, "refused-key", "oct-HSM", claims, "not-a-token", NULL);
	{
		const char *args[] = {"-c", cfg, "--ca-bundle", dc.ca, "-out", NULL};

		run_importkey(dir, args, &r);
	}
	if (r.status != 1 || !strstr(r.err, "import into") || !strstr(r.err, "401"))
		fail_msg("expected exit 1 with the vault's 401, got %d:\n%s", r.status, r.err);
	assert_null(strstr(r.out, "key id"));
	{
		char keyfile_path[700];

		snprintf(keyfile_path, sizeof(keyfile_path), "%s/keyfile.bin", dir);
		assert_int_equal(access(keyfile_path, F_OK), -1);
	}
	test_proc_result_clear(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_bad_input),
	        cmocka_unit_test(test_oct_import_with_imds),
	        cmocka_unit_test(test_rsa_import_with_token),
	        cmocka_unit_test(test_print_policy_only),
	        cmocka_unit_test(test_vault_refusal),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
