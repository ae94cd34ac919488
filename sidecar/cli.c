/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "log.h"

void cli_usage(FILE *f)
{
	fprintf(f,
	        "Usage: confidential-sidecar attest  --maa-endpoint HOST[:PORT] [options]\n"
	        "       confidential-sidecar release --maa-endpoint HOST[:PORT]\n"
	        "                                    --akv-endpoint HOST[:PORT] --kid NAME "
	        "[options]\n"
	        "\n"
	        "attest:  get an SEV-SNP report bound to the runtime data, exchange it at the\n"
	        "         attestation service for a token, verify the token, print its claims.\n"
	        "release: secure key release: attest with a fresh wrapping key, present the token\n"
	        "         to the key vault, verify and unwrap its answer, print the key's type,\n"
	        "         operations and fingerprint (never the key).\n"
	        "\n"
	        "Options:\n"
	        "  --maa-endpoint HOST[:PORT]     attestation service (MAA or devcloud)\n"
	        "  --attestation-source SRC       auto (default: the SEV-SNP device present),\n"
	        "                                 sev-guest, sev, configfs-tsm, or virtual\n"
	        "  --virtual-dir DIR              the virtual platform (with --attestation-source\n"
	        "                                 virtual; dev/test only, never chosen by itself)\n"
	        "  --ca-bundle FILE               PEM CA bundle for HTTPS (default: system store)\n"
	        "  --security-context-dir DIR     ACI security context (default: discovered)\n"
	        "  --certcache-type TYPE          AMD, AzCache or LocalTHIM certificate source\n"
	        "  --certcache-endpoint ENDPOINT  host[/path] or URL of that source\n"
	        "  --log-level LEVEL              error, warn, info (default), debug, trace\n"
	        "attest:\n"
	        "  --runtime-data JSON            runtime data to bind (default: a fresh nonce)\n"
	        "  --print-token                  also print the raw token (a bearer credential)\n"
	        "release:\n"
	        "  --akv-endpoint HOST[:PORT]     Key Vault or Managed HSM (or devcloud)\n"
	        "  --kid NAME[/VERSION]           the key to release\n"
	        "  --access-token-file FILE       vault bearer token (default: managed identity "
	        "or\n"
	        "                                 workload identity)\n"
	        "  --client-id ID                 user-assigned managed identity\n"
	        "  --imds-endpoint URL            instance metadata service (default\n"
	        "                                 http://169.254.169.254)\n"
	        "  --enc ALG                      CKM_RSA_AES_KEY_WRAP (default),\n"
	        "                                 RSA_AES_KEY_WRAP_256, RSA_AES_KEY_WRAP_384\n"
	        "  --derive [--salt HEX] [--label TEXT]\n"
	        "                                 also derive the 32-byte LUKS key and print its\n"
	        "                                 fingerprint (RSA keys: HKDF-SHA256)\n"
	        "\n"
	        "  --version, -h/--help\n");
}

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
	OPT_AKV,
	OPT_KID,
	OPT_TOKEN_FILE,
	OPT_CLIENT_ID,
	OPT_IMDS,
	OPT_ENC,
	OPT_DERIVE,
	OPT_SALT,
	OPT_LABEL,
	OPT_VERSION,
};

/* In the order of the enum above: cli_parse() names an option by its index. */
static const struct option cli_long_options[] = {
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
        {"akv-endpoint", required_argument, NULL, OPT_AKV},
        {"kid", required_argument, NULL, OPT_KID},
        {"access-token-file", required_argument, NULL, OPT_TOKEN_FILE},
        {"client-id", required_argument, NULL, OPT_CLIENT_ID},
        {"imds-endpoint", required_argument, NULL, OPT_IMDS},
        {"enc", required_argument, NULL, OPT_ENC},
        {"derive", no_argument, NULL, OPT_DERIVE},
        {"salt", required_argument, NULL, OPT_SALT},
        {"label", required_argument, NULL, OPT_LABEL},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {},
};

/* Options that only one command takes: naming the command in the error says what to do. */
static int only_for(const struct cli_options *o, enum cli_command command, const char *name)
{
	if (o->command == command)
		return 0;
	fprintf(stderr, "--%s is an option of '%s'\n", name,
	        command == CLI_ATTEST ? "attest" : "release");
	return -EINVAL;
}

