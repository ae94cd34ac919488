/* SPDX-License-Identifier: MIT */
/*
 * Azure identity tokens (skr.h "Azure identity tokens"): IMDS managed identity (§6.1) against a
 * plain-HTTP scripted server, workload identity (§6.2) against an HTTPS one playing Entra ID;
 * request shapes, caching, retries, error bodies, and that no token reaches the log.
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

#include "cleanup.h"
#include "fileio.h"
#include "log.h"
#include "secret.h"
#include "skr.h"
#include "test_http_server.h"
#include "test_log.h"

#define IMDS_PATH "/metadata/identity/oauth2/token"
#define TENANT "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define WI_PATH "/" TENANT "/oauth2/v2.0/token"

static struct {
	struct test_http_server *imds;  /* plain HTTP, like 169.254.169.254 */
	struct test_http_server *entra; /* HTTPS */
	char tmp[64];
	char *token_file;
} W;

static void clear_env(void)
{
	unsetenv("AZURE_CLIENT_ID");
	unsetenv("AZURE_TENANT_ID");
	unsetenv("AZURE_FEDERATED_TOKEN_FILE");
	unsetenv("AZURE_AUTHORITY_HOST");
}

static int setup(void **state)
{
	assert_int_equal(test_http_server_start(false, &W.imds), 0);
	assert_int_equal(test_http_server_start(true, &W.entra), 0);
	snprintf(W.tmp, sizeof(W.tmp), "/tmp/test_identity.XXXXXX");
	assert_non_null(mkdtemp(W.tmp));
	W.token_file = path_join(W.tmp, "azure-identity-token");
	return 0;
}

static int teardown(void **state)
{
	test_http_server_stop(W.imds);
	test_http_server_stop(W.entra);
	unlink(W.token_file);
	rmdir(W.tmp);
	free(W.token_file);
	test_log_capture_clear();
	clear_env();
	return 0;
}

static int reset(void **state)
{
	test_http_server_reset(W.imds);
	test_http_server_reset(W.entra);
	clear_env();
	return 0;
}

static struct skr_identity *imds_identity(const char *client_id)
{
	struct skr_identity_config cfg = {
	        .client_id = client_id,
	        .imds_endpoint = test_http_server_url(W.imds),
	        .timeout_ms = 5000,
	};
	struct skr_identity *id = NULL;
	struct skr_error err = {0};

	if (skr_identity_new(&cfg, &id, &err) < 0)
		fail_msg("skr_identity_new: %s", err.msg);
	return id;
}

/* An IMDS answer: numeric fields as strings (§6.1). */
static void imds_reply(const char *token, long long expires_in)
{
	_cleanup_free_ char *body = NULL;
	long long now = (long long)time(NULL);

	assert_true(asprintf(&body,
	                     "{\"access_token\":\"%s\",\"client_id\":\"c\",\"expires_in\":\"%lld\","
	                     "\"expires_on\":\"%lld\",\"ext_expires_in\":\"%lld\",\"not_before\":"
	                     "\"%lld\",\"resource\":\"https://vault.azure.net\",\"token_type\":"
	                     "\"Bearer\"}",
	                     token, expires_in, now + expires_in, expires_in, now) > 0);
	test_http_server_reply(W.imds, IMDS_PATH, 200, "application/json", body);
}

static void assert_token(struct skr_identity *id, const char *resource, const char *expect)
{
	struct secret *tok = NULL;
	struct skr_error err = {0};

	if (skr_identity_get_token(id, resource, &tok, &err) < 0)
		fail_msg("skr_identity_get_token(%s): %s", resource, err.msg);
	assert_int_equal(tok->len, strlen(expect));
	assert_string_equal((const char *)tok->data, expect);
	secret_free(tok);
}

/* ---------------------------------------------------------------------------------------------
 * IMDS
 * ------------------------------------------------------------------------------------------- */

