/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "ossl.h"
#include "secret.h"
#include "skr.h"
#include "test_devcloud.h"
#include "test_http_client.h"
#include "test_proc.h"

#define ARGS_MAX 64

const char *test_devcloud_bin(void)
{
	const char *bin = getenv("DEVCLOUD_BIN");

	if (!bin)
		fprintf(stderr, "DEVCLOUD_BIN must be set (meson test does)\n");
	return bin;
}

/* argv = bin, @head... (NULL-terminated), @tail... (NULL-terminated, may be NULL). */
static int build_argv(const char **argv, const char *const *head, const char *const *tail)
{
	size_t n = 0;

	argv[n++] = test_devcloud_bin();
	if (!argv[0])
		return -1;
	for (size_t i = 0; head && head[i]; i++)
		argv[n++] = head[i];
	for (size_t i = 0; tail && tail[i]; i++) {
		if (n == ARGS_MAX - 1) {
			fprintf(stderr, "test_devcloud: more than %d arguments\n", ARGS_MAX - 2);
			return -1;
		}
		argv[n++] = tail[i];
	}
	argv[n] = NULL;
	return 0;
}

int test_devcloud_run(const char *const *args, const char *out_path)
{
	const char *argv[ARGS_MAX];
	struct test_proc_io io = {.stdout_path = out_path ? out_path : "/dev/null"};
	pid_t pid;

	if (build_argv(argv, NULL, args) < 0)
		return -1;
	pid = test_proc_spawn(argv, &io);
	return pid < 0 ? -1 : test_proc_wait(pid);
}

int test_devcloud_init(struct test_devcloud *dc, const char *state_dir, const char *log_path,
                       const char *const *init_args)
{
	const char *const head[] = {"init", "--state", state_dir, NULL};
	const char *argv[ARGS_MAX];
	pid_t pid;

	memset(dc, 0, sizeof(*dc));
	dc->pid = -1;
	snprintf(dc->state, sizeof(dc->state), "%s", state_dir);
	snprintf(dc->ca, sizeof(dc->ca), "%s/ca.pem", state_dir);
	snprintf(dc->platform, sizeof(dc->platform), "%s/platform", state_dir);
	snprintf(dc->endpoints, sizeof(dc->endpoints), "%s/endpoints.json", state_dir);
	snprintf(dc->log, sizeof(dc->log), "%s", log_path ? log_path : "");
	if (build_argv(argv, head, init_args) < 0)
		return -1;
	pid = test_proc_spawn(argv, &(struct test_proc_io){.stdout_path = "/dev/null"});
	if (pid < 0 || test_proc_wait(pid) != 0) {
		fprintf(stderr, "devcloud init --state %s failed\n", state_dir);
		return -1;
	}
	return 0;
}

static int port_of(json_object *root, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(root, key, &v) ? json_object_get_int(v) : 0;
}

/* 1: read, 0: not written yet, -1: written but inconsistent. */
static int read_endpoints(struct test_devcloud *dc)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_json_ json_object *root = NULL;
	json_object *imds;
	size_t len;

	if (read_file(dc->endpoints, 8192, &text, &len) < 0 || !(root = json_tokener_parse(text)))
		return 0;
	dc->attest_port = port_of(root, "attest_port");
	dc->kv_port = port_of(root, "kv_port");
	dc->imds_port = port_of(root, "imds_port");
	if (dc->attest_port <= 0 || dc->kv_port <= 0 || dc->imds_port <= 0)
		return 0;
	snprintf(dc->attest, sizeof(dc->attest), "localhost:%d", dc->attest_port);
	snprintf(dc->kv, sizeof(dc->kv), "localhost:%d", dc->kv_port);
	snprintf(dc->imds, sizeof(dc->imds), "http://127.0.0.1:%d", dc->imds_port);
	snprintf(dc->issuer, sizeof(dc->issuer), "https://%s", dc->attest);
	/* What scripts read must be what the ports say. */
	if (!json_object_object_get_ex(root, "imds", &imds) ||
	    strcmp(json_object_get_string(imds), dc->imds) != 0) {
		fprintf(stderr, "%s: imds is not %s\n", dc->endpoints, dc->imds);
		return -1;
	}
	return 1;
}

