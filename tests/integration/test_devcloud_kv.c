/* SPDX-License-Identifier: MIT */
/*
 * The real `devcloud` binary's key vault and identity endpoints over real HTTP(S), two
 * instances: A (the trusted one: its ca.pem is the client's and the vault's trust anchor) and
 * B (an issuer A's vault does not trust). The "Done when" list:
 *   - managed identity (skr_identity via IMDS) and workload identity (skr_identity via the
 *     Entra endpoint with a `devcloud federated-token` assertion), good and refused;
 *   - 401 without / with a bad bearer (WWW-Authenticate), 404 for an unknown key;
 *   - import of each key type (also through libskr's skr_akv_import_key);
 *   - release allowed through skr_release_key with the virtual attestation source, for oct, RSA
 *     and EC keys (the released key equals the imported one), and the request log line;
 *   - denied for each kind of policy mismatch (host data, debuggable, VMPL, compliance status,
 *     wrong authority), a tampered token, an expired token, a token from an untrusted issuer;
 *   - a restart keeps the keys (and the release still works);
 *   - nothing secret in the server's log.
 * Servers are always killed at the end, even on failure.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "json_util.h"
#include "ossl.h"
#include "secret.h"
#include "skr.h"
#include "test_devcloud.h"
#include "test_fs.h"
#include "test_http_client.h"
#include "test_kv.h"

static char tmpdir[] = "/tmp/test_devcloud_kv_integration.XXXXXX";
/* A: the trusted instance; B: an issuer A's vault does not trust. */
static struct test_devcloud A = {.pid = -1}, B = {.pid = -1};
static uint8_t host_data[32];
static char host_hex[65];
static char tenant[64], app_client[64], mi_client[64];
static EVP_PKEY *kek;
static char *runtime;
static struct skr_attester *attester_a, *attester_b;
static char *bearer; /* from A's IMDS */

/* `init` @name under tmpdir with @hex as the platform's host data, then `serve` it. */
static int start_instance(struct test_devcloud *s, const char *name, const char *hex)
{
	const char *const args[] = {"--host-data", hex, NULL};
	const char *const serve_args[] = {"--log-level", "info", NULL};
	char state_dir[512], log[600];

	snprintf(state_dir, sizeof(state_dir), "%s/%s", tmpdir, name);
	snprintf(log, sizeof(log), "%s/%s.log", tmpdir, name);
	if (test_devcloud_init(s, state_dir, log, args) < 0)
		return -1;
	return test_devcloud_serve(s, serve_args);
}

static int new_attester(struct test_devcloud *s, struct skr_attester **out)
{
	struct skr_attest_config cfg = {0};
	struct skr_error err = {0};

	cfg.source.kind = SNP_SOURCE_VIRTUAL;
	cfg.source.virtual_dir = s->platform;
	cfg.ca_bundle = s->ca;
	cfg.identity.imds_endpoint = s->imds;
	cfg.kek_pool_size = 1;
	if (skr_attester_new(&cfg, out, &err) < 0) {
		fprintf(stderr, "attester for %s: %s\n", s->state, err.msg);
		return -1;
	}
	return 0;
}

static int load_identity_ids(void)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	_cleanup_json_ json_object *root = NULL;
	size_t len;

	if (asprintf(&path, "%s/identity.json", A.state) < 0 ||
	    read_file(path, 65536, &text, &len) < 0 || !(root = json_tokener_parse(text)))
		return -1;
	snprintf(tenant, sizeof(tenant), "%s", test_kv_get_path(root, "tenant_id", NULL));
	snprintf(app_client, sizeof(app_client), "%s",
	         json_object_get_string(json_object_object_get(
	                 json_object_array_get_idx(json_object_object_get(root, "applications"), 0),
	                 "client_id")));
	snprintf(mi_client, sizeof(mi_client), "%s",
	         json_object_get_string(json_object_object_get(
	                 json_object_array_get_idx(
	                         json_object_object_get(root, "managed_identities"), 0),
	                 "client_id")));
	return 0;
}

