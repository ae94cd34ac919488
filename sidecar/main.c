/* SPDX-License-Identifier: MIT */
/*
 * confidential-sidecar: the process that runs next to the application container.
 *
 *   confidential-sidecar [--skr-args B64] [--encfs-args B64] [--port N] …
 *                                   the daemon: configuration from SkrSideCarArgs /
 *                                   EncfsSideCarArgs / Port / LogLevel / LogFile (environment)
 *                                   or the command line, then the SKR HTTP API on localhost
 *   confidential-sidecar attest  …  one attestation: report → MAA token → verified claims
 *   confidential-sidecar release …  one secure key release: the key's type, operations and
 *                                   fingerprint, never the key
 *
 * The one-shot commands are what the daemon does per request, run once from the command line:
 * a readiness probe, and the way to check a deployment's claims and key release before writing
 * a policy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/rand.h>

#include "b64.h"
#include "cleanup.h"
#include "cli.h"

#include "daemon.h"
#include "fileio.h"
#include "json_util.h"
#include "ossl.h"
#include "secret.h"
#include "skr.h"

#define EXIT_USAGE 2

DEFINE_CLEANUP_FUNC(struct skr_attester *, skr_attester_free)
DEFINE_CLEANUP_FUNC(struct skr_key *, skr_key_free)

/* A runtime-data document that makes each token unique when the caller gives none. */
static char *default_runtime_data(void)
{
	uint8_t nonce[16];
	char hex[sizeof(nonce) * 2 + 1];
	char *s;

	if (RAND_bytes(nonce, sizeof(nonce)) != 1)
		return NULL;
	hex_encode(nonce, sizeof(nonce), hex);
	if (asprintf(&s, "{\"purpose\":\"confidential-sidecar attest\",\"nonce\":\"%s\"}", hex) < 0)
		return NULL;
	return s;
}

