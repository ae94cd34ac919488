/* SPDX-License-Identifier: MIT */
/*
 * confidential-sidecar: the process that runs next to the application container.
 *
 *   confidential-sidecar attest --maa-endpoint HOST[:PORT] [options]
 *       One attestation: report (hardware or, when asked for, the virtual platform) → MAA token,
 *       then the token is verified against the issuer's published keys and its claims printed.
 *       Useful as a readiness probe and to check a deployment's claims before writing a key
 *       release policy.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/rand.h>

#include "b64.h"
#include "cleanup.h"
#include "config.h"
#include "fileio.h"
#include "json_util.h"
#include "log.h"
#include "ossl.h"
#include "secret.h"
#include "skr.h"

#define EXIT_USAGE 2

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: confidential-sidecar attest --maa-endpoint HOST[:PORT] [options]\n"
	        "\n"
	        "Attest once: get an SEV-SNP report bound to the runtime data, exchange it at the\n"
	        "attestation service for a token, verify the token and print its claims.\n"
	        "\n"
	        "Options:\n"
	        "  --maa-endpoint HOST[:PORT]     attestation service (MAA or devcloud)\n"
	        "  --attestation-source SRC       auto (default: the SEV-SNP device present),\n"
	        "                                 sev-guest, sev, configfs-tsm, or virtual\n"
	        "  --virtual-dir DIR              the virtual platform (with --attestation-source\n"
	        "                                 virtual; dev/test only, never chosen by itself)\n"
	        "  --ca-bundle FILE               PEM CA bundle for HTTPS (default: system store)\n"
	        "  --runtime-data JSON            runtime data to bind (default: a fresh nonce "
	        "object)\n"
	        "  --security-context-dir DIR     ACI security context (default: discovered)\n"
	        "  --certcache-type TYPE          AMD, AzCache or LocalTHIM certificate source\n"
	        "  --certcache-endpoint ENDPOINT  host[/path] or URL of that source\n"
	        "  --print-token                  also print the raw token (a bearer credential)\n"
	        "  --log-level LEVEL              error, warn, info (default), debug, trace\n"
	        "  --version                      print the version\n"
	        "  -h, --help                     this text\n");
}

struct attest_options {
	const char *maa_endpoint;
	const char *runtime_data;
	bool print_token;
	struct skr_attest_config cfg;
};

static int parse_attest_options(int argc, char **argv, struct attest_options *o)
{
	enum {
		OPT_MAA = 0x100,
		OPT_SOURCE,
		OPT_VIRTUAL_DIR,
		OPT_CA,
		OPT_RUNTIME,
		OPT_SECCTX,
		OPT_CC_TYPE,
		OPT_CC_ENDPOINT,
		OPT_PRINT_TOKEN,
		OPT_LOG_LEVEL,
	};
	static const struct option options[] = {
	        {"maa-endpoint", required_argument, NULL, OPT_MAA},
	        {"attestation-source", required_argument, NULL, OPT_SOURCE},
	        {"virtual-dir", required_argument, NULL, OPT_VIRTUAL_DIR},
	        {"ca-bundle", required_argument, NULL, OPT_CA},
	        {"runtime-data", required_argument, NULL, OPT_RUNTIME},
	        {"security-context-dir", required_argument, NULL, OPT_SECCTX},
	        {"certcache-type", required_argument, NULL, OPT_CC_TYPE},
	        {"certcache-endpoint", required_argument, NULL, OPT_CC_ENDPOINT},
	        {"print-token", no_argument, NULL, OPT_PRINT_TOKEN},
	        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	        {"help", no_argument, NULL, 'h'},
	        {},
	};
	enum log_level level;
	int c;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case OPT_MAA:
			o->maa_endpoint = optarg;
			break;
		case OPT_SOURCE:
			if (snp_source_kind_from_string(optarg, &o->cfg.source.kind) < 0) {
				fprintf(stderr,
				        "--attestation-source: unknown source '%s'; use auto, "
				        "sev-guest, sev, configfs-tsm or virtual\n",
				        optarg);
				return -EINVAL;
			}
			break;
		case OPT_VIRTUAL_DIR:
			o->cfg.source.virtual_dir = optarg;
			break;
		case OPT_CA:
			o->cfg.ca_bundle = optarg;
			o->cfg.certcache.ca_bundle = optarg;
			break;
		case OPT_RUNTIME:
			o->runtime_data = optarg;
			break;
		case OPT_SECCTX:
			o->cfg.security_context_dir = optarg;
			break;
		case OPT_CC_TYPE:
			if (snp_certcache_type_from_string(optarg, &o->cfg.certcache.type) < 0) {
				fprintf(stderr,
				        "--certcache-type: unknown type '%s'; use AMD, AzCache or "
				        "LocalTHIM\n",
				        optarg);
				return -EINVAL;
			}
			break;
		case OPT_CC_ENDPOINT:
			o->cfg.certcache.endpoint = optarg;
			break;
		case OPT_PRINT_TOKEN:
			o->print_token = true;
			break;
		case OPT_LOG_LEVEL:
			if (log_level_from_string(optarg, &level) < 0) {
				fprintf(stderr,
				        "--log-level: unknown level '%s'; use error, warn, info, "
				        "debug or trace\n",
				        optarg);
				return -EINVAL;
			}
			log_set_level(level);
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_SUCCESS);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (!o->maa_endpoint) {
		fprintf(stderr,
		        "--maa-endpoint is required: the attestation service host[:port]\n");
		return -EINVAL;
	}
	if (o->cfg.source.kind == SNP_SOURCE_VIRTUAL && !o->cfg.source.virtual_dir) {
		fprintf(stderr,
		        "--attestation-source virtual needs --virtual-dir DIR (the platform "
		        "made by 'devcloud init')\n");
		return -EINVAL;
	}
	if (o->cfg.source.kind != SNP_SOURCE_VIRTUAL && o->cfg.source.virtual_dir) {
		fprintf(stderr, "--virtual-dir is only used with --attestation-source virtual; the "
		                "virtual platform is never chosen implicitly\n");
		return -EINVAL;
	}
	return 0;
}

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

static int cmd_attest(int argc, char **argv)
{
	struct attest_options o = {0};
	struct skr_error err = {0};
	_cleanup_free_ char *runtime_default = NULL, *token = NULL, *claims = NULL;
	_cleanup_json_ json_object *claims_obj = NULL;
	struct skr_attester *attester = NULL;
	const char *runtime;
	int r;

	if (parse_attest_options(argc, argv, &o) < 0)
		return EXIT_USAGE;

	runtime = o.runtime_data;
	if (!runtime) {
		runtime = runtime_default = default_runtime_data();
		if (!runtime) {
			fprintf(stderr, "out of memory\n");
			return EXIT_FAILURE;
		}
	}

	r = skr_attester_new(&o.cfg, &attester, &err);
	if (r < 0) {
		fprintf(stderr, "attestation source: %s\n", skr_error_message(&err));
		return r == -EINVAL ? EXIT_USAGE : EXIT_FAILURE;
	}

	r = skr_attest_maa(attester, o.maa_endpoint, (const uint8_t *)runtime, strlen(runtime),
	                   &token, &err);
	if (r < 0) {
		fprintf(stderr, "attest: %s\n", skr_error_message(&err));
		goto out;
	}
	r = skr_token_verify(attester, o.maa_endpoint, token, &claims, &err);
	if (r < 0) {
		fprintf(stderr, "token verification: %s\n", skr_error_message(&err));
		goto out;
	}
	r = json_parse(claims, strlen(claims), "token claims", &claims_obj, &err);
	if (r < 0) {
		fprintf(stderr, "%s\n", skr_error_message(&err));
		goto out;
	}

	fprintf(stderr, "token verified: signature (issuer's JWKS), issuer, lifetime\n");
	if (o.print_token)
		printf("%s\n", token);
	printf("%s\n",
	       json_object_to_json_string_ext(claims_obj, JSON_C_TO_STRING_PRETTY |
	                                                          JSON_C_TO_STRING_NOSLASHESCAPE));
out:
	if (token)
		secure_erase(token, strlen(token));
	skr_attester_free(attester);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "attest") == 0)
		return cmd_attest(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("confidential-sidecar %s\n", PROJECT_VERSION);
		return EXIT_SUCCESS;
	}
	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		return EXIT_SUCCESS;
	}
	usage(stderr);
	return EXIT_USAGE;
}
