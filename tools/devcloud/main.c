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
	        "        --max-body BYTES          request body limit (default 1048576, at most\n"
	        "                                  2097152)\n"
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

/* A count or duration that must not be 0: 1..@max, @why explaining the bound (or ""). */
static int parse_positive(const char *opt, const char *s, unsigned long max, const char *why,
                          unsigned long *out)
{
	if (parse_ulong(opt, s, max, out) < 0 || *out == 0) {
		fprintf(stderr, "devcloud: %s must be 1..%lu%s\n", opt, max, why);
		return -EINVAL;
	}
	return 0;
}

/* A repeatable option (--hostname, --trust-root) into @list of at most @max entries. */
static int append_arg(const char *opt, const char *arg, const char **list, size_t *n, size_t max)
{
	if (*n == max) {
		fprintf(stderr, "devcloud: too many %s\n", opt);
		return -E2BIG;
	}
	list[(*n)++] = arg;
	return 0;
}

/* Applies one option (a getopt_long value) of a subcommand to @ctx; negative on bad input. */
typedef int (*option_fn)(void *ctx, int opt, const char *arg);

/*
 * The option loop every subcommand shares: long options only (plus -h/--help, which print the
 * usage), each handed to @apply, and no positional arguments. Returns -1 when the command
 * should run, else its exit code: EXIT_SUCCESS after --help, EXIT_USAGE for an unknown or
 * invalid option or a stray argument (getopt_long or @apply have said which).
 */
static int parse_options(const char *cmd, int argc, char **argv, const struct option *options,
                         option_fn apply, void *ctx)
{
	int c;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		if (c == 'h') {
			usage(stdout);
			return EXIT_SUCCESS;
		}
		if (c == '?' || apply(ctx, c, optarg) < 0)
			return EXIT_USAGE;
	}
	if (optind < argc) {
		fprintf(stderr, "devcloud %s: unexpected argument '%s'\n", cmd, argv[optind]);
		return EXIT_USAGE;
	}
	return -1;
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

struct init_args {
	struct devcloud_init_options o;
	const char *host_data, *policy;
};

enum {
	INIT_STATE = 0x100,
	INIT_HOST,
	INIT_PRODUCT,
	INIT_VERSION,
	INIT_HOST_DATA,
	INIT_POLICY,
	INIT_COMPLIANCE,
	INIT_DEBUG,
	INIT_FORCE
};

static const struct option init_options[] = {
        {"state", required_argument, NULL, INIT_STATE},
        {"hostname", required_argument, NULL, INIT_HOST},
        {"product", required_argument, NULL, INIT_PRODUCT},
        {"report-version", required_argument, NULL, INIT_VERSION},
        {"host-data", required_argument, NULL, INIT_HOST_DATA},
        {"security-policy", required_argument, NULL, INIT_POLICY},
        {"compliance-status", required_argument, NULL, INIT_COMPLIANCE},
        {"debuggable", no_argument, NULL, INIT_DEBUG},
        {"force", no_argument, NULL, INIT_FORCE},
        {"help", no_argument, NULL, 'h'},
        {},
};

static int init_option(void *ctx, int opt, const char *arg)
{
	struct init_args *a = ctx;
	unsigned long v;

	switch (opt) {
	case INIT_STATE:
		a->o.state_dir = arg;
		return 0;
	case INIT_HOST:
		return append_arg("--hostname", arg, a->o.hostnames, &a->o.n_hostnames,
		                  DEVCLOUD_HOSTNAMES_MAX);
	case INIT_PRODUCT:
		if (snp_product_from_string(arg, &a->o.product) < 0 ||
		    a->o.product == SNP_PRODUCT_UNKNOWN) {
			fprintf(stderr,
			        "devcloud: --product must be Milan, Genoa or Turin, not '%s'\n",
			        arg);
			return -EINVAL;
		}
		return 0;
	case INIT_VERSION:
		if (parse_ulong("--report-version", arg, SNP_REPORT_VERSION_MAX, &v) < 0)
			return -EINVAL;
		a->o.report_version = (uint32_t)v;
		return 0;
	case INIT_HOST_DATA:
		a->host_data = arg;
		return 0;
	case INIT_POLICY:
		a->policy = arg;
		return 0;
	case INIT_COMPLIANCE:
		a->o.compliance_status = arg;
		return 0;
	case INIT_DEBUG:
		a->o.debuggable = true;
		return 0;
	case INIT_FORCE:
		a->o.force = true;
		return 0;
	default:
		return -EINVAL;
	}
}