static void print_json(json_object *obj)
{
	printf("%s\n", json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY |
	                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* Configuration mistakes exit 2, everything else 1 (style.md). */
static int exit_code_for(int r)
{
	return r == -EINVAL ? EXIT_USAGE : EXIT_FAILURE;
}

static int cmd_attest(struct cli_options *o)
{
	_cleanup_(skr_attester_freep) struct skr_attester *attester = NULL;
	_cleanup_free_ char *runtime_default = NULL, *token = NULL, *claims = NULL;
	_cleanup_json_ json_object *claims_obj = NULL;
	struct skr_error err = {0};
	const char *runtime = o->runtime_data;
	int r;

	if (!runtime) {
		runtime = runtime_default = default_runtime_data();
		if (!runtime) {
			fprintf(stderr, "out of memory\n");
			return EXIT_FAILURE;
		}
	}
	o->cfg.kek_pool_size = -1; /* no key release here: no background key generation */
	r = skr_attester_new(&o->cfg, &attester, &err);
	if (r < 0) {
		fprintf(stderr, "%s\n", skr_error_message(&err));
		return exit_code_for(r);
	}
	r = skr_attest_maa(attester, o->maa_endpoint, (const uint8_t *)runtime, strlen(runtime),
	                   &token, &err);
	if (r < 0) {
		fprintf(stderr, "attest: %s\n", skr_error_message(&err));
		return exit_code_for(r);
	}
	r = skr_token_verify(attester, o->maa_endpoint, token, &claims, &err);
	if (r >= 0)
		r = json_parse(claims, strlen(claims), "token claims", &claims_obj, &err);
	if (r < 0) {
		fprintf(stderr, "token verification: %s\n", skr_error_message(&err));
		secure_erase(token, strlen(token));
		return EXIT_FAILURE;
	}
	fprintf(stderr, "token verified: signature (issuer's JWKS), issuer, lifetime\n");
	if (o->print_token)
		printf("%s\n", token);
	secure_erase(token, strlen(token));
	print_json(claims_obj);
	return EXIT_SUCCESS;
}

static const char *key_type_name(enum skr_key_type t)
{
	switch (t) {
	case SKR_KEY_OCT:
		return "oct";
	case SKR_KEY_RSA:
		return "RSA";
	case SKR_KEY_EC:
		return "EC";
	}
	return "unknown";
}

/* The bearer token from a file (a token on the command line would be visible to every user). */
static int read_token_file(const char *path, struct secret **out)
{
	char *buf = NULL;
	size_t len = 0;
	int r = read_file(path, 64 * 1024, &buf, &len);

	if (r < 0) {
		fprintf(stderr, "--access-token-file %s: %s\n", path, strerror(-r));
		return r;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
		len--;
	*out = secret_new(len + 1);
	if (*out) {
		memcpy((*out)->data, buf, len);
		(*out)->data[len] = '\0';
	}
	secure_free(buf, len);
	return *out ? 0 : -ENOMEM;
}

static int cmd_release(struct cli_options *o)
{
	_cleanup_(skr_attester_freep) struct skr_attester *attester = NULL;
	_cleanup_(skr_key_freep) struct skr_key *key = NULL;
	_cleanup_secret_ struct secret *token = NULL, *derived = NULL;
	_cleanup_json_ json_object *out = json_object_new_object();
	json_object *ops;
	struct skr_error err = {0};
	struct skr_release_request req = {
	        .maa_endpoint = o->maa_endpoint,
	        .akv_endpoint = o->akv_endpoint,
	        .kid = o->kid,
	        .enc = o->enc,
	};
	char fingerprint[SKR_FINGERPRINT_STR_SIZE];
	int r;

	if (!out) {
		fprintf(stderr, "out of memory\n");
		return EXIT_FAILURE;
	}
	if (o->access_token_file) {
		if (read_token_file(o->access_token_file, &token) < 0)
			return EXIT_USAGE;
		req.access_token = (const char *)token->data;
	}
	r = skr_attester_new(&o->cfg, &attester, &err);
	if (r < 0) {
		fprintf(stderr, "%s\n", skr_error_message(&err));
		return exit_code_for(r);
	}
	r = skr_release_key(attester, &req, &key, &err);
	if (r < 0) {
		fprintf(stderr, "key release: %s\n", skr_error_message(&err));
		return EXIT_FAILURE;
	}

	skr_key_fingerprint(key->material->data, key->material->len, fingerprint);
	json_object_object_add(out, "kid", key->kid ? json_object_new_string(key->kid) : NULL);
	json_object_object_add(out, "kty", json_object_new_string(key_type_name(key->type)));
	ops = json_object_new_array();
	for (size_t i = 0; ops && i < key->n_key_ops; i++)
		json_object_array_add(ops, json_object_new_string(key->key_ops[i]));
	json_object_object_add(out, "key_ops", ops);
	json_object_object_add(out, "fingerprint", json_object_new_string(fingerprint));
	if (o->derive) {
		r = skr_key_derive(key, o->kdf_salt, o->kdf_label, &derived, &err);
		if (r < 0) {
			fprintf(stderr, "key derivation: %s\n", skr_error_message(&err));
			return exit_code_for(r);
		}
		skr_key_fingerprint(derived->data, derived->len, fingerprint);
		json_object_object_add(out, "derived_key_fingerprint",
		                       json_object_new_string(fingerprint));
	}
	print_json(out);
	return EXIT_SUCCESS;
}

/* The daemon: configuration errors are one line and exit 2, before anything starts. */
static int run_daemon(int argc, char **argv)
{
	struct sidecar_config cfg;
	struct skr_error err = {0};
	int r;

	r = sidecar_config_load(argc, argv, &cfg, &err);
	if (r != 0) {
		if (r > 0)
			return EXIT_SUCCESS; /* --help or --print-config */
		fprintf(stderr, "confidential-sidecar: %s\n", skr_error_message(&err));
		return EXIT_USAGE;
	}
	r = sidecar_daemon_run(&cfg);
	sidecar_config_clear(&cfg);
	return r;
}

int main(int argc, char **argv)
{
	struct cli_options o;
	enum cli_command command;
	int r;

	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("confidential-sidecar %s\n", PROJECT_VERSION);
		return EXIT_SUCCESS;
	}
	if (argc >= 2 && strcmp(argv[1], "attest") == 0)
		command = CLI_ATTEST;
	else if (argc >= 2 && strcmp(argv[1], "release") == 0)
		command = CLI_RELEASE;
	else
		return run_daemon(argc, argv);
	r = cli_parse(command, argc - 1, argv + 1, &o);
	if (r != 0)
		return r > 0 ? EXIT_SUCCESS : EXIT_USAGE;
	return command == CLI_ATTEST ? cmd_attest(&o) : cmd_release(&o);
}
