/* SPDX-License-Identifier: MIT */
/*
 * devcloud: a local, MAA-compatible attestation service for development and tests, so the
 * whole attestation chain (virtual SEV-SNP platform → report → token → verification) and the
 * key release chain (identity token → key vault import → policy-gated release) run without
 * Azure. Never use it to protect real secrets: its roots of trust are local files.
 *
 *   devcloud init --state DIR [--hostname NAME]... [--product Milan|Genoa|Turin]
 *                 [--report-version N] [--host-data HEX64 | --security-policy FILE]
 *                 [--compliance-status S] [--debuggable] [--force]
 *   devcloud serve --state DIR [--listen 127.0.0.1] [--attest-port N] [--kv-port N]
 *                  [--imds-port N] [--trust-root PEM]... [--max-body BYTES]
 *                  [--token-lifetime SECONDS] [--log-level LEVEL]
 *   devcloud federated-token --state DIR [--subject SUB] [--audience AUD] [--lifetime SECONDS]
 *   devcloud verify-report --report FILE --chain PEM --trust-root PEM... [--runtime-data FILE]
 *
 * Exit codes: 0 success, 1 runtime failure (verification failed, cannot listen), 2 usage or
 * configuration error (including a --listen address that is not loopback).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "b64.h"
#include "cleanup.h"
#include "devcloud.h"
#include "fileio.h"
#include "json_util.h"
#include "log.h"
#include "ossl.h"

#define EXIT_USAGE 2
#define POLICY_FILE_MAX (16u * 1024 * 1024)

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: devcloud COMMAND [options]\n"
	        "\n"
	        "A local, MAA-compatible attestation service with a key vault and Azure identity\n"
	        "endpoints (development and tests only).\n"
	        "\n"
	        "  devcloud init --state DIR [options]\n"
	        "      Create DIR (0700): local CA, TLS certificates, token signing key, virtual\n"
	        "      SEV-SNP platform, settings, key vault certificate and sealing key,\n"
	        "      identities (identity.json). Prints a JSON summary.\n"
	        "        --hostname NAME           extra TLS name besides localhost, 127.0.0.1, "
	        "::1\n"
	        "        --product NAME            Milan (default), Genoa or Turin\n"
	        "        --report-version N        report VERSION 2..5 (default 3)\n"
	        "        --host-data HEX64         HOST_DATA of the platform\n"
	        "        --security-policy FILE    HOST_DATA = SHA-256 of FILE (a CCE policy)\n"
	        "        --compliance-status S     x-ms-compliance-status (default "
	        "azure-compliant-uvm)\n"
	        "        --debuggable              set POLICY.DEBUG in the platform's reports\n"
	        "        --force                   replace an existing state\n"
	        "\n"
	        "  devcloud serve --state DIR [options]\n"
	        "      Serve on loopback: HTTPS MAA attest, openid-configuration, JWKS, KDS and\n"
	        "      THIM paths for the virtual platform and the Entra token endpoint\n"
	        "      (POST /{tenant}/oauth2/v2.0/token); HTTPS key vault (/keys/...); plain\n"
	        "      HTTP IMDS (/metadata/identity/oauth2/token). Writes DIR/endpoints.json\n"
	        "      once listening; SIGTERM/SIGINT stop it (exit 0).\n"
	        "        --listen ADDR             loopback address (default 127.0.0.1)\n"
	        "        --attest-port N           port, 0 = ephemeral (default 0)\n"
	        "        --kv-port N               key vault port, 0 = ephemeral (default 0)\n"
	        "        --imds-port N             IMDS port (plain HTTP), 0 = ephemeral (default "
	        "0)\n"
	        "        --trust-root PEM          also trust these AMD roots (repeatable)\n"
	        "        --max-body BYTES          request body limit (default 1048576)\n"
	        "        --token-lifetime SECONDS  token lifetime (default 28800)\n"
	        "        --log-level LEVEL         error, warn, info (default), debug, trace\n"
	        "\n"
	        "  devcloud federated-token --state DIR [options]\n"
	        "      Print a client assertion for the Entra endpoint (workload identity), as a\n"
	        "      Kubernetes service-account token: signed by identity-key.pem, iss = the\n"
	        "      oidc_issuer of identity.json. Write it to AZURE_FEDERATED_TOKEN_FILE.\n"
	        "        --subject SUB             sub (default: the first application's first\n"
	        "                                  federated subject)\n"
	        "        --audience AUD            aud (default api://AzureADTokenExchange)\n"
	        "        --lifetime SECONDS        validity (default 3600)\n"
	        "\n"
	        "  devcloud verify-report --report FILE --chain PEM --trust-root PEM... "
	        "[--runtime-data FILE]\n"
	        "      Verify a report (raw 1184 bytes or hex) offline and print its claims.\n"
	        "      Exit 0 if it verifies, 1 with the reason otherwise.\n");
}

static int parse_ulong(const char *opt, const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > max) {
		fprintf(stderr, "devcloud: %s must be a number 0..%lu, not '%s'\n", opt, max, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static void print_json(json_object *obj)
{
	printf("%s\n", json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY |
	                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* ---------------------------------------------------------------------------------------------
 * init
 * ------------------------------------------------------------------------------------------- */