static int cmd_init(int argc, char **argv)
{
	struct init_args a = {0};
	_cleanup_json_ json_object *summary = NULL;
	struct skr_error err = {0};
	int r;

	devcloud_init_options_default(&a.o);
	r = parse_options("init", argc, argv, init_options, init_option, &a);
	if (r >= 0)
		return r;
	if (a.host_data && a.policy) {
		fprintf(stderr, "devcloud init: --host-data and --security-policy are exclusive "
		                "(the policy's SHA-256 is the host data)\n");
		return EXIT_USAGE;
	}
	if (a.host_data && hex_decode(a.host_data, strlen(a.host_data), a.o.host_data, 32) < 0) {
		fprintf(stderr, "devcloud init: --host-data must be 64 hex digits\n");
		return EXIT_USAGE;
	}
	if (a.policy && host_data_from_policy(a.policy, a.o.host_data) < 0)
		return EXIT_USAGE;

	r = devcloud_state_init(&a.o, &summary, &err);
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

/* The three listeners by service, in start order (stopped in reverse), with their port option. */
static const char *const port_options[] = {
        [DEVCLOUD_SERVICE_ATTEST] = "--attest-port",
        [DEVCLOUD_SERVICE_KV] = "--kv-port",
        [DEVCLOUD_SERVICE_IMDS] = "--imds-port",
};

#define N_SERVICES ELEMENTSOF(port_options)

struct serve_args {
	struct devcloud_serve_options o;
	const char *listen;
	unsigned long ports[N_SERVICES]; /* by enum devcloud_service */
};

enum {
	SERVE_STATE = 0x100,
	SERVE_LISTEN,
	SERVE_PORT, /* SERVE_PORT + service: its port */
	SERVE_TRUST = SERVE_PORT + N_SERVICES,
	SERVE_MAX_BODY,
	SERVE_LIFETIME,
	SERVE_LOG_LEVEL
};

static const struct option serve_options[] = {
        {"state", required_argument, NULL, SERVE_STATE},
        {"listen", required_argument, NULL, SERVE_LISTEN},
        {"attest-port", required_argument, NULL, SERVE_PORT + DEVCLOUD_SERVICE_ATTEST},
        {"kv-port", required_argument, NULL, SERVE_PORT + DEVCLOUD_SERVICE_KV},
        {"imds-port", required_argument, NULL, SERVE_PORT + DEVCLOUD_SERVICE_IMDS},
        {"trust-root", required_argument, NULL, SERVE_TRUST},
        {"max-body", required_argument, NULL, SERVE_MAX_BODY},
        {"token-lifetime", required_argument, NULL, SERVE_LIFETIME},
        {"log-level", required_argument, NULL, SERVE_LOG_LEVEL},
        {"help", no_argument, NULL, 'h'},
        {},
};

static int serve_option(void *ctx, int opt, const char *arg)
{
	struct serve_args *a = ctx;
	enum log_level level;
	unsigned long v;

	switch (opt) {
	case SERVE_STATE:
		a->o.state_dir = arg;
		return 0;
	case SERVE_LISTEN:
		a->listen = arg;
		return 0;
	case SERVE_PORT + DEVCLOUD_SERVICE_ATTEST:
	case SERVE_PORT + DEVCLOUD_SERVICE_KV:
	case SERVE_PORT + DEVCLOUD_SERVICE_IMDS:
		return parse_ulong(port_options[opt - SERVE_PORT], arg, 65535,
		                   &a->ports[opt - SERVE_PORT]);
	case SERVE_TRUST:
		return append_arg("--trust-root", arg, a->o.trust_roots, &a->o.n_trust_roots,
		                  DEVCLOUD_TRUST_ROOTS_MAX);
	case SERVE_MAX_BODY:
		if (parse_positive("--max-body", arg, DEVCLOUD_MAX_BODY_LIMIT,
		                   " (the largest attest request the MAA request parser accepts)",
		                   &v) < 0)
			return -EINVAL;
		a->o.max_body = v;
		return 0;
	case SERVE_LIFETIME:
		if (parse_positive("--token-lifetime", arg, 30ul * 24 * 3600, "", &v) < 0)
			return -EINVAL;
		a->o.token_lifetime = (long)v;
		return 0;
	case SERVE_LOG_LEVEL:
		if (log_level_from_string(arg, &level) < 0) {
			fprintf(stderr, "devcloud: unknown --log-level '%s'\n", arg);
			return -EINVAL;
		}
		log_set_level(level);
		return 0;
	default:
		return -EINVAL;
	}
}

static void stop_servers(struct devcloud_server *srv[N_SERVICES])
{
	for (size_t i = N_SERVICES; i-- > 0;)
		devcloud_server_stop(srv[i]);
}

static int cmd_serve(int argc, char **argv)
{
	struct serve_args a = {.listen = "127.0.0.1"};
	struct devcloud *dc = NULL;
	struct devcloud_server *srv[N_SERVICES] = {0};
	struct skr_error err = {0};
	_cleanup_free_ char *host = NULL, *endpoints = NULL;
	struct listeners l = {0};
	uint8_t addr[16];
	int family, r, sig = 0;
	sigset_t set;

	devcloud_serve_options_default(&a.o);
	r = parse_options("serve", argc, argv, serve_options, serve_option, &a);
	if (r >= 0)
		return r;
	/* Checked first: a non-loopback address is refused whatever else is wrong. */
	if (devcloud_listen_parse(a.listen, &family, addr, &err) < 0) {
		fprintf(stderr, "devcloud serve: %s\n", skr_error_message(&err));
		return EXIT_USAGE;
	}
	if (!a.o.state_dir) {
		fprintf(stderr, "devcloud serve: --state DIR is required\n");
		return EXIT_USAGE;
	}

	r = devcloud_open(&a.o, &dc, &err);
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

	for (size_t i = 0; i < N_SERVICES && r == 0; i++)
		r = devcloud_server_start_service(dc, (enum devcloud_service)i, a.listen,
		                                  (uint16_t)a.ports[i], &srv[i], &err);
	if (r == 0) {
		if (family == AF_INET && strcmp(a.listen, "localhost") != 0 &&
		    strcmp(a.listen, "127.0.0.1") != 0)
			host = strdup(a.listen);
		else if (family == AF_INET6)
			r = asprintf(&host, "[%s]", a.listen);
		else
			host = strdup("localhost");
		l.host = host;
		l.attest = devcloud_server_port(srv[DEVCLOUD_SERVICE_ATTEST]);
		l.kv = devcloud_server_port(srv[DEVCLOUD_SERVICE_KV]);
		l.imds = devcloud_server_port(srv[DEVCLOUD_SERVICE_IMDS]);
		if (r < 0 || !host) {
			host = NULL;
			r = skr_error_set(&err, -ENOMEM, "out of memory");
		} else {
			r = write_endpoints(dc, &l, &err);
		}
	}
	if (r < 0) {
		fprintf(stderr, "devcloud serve: %s\n", skr_error_message(&err));
		stop_servers(srv);
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
	stop_servers(srv);
	if (endpoints)
		(void)unlink(endpoints);
	devcloud_free(dc);
	return EXIT_SUCCESS;
}

/* ---------------------------------------------------------------------------------------------
 * federated-token
 * ------------------------------------------------------------------------------------------- */

struct federated_token_args {
	const char *state, *subject, *audience;
	unsigned long lifetime;
};

enum { FED_STATE = 0x100, FED_SUBJECT, FED_AUDIENCE, FED_LIFETIME };

static const struct option federated_token_options[] = {
        {"state", required_argument, NULL, FED_STATE},
        {"subject", required_argument, NULL, FED_SUBJECT},
        {"audience", required_argument, NULL, FED_AUDIENCE},
        {"lifetime", required_argument, NULL, FED_LIFETIME},
        {"help", no_argument, NULL, 'h'},
        {},
};

static int federated_token_option(void *ctx, int opt, const char *arg)
{
	struct federated_token_args *a = ctx;

	switch (opt) {
	case FED_STATE:
		a->state = arg;
		return 0;
	case FED_SUBJECT:
		a->subject = arg;
		return 0;
	case FED_AUDIENCE:
		a->audience = arg;
		return 0;
	case FED_LIFETIME:
		return parse_positive("--lifetime", arg, 30ul * 24 * 3600, "", &a->lifetime);
	default:
		return -EINVAL;
	}
}

static int cmd_federated_token(int argc, char **argv)
{
	struct federated_token_args a = {.lifetime = 3600};
	struct skr_error err = {0};
	char *jwt = NULL;
	int r;

	r = parse_options("federated-token", argc, argv, federated_token_options,
	                  federated_token_option, &a);
	if (r >= 0)
		return r;
	if (!a.state) {
		fprintf(stderr, "devcloud federated-token: --state DIR is required\n");
		return EXIT_USAGE;
	}
	if (devcloud_federated_token(a.state, a.subject, a.audience, (long)a.lifetime, &jwt, &err) <
	    0) {
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

enum { VERIFY_REPORT = 0x100, VERIFY_CHAIN, VERIFY_TRUST, VERIFY_RUNTIME };

static const struct option verify_report_options[] = {
        {"report", required_argument, NULL, VERIFY_REPORT},
        {"chain", required_argument, NULL, VERIFY_CHAIN},
        {"trust-root", required_argument, NULL, VERIFY_TRUST},
        {"runtime-data", required_argument, NULL, VERIFY_RUNTIME},
        {"help", no_argument, NULL, 'h'},
        {},
};

static int verify_report_option(void *ctx, int opt, const char *arg)
{
	struct devcloud_verify_options *o = ctx;

	switch (opt) {
	case VERIFY_REPORT:
		o->report_path = arg;
		return 0;
	case VERIFY_CHAIN:
		o->chain_path = arg;
		return 0;
	case VERIFY_TRUST:
		return append_arg("--trust-root", arg, o->trust_roots, &o->n_trust_roots,
		                  DEVCLOUD_TRUST_ROOTS_MAX);
	case VERIFY_RUNTIME:
		o->runtime_path = arg;
		return 0;
	default:
		return -EINVAL;
	}
}

static int cmd_verify_report(int argc, char **argv)
{
	struct devcloud_verify_options o = {0};
	_cleanup_json_ json_object *claims = NULL;
	struct skr_error err = {0};
	int r;

	r = parse_options("verify-report", argc, argv, verify_report_options, verify_report_option,
	                  &o);
	if (r >= 0)
		return r;
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

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
        {"init", cmd_init},
        {"serve", cmd_serve},
        {"federated-token", cmd_federated_token},
        {"verify-report", cmd_verify_report},
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	if (strcmp(argv[1], "--version") == 0) {
		printf("devcloud %s\n", PROJECT_VERSION);
		return EXIT_SUCCESS;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return EXIT_SUCCESS;
	}
	usage(stderr);
	return EXIT_USAGE;
}
