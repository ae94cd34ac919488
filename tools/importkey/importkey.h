/* SPDX-License-Identifier: MIT */
/*
 * importkey's own input handling (private to tools/importkey): the Go tool's importkeyconfig.json
 * (protocols.md §7.4), its flags plus ours, the key given on the command line, and the check that
 * a release policy pins the two claims every SEV-SNP policy should pin. Split from main.c so
 * tests/unit/test_importkey_config.c can exercise it without a vault.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "skr.h"

#define IMPORTKEY_OCT_KEY_SIZE 32 /* the LUKS key the sidecar uses as it is (§7.3) */
#define IMPORTKEY_RSA_BITS 2048   /* generated RSA keys, as the Go tool */

/* The configuration file. Strings are borrowed from @root and live until _clear(). */
struct importkey_config {
	json_object *root;
	const char *kid;        /* key.kid: the key name in the vault */
	enum skr_key_type type; /* from key.kty: SKR_KEY_OCT or SKR_KEY_RSA */
	bool hsm;               /* always true: exportable keys must be HSM-protected */
	const char *key_ops[SKR_KEY_OPS_MAX];
	size_t n_key_ops;
	const char *maa_endpoint;    /* key.authority.endpoint */
	const char *akv_endpoint;    /* key.akv.endpoint */
	const char *akv_api_version; /* key.akv.api_version, NULL when absent or empty */
	const char *bearer_token;    /* key.akv.bearer_token, NULL when absent or empty */
	const char *salt_hex;        /* key_derivation.salt, NULL when absent or empty */
	const char *label;           /* key_derivation.label, NULL when absent or empty */
	const char *client_id;       /* identity.client_id, NULL when absent or empty */
	char *claims_json;           /* compact JSON of "claims" (an array of arrays); malloc'ed */
};

/*
 * Parse and validate: key.kid, key.kty ("oct-HSM", "oct", "" or absent → oct; "RSA-HSM",
 * "RSA" → RSA; anything else refused), key.key_ops (array of strings), key.authority.endpoint
 * and key.akv.endpoint (required), claims (an array of non-empty arrays of objects). Errors
 * name the field: "key.kty: unknown key type 'EC'; use oct-HSM or RSA-HSM". -EINVAL.
 */
int importkey_config_parse(const char *json, size_t len, struct importkey_config *out,
                           struct skr_error *err);
int importkey_config_load(const char *path, struct importkey_config *out, struct skr_error *err);
void importkey_config_clear(struct importkey_config *c);

struct importkey_options {
	const char *config_path; /* -c, --config */
	char *key_hex;         /* -kh, --key-hex: hex or a file (argv storage, erased after use) */
	const char *key_pem;   /* -kp, --key-pem */
	bool imds;             /* -a, --imds */
	bool out;              /* -out, --out: write keyfile.bin */
	bool force;            /* --force: replace an existing keyfile.bin */
	const char *ca_bundle; /* --ca-bundle */
	const char *imds_endpoint; /* --imds-endpoint */
	bool immutable;            /* --immutable */
	bool print_policy_only;    /* --print-policy-only */
	const char *salt_hex;      /* --salt */
	bool verbose;              /* --verbose: the library's info log on stderr */
	bool help;
	bool version;
};

/*
 * GNU long options, the Go tool's single-dash spellings (-c, -kh, -kp, -a, -out, also with
 * "=value") and --help. Resets getopt's state itself, so it may be called more than once.
 * -EINVAL with the reason for unknown options, missing arguments, stray arguments, -kh with -kp,
 * a --salt that is not hex, or no -c (unless --help/--version).
 */
int importkey_options_parse(int argc, char **argv, struct importkey_options *out,
                            struct skr_error *err);

/*
 * The oct key of -kh: 64 hex digits, or the name of a file holding 64 hex digits (surrounding
 * whitespace ignored) or exactly 32 raw bytes. Never quotes key material in an error.
 */
int importkey_load_oct_key(const char *arg, struct secret **key, struct skr_error *err);

/*
 * The RSA private key of -kp (PEM, PKCS#8 "PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY", not
 * encrypted; 2048, 3072 or 4096 bits) as PKCS#8 DER in locked memory.
 */
int importkey_load_rsa_key(const char *path, struct secret **pkcs8, struct skr_error *err);

/*
 * Lint a release policy: for each authority (top-level anyOf entry) that does not require
 * x-ms-sevsnpvm-is-debuggable == false or x-ms-sevsnpvm-vmpl == 0 (on every path through its
 * allOf/anyOf), one line of *warnings (malloc'ed, NULL when none). Returns the number of
 * warnings, or -EINVAL for a document that is not a policy.
 */
int importkey_policy_lint(const char *policy_json, size_t len, char **warnings,
                          struct skr_error *err);