static void test_imds_request_and_cache(void **state)
{
	struct skr_identity *id = imds_identity("0c9f3c0e-user-assigned");
	const struct test_http_request *req;

	imds_reply("tok-vault", 86399);
	test_log_capture_start(LOG_LEVEL_TRACE);
	assert_token(id, "https://vault.azure.net", "tok-vault");
	test_log_capture_stop();
	assert_int_equal(test_http_server_request_count(W.imds), 1);
	req = test_http_server_request(W.imds, 0);
	assert_string_equal(req->method, "GET");
	assert_string_equal(req->target,
	                    IMDS_PATH "?api-version=2018-02-01&resource=https%3A%2F%2F"
	                              "vault.azure.net&client_id=0c9f3c0e-user-assigned");
	assert_string_equal(test_http_request_header(req, "Metadata"), "true");
	assert_null(test_http_request_header(req, "Authorization"));
	/* The token never reaches the log, at any level. */
	assert_non_null(test_log_captured());
	assert_null(strstr(test_log_captured(), "tok-vault"));

	/* Cached per resource: the same resource costs nothing, another one asks again. */
	assert_token(id, "https://vault.azure.net", "tok-vault");
	assert_int_equal(test_http_server_request_count(W.imds), 1);
	imds_reply("tok-hsm", 3600);
	assert_token(id, "https://managedhsm.azure.net", "tok-hsm");
	assert_int_equal(test_http_server_request_count(W.imds), 2);
	assert_non_null(strstr(test_http_server_request(W.imds, 1)->target,
	                       "resource=https%3A%2F%2Fmanagedhsm.azure.net&"));
	assert_token(id, "https://vault.azure.net", "tok-vault");
	assert_int_equal(test_http_server_request_count(W.imds), 2);
	skr_identity_free(id);
}

/* A token within 5 minutes of its expiry is not handed out again. */
static void test_imds_refresh_margin(void **state)
{
	struct skr_identity *id = imds_identity(NULL);

	imds_reply("short-lived", 200);
	assert_token(id, "https://vault.azure.net", "short-lived");
	imds_reply("renewed", 3600);
	assert_token(id, "https://vault.azure.net", "renewed");
	assert_int_equal(test_http_server_request_count(W.imds), 2);
	/* Without client_id the query names only the resource. */
	assert_null(strstr(test_http_server_request(W.imds, 0)->target, "client_id"));
	skr_identity_free(id);
}

static void test_imds_retries(void **state)
{
	struct skr_identity *id = imds_identity(NULL);
	struct secret *tok = NULL;
	struct skr_error err = {0};

	/* Throttled, then answered: the client's retry honours Retry-After. */
	test_http_server_push(W.imds, &(struct test_http_reply){.path = IMDS_PATH,
	                                                        .status = 429,
	                                                        .headers = "Retry-After: 0"});
	test_http_server_push(W.imds, &(struct test_http_reply){.path = IMDS_PATH,
	                                                        .status = 503,
	                                                        .headers = "Retry-After: 0"});
	imds_reply("after-retry", 3600);
	assert_token(id, "https://vault.azure.net", "after-retry");
	assert_int_equal(test_http_server_request_count(W.imds), 3);

	/* Failing every time: bounded (3 attempts), then a clear error. */
	for (int i = 0; i < 4; i++)
		test_http_server_push(W.imds,
		                      &(struct test_http_reply){
		                              .path = IMDS_PATH,
		                              .status = 500,
		                              .headers = "Retry-After: 0",
		                              .content_type = "application/json",
		                              .body = "{\"error\":\"unknown_error\","
		                                      "\"error_description\":\"IMDS is down\"}"});
	assert_int_equal(skr_identity_get_token(id, "https://storage.azure.com/", &tok, &err),
	                 -EIO);
	assert_null(tok);
	assert_int_equal(test_http_server_request_count(W.imds), 6);
	assert_non_null(strstr(err.msg, "HTTP 500: unknown_error: IMDS is down (after retries)"));
	skr_identity_free(id);
}

static void test_imds_errors(void **state)
{
	static const struct {
		unsigned status;
		const char *body;
		int expect;
		const char *msg;
	} cases[] = {
	        {400,
	         "{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}",
	         -EACCES,
	         "managed identity: IMDS answered HTTP 400: invalid_request: Identity not "
	         "found"},
	        {200, "{\"token_type\":\"Bearer\"}", -EPROTO, "no access_token"},
	        {200, "not json", -EPROTO, "not valid JSON"},
	        {200, "{\"access_token\":\"x\",\"token_type\":\"PoP\"}", -EPROTO, "not Bearer"},
	        {302, "", -EPROTO, "HTTP 302"},
	};
	struct skr_identity *id = imds_identity(NULL);

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct secret *tok = NULL;
		struct skr_error err = {0};

		test_http_server_reply(W.imds, IMDS_PATH, cases[i].status, "application/json",
		                       cases[i].body);
		assert_int_equal(skr_identity_get_token(id, "https://vault.azure.net", &tok, &err),
		                 cases[i].expect);
		assert_null(tok);
		if (!strstr(err.msg, cases[i].msg))
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].msg);
	}
	/* Unreachable IMDS. */
	{
		struct skr_identity_config cfg = {.imds_endpoint = "http://127.0.0.1:1",
		                                  .timeout_ms = 2000};
		struct skr_identity *bad = NULL;
		struct secret *tok = NULL;
		struct skr_error err = {0};

		assert_int_equal(skr_identity_new(&cfg, &bad, &err), 0);
		assert_true(skr_identity_get_token(bad, "https://vault.azure.net", &tok, &err) < 0);
		assert_non_null(strstr(err.msg, "managed identity (IMDS): GET"));
		skr_identity_free(bad);
	}
	/* A bad endpoint is refused at creation. */
	{
		struct skr_identity_config cfg = {.imds_endpoint = "169.254.169.254?x=1"};
		struct skr_identity *bad = NULL;
		struct skr_error err = {0};

		assert_int_equal(skr_identity_new(&cfg, &bad, &err), -EINVAL);
	}
	skr_identity_free(id);
}