static int group_setup(void **state)
{
	struct skr_identity_config ic = {0};
	struct skr_identity *id = NULL;
	struct secret *tok = NULL;
	struct skr_error err = {0};
	char other_hex[65];

	(void)state;
	if (!test_devcloud_bin() || !mkdtemp(tmpdir))
		return -1;
	test_fs_remove_at_exit(tmpdir);
	for (size_t i = 0; i < sizeof(host_data); i++)
		host_data[i] = (uint8_t)(0x5A ^ i);
	hex_encode(host_data, sizeof(host_data), host_hex);
	memset(other_hex, 'c', 64);
	other_hex[64] = '\0';
	if (start_instance(&A, "a", host_hex) < 0 || start_instance(&B, "b", other_hex) < 0 ||
	    load_identity_ids() < 0)
		return -1;
	kek = EVP_RSA_gen(2048);
	runtime = test_kv_runtime(kek, "test-kek");
	if (!kek || new_attester(&A, &attester_a) < 0 || new_attester(&B, &attester_b) < 0)
		return -1;
	ic.imds_endpoint = A.imds;
	if (skr_identity_new(&ic, &id, &err) < 0 ||
	    skr_identity_get_token(id, "https://vault.azure.net", &tok, &err) < 0) {
		fprintf(stderr, "IMDS token: %s\n", err.msg);
		skr_identity_free(id);
		return -1;
	}
	bearer = strndup((const char *)tok->data, tok->len);
	secret_free(tok);
	skr_identity_free(id);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	skr_attester_free(attester_a);
	skr_attester_free(attester_b);
	test_devcloud_kill(&A);
	test_devcloud_kill(&B);
	EVP_PKEY_free(kek);
	free(runtime);
	free(bearer);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * HTTPS with libcurl
 * ------------------------------------------------------------------------------------------- */

/* One request to A's vault (or @base); returns the status. */
static long https(const char *method, const char *base, const char *path, const char *token,
                  const char *body, struct test_http_client_response *out)
{
	char url[1024];

	snprintf(url, sizeof(url), "https://%s%s", base ? base : A.kv, path);
	return test_http_client_request(&(struct test_http_client_request){.method = method,
	                                                                   .url = url,
	                                                                   .ca_bundle = A.ca,
	                                                                   .bearer = token,
	                                                                   .body = body},
	                                out);
}

static void expect_error(long status, struct test_http_client_response *b, long want,
                         const char *code, const char *needle)
{
	_cleanup_json_ json_object *root = NULL;
	const char *c, *m;

	if (status != want)
		fail_msg("expected HTTP %ld, got %ld: %s", want, status, b->body);
	root = json_tokener_parse(b->body);
	assert_non_null(root);
	c = test_kv_get_path(root, "error", "code", NULL);
	m = test_kv_get_path(root, "error", "message", NULL);
	assert_non_null(c);
	assert_non_null(m);
	if (code)
		assert_string_equal(c, code);
	if (needle && !strcasestr(m, needle))
		fail_msg("message '%s' does not mention '%s'", m, needle);
	test_http_client_response_clear(b);
}

static void import_ok(const char *name, const char *jwk, const char *policy, const char *kty)
{
	_cleanup_free_ char *body = test_kv_import_body(jwk, true, policy, false);
	_cleanup_json_ json_object *root = NULL;
	char path[256];
	struct test_http_client_response b;
	long st;

	snprintf(path, sizeof(path), "/keys/%s?api-version=7.4", name);
	st = https("PUT", NULL, path, bearer, body, &b);
	if (st != 200)
		fail_msg("import %s: %ld %s", name, st, b.body);
	root = json_tokener_parse(b.body);
	assert_string_equal(test_kv_get_path(root, "key", "kty", NULL), kty);
	test_http_client_response_clear(&b);
}

/* The policy the virtual platform of A satisfies: host data, not debuggable, VMPL 0. */
static char *good_policy(void)
{
	char cond[512];

	snprintf(cond, sizeof(cond),
	         "{\"claim\":\"x-ms-sevsnpvm-hostdata\",\"equals\":\"%s\"},"
	         "{\"claim\":\"x-ms-sevsnpvm-is-debuggable\",\"equals\":\"false\"},"
	         "{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":\"0\"},"
	         "{\"claim\":\"x-ms-compliance-status\",\"equals\":\"azure-compliant-uvm\"}",
	         host_hex);
	return test_kv_policy(A.issuer, cond);
}

static char *maa_token(struct skr_attester *a, const char *endpoint)
{
	struct skr_error err = {0};
	char *token = NULL;

	if (skr_attest_maa(a, endpoint, (const uint8_t *)runtime, strlen(runtime), &token, &err) <
	    0)
		fail_msg("skr_attest_maa: %s", err.msg);
	return token;
}

static long release_raw(const char *name, const char *token, struct test_http_client_response *b)
{
	char path[256];
	_cleanup_free_ char *body = NULL;

	snprintf(path, sizeof(path), "/keys/%s/release?api-version=7.4", name);
	assert_true(asprintf(&body, "{\"target\":\"%s\"}", token) > 0);
	return https("POST", NULL, path, bearer, body, b);
}

/* ---------------------------------------------------------------------------------------------
 * Identity
 * ------------------------------------------------------------------------------------------- */

static void test_managed_identity(void **state)
{
	struct skr_identity_config ic = {.imds_endpoint = A.imds};
	struct skr_identity *id = NULL;
	struct secret *tok = NULL;
	struct skr_error err = {0};
	_cleanup_free_ char *t = NULL;
	struct test_http_client_response b;

	(void)state;
	/* The user-assigned identity by client_id (what identity.client_id selects). */
	ic.client_id = mi_client;
	assert_int_equal(skr_identity_new(&ic, &id, &err), 0);
	if (skr_identity_get_token(id, "https://managedhsm.azure.net", &tok, &err) < 0)
		fail_msg("IMDS: %s", err.msg);
	t = strndup((const char *)tok->data, tok->len);
	secret_free(tok);
	skr_identity_free(id);
	expect_error(https("GET", NULL, "/keys/nothing-here?api-version=7.4", t, NULL, &b), &b, 404,
	             "KeyNotFound", "nothing-here");

	/* An identity IMDS does not know: a clear refusal, no token. */
	ic.client_id = "00000000-0000-0000-0000-000000000000";
	id = NULL;
	assert_int_equal(skr_identity_new(&ic, &id, &err), 0);
	assert_true(skr_identity_get_token(id, "https://vault.azure.net", &tok, &err) < 0);
	if (!strstr(err.msg, "Identity not found"))
		fail_msg("unexpected IMDS error: %s", err.msg);
	skr_identity_free(id);
}

static void workload_token(const char *subject, bool expect_ok, const char *needle)
{
	struct skr_identity_config ic = {.ca_bundle = A.ca, .imds_endpoint = "http://127.0.0.1:9"};
	struct skr_identity *id = NULL;
	struct secret *tok = NULL;
	struct skr_error err = {0};
	char file[700], authority[128];
	const char *args[] = {"federated-token", "--state", A.state, "--subject", subject, NULL};
	int r;

	snprintf(file, sizeof(file), "%s/federated-token", tmpdir);
	snprintf(authority, sizeof(authority), "https://%s/", A.attest);
	if (!subject)
		args[3] = NULL;
	assert_int_equal(test_devcloud_run(args, file), 0);
	setenv("AZURE_CLIENT_ID", app_client, 1);
	setenv("AZURE_TENANT_ID", tenant, 1);
	setenv("AZURE_FEDERATED_TOKEN_FILE", file, 1);
	setenv("AZURE_AUTHORITY_HOST", authority, 1);
	assert_int_equal(skr_identity_new(&ic, &id, &err), 0);
	r = skr_identity_get_token(id, "https://vault.azure.net", &tok, &err);
	skr_identity_free(id);
	unsetenv("AZURE_CLIENT_ID");
	unsetenv("AZURE_TENANT_ID");
	unsetenv("AZURE_FEDERATED_TOKEN_FILE");
	unsetenv("AZURE_AUTHORITY_HOST");
	if (!expect_ok) {
		assert_true(r < 0);
		if (!strstr(err.msg, needle))
			fail_msg("workload identity error '%s' lacks '%s'", err.msg, needle);
		return;
	}
	if (r < 0)
		fail_msg("workload identity: %s", err.msg);
	{
		_cleanup_free_ char *t = strndup((const char *)tok->data, tok->len);
		struct test_http_client_response b;

		secret_free(tok);
		expect_error(https("GET", NULL, "/keys/nothing-here?api-version=7.4", t, NULL, &b),
		             &b, 404, "KeyNotFound", NULL);
	}
}

static void test_workload_identity(void **state)
{
	(void)state;
	workload_token(NULL, true, NULL);
	/* A service account without a federated credential on the application. */
	workload_token("system:serviceaccount:kube-system:intruder", false, "AADSTS70021");
}

/* ---------------------------------------------------------------------------------------------
 * 401, 404, imports
 * ------------------------------------------------------------------------------------------- */

static void test_auth_and_not_found(void **state)
{
	struct test_http_client_response b;
	long st;

	(void)state;
	st = https("GET", NULL, "/keys/k?api-version=7.4", NULL, NULL, &b);
	/* the challenge names the authority to get a token from */
	assert_non_null(b.www_authenticate);
	assert_non_null(strstr(b.www_authenticate, "Bearer authorization=\"https://sts."));
	expect_error(st, &b, 401, "Unauthorized", "Authorization");
	expect_error(https("GET", NULL, "/keys/k?api-version=7.4", "abc.def.ghi", NULL, &b), &b,
	             401, "Unauthorized", "bearer token");
	{
		/* An MAA token is not an access token. */
		_cleanup_free_ char *maa = maa_token(attester_a, A.attest);

		expect_error(https("GET", NULL, "/keys/k?api-version=7.4", maa, NULL, &b), &b, 401,
		             "Unauthorized", NULL);
	}
	expect_error(https("GET", NULL, "/keys/never-imported?api-version=7.4", bearer, NULL, &b),
	             &b, 404, "KeyNotFound", "never-imported");
	expect_error(https("POST", NULL, "/keys/never-imported/release?api-version=7.4", bearer,
	                   "{\"target\":\"a.b.c\"}", &b),
	             &b, 404, "KeyNotFound", NULL);
	/* The vault is not on the attest port, nor the attest service on the vault's. */
	expect_error(
	        https("GET", A.attest, "/keys/never-imported?api-version=7.4", bearer, NULL, &b),
	        &b, 404, "NotFound", "no such path");
}

static void test_import_each_type(void **state)
{
	_cleanup_free_ char *policy = good_policy();
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *rsa3072 = EVP_RSA_gen(3072);
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *p256 = EVP_EC_gen("P-256");
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *p521 = EVP_EC_gen("P-521");
	_cleanup_free_ char *rsa = test_kv_private_jwk(rsa3072, "RSA");
	_cleanup_free_ char *ec = test_kv_private_jwk(p256, "EC");
	_cleanup_free_ char *ec521 = test_kv_private_jwk(p521, "EC-HSM");
	uint8_t k[24];
	_cleanup_free_ char *oct = NULL;

	(void)state;
	RAND_bytes(k, sizeof(k));
	oct = test_kv_oct_jwk(k, sizeof(k), "oct");
	import_ok("type-oct", oct, policy, "oct-HSM");
	import_ok("type-rsa", rsa, policy, "RSA-HSM");
	import_ok("type-ec", ec, policy, "EC-HSM");
	import_ok("type-ec521", ec521, policy, "EC-HSM");
	/* libskr's Key Vault client (what importkey uses) against devcloud. */
	{
		struct skr_akv_import imp = {0};
		struct skr_error err = {0};
		_cleanup_free_ char *kid = NULL;
		char prefix[128];

		imp.endpoint = A.kv;
		imp.name = "type-akv-client";
		imp.jwk_json = oct;
		imp.jwk_len = strlen(oct);
		imp.hsm = true;
		imp.policy_json = policy;
		imp.exportable = true;
		imp.bearer_token = bearer;
		imp.ca_bundle = A.ca;
		if (skr_akv_import_key(&imp, &kid, &err) < 0)
			fail_msg("skr_akv_import_key: %s", err.msg);
		snprintf(prefix, sizeof(prefix), "https://%s/keys/type-akv-client/", A.kv);
		assert_true(strncmp(kid, prefix, strlen(prefix)) == 0);
	}
	/* A bad key is refused with the reason. */
	{
		_cleanup_free_ char *body = test_kv_import_body("{\"kty\":\"oct\",\"k\":\"AAAA\"}",
		                                                true, policy, false);
		struct test_http_client_response b;

		expect_error(https("PUT", NULL, "/keys/type-bad?api-version=7.4", bearer, body, &b),
		             &b, 400, "BadParameter", "16, 24 or 32 bytes");
	}
}

/* ---------------------------------------------------------------------------------------------
 * Release
 * ------------------------------------------------------------------------------------------- */

static struct skr_key *release_with_client(const char *name, struct skr_error *err)
{
	struct skr_release_request req = {0};
	struct skr_key *key = NULL;

	req.maa_endpoint = A.attest;
	req.akv_endpoint = A.kv;
	req.kid = name;
	/* access_token NULL: the attester's identity (A's IMDS) supplies it. */
	if (skr_release_key(attester_a, &req, &key, err) < 0)
		return NULL;
	return key;
}

static uint8_t oct_key[32];
static EVP_PKEY *rsa_key, *ec_key;

static void check_pkcs8(const struct skr_key *k, EVP_PKEY *want)
{
	const unsigned char *p = k->material->data;
	EVP_PKEY *got = d2i_AutoPrivateKey(NULL, &p, (long)k->material->len);

	assert_non_null(got);
	assert_int_equal(EVP_PKEY_eq(got, want), 1);
	EVP_PKEY_free(got);
}

static void test_release_allowed(void **state)
{
	_cleanup_free_ char *policy = good_policy();
	_cleanup_free_ char *oct = NULL, *rsa = NULL, *ec = NULL, *log_text = NULL;
	struct skr_error err = {0};
	struct skr_key *k;
	size_t len;

	(void)state;
	RAND_bytes(oct_key, sizeof(oct_key));
	rsa_key = EVP_RSA_gen(2048);
	ec_key = EVP_EC_gen("P-256");
	oct = test_kv_oct_jwk(oct_key, sizeof(oct_key), "oct-HSM");
	rsa = test_kv_private_jwk(rsa_key, "RSA-HSM");
	ec = test_kv_private_jwk(ec_key, "EC-HSM");
	import_ok("sidecar-oct", oct, policy, "oct-HSM");
	import_ok("sidecar-rsa", rsa, policy, "RSA-HSM");
	import_ok("sidecar-ec", ec, policy, "EC-HSM");

	k = release_with_client("sidecar-oct", &err);
	if (!k)
		fail_msg("skr_release_key: %s", err.msg);
	assert_int_equal(k->type, SKR_KEY_OCT);
	assert_int_equal(k->material->len, sizeof(oct_key));
	assert_memory_equal(k->material->data, oct_key, sizeof(oct_key));
	skr_key_free(k);

	k = release_with_client("sidecar-rsa", &err);
	if (!k)
		fail_msg("skr_release_key (RSA): %s", err.msg);
	assert_int_equal(k->type, SKR_KEY_RSA);
	check_pkcs8(k, rsa_key);
	skr_key_free(k);

	k = release_with_client("sidecar-ec", &err);
	if (!k)
		fail_msg("skr_release_key (EC): %s", err.msg);
	assert_int_equal(k->type, SKR_KEY_EC);
	check_pkcs8(k, ec_key);
	skr_key_free(k);

	/* The request log: method, path, status, time (the benchmark parses it); no tokens. */
	usleep(100 * 1000);
	assert_int_equal(read_file(A.log, 8u << 20, &log_text, &len), 0);
	{
		const char *line = strstr(log_text, "POST /keys/sidecar-oct/release 200 ");

		assert_non_null(line);
		line += strlen("POST /keys/sidecar-oct/release 200 ");
		assert_true(line[0] >= '0' && line[0] <= '9');
		assert_non_null(strstr(line, " ms"));
	}
	assert_null(strstr(log_text, bearer + strlen(bearer) - 40));
	assert_null(strstr(log_text, "eyJ"));
}

static void test_release_denied(void **state)
{
	_cleanup_free_ char *token = maa_token(attester_a, A.attest);
	uint8_t k[32];
	_cleanup_free_ char *oct = NULL;
	char cond[512], wrong[65];
	struct {
		const char *name;
		char *policy;
		const char *needle;
	} cases[8];
	size_t n = 0;

	(void)state;
	RAND_bytes(k, sizeof(k));
	oct = test_kv_oct_jwk(k, sizeof(k), "oct-HSM");
	memset(wrong, 'd', 64);
	wrong[64] = '\0';
	snprintf(cond, sizeof(cond), "{\"claim\":\"x-ms-sevsnpvm-hostdata\",\"equals\":\"%s\"}",
	         wrong);
	cases[n++] = (__typeof__(cases[0])){"deny-hostdata", test_kv_policy(A.issuer, cond),
	                                    "x-ms-sevsnpvm-hostdata"};
	cases[n++] = (__typeof__(cases[0])){
	        "deny-debuggable",
	        test_kv_policy(A.issuer,
	                       "{\"claim\":\"x-ms-sevsnpvm-is-debuggable\",\"equals\":\"true\"}"),
	        "x-ms-sevsnpvm-is-debuggable"};
	cases[n++] = (__typeof__(cases[0])){
	        "deny-vmpl",
	        test_kv_policy(A.issuer, "{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":\"2\"}"),
	        "x-ms-sevsnpvm-vmpl"};
	cases[n++] = (__typeof__(cases[0])){
	        "deny-compliance",
	        test_kv_policy(A.issuer,
	                       "{\"claim\":\"x-ms-compliance-status\",\"equals\":\"other-uvm\"}"),
	        "x-ms-compliance-status"};
	cases[n++] = (__typeof__(cases[0])){
	        "deny-authority",
	        test_kv_policy(B.issuer, "{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":\"0\"}"),
	        "not an authority"};
	for (size_t i = 0; i < n; i++) {
		struct test_http_client_response b;

		import_ok(cases[i].name, oct, cases[i].policy, "oct-HSM");
		expect_error(release_raw(cases[i].name, token, &b), &b, 403, "Forbidden",
		             cases[i].needle);
		free(cases[i].policy);
	}
	/* The SKR client explains the same denial from the key's policy. */
	{
		struct skr_error err = {0};

		assert_null(release_with_client("deny-hostdata", &err));
		if (!strstr(err.msg, "x-ms-sevsnpvm-hostdata"))
			fail_msg("skr_release_key denial does not name the claim: %s", err.msg);
	}
}

/* Sign @header.@payload again with A's attestation key (as if A had issued it). */
static char *resign_with_a(json_object *header, json_object *payload)
{
	char key_path[700];
	_cleanup_free_ char *pem = NULL, *h64 = NULL, *p64 = NULL, *s64 = NULL, *input = NULL;
	_cleanup_(BIO_free_allp) BIO *bio = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t sig[512];
	size_t len, sig_len = sizeof(sig);
	char *out;
	const char *h = json_compact(header);

	snprintf(key_path, sizeof(key_path), "%s/signing-key.pem", A.state);
	assert_int_equal(read_file(key_path, 65536, &pem, &len), 0);
	bio = BIO_new_mem_buf(pem, (int)len);
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	assert_non_null(key);
	assert_int_equal(b64_encode(h, strlen(h), B64_URL_NOPAD, &h64), 0);
	h = json_compact(payload);
	assert_int_equal(b64_encode(h, strlen(h), B64_URL_NOPAD, &p64), 0);
	assert_true(asprintf(&input, "%s.%s", h64, p64) > 0);
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
	assert_int_equal(EVP_DigestSign(md, sig, &sig_len, (const uint8_t *)input, strlen(input)),
	                 1);
	assert_int_equal(b64_encode(sig, sig_len, B64_URL_NOPAD, &s64), 0);
	assert_true(asprintf(&out, "%s.%s", input, s64) > 0);
	return out;
}

static void test_release_bad_tokens(void **state)
{
	_cleanup_free_ char *policy = good_policy();
	_cleanup_free_ char *token = maa_token(attester_a, A.attest);
	_cleanup_json_ json_object *header = test_kv_jws_segment(token, 0);
	_cleanup_json_ json_object *payload = test_kv_jws_segment(token, 1);
	uint8_t k[32];
	_cleanup_free_ char *oct = NULL;
	struct test_http_client_response b;

	(void)state;
	RAND_bytes(k, sizeof(k));
	oct = test_kv_oct_jwk(k, sizeof(k), "oct-HSM");
	import_ok("bad-tokens", oct, policy, "oct-HSM");
	/* The genuine token works: the refusals below are the tokens' fault. */
	assert_int_equal(release_raw("bad-tokens", token, &b), 200);
	test_http_client_response_clear(&b);

	/* Tampered: the claims changed, the signature kept. */
	{
		_cleanup_free_ char *p64 = NULL, *tampered = NULL;
		const char *text;
		json_object *copy = NULL;

		json_object_deep_copy(payload, &copy, NULL);
		json_object_object_add(copy, "x-ms-sevsnpvm-vmpl", json_object_new_int(0));
		json_object_object_add(copy, "x-ms-sevsnpvm-is-debuggable",
		                       json_object_new_boolean(0));
		json_object_object_add(copy, "x-ms-attestation-type",
		                       json_object_new_string("sevsnpvm "));
		text = json_compact(copy);
		assert_int_equal(b64_encode(text, strlen(text), B64_URL_NOPAD, &p64), 0);
		assert_true(asprintf(&tampered, "%.*s.%s%s", (int)(strchr(token, '.') - token),
		                     token, p64, strrchr(token, '.')) > 0);
		json_object_put(copy);
		expect_error(release_raw("bad-tokens", tampered, &b), &b, 403, "Forbidden",
		             "signature");
	}
	/* Expired an hour ago, correctly signed by A. */
	{
		_cleanup_free_ char *expired = NULL;
		json_object *copy = NULL;
		time_t now = time(NULL);

		json_object_deep_copy(payload, &copy, NULL);
		json_object_object_add(copy, "iat", json_object_new_int64(now - 7200));
		json_object_object_add(copy, "nbf", json_object_new_int64(now - 7200));
		json_object_object_add(copy, "exp", json_object_new_int64(now - 3600));
		expired = resign_with_a(header, copy);
		json_object_put(copy);
		expect_error(release_raw("bad-tokens", expired, &b), &b, 403, "Forbidden",
		             "expire");
	}
	/* An issuer A's vault does not trust: B, named by the policy, fails the TLS check. */
	{
		_cleanup_free_ char *btoken = maa_token(attester_b, B.attest);
		char cond[256];
		_cleanup_free_ char *bpolicy = NULL;

		snprintf(cond, sizeof(cond), "{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":\"0\"}");
		bpolicy = test_kv_policy(B.issuer, cond);
		import_ok("untrusted-issuer", oct, bpolicy, "oct-HSM");
		expect_error(release_raw("untrusted-issuer", btoken, &b), &b, 403, "Forbidden",
		             "not accepted");
		/* And B's token for a key whose policy names only A: refused before any fetch. */
		expect_error(release_raw("bad-tokens", btoken, &b), &b, 403, "Forbidden",
		             "not an authority");
	}
}

/* ---------------------------------------------------------------------------------------------
 * Restart
 * ------------------------------------------------------------------------------------------- */

static void test_restart_keeps_keys(void **state)
{
	_cleanup_json_ json_object *before = NULL, *after = NULL;
	struct skr_error err = {0};
	struct skr_key *k;
	struct test_http_client_response b;
	char ap[16], kp[16], ip[16];

	(void)state;
	assert_int_equal(https("GET", NULL, "/keys/sidecar-oct?api-version=7.4", bearer, NULL, &b),
	                 200);
	before = json_tokener_parse(b.body);
	test_http_client_response_clear(&b);

	assert_int_equal(test_devcloud_stop(&A), 0);
	/* Same ports: the policies name the attest origin. */
	snprintf(ap, sizeof(ap), "%d", A.attest_port);
	snprintf(kp, sizeof(kp), "%d", A.kv_port);
	snprintf(ip, sizeof(ip), "%d", A.imds_port);
	{
		const char *const args[] = {
		        "--attest-port", ap,     "--kv-port", kp, "--imds-port", ip,
		        "--log-level",   "info", NULL};

		assert_int_equal(test_devcloud_serve(&A, args), 0);
	}

	assert_int_equal(https("GET", NULL, "/keys/sidecar-oct?api-version=7.4", bearer, NULL, &b),
	                 200);
	after = json_tokener_parse(b.body);
	test_http_client_response_clear(&b);
	assert_string_equal(test_kv_get_path(before, "key", "kid", NULL),
	                    test_kv_get_path(after, "key", "kid", NULL));
	k = release_with_client("sidecar-oct", &err);
	if (!k)
		fail_msg("release after restart: %s", err.msg);
	assert_memory_equal(k->material->data, oct_key, sizeof(oct_key));
	skr_key_free(k);
	k = release_with_client("sidecar-rsa", &err);
	if (!k)
		fail_msg("RSA release after restart: %s", err.msg);
	check_pkcs8(k, rsa_key);
	skr_key_free(k);
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(ec_key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_managed_identity),
	        cmocka_unit_test(test_workload_identity),
	        cmocka_unit_test(test_auth_and_not_found),
	        cmocka_unit_test(test_import_each_type),
	        cmocka_unit_test(test_release_allowed),
	        cmocka_unit_test(test_release_denied),
	        cmocka_unit_test(test_release_bad_tokens),
	        cmocka_unit_test(test_restart_keeps_keys),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
