/* SPDX-License-Identifier: MIT */
/*
 * Key Vault client (skr.h "Key Vault / Managed HSM client"): the import request as §5.1 spells
 * it, Key Vault's error bodies carried into messages, and reading a key's release policy back.
 * The vault is the scripted HTTPS server.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "b64.h"
#include "cleanup.h"
#include "json_util.h"
#include "log.h"
#include "ossl.h"
#include "skr.h"
#include "test_http_server.h"

#define JWK                                                                                        \
	"{\"kty\":\"oct-HSM\",\"k\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\","              \
	"\"key_ops\":[\"encrypt\",\"decrypt\"],\"key_size\":256}"
/* A policy whose base64url contains '-' and '_' and needs padding (length not % 3). */
#define POLICY                                                                                     \
	"{\"version\":\"1.0.0\",\"anyOf\":[{\"authority\":\"https://x.attest.azure.net\","         \
	"\"allOf\":[{\"claim\":\"x-ms-sevsnpvm-hostdata\",\"equals\":\"ff?>\"}]}]}"

static struct {
	struct test_http_server *srv;
	char endpoint[64]; /* 127.0.0.1:PORT */
} W;

static int setup(void **state)
{
	assert_int_equal(test_http_server_start(true, &W.srv), 0);
	snprintf(W.endpoint, sizeof(W.endpoint), "%s",
	         test_http_server_url(W.srv) + strlen("https://"));
	return 0;
}

static int teardown(void **state)
{
	test_http_server_stop(W.srv);
	return 0;
}

static int reset(void **state)
{
	test_http_server_reset(W.srv);
	return 0;
}

static struct skr_akv_import import_req(void)
{
	return (struct skr_akv_import){
	        .endpoint = W.endpoint,
	        .name = "mykey",
	        .jwk_json = JWK,
	        .jwk_len = strlen(JWK),
	        .hsm = true,
	        .policy_json = POLICY,
	        .immutable = false,
	        .exportable = true,
	        .bearer_token = "bearer-abc",
	        .ca_bundle = test_http_server_ca_file(W.srv),
	        .timeout_ms = 5000,
	};
}

static void reply_kid(const char *kid)
{
	_cleanup_free_ char *body = NULL;

	assert_true(
	        asprintf(&body,
	                 "{\"key\":{\"kid\":\"%s\",\"kty\":\"oct-HSM\",\"key_ops\":[\"encrypt\"]},"
	                 "\"attributes\":{\"enabled\":true,\"exportable\":true}}",
	                 kid) > 0);
	test_http_server_reply(W.srv, "/keys/mykey", 200, "application/json; charset=utf-8", body);
}

static json_object *field(json_object *o, const char *name)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, name, &v))
		fail_msg("request body has no '%s'", name);
	return v;
}

static void test_import_request(void **state)
{
	struct skr_akv_import imp = import_req();
	_cleanup_free_ char *kid = NULL;
	_cleanup_free_ uint8_t *policy = NULL;
	_cleanup_json_ json_object *body = NULL, *jwk = NULL;
	const struct test_http_request *req;
	json_object *rp;
	struct skr_error err = {0};
	const char *data;
	size_t policy_len;

	reply_kid("https://myvault.vault.azure.net/keys/mykey/0123abcd");
	if (skr_akv_import_key(&imp, &kid, &err) < 0)
		fail_msg("import: %s", err.msg);
	assert_string_equal(kid, "https://myvault.vault.azure.net/keys/mykey/0123abcd");

	req = test_http_server_request(W.srv, 0);
	assert_string_equal(req->method, "PUT");
	assert_string_equal(req->target, "/keys/mykey?api-version=7.4");
	assert_string_equal(test_http_request_header(req, "Authorization"), "Bearer bearer-abc");
	assert_string_equal(test_http_request_header(req, "Content-Type"), "application/json");
	assert_int_equal(json_parse(req->body, req->body_len, "body", &body, &err), 0);
	/* The JWK goes in unchanged. */
	assert_int_equal(json_parse(JWK, strlen(JWK), "jwk", &jwk, &err), 0);
	assert_true(json_object_equal(field(body, "key"), jwk));
	assert_true(json_object_get_boolean(field(body, "hsm")));
	assert_true(json_object_get_boolean(field(field(body, "attributes"), "exportable")));
	rp = field(body, "release_policy");
	assert_string_equal(json_object_get_string(field(rp, "contentType")),
	                    "application/json; charset=utf-8");
	assert_false(json_object_get_boolean(field(rp, "immutable")));
	/* data: base64url without padding of the policy, byte for byte. */
	data = json_object_get_string(field(rp, "data"));
	assert_null(strpbrk(data, "=+/"));
	assert_non_null(strpbrk(data, "-_"));
	assert_int_equal(b64_decode(data, strlen(data), B64_ACCEPT_URL, &policy, &policy_len), 0);
	assert_int_equal(policy_len, strlen(POLICY));
	assert_memory_equal(policy, POLICY, policy_len);
}

