/* SPDX-License-Identifier: MIT */
/*
 * devcloud's key vault and identity handlers without HTTP: import validation (table), bearer
 * checks, versions and immutable policies, release (allowed, each denial), the sealed store
 * across reopen and tampering, IMDS and the Entra client-assertion endpoint.
 *
 * A release verifies the attestation token against its issuer's JWKS over HTTPS, so the attest
 * listener (only) runs in-process on an ephemeral loopback port; tokens come from the attest
 * handler for the platform of the state, addressed to that listener.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "b64.h"
#include "cleanup.h"
#include "devcloud.h"
#include "fileio.h"
#include "json_util.h"
#include "log.h"
#include "ossl.h"
#include "test_fs.h"
#include "test_kv.h"

DEFINE_CLEANUP_FUNC(EVP_MD *, EVP_MD_free)

#define KV_HOST "localhost:8444"
#define VAULT "https://" KV_HOST

static char tmpdir[] = "/tmp/test_devcloud_kv.XXXXXX";
static char state_dir[256];
static struct devcloud *dc;
static struct devcloud_server *srv;
static char attest_host[64], issuer[80];
static EVP_PKEY *kek, *rsa_key, *ec256, *ec384, *ec521;
static char *runtime, *bearer;
static uint8_t host_data[32];
static uint8_t oct_key[32];

static int group_setup(void **state)
{
	struct devcloud_init_options io;
	struct devcloud_serve_options so;
	struct skr_error err = {0};

	(void)state;
	log_set_level(LOG_LEVEL_WARN);
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(state_dir, sizeof(state_dir), "%s/state", tmpdir);
	for (size_t i = 0; i < sizeof(host_data); i++)
		host_data[i] = (uint8_t)(0xA0 + i);
	devcloud_init_options_default(&io);
	io.state_dir = state_dir;
	memcpy(io.host_data, host_data, sizeof(host_data));
	devcloud_serve_options_default(&so);
	so.state_dir = state_dir;
	so.token_lifetime = 600;
	if (devcloud_state_init(&io, NULL, &err) < 0 || devcloud_open(&so, &dc, &err) < 0 ||
	    devcloud_server_start(dc, "127.0.0.1", 0, &srv, &err) < 0) {
		fprintf(stderr, "devcloud: %s\n", skr_error_message(&err));
		return -1;
	}
	snprintf(attest_host, sizeof(attest_host), "localhost:%u", devcloud_server_port(srv));
	snprintf(issuer, sizeof(issuer), "https://%s", attest_host);
	kek = EVP_RSA_gen(2048);
	rsa_key = EVP_RSA_gen(2048);
	ec256 = EVP_EC_gen("P-256");
	ec384 = EVP_EC_gen("P-384");
	ec521 = EVP_EC_gen("P-521");
	if (!kek || !rsa_key || !ec256 || !ec384 || !ec521)
		return -1;
	runtime = test_kv_runtime(kek, "kek-1");
	RAND_bytes(oct_key, sizeof(oct_key));
	if (devcloud_access_token_issue(dc, &dc->identity.managed[0], "https://vault.azure.net",
	                                3600, time(NULL), &bearer, &err) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	devcloud_server_stop(srv);
	devcloud_free(dc);
	EVP_PKEY_free(kek);
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(ec256);
	EVP_PKEY_free(ec384);
	EVP_PKEY_free(ec521);
	free(runtime);
	free(bearer);
	return test_fs_rm_rf(tmpdir) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * Request helpers
 * ------------------------------------------------------------------------------------------- */

struct call {
	const char *method, *path, *api_version, *authorization, *body;
	const char *host;
	enum devcloud_service service; /* with attest: 0 would mean the key vault */
	bool attest;
	const struct devcloud_kv *extra_headers;
	size_t n_extra;
	const struct devcloud_kv *query;
	size_t n_query;
};

static void call(const struct call *c, struct devcloud_response *resp)
{
	struct devcloud_kv headers[8], query[8];
	size_t nh = 0, nq = 0;
	struct devcloud_request req = {0};
	char auth[8192];

	headers[nh++] = (struct devcloud_kv){"Host", c->host ? c->host : KV_HOST};
	if (c->authorization) {
		snprintf(auth, sizeof(auth), "%s", c->authorization);
		headers[nh++] = (struct devcloud_kv){"Authorization", auth};
	}
	for (size_t i = 0; i < c->n_extra; i++)
		headers[nh++] = c->extra_headers[i];
	if (c->api_version)
		query[nq++] = (struct devcloud_kv){"api-version", c->api_version};
	for (size_t i = 0; i < c->n_query; i++)
		query[nq++] = c->query[i];
	req.method = c->method;
	req.path = c->path;
	req.headers = headers;
	req.n_headers = nh;
	req.query = query;
	req.n_query = nq;
	req.body = c->body ? c->body : "";
	req.body_len = c->body ? strlen(c->body) : 0;
	req.content_length = req.body_len;
	memset(resp, 0, sizeof(*resp));
	assert_int_equal(devcloud_dispatch_service(dc,
	                                           c->attest    ? DEVCLOUD_SERVICE_ATTEST
	                                           : c->service ? c->service
	                                                        : DEVCLOUD_SERVICE_KV,
	                                           &req, resp),
	                 0);
}

static char *bearer_header(const char *token)
{
	char *s;

	assert_true(asprintf(&s, "Bearer %s", token) > 0);
	return s;
}

/* A KV call with the default bearer; returns the status, body in *out (caller frees). */
static unsigned kv(const char *method, const char *path, const char *body, json_object **out)
{
	_cleanup_free_ char *auth = bearer_header(bearer);
	struct devcloud_response resp;
	struct call c = {.method = method,
	                 .path = path,
	                 .api_version = "7.4",
	                 .authorization = auth,
	                 .body = body};
	unsigned status;

	call(&c, &resp);
	status = resp.status;
	if (out) {
		*out = json_tokener_parse(resp.body);
		assert_non_null(*out);
	}
	devcloud_response_clear(&resp);
	return status;
}

static void expect_error_resp(struct devcloud_response *resp, unsigned status, const char *code,
                              const char *needle)
{
	_cleanup_json_ json_object *root = json_tokener_parse(resp->body);
	const char *c, *m;

	if (resp->status != status)
		fail_msg("expected %u, got %u: %s", status, resp->status, resp->body);
	assert_non_null(root);
	c = test_kv_get_path(root, "error", "code", NULL);
	m = test_kv_get_path(root, "error", "message", NULL);
	assert_non_null(c);
	assert_non_null(m);
	if (code)
		assert_string_equal(c, code);
	if (needle && !strcasestr(m, needle))
		fail_msg("message '%s' does not mention '%s'", m, needle);
	devcloud_response_clear(resp);
}

static void expect_kv_error(const char *method, const char *path, const char *body, unsigned status,
                            const char *code, const char *needle)
{
	_cleanup_free_ char *auth = bearer_header(bearer);
	struct devcloud_response resp;
	struct call c = {.method = method,
	                 .path = path,
	                 .api_version = "7.4",
	                 .authorization = auth,
	                 .body = body};

	call(&c, &resp);
	expect_error_resp(&resp, status, code, needle);
}