int test_devcloud_serve(struct test_devcloud *dc, const char *const *serve_args)
{
	const char *const head[] = {"serve", "--state", dc->state, NULL};
	const char *argv[ARGS_MAX];
	struct test_proc_io io = {.stderr_path = dc->log[0] ? dc->log : NULL};
	int status = 0;
	pid_t pid;

	if (build_argv(argv, head, serve_args) < 0)
		return -1;
	(void)unlink(dc->endpoints); /* a previous instance's ports are not this one's */
	pid = test_proc_spawn(argv, &io);
	if (pid < 0) {
		fprintf(stderr, "cannot start devcloud serve: %s\n", strerror((int)-pid));
		return -1;
	}
	dc->pid = pid;
	test_proc_kill_at_exit(&dc->pid);
	for (int i = 0; i < 600; i++) {
		int r;

		if (test_proc_exited(&dc->pid, &status)) {
			fprintf(stderr, "devcloud serve exited early (status %d)\n", status);
			return -1;
		}
		r = read_endpoints(dc);
		if (r != 0)
			return r > 0 ? 0 : -1;
		usleep(50 * 1000);
	}
	fprintf(stderr, "devcloud serve did not write %s in 30 s\n", dc->endpoints);
	return -1;
}

size_t test_devcloud_log_count(const struct test_devcloud *dc, const char *needle)
{
	_cleanup_free_ char *text = NULL;
	size_t len, n = 0;
	int r;

	usleep(100 * 1000);
	r = read_file(dc->log, 64u * 1024 * 1024, &text, &len);
	if (r < 0) {
		fprintf(stderr, "cannot read devcloud's log '%s': %s\n", dc->log, strerror(-r));
		abort();
	}
	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

int test_devcloud_stop(struct test_devcloud *dc)
{
	return test_proc_stop(&dc->pid, SIGTERM, 10000);
}

void test_devcloud_kill(struct test_devcloud *dc)
{
	test_proc_kill(&dc->pid);
}

char *test_devcloud_vault_token(const struct test_devcloud *dc)
{
	static const char *const headers[] = {"Metadata: true", NULL};
	struct test_http_client_response r = {0};
	_cleanup_json_ json_object *root = NULL;
	json_object *t;
	char url[300];
	char *token = NULL;

	snprintf(url, sizeof(url),
	         "%s/metadata/identity/oauth2/token?api-version=2018-02-01&resource=%s", dc->imds,
	         "https%3A%2F%2Fvault.azure.net");
	test_http_client_request(&(struct test_http_client_request){.method = "GET",
	                                                            .url = url,
	                                                            .ca_bundle = dc->ca,
	                                                            .headers = headers,
	                                                            .timeout_s = 60},
	                         &r);
	if (r.status == 200)
		root = json_tokener_parse(r.body);
	if (root && json_object_object_get_ex(root, "access_token", &t))
		token = strdup(json_object_get_string(t));
	if (!token)
		fprintf(stderr, "IMDS vault token: HTTP %ld %s\n", r.status, r.body ? r.body : "");
	test_http_client_response_clear(&r);
	return token;
}

int test_devcloud_import_oct_key(const struct test_devcloud *dc, const char *name,
                                 const uint8_t *key, size_t key_len, const char *host_hex)
{
	_cleanup_free_ char *policy = NULL, *kid = NULL, *k = NULL, *jwk = NULL, *claims = NULL;
	_cleanup_free_ char *token = test_devcloud_vault_token(dc);
	struct skr_akv_import imp;
	struct skr_error err = {0};
	int r = -1;

	if (!token || b64_encode(key, key_len, B64_URL_NOPAD, &k) < 0 ||
	    asprintf(&claims,
	             "[[{\"claim\": \"x-ms-sevsnpvm-hostdata\", \"equals\": \"%s\"},"
	             " {\"claim\": \"x-ms-sevsnpvm-is-debuggable\", \"equals\": \"false\"}]]",
	             host_hex) < 0 ||
	    asprintf(&jwk,
	             "{\"kty\":\"oct-HSM\",\"key_ops\":[\"wrapKey\",\"unwrapKey\"],\"k\":\"%s\","
	             "\"key_size\":%zu}",
	             k, key_len * 8) < 0) {
		fprintf(stderr, "import %s: no vault token or out of memory\n", name);
		goto out;
	}
	if (skr_policy_build(dc->attest, claims, strlen(claims), &policy, &err) < 0) {
		fprintf(stderr, "import %s: policy: %s\n", name, err.msg);
		goto out;
	}
	imp = (struct skr_akv_import){
	        .endpoint = dc->kv,
	        .name = name,
	        .jwk_json = jwk,
	        .jwk_len = strlen(jwk),
	        .hsm = true,
	        .policy_json = policy,
	        .exportable = true,
	        .bearer_token = token,
	        .ca_bundle = dc->ca,
	};
	if (skr_akv_import_key(&imp, &kid, &err) < 0) {
		fprintf(stderr, "import %s: %s\n", name, err.msg);
		goto out;
	}
	r = 0;
out:
	if (jwk)
		secure_erase(jwk, strlen(jwk));
	if (k)
		secure_erase(k, strlen(k));
	return r;
}