/* immutable, non-HSM, the Go config's "api-version=" spelling, an https:// endpoint. */
static void test_import_variants(void **state)
{
	struct skr_akv_import imp = import_req();
	_cleanup_free_ char *kid = NULL, *url = NULL;
	_cleanup_json_ json_object *body = NULL;
	const struct test_http_request *req;
	struct skr_error err = {0};

	assert_true(asprintf(&url, "%s/", test_http_server_url(W.srv)) > 0);
	imp.endpoint = url;
	imp.api_version = "api-version=7.3";
	imp.immutable = true;
	imp.hsm = false;
	imp.exportable = false;
	reply_kid("https://v/keys/mykey/1");
	if (skr_akv_import_key(&imp, &kid, &err) < 0)
		fail_msg("import: %s", err.msg);
	req = test_http_server_request(W.srv, 0);
	assert_string_equal(req->target, "/keys/mykey?api-version=7.3");
	assert_int_equal(json_parse(req->body, req->body_len, "body", &body, &err), 0);
	assert_false(json_object_get_boolean(field(body, "hsm")));
	assert_false(json_object_get_boolean(field(field(body, "attributes"), "exportable")));
	assert_true(json_object_get_boolean(field(field(body, "release_policy"), "immutable")));

	/* Without a policy, no release_policy member. */
	json_object_put(body);
	body = NULL;
	free(kid);
	kid = NULL;
	test_http_server_reset(W.srv);
	imp.policy_json = NULL;
	reply_kid("https://v/keys/mykey/2");
	assert_int_equal(skr_akv_import_key(&imp, &kid, &err), 0);
	req = test_http_server_request(W.srv, 0);
	assert_int_equal(json_parse(req->body, req->body_len, "body", &body, &err), 0);
	assert_false(json_object_object_get_ex(body, "release_policy", NULL));
}

static void test_import_errors(void **state)
{
	static const struct {
		unsigned status;
		const char *body;
		int expect;
		const char *msg;
	} cases[] = {
	        {403,
	         "{\"error\":{\"code\":\"Forbidden\",\"message\":\"Caller is not authorized to "
	         "perform action on resource.\"}}",
	         -EACCES,
	         "HTTP 403: Forbidden: Caller is not authorized to perform action on "
	         "resource."},
	        {400,
	         "{\"error\":{\"code\":\"BadParameter\",\"message\":\"Property key_ops has invalid "
	         "value\"}}",
	         -EINVAL, "key import of \"mykey\": https://127.0.0.1"},
	        {401, "", -EACCES, "bearer token was refused"},
	        {409, "{\"error\":{\"code\":\"Conflict\",\"message\":\"deleted\"}}", -EEXIST,
	         "Conflict: deleted"},
	        {200, "{\"key\":{}}", -EPROTO, "no key.kid"},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct skr_akv_import imp = import_req();
		char *kid = NULL;
		struct skr_error err = {0};

		test_http_server_reply(W.srv, "/keys/mykey", cases[i].status, "application/json",
		                       cases[i].body);
		assert_int_equal(skr_akv_import_key(&imp, &kid, &err), cases[i].expect);
		assert_null(kid);
		if (!strstr(err.msg, cases[i].msg))
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].msg);
		/* Never the token nor the key in a message. */
		assert_null(strstr(err.msg, "bearer-abc"));
		assert_null(strstr(err.msg, "AAECAw"));
	}

	/* Refused before anything is sent. */
	{
		struct skr_akv_import bad[6];
		size_t requests = test_http_server_request_count(W.srv);

		for (size_t i = 0; i < ELEMENTSOF(bad); i++)
			bad[i] = import_req();
		bad[0].endpoint = "http://127.0.0.1:1";
		bad[1].name = "a/b";
		bad[2].policy_json = "{not json";
		bad[3].bearer_token = NULL;
		bad[4].jwk_json = "[1]";
		bad[4].jwk_len = 3;
		bad[5].endpoint = "vault.example/path";
		for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
			char *kid = NULL;
			struct skr_error err = {0};

			assert_int_equal(skr_akv_import_key(&bad[i], &kid, &err), -EINVAL);
			assert_true(strncmp(err.msg, "key import: ", 12) == 0);
		}
		assert_int_equal(test_http_server_request_count(W.srv), requests);
	}
}