/* An MAA token of the state's platform for @rt at @vmpl, from the attest handler. */
static char *attest_token(const char *rt, unsigned vmpl)
{
	uint8_t rd[64], report[SNP_REPORT_SIZE];
	struct skr_error err = {0};
	struct devcloud_response resp = {0};
	_cleanup_free_ char *body = NULL;
	_cleanup_json_ json_object *answer = NULL;
	char *token;

	skr_report_data_for((const uint8_t *)rt, strlen(rt), rd);
	if (snp_virtual_get_report(dc->platform, rd, vmpl, report, &err) < 0)
		fail_msg("report: %s", skr_error_message(&err));
	if (maa_request_build(report, sizeof(report), snp_virtual_chain_pem(dc->platform), NULL,
	                      (const uint8_t *)rt, strlen(rt), 7, &body, &err) < 0)
		fail_msg("maa_request_build: %s", skr_error_message(&err));
	assert_int_equal(devcloud_attest(dc, body, strlen(body), strlen(body), attest_host, &resp),
	                 0);
	if (resp.status != 200)
		fail_msg("attest: %u %s", resp.status, resp.body);
	answer = json_tokener_parse(resp.body);
	token = strdup(json_object_get_string(json_object_object_get(answer, "token")));
	devcloud_response_clear(&resp);
	return token;
}

static char *release_body(const char *token, const char *enc)
{
	char *s;

	if (enc)
		assert_true(asprintf(&s, "{\"target\":\"%s\",\"enc\":\"%s\"}", token, enc) > 0);
	else
		assert_true(asprintf(&s, "{\"target\":\"%s\"}", token) > 0);
	return s;
}

static char *import(const char *name, const char *jwk, bool exportable, const char *policy,
                    bool immutable, unsigned expect)
{
	_cleanup_free_ char *body = test_kv_import_body(jwk, exportable, policy, immutable);
	_cleanup_free_ char *path = NULL;
	_cleanup_json_ json_object *out = NULL;
	unsigned st;

	assert_true(asprintf(&path, "/keys/%s", name) > 0);
	st = kv("PUT", path, body, &out);
	if (st != expect)
		fail_msg("import %s: expected %u, got %u: %s", name, expect, st, json_compact(out));
	if (st != 200)
		return NULL;
	return strdup(test_kv_get_path(out, "key", "kid", NULL));
}

static char hostdata_hex[65];

static char *default_policy(void)
{
	char cond[256];

	hex_encode(host_data, sizeof(host_data), hostdata_hex);
	snprintf(cond, sizeof(cond),
	         "{\"claim\":\"x-ms-sevsnpvm-hostdata\",\"equals\":\"%s\"},"
	         "{\"claim\":\"x-ms-sevsnpvm-is-debuggable\",\"equals\":\"false\"},"
	         "{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":\"0\"}",
	         hostdata_hex);
	return test_kv_policy(issuer, cond);
}

/* ---------------------------------------------------------------------------------------------
 * Import validation (the parser, table-driven)
 * ------------------------------------------------------------------------------------------- */

static char *with_member(const char *jwk, const char *member, const char *value)
{
	json_object *o = json_tokener_parse(jwk);
	char *s;

	json_object_object_add(o, member, json_object_new_string(value));
	s = strdup(json_compact(o));
	json_object_put(o);
	return s;
}

static const char *member_of(const char *jwk, const char *member, char *buf, size_t size)
{
	json_object *o = json_tokener_parse(jwk);

	snprintf(buf, size, "%s", json_object_get_string(json_object_object_get(o, member)));
	json_object_put(o);
	return buf;
}