/* ---------------------------------------------------------------------------------------------
 * Workload identity
 * ------------------------------------------------------------------------------------------- */

static void write_assertion(const char *text)
{
	assert_int_equal(write_file_atomic(W.token_file, text, strlen(text), 0600), 0);
}

static void workload_env(bool authority)
{
	_cleanup_free_ char *host = NULL;

	setenv("AZURE_CLIENT_ID", "a1b2c3d4-app", 1);
	setenv("AZURE_TENANT_ID", TENANT, 1);
	setenv("AZURE_FEDERATED_TOKEN_FILE", W.token_file, 1);
	if (authority) {
		/* The webhook injects it with a trailing '/'. */
		assert_true(asprintf(&host, "%s/", test_http_server_url(W.entra)) > 0);
		setenv("AZURE_AUTHORITY_HOST", host, 1);
	}
}

static struct skr_identity *workload_identity(void)
{
	struct skr_identity_config cfg = {
	        .client_id = "ignored-for-workload-identity",
	        .imds_endpoint = test_http_server_url(W.imds),
	        .ca_bundle = test_http_server_ca_file(W.entra),
	        .timeout_ms = 5000,
	};
	struct skr_identity *id = NULL;
	struct skr_error err = {0};

	if (skr_identity_new(&cfg, &id, &err) < 0)
		fail_msg("skr_identity_new: %s", err.msg);
	return id;
}