static void policy_reply(const char *path, const char *data_json)
{
	_cleanup_free_ char *body = NULL;

	assert_true(asprintf(&body,
	                     "{\"key\":{\"kid\":\"https://v/keys/mykey/v1\",\"kty\":\"oct-HSM\"},"
	                     "\"attributes\":{\"exportable\":true}%s%s%s}",
	                     data_json ? ",\"release_policy\":{\"contentType\":\"application/json;"
	                                 " charset=utf-8\",\"data\":"
	                               : "",
	                     data_json ? data_json : "",
	                     data_json ? ",\"immutable\":false}" : "") > 0);
	test_http_server_reply(W.srv, path, 200, "application/json", body);
}

static void test_get_release_policy(void **state)
{
	const char *ca = test_http_server_ca_file(W.srv);
	static const enum b64_variant variants[] = {B64_URL_NOPAD, B64_URL, B64_STD};
	struct skr_error err = {0};
	char *policy = NULL;

	for (size_t i = 0; i < ELEMENTSOF(variants); i++) {
		_cleanup_free_ char *b64 = NULL, *quoted = NULL;

		assert_int_equal(b64_encode(POLICY, strlen(POLICY), variants[i], &b64), 0);
		assert_true(asprintf(&quoted, "\"%s\"", b64) > 0);
		policy_reply("/keys/mykey/v1", quoted);
		if (skr_akv_get_release_policy(W.endpoint, NULL, "mykey/v1", "tok", ca, &policy,
		                               &err) < 0)
			fail_msg("variant %zu: %s", i, err.msg);
		assert_string_equal(policy, POLICY);
		free(policy);
		policy = NULL;
	}
	assert_string_equal(test_http_server_request(W.srv, 0)->target,
	                    "/keys/mykey/v1?api-version=7.4");
	assert_string_equal(
	        test_http_request_header(test_http_server_request(W.srv, 0), "Authorization"),
	        "Bearer tok");

	/* No policy, a bad one, an unknown key, a malformed key id. */
	policy_reply("/keys/mykey", NULL);
	assert_int_equal(
	        skr_akv_get_release_policy(W.endpoint, "7.4", "mykey", "tok", ca, &policy, &err),
	        -ENOENT);
	assert_non_null(strstr(err.msg, "has no release policy"));
	policy_reply("/keys/mykey", "\"!!!\"");
	skr_error_clear(&err);
	assert_int_equal(
	        skr_akv_get_release_policy(W.endpoint, "7.4", "mykey", "tok", ca, &policy, &err),
	        -EPROTO);
	test_http_server_reply(W.srv, "/keys/gone", 404, "application/json",
	                       "{\"error\":{\"code\":\"KeyNotFound\",\"message\":\"A key with "
	                       "(name/id) gone was not found in this key vault.\"}}");
	skr_error_clear(&err);
	assert_int_equal(
	        skr_akv_get_release_policy(W.endpoint, "7.4", "gone", "tok", ca, &policy, &err),
	        -ENOENT);
	assert_non_null(strstr(err.msg, "KeyNotFound: A key with (name/id) gone was not found"));
	skr_error_clear(&err);
	assert_int_equal(
	        skr_akv_get_release_policy(W.endpoint, "7.4", "../x", "tok", ca, &policy, &err),
	        -EINVAL);
	assert_null(policy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup(test_import_request, reset),
	        cmocka_unit_test_setup(test_import_variants, reset),
	        cmocka_unit_test_setup(test_import_errors, reset),
	        cmocka_unit_test_setup(test_get_release_policy, reset),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