static void test_import_parse(void **state)
{
	_cleanup_free_ char *policy = default_policy();
	_cleanup_free_ char *rsa = test_kv_private_jwk(rsa_key, "RSA");
	_cleanup_free_ char *ec = test_kv_private_jwk(ec256, "EC-HSM");
	_cleanup_free_ char *other_rsa_jwk = NULL, *bad_rsa = NULL, *bad_ec = NULL,
	                    *bad_ec_d = NULL;
	_cleanup_free_ char *oct32 = test_kv_oct_jwk(oct_key, 32, "oct-HSM");
	_cleanup_free_ char *oct16 = test_kv_oct_jwk(oct_key, 16, "oct");
	_cleanup_free_ char *oct20 = test_kv_oct_jwk(oct_key, 20, "oct-HSM");
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *small = EVP_RSA_gen(1024);
	_cleanup_free_ char *small_jwk = test_kv_private_jwk(small, "RSA");
	_cleanup_free_ char *p384 = test_kv_private_jwk(ec384, "EC");
	_cleanup_free_ char *p521 = test_kv_private_jwk(ec521, "EC");
	char buf[1024];
	struct {
		char *body;
		int expect; /* 0 or -EINVAL */
		const char *needle;
		enum devcloud_kv_kty kty;
		unsigned bits;
	} cases[40];
	size_t n = 0;

	(void)state;
	/* The first RSA key's p in place of q: n = p·q no longer holds. */
	other_rsa_jwk = test_kv_private_jwk(kek, "RSA");
	bad_rsa = with_member(rsa, "q", member_of(other_rsa_jwk, "q", buf, sizeof(buf)));
	/* y of another point: not on the curve with this x. */
	{
		_cleanup_free_ char *other = test_kv_private_jwk(kek == NULL ? ec256 : ec256, "EC");
		_cleanup_(EVP_PKEY_freep) EVP_PKEY *ec_other = EVP_EC_gen("P-256");
		_cleanup_free_ char *o2 = test_kv_private_jwk(ec_other, "EC");

		(void)other;
		bad_ec = with_member(ec, "y", member_of(o2, "y", buf, sizeof(buf)));
		bad_ec_d = with_member(ec, "d", member_of(o2, "d", buf, sizeof(buf)));
	}
#define CASE(b, e, nd, k, bits_) cases[n++] = (__typeof__(cases[0])){(b), (e), (nd), (k), (bits_)}
	CASE(test_kv_import_body(oct32, true, policy, false), 0, NULL, DEVCLOUD_KTY_OCT, 256);
	CASE(test_kv_import_body(oct16, false, NULL, false), 0, NULL, DEVCLOUD_KTY_OCT, 128);
	CASE(test_kv_import_body(rsa, true, policy, false), 0, NULL, DEVCLOUD_KTY_RSA, 2048);
	CASE(test_kv_import_body(ec, true, policy, false), 0, NULL, DEVCLOUD_KTY_EC, 256);
	CASE(test_kv_import_body(p384, true, policy, true), 0, NULL, DEVCLOUD_KTY_EC, 384);
	CASE(test_kv_import_body(p521, true, policy, false), 0, NULL, DEVCLOUD_KTY_EC, 521);
	CASE(test_kv_import_body(oct20, true, policy, false), -EINVAL, "16, 24 or 32 bytes", 0, 0);
	CASE(test_kv_import_body(bad_rsa, true, policy, false), -EINVAL, "valid key pair", 0, 0);
	CASE(test_kv_import_body(small_jwk, true, policy, false), -EINVAL, "1024 bits", 0, 0);
	CASE(test_kv_import_body(bad_ec, true, policy, false), -EINVAL, "key", 0, 0);
	CASE(test_kv_import_body(bad_ec_d, true, policy, false), -EINVAL, "valid key pair", 0, 0);
	CASE(test_kv_import_body(oct32, true, NULL, false), -EINVAL, "require", 0, 0);
	CASE(test_kv_import_body(oct32, true, "{\"anyOf\":", false), -EINVAL, "release_policy.data",
	     0, 0);
	CASE(test_kv_import_body(oct32, true,
	                         "{\"version\":\"1.0.0\",\"anyOf\":[{\"authority\":"
	                         "\"https://a\",\"allOf\":[{\"claim\":\"x\","
	                         "\"sameAs\":\"1\"}]}]}",
	                         false),
	     -EINVAL, "release_policy.data", 0, 0);
	CASE(strdup("{\"key\":{\"kty\":\"DES\",\"k\":\"AAAA\"}}"), -EINVAL, "key.kty", 0, 0);
	CASE(strdup("{\"key\":{\"kty\":\"oct\"}}"), -ENOENT, "'k'", 0, 0);
	CASE(strdup("{\"key\":{\"kty\":\"oct\",\"k\":\"%%%\"}}"), -EINVAL, "key.k", 0, 0);
	CASE(strdup("{\"key\":{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"key_size\":256}"
	            "}"),
	     -EINVAL, "key_size", 0, 0);
	CASE(strdup("{\"key\":{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"key_ops\":"
	            "[\"fly\"]}}"),
	     -EINVAL, "key_ops[0]", 0, 0);
	CASE(strdup("{\"key\":{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"key_ops\":"
	            "[\"encrypt\",\"encrypt\"]}}"),
	     -EINVAL, "twice", 0, 0);
	CASE(strdup("{\"key\":{\"kty\":\"EC\",\"crv\":\"P-192\",\"x\":\"AA\",\"y\":\"AA\","
	            "\"d\":\"AA\"}}"),
	     -EINVAL, "P-192", 0, 0);
	CASE(strdup("{\"key\":{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAA\"},\"tags\":"
	            "{\"a\":1}}"),
	     -EINVAL, "tags.a", 0, 0);
	CASE(strdup("{\"key\":{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAA\"},"
	            "\"release_policy\":{\"data\":\"e30\",\"contentType\":\"text/plain\"}}"),
	     -EINVAL, "contentType", 0, 0);
	CASE(strdup("[1,2]"), -EINVAL, "JSON object", 0, 0);
	CASE(strdup("{\"key\":"), -EINVAL, "", 0, 0);
	CASE(strdup("{}"), -ENOENT, "key", 0, 0);
	CASE(strdup("{\"key\":{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAA\"},\"hsm\":\"yes\"}"),
	     -EINVAL, "hsm", 0, 0);
	{
		/* Standard, padded base64 policy data (Python samples) is accepted too. */
		_cleanup_free_ char *std = NULL;
		char *body;

		assert_int_equal(b64_encode(policy, strlen(policy), B64_STD, &std), 0);
		assert_true(asprintf(&body,
		                     "{\"key\":%s,\"attributes\":{\"exportable\":true},"
		                     "\"release_policy\":{\"data\":\"%s\",\"immutable\":false},"
		                     "\"tags\":{\"env\":\"test\"}}",
		                     oct32, std) > 0);
		CASE(body, 0, NULL, DEVCLOUD_KTY_OCT, 256);
	}
#undef CASE
	for (size_t i = 0; i < n; i++) {
		struct devcloud_kv_import imp;
		struct skr_error err = {0};
		int r = devcloud_kv_import_parse(cases[i].body, strlen(cases[i].body), &imp, &err);

		if (cases[i].expect == 0) {
			if (r != 0)
				fail_msg("case %zu: %s", i, skr_error_message(&err));
			assert_int_equal(imp.kty, cases[i].kty);
			assert_int_equal(imp.bits, cases[i].bits);
			assert_non_null(imp.material);
			assert_true(imp.n_key_ops > 0);
			if (imp.kty == DEVCLOUD_KTY_OCT) {
				assert_memory_equal(imp.material->data, oct_key, imp.material->len);
			} else {
				/* The material is PKCS#8 DER of the same key. */
				const unsigned char *p = imp.material->data;
				EVP_PKEY *k = d2i_AutoPrivateKey(NULL, &p, (long)imp.material->len);

				assert_non_null(k);
				assert_int_equal(EVP_PKEY_eq(k, imp.kty == DEVCLOUD_KTY_RSA
				                                        ? rsa_key
				                                : imp.bits == 256 ? ec256
				                                : imp.bits == 384 ? ec384
				                                                  : ec521),
				                 1);
				EVP_PKEY_free(k);
			}
			devcloud_kv_import_clear(&imp);
		} else {
			if (r != cases[i].expect)
				fail_msg("case %zu: expected %d, got %d (%s)", i, cases[i].expect,
				         r, skr_error_message(&err));
			if (!strcasestr(skr_error_message(&err), cases[i].needle))
				fail_msg("case %zu: '%s' does not mention '%s'", i,
				         skr_error_message(&err), cases[i].needle);
		}
		free(cases[i].body);
	}
}

/* ---------------------------------------------------------------------------------------------
 * Bearer tokens and api-version
 * ------------------------------------------------------------------------------------------- */

static void test_auth(void **state)
{
	struct devcloud_response resp;
	struct skr_error err = {0};
	_cleanup_free_ char *storage = NULL, *expired = NULL, *mhsm = NULL, *tampered = NULL;
	_cleanup_free_ char *h1 = NULL, *h2 = NULL, *h3 = NULL, *h4 = NULL, *h5 = NULL;
	struct call c = {.method = "GET", .path = "/keys/nothing", .api_version = "7.4"};

	(void)state;
	call(&c, &resp);
	assert_ptr_equal(resp.www_authenticate, dc->www_authenticate);
	expect_error_resp(&resp, 401, "Unauthorized", "no Authorization header");

	c.authorization = "Basic dXNlcjpwYXNz";
	call(&c, &resp);
	expect_error_resp(&resp, 401, "Unauthorized", "not a Bearer");

	c.authorization = "Bearer not.a.token";
	call(&c, &resp);
	expect_error_resp(&resp, 401, "Unauthorized", "bearer token rejected");

	assert_int_equal(devcloud_access_token_issue(dc, &dc->identity.managed[0],
	                                             "https://storage.azure.com", 3600, time(NULL),
	                                             &storage, &err),
	                 0);
	c.authorization = h1 = bearer_header(storage);
	call(&c, &resp);
	expect_error_resp(&resp, 401, "Unauthorized", "audience");

	assert_int_equal(devcloud_access_token_issue(dc, &dc->identity.managed[0],
	                                             "https://vault.azure.net", 60,
	                                             time(NULL) - 3600, &expired, &err),
	                 0);
	c.authorization = h2 = bearer_header(expired);
	call(&c, &resp);
	expect_error_resp(&resp, 401, "Unauthorized", "expired");

	/* A flipped signature byte. */
	tampered = strdup(bearer);
	tampered[strlen(tampered) - 5] ^= 0x01;
	if (tampered[strlen(tampered) - 5] == '.' || tampered[strlen(tampered) - 5] == '/')
		tampered[strlen(tampered) - 5] = 'A';
	c.authorization = h3 = bearer_header(tampered);
	call(&c, &resp);
	expect_error_resp(&resp, 401, "Unauthorized", NULL);

	/* An MAA attestation token (devcloud's other key, no aud) is no bearer token. */
	{
		_cleanup_free_ char *maa = attest_token(runtime, 0);

		c.authorization = h5 = bearer_header(maa);
		call(&c, &resp);
		expect_error_resp(&resp, 401, "Unauthorized", NULL);
	}

	/* Managed HSM's audience (with a trailing slash) is as good as the vault's. */
	assert_int_equal(devcloud_access_token_issue(dc, &dc->identity.managed[0],
	                                             "https://managedhsm.azure.net/", 3600,
	                                             time(NULL), &mhsm, &err),
	                 0);
	c.authorization = h4 = bearer_header(mhsm);
	call(&c, &resp);
	expect_error_resp(&resp, 404, "KeyNotFound", "nothing");

	c.api_version = NULL;
	call(&c, &resp);
	expect_error_resp(&resp, 400, "MissingApiVersionParameter", "api-version");
	c.api_version = "2016-10-01";
	call(&c, &resp);
	expect_error_resp(&resp, 400, "BadParameter", "7.x");
	c.api_version = "7.3";
	c.host = "evil.example.com";
	call(&c, &resp);
	expect_error_resp(&resp, 400, "BadParameter", "Host");
}