/* Value of form field @name in an x-www-form-urlencoded body (decoded, malloc'ed). */
static char *form_field(const char *body, const char *name)
{
	_cleanup_free_ char *copy = strdup(body);
	char *save = NULL;
	size_t n = strlen(name);

	for (char *kv = strtok_r(copy, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
		if (strncmp(kv, name, n) == 0 && kv[n] == '=') {
			char *v = curl_easy_unescape(NULL, kv + n + 1, 0, NULL);
			char *out = strdup(v);

			curl_free(v);
			return out;
		}
	}
	return NULL;
}

static void assert_field(const char *body, const char *name, const char *expect)
{
	_cleanup_free_ char *v = form_field(body, name);

	if (!v || strcmp(v, expect) != 0)
		fail_msg("form field %s: '%s', expected '%s'", name, v ? v : "(absent)", expect);
}

static void entra_reply(const char *token)
{
	_cleanup_free_ char *body = NULL;

	/* Entra sends its numbers as numbers. */
	assert_true(asprintf(&body,
	                     "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":"
	                     "3599,\"access_token\":\"%s\"}",
	                     token) > 0);
	test_http_server_reply(W.entra, WI_PATH, 200, "application/json", body);
}

static void test_workload_request(void **state)
{
	struct skr_identity *id;
	const struct test_http_request *req;

	write_assertion("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnMQ\n");
	workload_env(true);
	id = workload_identity();
	entra_reply("wi-token-1");
	test_log_capture_start(LOG_LEVEL_TRACE);
	assert_token(id, "https://vault.azure.net", "wi-token-1");
	test_log_capture_stop();
	assert_null(strstr(test_log_captured(), "wi-token-1"));
	assert_null(strstr(test_log_captured(), "c2lnMQ"));
	assert_int_equal(test_http_server_request_count(W.imds), 0);
	assert_int_equal(test_http_server_request_count(W.entra), 1);
	req = test_http_server_request(W.entra, 0);
	assert_string_equal(req->method, "POST");
	assert_string_equal(req->target, WI_PATH);
	assert_string_equal(test_http_request_header(req, "Content-Type"),
	                    "application/x-www-form-urlencoded");
	assert_field(req->body, "client_id", "a1b2c3d4-app");
	assert_field(req->body, "scope", "https://vault.azure.net/.default");
	assert_field(req->body, "grant_type", "client_credentials");
	assert_field(req->body, "client_assertion_type",
	             "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
	/* The file's contents, without the trailing newline. */
	assert_field(req->body, "client_assertion",
	             "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnMQ");

	/* Cached (numbers as numbers: expires_in 3599). */
	assert_token(id, "https://vault.azure.net", "wi-token-1");
	assert_int_equal(test_http_server_request_count(W.entra), 1);

	/* The kubelet rotated the file: the next request carries the new assertion. */
	write_assertion("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyb3RhdGVkIn0.c2lnMg");
	entra_reply("wi-token-2");
	assert_token(id, "https://managedhsm.azure.net/", "wi-token-2");
	req = test_http_server_request(W.entra, 1);
	assert_field(req->body, "client_assertion",
	             "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyb3RhdGVkIn0.c2lnMg");
	assert_field(req->body, "scope", "https://managedhsm.azure.net/.default");
	skr_identity_free(id);
}

static void test_workload_errors(void **state)
{
	struct skr_identity *id;
	struct secret *tok = NULL;
	struct skr_error err = {0};

	write_assertion("eyJhbGciOiJSUzI1NiJ9.e30.c2ln");
	workload_env(true);
	id = workload_identity();

	/* Entra's OAuth error body is carried into the message. */
	test_http_server_reply(
	        W.entra, WI_PATH, 401, "application/json",
	        "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS700213: "
	        "No matching federated identity record found\"}");
	assert_int_equal(skr_identity_get_token(id, "https://vault.azure.net", &tok, &err),
	                 -EACCES);
	assert_non_null(strstr(err.msg, "workload identity: "));
	assert_non_null(strstr(err.msg, "HTTP 401: invalid_client: AADSTS700213"));

	/* The token file disappears (re-read per request, so this shows at once). */
	unlink(W.token_file);
	skr_error_clear(&err);
	assert_int_equal(skr_identity_get_token(id, "https://vault.azure.net", &tok, &err),
	                 -ENOENT);
	assert_non_null(strstr(err.msg, "AZURE_FEDERATED_TOKEN_FILE"));
	write_assertion("\n");
	skr_error_clear(&err);
	assert_int_equal(skr_identity_get_token(id, "https://vault.azure.net", &tok, &err),
	                 -EINVAL);
	assert_non_null(strstr(err.msg, "is empty"));
	assert_int_equal(test_http_server_request_count(W.entra), 1);
	skr_identity_free(id);

	/* The federated token never travels in clear text. */
	setenv("AZURE_AUTHORITY_HOST", "http://login.example/", 1);
	skr_error_clear(&err);
	assert_int_equal(skr_identity_new(NULL, &id, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "AZURE_AUTHORITY_HOST"));
	/* A tenant that would rewrite the URL path. */
	unsetenv("AZURE_AUTHORITY_HOST");
	setenv("AZURE_TENANT_ID", "../evil", 1);
	skr_error_clear(&err);
	assert_int_equal(skr_identity_new(NULL, &id, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "AZURE_TENANT_ID"));
}

/* Without AZURE_AUTHORITY_HOST, the public cloud's authority; partial variables → IMDS. */
static void test_workload_selection(void **state)
{
	struct skr_identity *id = NULL;
	struct skr_error err = {0};

	write_assertion("a.b.c");
	workload_env(false);
	test_log_capture_start(LOG_LEVEL_TRACE);
	assert_int_equal(skr_identity_new(NULL, &id, &err), 0);
	test_log_capture_stop();
	assert_non_null(strstr(test_log_captured(),
	                       "workload identity (client a1b2c3d4-app) via "
	                       "https://login.microsoftonline.com/" TENANT "/oauth2/v2.0/token"));
	skr_identity_free(id);

	unsetenv("AZURE_TENANT_ID");
	id = imds_identity(NULL);
	imds_reply("from-imds", 3600);
	assert_token(id, "https://vault.azure.net", "from-imds");
	assert_int_equal(test_http_server_request_count(W.entra), 0);
	skr_identity_free(id);
}

static void test_resource_for(void **state)
{
	assert_string_equal(skr_akv_resource_for("myhsm.managedhsm.azure.net"),
	                    "https://managedhsm.azure.net");
	assert_string_equal(skr_akv_resource_for("https://MyHsm.ManagedHSM.azure.net/"),
	                    "https://managedhsm.azure.net");
	assert_string_equal(skr_akv_resource_for("myvault.vault.azure.net"),
	                    "https://vault.azure.net");
	assert_string_equal(skr_akv_resource_for(NULL), "https://vault.azure.net");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup(test_imds_request_and_cache, reset),
	        cmocka_unit_test_setup(test_imds_refresh_margin, reset),
	        cmocka_unit_test_setup(test_imds_retries, reset),
	        cmocka_unit_test_setup(test_imds_errors, reset),
	        cmocka_unit_test_setup(test_workload_request, reset),
	        cmocka_unit_test_setup(test_workload_errors, reset),
	        cmocka_unit_test_setup(test_workload_selection, reset),
	        cmocka_unit_test(test_resource_for),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