/*
 * The spelling of an endpoint option, checked here so that a mistake is a usage error (exit 2)
 * before any device or network is touched. libskr checks the rest (host, port, path) and says
 * what is wrong; this catches what it would only see later: http:// (a token or a key would
 * travel in clear) and other schemes, empty values, white space.
 */
static int check_endpoint(const char *option, const char *value)
{
	const char *sep = strstr(value, "://");

	if (!*value) {
		fprintf(stderr, "--%s is empty: expected host[:port] or https://host[:port]\n",
		        option);
		return -EINVAL;
	}
	for (const char *p = value; *p; p++)
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p)) {
			fprintf(stderr, "--%s '%s' contains white space\n", option, value);
			return -EINVAL;
		}
	if (sep && (sep - value != 5 || strncasecmp(value, "https", 5) != 0)) {
		fprintf(stderr,
		        "--%s '%s': only https:// is accepted (tokens and keys never travel in "
		        "clear); expected host[:port] or https://host[:port]\n",
		        option, value);
		return -EINVAL;
	}
	return 0;
}

static int check_required(const struct cli_options *o)
{
	if (!o->maa_endpoint) {
		fprintf(stderr,
		        "--maa-endpoint is required: the attestation service host[:port]\n");
		return -EINVAL;
	}
	if (check_endpoint("maa-endpoint", o->maa_endpoint) < 0)
		return -EINVAL;
	if (o->akv_endpoint && check_endpoint("akv-endpoint", o->akv_endpoint) < 0)
		return -EINVAL;
	if (o->command == CLI_RELEASE && !o->akv_endpoint) {
		fprintf(stderr, "--akv-endpoint is required: the key vault host[:port]\n");
		return -EINVAL;
	}
	if (o->command == CLI_RELEASE && !o->kid) {
		fprintf(stderr, "--kid is required: the name of the key to release\n");
		return -EINVAL;
	}
	if ((o->kdf_salt || o->kdf_label) && !o->derive) {
		fprintf(stderr, "--salt and --label are only used with --derive\n");
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

int cli_parse(enum cli_command command, int argc, char **argv, struct cli_options *o)
{
	enum log_level level;
	enum skr_wrap_alg alg;
	int c;

	memset(o, 0, sizeof(*o));
	o->command = command;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", cli_long_options, NULL)) >= 0) {
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
			o->cfg.identity.ca_bundle = optarg;
			break;
		case OPT_RUNTIME:
			if (only_for(o, CLI_ATTEST, "runtime-data") < 0)
				return -EINVAL;
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
			if (only_for(o, CLI_ATTEST, "print-token") < 0)
				return -EINVAL;
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
		case OPT_AKV:
		case OPT_KID:
		case OPT_TOKEN_FILE:
		case OPT_CLIENT_ID:
		case OPT_IMDS:
		case OPT_ENC:
		case OPT_DERIVE:
		case OPT_SALT:
		case OPT_LABEL:
			if (only_for(o, CLI_RELEASE, cli_long_options[c - OPT_MAA].name) < 0)
				return -EINVAL;
			if (c == OPT_AKV)
				o->akv_endpoint = optarg;
			else if (c == OPT_KID)
				o->kid = optarg;
			else if (c == OPT_TOKEN_FILE)
				o->access_token_file = optarg;
			else if (c == OPT_CLIENT_ID)
				o->cfg.identity.client_id = optarg;
			else if (c == OPT_IMDS)
				o->cfg.identity.imds_endpoint = optarg;
			else if (c == OPT_ENC) {
				if (skr_wrap_alg_from_string(optarg, &alg) < 0) {
					fprintf(stderr,
					        "--enc: unknown algorithm '%s'; use "
					        "CKM_RSA_AES_KEY_WRAP, RSA_AES_KEY_WRAP_256 or "
					        "RSA_AES_KEY_WRAP_384\n",
					        optarg);
					return -EINVAL;
				}
				o->enc = optarg;
			} else if (c == OPT_DERIVE)
				o->derive = true;
			else if (c == OPT_SALT)
				o->kdf_salt = optarg;
			else
				o->kdf_label = optarg;
			break;
		case 'h':
			cli_usage(stdout);
			return 1;
		case OPT_VERSION:
			printf("confidential-sidecar %s\n", PROJECT_VERSION);
			return 1;
		default:
			cli_usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return check_required(o);
}