/* ---------------------------------------------------------------------------------------------
 * Import, versions, GET, immutable policies
 * ------------------------------------------------------------------------------------------- */

static void test_import_and_get(void **state)
{
	_cleanup_free_ char *policy = default_policy();
	_cleanup_free_ char *oct = test_kv_oct_jwk(oct_key, 32, "oct");
	_cleanup_free_ char *rsa = test_kv_private_jwk(rsa_key, "RSA");
	_cleanup_free_ char *kid1 = NULL, *kid2 = NULL, *kid_rsa = NULL, *path = NULL;
	_cleanup_json_ json_object *out = NULL, *out2 = NULL;
	const char *data;
	_cleanup_free_ uint8_t *decoded = NULL;
	size_t len;

	(void)state;
	kid1 = import("get-me", oct, true, policy, false, 200);
	assert_true(strncmp(kid1, VAULT "/keys/get-me/", strlen(VAULT "/keys/get-me/")) == 0);
	assert_int_equal(strlen(kid1), strlen(VAULT "/keys/get-me/") + 32);
	kid2 = import("get-me", oct, true, policy, false, 200);
	assert_string_not_equal(kid1, kid2);

	/* Latest is the second; the first stays addressable by version. */
	assert_int_equal(kv("GET", "/keys/get-me", NULL, &out), 200);
	assert_string_equal(test_kv_get_path(out, "key", "kid", NULL), kid2);
	assert_string_equal(test_kv_get_path(out, "key", "kty", NULL), "oct-HSM");
	assert_null(json_object_object_get(json_object_object_get(out, "key"), "k"));
	assert_string_equal(test_kv_get_path(out, "attributes", "recoveryLevel", NULL),
	                    "Recoverable+Purgeable");
	assert_true(json_object_get_boolean(
	        json_object_object_get(json_object_object_get(out, "attributes"), "exportable")));
	data = test_kv_get_path(out, "release_policy", "data", NULL);
	assert_non_null(data);
	assert_int_equal(b64_decode(data, strlen(data), B64_ACCEPT_URL, &decoded, &len), 0);
	assert_int_equal(len, strlen(policy));
	assert_memory_equal(decoded, policy, len);
	assert_true(asprintf(&path, "/keys/get-me/%s", kid1 + strlen(VAULT "/keys/get-me/")) > 0);
	assert_int_equal(kv("GET", path, NULL, &out2), 200);
	assert_string_equal(test_kv_get_path(out2, "key", "kid", NULL), kid1);

	/* RSA: public parts only. */
	kid_rsa = import("rsa-get", rsa, false, NULL, false, 200);
	{
		_cleanup_json_ json_object *o = NULL;
		json_object *k;

		assert_int_equal(kv("GET", "/keys/rsa-get", NULL, &o), 200);
		k = json_object_object_get(o, "key");
		assert_string_equal(test_kv_get_path(k, "kty", NULL), "RSA-HSM");
		assert_non_null(json_object_object_get(k, "n"));
		assert_string_equal(test_kv_get_path(k, "e", NULL), "AQAB");
		assert_null(json_object_object_get(k, "d"));
		assert_null(json_object_object_get(k, "p"));
		assert_null(json_object_object_get(o, "release_policy"));
	}

	expect_kv_error("GET", "/keys/no-such-key", NULL, 404, "KeyNotFound", "no-such-key");
	expect_kv_error("GET", "/keys/get-me/0123456789abcdef0123456789abcdef", NULL, 404,
	                "KeyNotFound", NULL);
	expect_kv_error("GET", "/keys/get-me/short", NULL, 404, "NotFound", NULL);
	expect_kv_error("PUT", "/keys/bad_name!", oct, 400, "BadParameter", "name");
	expect_kv_error("DELETE", "/keys/get-me", NULL, 405, "MethodNotAllowed", NULL);
	expect_kv_error("POST", "/keys/get-me/create", "{}", 404, "NotFound", NULL);
}

static void test_immutable(void **state)
{
	_cleanup_free_ char *policy = default_policy();
	_cleanup_free_ char *other = test_kv_policy(issuer, "{\"claim\":\"x\",\"equals\":\"y\"}");
	_cleanup_free_ char *oct = test_kv_oct_jwk(oct_key, 32, "oct-HSM");
	_cleanup_free_ char *k1 = NULL, *k2 = NULL;
	_cleanup_free_ char *body = NULL;
	_cleanup_free_ char *auth = bearer_header(bearer);
	struct devcloud_response resp;

	(void)state;
	k1 = import("locked", oct, true, policy, true, 200);
	/* Same policy, immutable again: a new version is fine. */
	k2 = import("locked", oct, true, policy, true, 200);
	assert_string_not_equal(k1, k2);
	body = test_kv_import_body(oct, true, other, true);
	{
		struct call c = {.method = "PUT",
		                 .path = "/keys/locked",
		                 .api_version = "7.4",
		                 .authorization = auth,
		                 .body = body};

		call(&c, &resp);
		expect_error_resp(&resp, 409, "Conflict", "immutable");
		free(body);
		/* Nor may the same policy become mutable. */
		body = test_kv_import_body(oct, true, policy, false);
		c.body = body;
		call(&c, &resp);
		expect_error_resp(&resp, 409, "Conflict", "immutable");
	}
}

/* ---------------------------------------------------------------------------------------------
 * Release
 * ------------------------------------------------------------------------------------------- */