static int host_data_from_policy(const char *path, uint8_t out[32])
{
	_cleanup_free_ char *data = NULL;
	size_t len;
	int r = read_file(path, POLICY_FILE_MAX, &data, &len);

	if (r < 0) {
		fprintf(stderr, "devcloud: --security-policy %s: %s\n", path, strerror(-r));
		return r;
	}
	if (EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL) != 1) {
		fprintf(stderr, "devcloud: SHA-256 failed\n");
		return -EIO;
	}
	return 0;
}

static int cmd_init(int argc, char **argv)
{
	enum {
		OPT_STATE = 0x100,
		OPT_HOST,
		OPT_PRODUCT,
		OPT_VERSION,
		OPT_HOST_DATA,
		OPT_POLICY,
		OPT_COMPLIANCE,
		OPT_DEBUG,
		OPT_FORCE
	};
	static const struct option options[] = {
	        {"state", required_argument, NULL, OPT_STATE},
	        {"hostname", required_argument, NULL, OPT_HOST},
	        {"product", required_argument, NULL, OPT_PRODUCT},
	        {"report-version", required_argument, NULL, OPT_VERSION},
	        {"host-data", required_argument, NULL, OPT_HOST_DATA},
	        {"security-policy", required_argument, NULL, OPT_POLICY},
	        {"compliance-status", required_argument, NULL, OPT_COMPLIANCE},
	        {"debuggable", no_argument, NULL, OPT_DEBUG},
	        {"force", no_argument, NULL, OPT_FORCE},
	        {"help", no_argument, NULL, 'h'},
	        {},
	};
	struct devcloud_init_options o;
	_cleanup_json_ json_object *summary = NULL;
	struct skr_error err = {0};
	const char *host_data = NULL, *policy = NULL;
	unsigned long v;
	int c, r;

	devcloud_init_options_default(&o);
	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case OPT_STATE:
			o.state_dir = optarg;
			break;
		case OPT_HOST:
			if (o.n_hostnames == DEVCLOUD_HOSTNAMES_MAX) {
				fprintf(stderr, "devcloud: too many --hostname\n");
				return EXIT_USAGE;
			}
			o.hostnames[o.n_hostnames++] = optarg;
			break;
		case OPT_PRODUCT:
			if (snp_product_from_string(optarg, &o.product) < 0 ||
			    o.product == SNP_PRODUCT_UNKNOWN) {
				fprintf(stderr,
				        "devcloud: --product must be Milan, Genoa or Turin, not "
				        "'%s'\n",
				        optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_VERSION:
			if (parse_ulong("--report-version", optarg, SNP_REPORT_VERSION_MAX, &v) < 0)
				return EXIT_USAGE;
			o.report_version = (uint32_t)v;
			break;
		case OPT_HOST_DATA:
			host_data = optarg;
			break;
		case OPT_POLICY:
			policy = optarg;
			break;
		case OPT_COMPLIANCE:
			o.compliance_status = optarg;
			break;
		case OPT_DEBUG:
			o.debuggable = true;
			break;
		case OPT_FORCE:
			o.force = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "devcloud init: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (host_data && policy) {
		fprintf(stderr, "devcloud init: --host-data and --security-policy are exclusive "
		                "(the policy's SHA-256 is the host data)\n");
		return EXIT_USAGE;
	}
	if (host_data && hex_decode(host_data, strlen(host_data), o.host_data, 32) < 0) {
		fprintf(stderr, "devcloud init: --host-data must be 64 hex digits\n");
		return EXIT_USAGE;
	}
	if (policy && host_data_from_policy(policy, o.host_data) < 0)
		return EXIT_USAGE;

	r = devcloud_state_init(&o, &summary, &err);
	if (r < 0) {
		fprintf(stderr, "devcloud init: %s\n", skr_error_message(&err));
		return r == -EINVAL || r == -EEXIST || r == -ENOTDIR ? EXIT_USAGE : EXIT_FAILURE;
	}
	print_json(summary);
	return EXIT_SUCCESS;
}

/* ---------------------------------------------------------------------------------------------
 * serve
 * ------------------------------------------------------------------------------------------- */

struct listeners {
	const char *host; /* "localhost", "127.0.0.1", "[::1]" … as clients dial it */
	uint16_t attest, kv, imds;
};

static int write_endpoints(const struct devcloud *dc, const struct listeners *l,
                           struct skr_error *err)
{
	_cleanup_free_ char *path = path_join(dc->state_dir, "endpoints.json");
	_cleanup_json_ json_object *root = json_object_new_object();
	_cleanup_free_ char *base = NULL, *kds = NULL, *thim = NULL, *kv = NULL, *imds = NULL,
	                    *entra = NULL;
	const char *text;
	int r;

	if (asprintf(&base, "https://%s:%u", l->host, l->attest) < 0)
		base = NULL;
	if (asprintf(&kv, "https://%s:%u", l->host, l->kv) < 0)
		kv = NULL;
	/* IMDS is plain HTTP on an IP address, like http://169.254.169.254. */
	if (asprintf(&imds, "http://%s:%u",
	             strcmp(l->host, "localhost") == 0 ? "127.0.0.1" : l->host, l->imds) < 0)
		imds = NULL;
	if (!path || !root || !base || !kv || !imds || asprintf(&kds, "%s/vcek/v1", base) < 0 ||
	    asprintf(&thim, "%s/metadata/THIM/amd/certification", base) < 0 ||
	    asprintf(&entra, "%s/", base) < 0)
		return skr_error_set(err, -ENOMEM, "out of memory");
	json_object_object_add(root, "attest", json_object_new_string(base));
	json_object_object_add(root, "attest_port", json_object_new_int(l->attest));
	json_object_object_add(root, "kds", json_object_new_string(kds));
	json_object_object_add(root, "thim", json_object_new_string(thim));
	json_object_object_add(root, "kv", json_object_new_string(kv));
	json_object_object_add(root, "kv_port", json_object_new_int(l->kv));
	json_object_object_add(root, "imds", json_object_new_string(imds));
	json_object_object_add(root, "imds_port", json_object_new_int(l->imds));
	/* AZURE_AUTHORITY_HOST for workload identity, and the tenant it serves. */
	json_object_object_add(root, "entra", json_object_new_string(entra));
	json_object_object_add(root, "tenant_id", json_object_new_string(dc->identity.tenant_id));
	text = json_compact(root);
	r = write_file_atomic(path, text, strlen(text), 0644);
	if (r < 0)
		return skr_error_set(err, r, "cannot write %s: %s", path, strerror(-r));
	printf("devcloud: attest %s\n", base);
	printf("devcloud: kds %s\n", kds);
	printf("devcloud: thim %s\n", thim);
	printf("devcloud: kv %s\n", kv);
	printf("devcloud: imds %s\n", imds);
	printf("devcloud: entra %s (tenant %s)\n", entra, dc->identity.tenant_id);
	fflush(stdout);
	return 0;
}

static int cmd_serve(int argc, char **argv)
{
	enum {
		OPT_STATE = 0x100,
		OPT_LISTEN,
		OPT_PORT,
		OPT_KV_PORT,
		OPT_IMDS_PORT,
		OPT_TRUST,
		OPT_MAX_BODY,
		OPT_LIFETIME,
		OPT_LOG_LEVEL
	};
	static const struct option options[] = {
	        {"state", required_argument, NULL, OPT_STATE},
	        {"listen", required_argument, NULL, OPT_LISTEN},
	        {"attest-port", required_argument, NULL, OPT_PORT},
	        {"kv-port", required_argument, NULL, OPT_KV_PORT},
	        {"imds-port", required_argument, NULL, OPT_IMDS_PORT},
	        {"trust-root", required_argument, NULL, OPT_TRUST},
	        {"max-body", required_argument, NULL, OPT_MAX_BODY},
	        {"token-lifetime", required_argument, NULL, OPT_LIFETIME},
	        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	        {"help", no_argument, NULL, 'h'},
	        {},
	};
	struct devcloud_serve_options o;
	struct devcloud *dc = NULL;
	struct devcloud_server *srv = NULL, *kv_srv = NULL, *imds_srv = NULL;
	struct skr_error err = {0};
	_cleanup_free_ char *host = NULL, *endpoints = NULL;
	struct listeners l = {0};
	const char *listen = "127.0.0.1";
	unsigned long port = 0, kv_port = 0, imds_port = 0, v;
	enum log_level level;
	uint8_t addr[16];
	int family, c, r, sig = 0;
	sigset_t set;

	devcloud_serve_options_default(&o);
	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case OPT_STATE:
			o.state_dir = optarg;
			break;
		case OPT_LISTEN:
			listen = optarg;
			break;
		case OPT_PORT:
			if (parse_ulong("--attest-port", optarg, 65535, &port) < 0)
				return EXIT_USAGE;
			break;
		case OPT_KV_PORT:
			if (parse_ulong("--kv-port", optarg, 65535, &kv_port) < 0)
				return EXIT_USAGE;
			break;
		case OPT_IMDS_PORT:
			if (parse_ulong("--imds-port", optarg, 65535, &imds_port) < 0)
				return EXIT_USAGE;
			break;
		case OPT_TRUST:
			if (o.n_trust_roots == DEVCLOUD_TRUST_ROOTS_MAX) {
				fprintf(stderr, "devcloud: too many --trust-root\n");
				return EXIT_USAGE;
			}
			o.trust_roots[o.n_trust_roots++] = optarg;
			break;
		case OPT_MAX_BODY:
			if (parse_ulong("--max-body", optarg, 64ul * 1024 * 1024, &v) < 0 ||
			    v == 0) {
				fprintf(stderr, "devcloud: --max-body must be 1..67108864\n");
				return EXIT_USAGE;
			}
			o.max_body = v;
			break;
		case OPT_LIFETIME:
			if (parse_ulong("--token-lifetime", optarg, 30ul * 24 * 3600, &v) < 0 ||
			    v == 0) {
				fprintf(stderr, "devcloud: --token-lifetime must be 1..2592000\n");
				return EXIT_USAGE;
			}
			o.token_lifetime = (long)v;
			break;
		case OPT_LOG_LEVEL:
			if (log_level_from_string(optarg, &level) < 0) {
				fprintf(stderr, "devcloud: unknown --log-level '%s'\n", optarg);
				return EXIT_USAGE;
			}
			log_set_level(level);
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "devcloud serve: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	/* Checked first: a non-loopback address is refused whatever else is wrong. */
	if (devcloud_listen_parse(listen, &family, addr, &err) < 0) {
		fprintf(stderr, "devcloud serve: %s\n", skr_error_message(&err));
		return EXIT_USAGE;
	}
	if (!o.state_dir) {
		fprintf(stderr, "devcloud serve: --state DIR is required\n");
		return EXIT_USAGE;
	}

	r = devcloud_open(&o, &dc, &err);
	if (r < 0) {
		fprintf(stderr, "devcloud serve: %s\n", skr_error_message(&err));
		return EXIT_USAGE;
	}
	/* A stale endpoints.json would tell waiting scripts a dead port. */
	endpoints = path_join(dc->state_dir, "endpoints.json");
	if (endpoints)
		(void)unlink(endpoints);

	/* Blocked before libmicrohttpd's threads start, so they inherit the mask and the main
	 * thread alone receives the signal in sigwait(). */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	r = devcloud_server_start_service(dc, DEVCLOUD_SERVICE_ATTEST, listen, (uint16_t)port, &srv,
	                                  &err);
	if (r == 0)
		r = devcloud_server_start_service(dc, DEVCLOUD_SERVICE_KV, listen,
		                                  (uint16_t)kv_port, &kv_srv, &err);
	if (r == 0)
		r = devcloud_server_start_service(dc, DEVCLOUD_SERVICE_IMDS, listen,
		                                  (uint16_t)imds_port, &imds_srv, &err);
	if (r < 0) {
		fprintf(stderr, "devcloud serve: %s\n", skr_error_message(&err));
		devcloud_server_stop(imds_srv);
		devcloud_server_stop(kv_srv);
		devcloud_server_stop(srv);
		devcloud_free(dc);
		return EXIT_FAILURE;
	}
	if (family == AF_INET && strcmp(listen, "localhost") != 0 &&
	    strcmp(listen, "127.0.0.1") != 0)
		host = strdup(listen);
	else if (family == AF_INET6)
		r = asprintf(&host, "[%s]", listen);
	else
		host = strdup("localhost");
	l.host = host;
	l.attest = devcloud_server_port(srv);
	l.kv = devcloud_server_port(kv_srv);
	l.imds = devcloud_server_port(imds_srv);
	if (r < 0 || !host) {
		host = NULL;
		r = skr_error_set(&err, -ENOMEM, "out of memory");
	} else {
		r = write_endpoints(dc, &l, &err);
	}
	if (r < 0) {
		fprintf(stderr, "devcloud serve: %s\n", skr_error_message(&err));
		devcloud_server_stop(imds_srv);
		devcloud_server_stop(kv_srv);
		devcloud_server_stop(srv);
		devcloud_free(dc);
		return EXIT_FAILURE;
	}
	log_info("devcloud serving https://%s:%u, key vault port %u, IMDS port %u (state %s, %zu "
	         "trusted ARK%s, %zu stored key versions)",
	         host, l.attest, l.kv, l.imds, dc->state_dir, snp_trust_store_count(dc->trust),
	         snp_trust_store_count(dc->trust) == 1 ? "" : "s",
	         devcloud_keystore_count(dc->vault.store));

	for (;;) {
		if (sigwait(&set, &sig) == 0 && (sig == SIGTERM || sig == SIGINT))
			break;
	}
	log_info("devcloud: %s, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	devcloud_server_stop(imds_srv);
	devcloud_server_stop(kv_srv);
	devcloud_server_stop(srv);
	if (endpoints)
		(void)unlink(endpoints);
	devcloud_free(dc);
	return EXIT_SUCCESS;
}

/* ---------------------------------------------------------------------------------------------
 * federated-token
 * ------------------------------------------------------------------------------------------- */

static int cmd_federated_token(int argc, char **argv)
{
	enum { OPT_STATE = 0x100, OPT_SUBJECT, OPT_AUDIENCE, OPT_LIFETIME };
	static const struct option options[] = {
	        {"state", required_argument, NULL, OPT_STATE},
	        {"subject", required_argument, NULL, OPT_SUBJECT},
	        {"audience", required_argument, NULL, OPT_AUDIENCE},
	        {"lifetime", required_argument, NULL, OPT_LIFETIME},
	        {"help", no_argument, NULL, 'h'},
	        {},
	};
	const char *state = NULL, *subject = NULL, *audience = NULL;
	unsigned long lifetime = 3600;
	struct skr_error err = {0};
	char *jwt = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case OPT_STATE:
			state = optarg;
			break;
		case OPT_SUBJECT:
			subject = optarg;
			break;
		case OPT_AUDIENCE:
			audience = optarg;
			break;
		case OPT_LIFETIME:
			if (parse_ulong("--lifetime", optarg, 30ul * 24 * 3600, &lifetime) < 0 ||
			    lifetime == 0) {
				fprintf(stderr, "devcloud: --lifetime must be 1..2592000\n");
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "devcloud federated-token: unexpected argument '%s'\n",
		        argv[optind]);
		return EXIT_USAGE;
	}
	if (!state) {
		fprintf(stderr, "devcloud federated-token: --state DIR is required\n");
		return EXIT_USAGE;
	}
	if (devcloud_federated_token(state, subject, audience, (long)lifetime, &jwt, &err) < 0) {
		fprintf(stderr, "devcloud federated-token: %s\n", skr_error_message(&err));
		return EXIT_USAGE;
	}
	/* The assertion is a credential: stdout only, meant for a 0600 token file. */
	printf("%s\n", jwt);
	secure_free(jwt, strlen(jwt));
	return EXIT_SUCCESS;
}

/* ---------------------------------------------------------------------------------------------
 * verify-report
 * ------------------------------------------------------------------------------------------- */

static int cmd_verify_report(int argc, char **argv)
{
	enum { OPT_REPORT = 0x100, OPT_CHAIN, OPT_TRUST, OPT_RUNTIME };
	static const struct option options[] = {
	        {"report", required_argument, NULL, OPT_REPORT},
	        {"chain", required_argument, NULL, OPT_CHAIN},
	        {"trust-root", required_argument, NULL, OPT_TRUST},
	        {"runtime-data", required_argument, NULL, OPT_RUNTIME},
	        {"help", no_argument, NULL, 'h'},
	        {},
	};
	struct devcloud_verify_options o = {0};
	_cleanup_json_ json_object *claims = NULL;
	struct skr_error err = {0};
	int c;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case OPT_REPORT:
			o.report_path = optarg;
			break;
		case OPT_CHAIN:
			o.chain_path = optarg;
			break;
		case OPT_TRUST:
			if (o.n_trust_roots == DEVCLOUD_TRUST_ROOTS_MAX) {
				fprintf(stderr, "devcloud: too many --trust-root\n");
				return EXIT_USAGE;
			}
			o.trust_roots[o.n_trust_roots++] = optarg;
			break;
		case OPT_RUNTIME:
			o.runtime_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "devcloud verify-report: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (!o.report_path || !o.chain_path || o.n_trust_roots == 0) {
		fprintf(stderr, "devcloud verify-report: --report, --chain and at least one "
		                "--trust-root are required\n");
		return EXIT_USAGE;
	}
	if (devcloud_verify_report(&o, &claims, &err) < 0) {
		fprintf(stderr, "devcloud verify-report: %s\n", skr_error_message(&err));
		return EXIT_FAILURE;
	}
	print_json(claims);
	return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "init") == 0)
		return cmd_init(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "federated-token") == 0)
		return cmd_federated_token(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "verify-report") == 0)
		return cmd_verify_report(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("devcloud %s\n", PROJECT_VERSION);
		return EXIT_SUCCESS;
	}
	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		return EXIT_SUCCESS;
	}
	usage(stderr);
	return EXIT_USAGE;
}