/* POST release and return the status; on 200, the unwrapped key in *key. */
static unsigned do_release(const char *path, const char *token, const char *enc, const EVP_MD *md,
                           uint8_t **key, size_t *key_len, json_object **payload_out)
{
	_cleanup_free_ char *body = release_body(token, enc);
	_cleanup_json_ json_object *out = NULL, *header = NULL, *payload = NULL, *blob = NULL;
	const char *jws, *hsm, *ct64;
	_cleanup_free_ uint8_t *hsm_raw = NULL, *ct = NULL;
	size_t hsm_len, ct_len;
	unsigned st = kv("POST", path, body, &out);

	if (st != 200)
		return st;
	jws = test_kv_get_path(out, "value", NULL);
	assert_non_null(jws);
	header = test_kv_jws_segment(jws, 0);
	payload = test_kv_jws_segment(jws, 1);
	assert_non_null(header);
	assert_non_null(payload);
	assert_string_equal(test_kv_get_path(header, "alg", NULL), "RS256");
	assert_string_equal(test_kv_get_path(header, "kid", NULL), dc->vault.thumbprint_hex);
	assert_string_equal(test_kv_get_path(header, "x5t", NULL), dc->vault.x5t);
	assert_string_equal(test_kv_get_path(header, "x5t#S256", NULL), dc->vault.x5t_s256);
	{
		json_object *x5c = json_object_object_get(header, "x5c");

		assert_int_equal(json_object_array_length(x5c), 2);
		/* The CA last: what clients anchor to. */
		assert_string_equal(json_object_get_string(json_object_array_get_idx(x5c, 1)),
		                    dc->x5c[1]);
	}
	/* RS256 signature with the vault certificate's key. */
	{
		const char *dot2 = strrchr(jws, '.');
		_cleanup_free_ uint8_t *sig = NULL;
		size_t sig_len;
		_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();

		assert_int_equal(
		        b64_decode(dot2 + 1, strlen(dot2 + 1), B64_ACCEPT_URL, &sig, &sig_len), 0);
		assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, dc->vault.key),
		                 1);
		assert_int_equal(EVP_DigestVerify(ctx, sig, sig_len, (const uint8_t *)jws,
		                                  (size_t)(dot2 - jws)),
		                 1);
	}
	hsm = test_kv_get_path(payload, "response", "key", "key", "key_hsm", NULL);
	assert_non_null(hsm);
	assert_int_equal(b64_decode(hsm, strlen(hsm), B64_ACCEPT_URL, &hsm_raw, &hsm_len), 0);
	assert_int_equal(json_parse((const char *)hsm_raw, hsm_len, "key_hsm", &blob, NULL), 0);
	assert_string_equal(test_kv_get_path(blob, "schema_version", NULL), "1.0");
	assert_string_equal(test_kv_get_path(blob, "header", "alg", NULL), "dir");
	assert_string_equal(test_kv_get_path(blob, "header", "kid", NULL), "kek-1");
	assert_string_equal(test_kv_get_path(blob, "header", "enc", NULL),
	                    enc ? enc : "CKM_RSA_AES_KEY_WRAP");
	assert_string_equal(test_kv_get_path(payload, "request", "enc", NULL),
	                    enc ? enc : "CKM_RSA_AES_KEY_WRAP");
	assert_string_equal(test_kv_get_path(payload, "request", "api-version", NULL), "7.4");
	ct64 = test_kv_get_path(blob, "ciphertext", NULL);
	assert_int_equal(b64_decode(ct64, strlen(ct64), B64_ACCEPT_URL, &ct, &ct_len), 0);
	*key = test_kv_unwrap(kek, md, ct, ct_len, key_len);
	assert_non_null(*key);
	if (payload_out)
		*payload_out = TAKE_PTR(payload);
	return st;
}

static void test_release_allowed(void **state)
{
	_cleanup_free_ char *policy = default_policy();
	_cleanup_free_ char *oct = test_kv_oct_jwk(oct_key, 32, "oct-HSM");
	_cleanup_free_ char *rsa = test_kv_private_jwk(rsa_key, "RSA-HSM");
	_cleanup_free_ char *ec = test_kv_private_jwk(ec384, "EC-HSM");
	_cleanup_free_ char *token = attest_token(runtime, 0);
	_cleanup_free_ char *k = NULL, *k2 = NULL, *k3 = NULL;
	static const struct {
		const char *enc;
		const char *md;
	} encs[] = {{NULL, "SHA1"},
	            {"CKM_RSA_AES_KEY_WRAP", "SHA1"},
	            {"RSA_AES_KEY_WRAP_256", "SHA256"},
	            {"RSA_AES_KEY_WRAP_384", "SHA384"}};

	(void)state;
	k = import("release-oct", oct, true, policy, false, 200);
	for (size_t i = 0; i < ELEMENTSOF(encs); i++) {
		_cleanup_free_ uint8_t *key = NULL;
		_cleanup_json_ json_object *payload = NULL;
		_cleanup_(EVP_MD_freep) EVP_MD *md = EVP_MD_fetch(NULL, encs[i].md, NULL);
		size_t len = 0;

		assert_int_equal(do_release("/keys/release-oct/release", token, encs[i].enc, md,
		                            &key, &len, &payload),
		                 200);
		assert_int_equal(len, sizeof(oct_key));
		assert_memory_equal(key, oct_key, len);
		assert_string_equal(test_kv_get_path(payload, "request", "kid", NULL),
		                    VAULT "/keys/release-oct");
		assert_string_equal(
		        test_kv_get_path(payload, "response", "key", "key", "kid", NULL), k);
		assert_string_equal(
		        test_kv_get_path(payload, "response", "key", "key", "kty", NULL),
		        "oct-HSM");
		assert_non_null(test_kv_get_path(payload, "response", "key", "release_policy",
		                                 "data", NULL));
	}
	/* By version, and RSA / EC keys as PKCS#8 of the same key. */
	{
		_cleanup_free_ char *path = NULL;
		_cleanup_free_ uint8_t *key = NULL;
		size_t len;

		assert_true(asprintf(&path, "/keys/release-oct/%s/release", strrchr(k, '/') + 1) >
		            0);
		assert_int_equal(do_release(path, token, NULL, EVP_sha1(), &key, &len, NULL), 200);
	}
	k2 = import("release-rsa", rsa, true, policy, false, 200);
	k3 = import("release-ec", ec, true, policy, false, 200);
	for (int i = 0; i < 2; i++) {
		_cleanup_free_ uint8_t *key = NULL;
		_cleanup_json_ json_object *payload = NULL;
		const unsigned char *p;
		EVP_PKEY *got;
		size_t len;

		assert_int_equal(
		        do_release(i ? "/keys/release-ec/release" : "/keys/release-rsa/release",
		                   token, NULL, EVP_sha1(), &key, &len, &payload),
		        200);
		p = key;
		got = d2i_AutoPrivateKey(NULL, &p, (long)len);
		assert_non_null(got);
		assert_int_equal(EVP_PKEY_eq(got, i ? ec384 : rsa_key), 1);
		EVP_PKEY_free(got);
		assert_string_equal(
		        test_kv_get_path(payload, "response", "key", "key", "kty", NULL),
		        i ? "EC-HSM" : "RSA-HSM");
		if (i)
			assert_string_equal(
			        test_kv_get_path(payload, "response", "key", "key", "crv", NULL),
			        "P-384");
		else
			assert_non_null(
			        test_kv_get_path(payload, "response", "key", "key", "n", NULL));
	}
}

/* A copy of @token with the payload replaced by @edit(payload) and, when @resign, signed again
 * with devcloud's attestation key (as if devcloud had issued it). */
static char *rewrite_token(const char *token, void (*edit)(json_object *), bool resign)
{
	_cleanup_json_ json_object *header = test_kv_jws_segment(token, 0);
	_cleanup_json_ json_object *payload = test_kv_jws_segment(token, 1);
	struct skr_error err = {0};
	char *out = NULL;

	edit(payload);
	if (resign) {
		assert_int_equal(devcloud_jws_sign(dc->signing_key, header, payload, &out, &err),
		                 0);
	} else {
		_cleanup_free_ char *p64 = NULL;
		const char *dot1 = strchr(token, '.'), *dot2 = strrchr(token, '.');
		const char *text = json_compact(payload);

		assert_int_equal(b64_encode(text, strlen(text), B64_URL_NOPAD, &p64), 0);
		assert_true(asprintf(&out, "%.*s.%s%s", (int)(dot1 - token), token, p64, dot2) > 0);
	}
	return out;
}

static void edit_expire(json_object *p)
{
	time_t now = time(NULL);

	json_object_object_add(p, "iat", json_object_new_int64(now - 7200));
	json_object_object_add(p, "nbf", json_object_new_int64(now - 7200));
	json_object_object_add(p, "exp", json_object_new_int64(now - 3600));
}

static void edit_debug(json_object *p)
{
	json_object_object_add(p, "x-ms-sevsnpvm-is-debuggable", json_object_new_boolean(0));
	json_object_object_add(p, "x-ms-sevsnpvm-hostdata", json_object_new_string("00"));
}

static void test_release_denied(void **state)
{
	_cleanup_free_ char *oct = test_kv_oct_jwk(oct_key, 32, "oct-HSM");
	_cleanup_free_ char *token = attest_token(runtime, 0);
	_cleanup_free_ char *vmpl1 = attest_token(runtime, 1);
	_cleanup_free_ char *good = default_policy();
	char cond[512], wrong_hex[65];
	struct {
		const char *name;
		char *policy;
		const char *token;
		const char *needle;
	} cases[12];
	size_t n = 0;

	(void)state;
	memset(wrong_hex, 'e', 64);
	wrong_hex[64] = '\0';
	snprintf(cond, sizeof(cond), "{\"claim\":\"x-ms-sevsnpvm-hostdata\",\"equals\":\"%s\"}",
	         wrong_hex);
	cases[n++] = (__typeof__(cases[0])){"deny-hostdata", test_kv_policy(issuer, cond), token,
	                                    "x-ms-sevsnpvm-hostdata"};
	cases[n++] = (__typeof__(cases[0])){
	        "deny-debug",
	        test_kv_policy(issuer,
	                       "{\"claim\":\"x-ms-sevsnpvm-is-debuggable\",\"equals\":true}"),
	        token, "x-ms-sevsnpvm-is-debuggable"};
	/* A good policy, but the report came from VMPL 1. */
	cases[n++] = (__typeof__(cases[0])){"deny-vmpl", strdup(good), vmpl1, "x-ms-sevsnpvm-vmpl"};
	cases[n++] = (__typeof__(cases[0])){
	        "deny-compliance",
	        test_kv_policy(issuer,
	                       "{\"claim\":\"x-ms-compliance-status\",\"equals\":\"other-uvm\"}"),
	        token, "x-ms-compliance-status"};
	cases[n++] = (__typeof__(cases[0])){
	        "deny-authority",
	        test_kv_policy("https://sharedeus.eus.attest.azure.net",
	                       "{\"claim\":\"x-ms-sevsnpvm-vmpl\",\"equals\":\"0\"}"),
	        token, "not an authority"};
	cases[n++] = (__typeof__(cases[0])){
	        "deny-missing-claim",
	        test_kv_policy(issuer, "{\"claim\":\"x-ms-no-such-claim\",\"exists\":true}"), token,
	        "x-ms-no-such-claim"};
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *path = NULL, *body = release_body(cases[i].token, NULL);

		free(import(cases[i].name, oct, true, cases[i].policy, false, 200));
		assert_true(asprintf(&path, "/keys/%s/release", cases[i].name) > 0);
		expect_kv_error("POST", path, body, 403, "Forbidden", cases[i].needle);
		free(cases[i].policy);
	}

	/* Token problems, against a key whose policy the genuine token satisfies. */
	free(import("deny-token", oct, true, good, false, 200));
	{
		_cleanup_free_ char *expired = rewrite_token(token, edit_expire, true);
		_cleanup_free_ char *tampered = rewrite_token(token, edit_debug, false);
		_cleanup_free_ char *b1 = release_body(expired, NULL),
		                    *b2 = release_body(tampered, NULL);
		_cleanup_free_ char *b3 = release_body("garbage", NULL);
		_cleanup_free_ char *b4 = release_body(token, "AES_KEY_WRAP");

		expect_kv_error("POST", "/keys/deny-token/release", b1, 403, "Forbidden", "expire");
		expect_kv_error("POST", "/keys/deny-token/release", b2, 403, "Forbidden", NULL);
		expect_kv_error("POST", "/keys/deny-token/release", b3, 400, "BadParameter",
		                "target");
		expect_kv_error("POST", "/keys/deny-token/release", b4, 400, "BadParameter", "enc");
		expect_kv_error("POST", "/keys/deny-token/release", "{\"nonce\":\"x\"}", 400,
		                "BadParameter", "target");
		expect_kv_error("POST", "/keys/deny-token/release", "not json", 400, "BadParameter",
		                NULL);
	}
	/* No key to wrap for: runtime data without an RSA encryption key. */
	{
		_cleanup_free_ char *rt =
		        strdup("{\"keys\":[{\"kty\":\"RSA\",\"key_ops\":[\"sign\"],"
		               "\"n\":\"AQAB\",\"e\":\"AQAB\"}]}");
		_cleanup_free_ char *t = attest_token(rt, 0), *b = release_body(t, NULL);

		expect_kv_error("POST", "/keys/deny-token/release", b, 400, "BadParameter",
		                "x-ms-runtime.keys");
	}
	/* Not exportable, disabled, unknown. */
	{
		_cleanup_free_ char *b = release_body(token, NULL);
		_cleanup_free_ char *disabled = NULL, *data = NULL;

		free(import("not-exportable", oct, false, good, false, 200));
		expect_kv_error("POST", "/keys/not-exportable/release", b, 403, "Forbidden",
		                "not exportable");
		assert_int_equal(b64_encode(good, strlen(good), B64_URL_NOPAD, &data), 0);
		assert_true(asprintf(&disabled,
		                     "{\"key\":%s,\"attributes\":{\"exportable\":true,\"enabled\":"
		                     "false},\"release_policy\":{\"data\":\"%s\"}}",
		                     oct, data) > 0);
		assert_int_equal(kv("PUT", "/keys/disabled", disabled, NULL), 200);
		expect_kv_error("POST", "/keys/disabled/release", b, 403, "Forbidden", "disabled");
		expect_kv_error("POST", "/keys/never-imported/release", b, 404, "KeyNotFound",
		                NULL);
	}
}

/* ---------------------------------------------------------------------------------------------
 * The sealed store
 * ------------------------------------------------------------------------------------------- */

static void test_store_persistence(void **state)
{
	_cleanup_free_ char *policy = default_policy();
	_cleanup_free_ char *oct = test_kv_oct_jwk(oct_key, 32, "oct-HSM");
	_cleanup_free_ char *kid = NULL, *keys_dir = NULL, *victim = NULL, *tmp = NULL;
	struct devcloud_keystore *ks = NULL;
	const struct devcloud_kv_key *k;
	struct skr_error err = {0};
	size_t before;
	DIR *d;
	struct dirent *e;

	(void)state;
	kid = import("persist", oct, true, policy, true, 200);
	before = devcloud_keystore_count(dc->vault.store);
	assert_int_equal(devcloud_keystore_open(state_dir, &ks, &err), 0);
	assert_int_equal(devcloud_keystore_count(ks), before);
	k = devcloud_keystore_find(ks, "PERSIST", NULL); /* names are case-insensitive */
	assert_non_null(k);
	assert_string_equal(k->version, strrchr(kid, '/') + 1);
	assert_true(k->imp.immutable);
	assert_non_null(k->policy);
	assert_memory_equal(k->imp.material->data, oct_key, sizeof(oct_key));
	devcloud_keystore_free(ks);

	/* Nothing in keys/ shows the key or the policy in the clear. */
	keys_dir = path_join(state_dir, "keys");
	d = opendir(keys_dir);
	assert_non_null(d);
	while ((e = readdir(d))) {
		_cleanup_free_ char *p = NULL, *data = NULL;
		size_t len;

		if (e->d_name[0] == '.')
			continue;
		p = path_join(keys_dir, e->d_name);
		assert_int_equal(read_file(p, 1 << 20, &data, &len), 0);
		assert_null(memmem(data, len, oct_key, sizeof(oct_key)));
		assert_null(memmem(data, len, "x-ms-sevsnpvm", 13));
		if (strncmp(e->d_name, "persist.", 8) == 0)
			victim = strdup(p);
	}
	closedir(d);
	assert_non_null(victim);

	/* A leftover temporary file (a crash mid-import) is ignored. */
	assert_true(asprintf(&tmp, "%s/persist.%s.sealed.tmp.Ab12Cd", keys_dir,
	                     strrchr(kid, '/') + 1) > 0);
	assert_int_equal(write_file_atomic(tmp, "partial", 7, 0600), 0);
	assert_int_equal(devcloud_keystore_open(state_dir, &ks, &err), 0);
	assert_int_equal(devcloud_keystore_count(ks), before);
	devcloud_keystore_free(ks);

	/* One flipped bit: that version is skipped (GCM tag), the rest loads. */
	{
		_cleanup_free_ char *data = NULL;
		size_t len;

		assert_int_equal(read_file(victim, 1 << 20, &data, &len), 0);
		data[len / 2] ^= 0x10;
		assert_int_equal(write_file_atomic(victim, data, len, 0600), 0);
		assert_int_equal(devcloud_keystore_open(state_dir, &ks, &err), 0);
		assert_int_equal(devcloud_keystore_count(ks), before - 1);
		assert_null(devcloud_keystore_find(ks, "persist", NULL));
		devcloud_keystore_free(ks);
		/* Truncated to the header: skipped too. */
		assert_int_equal(write_file_atomic(victim, data, 10, 0600), 0);
		assert_int_equal(devcloud_keystore_open(state_dir, &ks, &err), 0);
		assert_int_equal(devcloud_keystore_count(ks), before - 1);
		devcloud_keystore_free(ks);
	}
	/* A valid file renamed to another key: the AAD binds the name, so it is refused. */
	{
		_cleanup_free_ char *renamed = NULL;
		const struct devcloud_kv_key *g =
		        devcloud_keystore_find(dc->vault.store, "get-me", NULL);
		_cleanup_free_ char *src = NULL;

		assert_non_null(g);
		assert_true(asprintf(&src, "%s/%s.%s.sealed", keys_dir, g->name, g->version) > 0);
		assert_true(asprintf(&renamed, "%s/stolen.%s.sealed", keys_dir, g->version) > 0);
		assert_int_equal(link(src, renamed), 0);
		assert_int_equal(devcloud_keystore_open(state_dir, &ks, &err), 0);
		assert_null(devcloud_keystore_find(ks, "stolen", NULL));
		devcloud_keystore_free(ks);
		unlink(renamed);
	}
	unlink(tmp);
}

/* ---------------------------------------------------------------------------------------------
 * Identity endpoints
 * ------------------------------------------------------------------------------------------- */

static void test_imds(void **state)
{
	static const struct devcloud_kv md_true[] = {{"Metadata", "true"}};
	static const struct devcloud_kv fwd[] = {{"Metadata", "true"},
	                                         {"X-Forwarded-For", "10.0.0.1"}};
	struct devcloud_kv q[3];
	struct devcloud_response resp;
	struct call c = {.method = "GET",
	                 .path = "/metadata/identity/oauth2/token",
	                 .service = DEVCLOUD_SERVICE_IMDS,
	                 .api_version = "2018-02-01",
	                 .query = q,
	                 .n_query = 1};
	_cleanup_json_ json_object *root = NULL;
	struct skr_error err = {0};
	char header[8192];

	(void)state;
	q[0] = (struct devcloud_kv){"resource", "https://vault.azure.net"};
	call(&c, &resp);
	assert_int_equal(resp.status, 400);
	assert_non_null(strstr(resp.body, "Metadata"));
	devcloud_response_clear(&resp);

	c.extra_headers = fwd;
	c.n_extra = 2;
	call(&c, &resp);
	assert_int_equal(resp.status, 400);
	assert_non_null(strstr(resp.body, "X-Forwarded-For"));
	devcloud_response_clear(&resp);

	c.extra_headers = md_true;
	c.n_extra = 1;
	call(&c, &resp);
	if (resp.status != 200)
		fail_msg("imds: %u %s", resp.status, resp.body);
	assert_true(resp.secret_body);
	root = json_tokener_parse(resp.body);
	devcloud_response_clear(&resp);
	assert_string_equal(test_kv_get_path(root, "token_type", NULL), "Bearer");
	assert_string_equal(test_kv_get_path(root, "resource", NULL), "https://vault.azure.net");
	assert_string_equal(test_kv_get_path(root, "client_id", NULL),
	                    dc->identity.managed[0].client_id);
	assert_true(
	        json_object_is_type(json_object_object_get(root, "expires_in"), json_type_string));
	assert_string_equal(test_kv_get_path(root, "expires_in", NULL), "86399");
	assert_true(
	        json_object_is_type(json_object_object_get(root, "expires_on"), json_type_string));
	assert_true(
	        json_object_is_type(json_object_object_get(root, "not_before"), json_type_string));
	snprintf(header, sizeof(header), "Bearer %s", test_kv_get_path(root, "access_token", NULL));
	assert_int_equal(devcloud_access_token_check(dc, header, time(NULL), &err), 0);
	{
		json_object *p =
		        test_kv_jws_segment(test_kv_get_path(root, "access_token", NULL), 1);

		assert_string_equal(test_kv_get_path(p, "appid", NULL),
		                    dc->identity.managed[0].client_id);
		assert_string_equal(test_kv_get_path(p, "tid", NULL), dc->identity.tenant_id);
		json_object_put(p);
	}

	/* Selectors: the right client_id works, an unknown one or two selectors do not. */
	q[1] = (struct devcloud_kv){"client_id", dc->identity.managed[0].client_id};
	c.n_query = 2;
	call(&c, &resp);
	assert_int_equal(resp.status, 200);
	devcloud_response_clear(&resp);
	q[1] = (struct devcloud_kv){"client_id", "00000000-0000-0000-0000-000000000000"};
	call(&c, &resp);
	assert_int_equal(resp.status, 400);
	assert_non_null(strstr(resp.body, "Identity not found"));
	devcloud_response_clear(&resp);
	q[1] = (struct devcloud_kv){"client_id", dc->identity.managed[0].client_id};
	q[2] = (struct devcloud_kv){"object_id", dc->identity.managed[0].object_id};
	c.n_query = 3;
	call(&c, &resp);
	assert_int_equal(resp.status, 400);
	assert_non_null(strstr(resp.body, "mutually exclusive"));
	devcloud_response_clear(&resp);

	c.n_query = 0;
	call(&c, &resp);
	assert_int_equal(resp.status, 400);
	assert_non_null(strstr(resp.body, "resource"));
	devcloud_response_clear(&resp);
	c.api_version = NULL;
	call(&c, &resp);
	assert_int_equal(resp.status, 400);
	assert_non_null(strstr(resp.body, "api-version"));
	devcloud_response_clear(&resp);
	/* Not on the other listeners. */
	c.service = DEVCLOUD_SERVICE_KV;
	call(&c, &resp);
	assert_int_equal(resp.status, 404);
	devcloud_response_clear(&resp);
}

static unsigned entra(const char *tenant, const char *form, json_object **out)
{
	static const struct devcloud_kv ct[] = {
	        {"Content-Type", "application/x-www-form-urlencoded"}};
	struct devcloud_response resp;
	char path[256];
	struct call c = {.method = "POST",
	                 .path = path,
	                 .attest = true,
	                 .host = attest_host,
	                 .extra_headers = ct,
	                 .n_extra = 1,
	                 .body = form};
	unsigned st;

	snprintf(path, sizeof(path), "/%s/oauth2/v2.0/token", tenant);
	call(&c, &resp);
	st = resp.status;
	*out = json_tokener_parse(resp.body);
	assert_non_null(*out);
	devcloud_response_clear(&resp);
	return st;
}

static char *form_for(const char *client_id, const char *scope, const char *assertion)
{
	char *s;

	/* scope URL-encoded as clients send it; '+'-free base64url assertion. */
	assert_true(asprintf(&s,
	                     "client_id=%s&scope=%s&grant_type=client_credentials&"
	                     "client_assertion_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Aclient-"
	                     "assertion-type%%3Ajwt-bearer&client_assertion=%s",
	                     client_id, scope, assertion) > 0);
	return s;
}

static char *assertion_with(const char *sub, const char *aud, long exp_offset, bool own_key)
{
	_cleanup_json_ json_object *h = json_object_new_object(), *p = json_object_new_object();
	struct skr_error err = {0};
	time_t now = time(NULL);
	char *out = NULL;

	json_object_object_add(h, "alg", json_object_new_string("RS256"));
	json_object_object_add(h, "typ", json_object_new_string("JWT"));
	json_object_object_add(p, "iss", json_object_new_string(dc->identity.oidc_issuer));
	json_object_object_add(p, "sub", json_object_new_string(sub));
	json_object_object_add(p, "aud", json_object_new_string(aud));
	json_object_object_add(p, "iat", json_object_new_int64(now - 10));
	json_object_object_add(p, "exp", json_object_new_int64(now + exp_offset));
	assert_int_equal(
	        devcloud_jws_sign(own_key ? dc->identity_key : dc->signing_key, h, p, &out, &err),
	        0);
	return out;
}

static void test_entra(void **state)
{
	const char *tenant = dc->identity.tenant_id, *app = dc->identity.apps[0].client_id;
	const char *scope = "https%3A%2F%2Fvault.azure.net%2F.default";
	_cleanup_free_ char *assertion = NULL;
	struct skr_error err = {0};
	struct {
		const char *tenant, *client, *scope;
		char *assertion;
		unsigned status;
		const char *needle;
	} cases[10];
	size_t n = 0;

	(void)state;
	assert_int_equal(devcloud_federated_token(state_dir, NULL, NULL, 600, &assertion, &err), 0);
	{
		_cleanup_free_ char *form = form_for(app, scope, assertion);
		_cleanup_json_ json_object *out = NULL;
		char header[8192];

		assert_int_equal(entra(tenant, form, &out), 200);
		assert_string_equal(test_kv_get_path(out, "token_type", NULL), "Bearer");
		assert_true(json_object_is_type(json_object_object_get(out, "expires_in"),
		                                json_type_int));
		snprintf(header, sizeof(header), "Bearer %s",
		         test_kv_get_path(out, "access_token", NULL));
		assert_int_equal(devcloud_access_token_check(dc, header, time(NULL), &err), 0);
	}
	cases[n++] = (__typeof__(cases[0])){"00000000-1111-2222-3333-444444444444",
	                                    app,
	                                    scope,
	                                    strdup(assertion),
	                                    400,
	                                    "AADSTS90002"};
	cases[n++] = (__typeof__(cases[0])){tenant, "00000000-1111-2222-3333-444444444444",
	                                    scope,  strdup(assertion),
	                                    400,    "AADSTS700016"};
	cases[n++] = (__typeof__(cases[0])){
	        tenant,         app, "https%3A%2F%2Fvault.azure.net", strdup(assertion), 400,
	        "AADSTS1002012"};
	cases[n++] = (__typeof__(cases[0])){
	        tenant,
	        app,
	        scope,
	        assertion_with("system:serviceaccount:other:sa", DEVCLOUD_FEDERATED_AUDIENCE, 600, true),
	        400,
	        "AADSTS70021"};
	cases[n++] = (__typeof__(cases[0])){
	        tenant, app,
	        scope,  assertion_with(DEVCLOUD_DEFAULT_WORKLOAD_SUBJECT, "api://other", 600, true),
	        400,    "AADSTS700212"};
	cases[n++] = (__typeof__(cases[0])){
	        tenant,
	        app,
	        scope,
	        assertion_with(DEVCLOUD_DEFAULT_WORKLOAD_SUBJECT, DEVCLOUD_FEDERATED_AUDIENCE, -3600, true),
	        400,
	        "AADSTS700024"};
	/* Signed by a key Entra does not trust for this issuer. */
	cases[n++] = (__typeof__(cases[0])){
	        tenant,
	        app,
	        scope,
	        assertion_with(DEVCLOUD_DEFAULT_WORKLOAD_SUBJECT, DEVCLOUD_FEDERATED_AUDIENCE, 600, false),
	        400,
	        "AADSTS700027"};
	cases[n++] =
	        (__typeof__(cases[0])){tenant, app, scope, strdup(""), 400, "client_assertion"};
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *form =
		        form_for(cases[i].client, cases[i].scope, cases[i].assertion);
		_cleanup_json_ json_object *out = NULL;
		unsigned st = entra(cases[i].tenant, form, &out);
		const char *desc = test_kv_get_path(out, "error_description", NULL);

		if (st != cases[i].status || !desc || !strstr(desc, cases[i].needle))
			fail_msg("case %zu: %u %s", i, st, json_compact(out));
		free(cases[i].assertion);
	}
	{
		_cleanup_json_ json_object *out = NULL;

		assert_int_equal(entra(tenant, "grant_type=password&client_id=x", &out), 400);
		assert_string_equal(test_kv_get_path(out, "error", NULL), "unsupported_grant_type");
	}
	{
		_cleanup_json_ json_object *out = NULL;

		assert_int_equal(entra(tenant, "a=1&a=2", &out), 400);
		assert_non_null(strstr(test_kv_get_path(out, "error_description", NULL), "twice"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_import_parse),
	        cmocka_unit_test(test_auth),
	        cmocka_unit_test(test_import_and_get),
	        cmocka_unit_test(test_immutable),
	        cmocka_unit_test(test_release_allowed),
	        cmocka_unit_test(test_release_denied),
	        cmocka_unit_test(test_store_persistence),
	        cmocka_unit_test(test_imds),
	        cmocka_unit_test(test_entra),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
