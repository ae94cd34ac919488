/* SPDX-License-Identifier: MIT */
/*
 * importkey: put a key into Key Vault / Managed HSM (or devcloud) with a release policy built
 * from importkeyconfig.json, so only an attested confidential container can release it.
 * Compatible with the Go tool's config and flags (protocols.md §7.4); unlike it, never prints a
 * key (fingerprints instead), prints the HKDF salt it used, and refuses to overwrite key files.
 *
 * Exit codes: 0 imported (or --print-policy-only printed), 1 runtime failure (identity, vault,
 * files), 2 bad command line or configuration (nothing was sent).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "importkey.h"
#include "json_util.h"
#include "log.h"
#include "ossl.h"
#include "secret.h"
#include "skr.h"

#define EXIT_USAGE 2
#define KEYFILE_NAME "keyfile.bin"
#define PRIVATE_KEY_NAME "private_key.pem"
#define SALT_SIZE 32

DEFINE_CLEANUP_FUNC(PKCS8_PRIV_KEY_INFO *, PKCS8_PRIV_KEY_INFO_free)

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: importkey -c CONFIG [options]\n"
	        "\n"
	        "Import a key into Azure Key Vault / Managed HSM (or devcloud) with a secure key\n"
	        "release policy built from the config's claims. Reads the Go tool's\n"
	        "importkeyconfig.json unchanged. Never prints key material: fingerprints only.\n"
	        "\n"
	        "Options (the Go tool's single-dash spellings -c, -kh, -kp, -a, -out work too):\n"
	        "  -c, --config FILE         importkeyconfig.json (required)\n"
	        "  -kh, --key-hex HEX|FILE   oct key: 64 hex digits, or a file holding them or 32\n"
	        "                            raw bytes (prefer a file: arguments are visible in "
	        "ps)\n"
	        "  -kp, --key-pem FILE       RSA private key, PEM (PKCS#8 or PKCS#1, unencrypted)\n"
	        "                            Without -kh/-kp a key is generated: oct 32 random "
	        "bytes,\n"
	        "                            RSA 2048-bit saved to ./" PRIVATE_KEY_NAME
	        " (0600, never\n"
	        "                            overwritten)\n"
	        "  -a, --imds                get the vault's bearer token from managed identity\n"
	        "                            (IMDS) or workload identity (AZURE_* variables)\n"
	        "  -out, --out               write the 32-byte LUKS key to ./" KEYFILE_NAME
	        " (0600;\n"
	        "                            HKDF-SHA256 of the RSA key's D for RSA keys)\n"
	        "      --force               replace an existing ./" KEYFILE_NAME "\n"
	        "      --salt HEX            HKDF salt for RSA keys (default: "
	        "key_derivation.salt,\n"
	        "                            else 32 random bytes, printed)\n"
	        "      --immutable           make the release policy immutable\n"
	        "      --print-policy-only   print the release policy and exit; send nothing\n"
	        "      --ca-bundle FILE      PEM CA bundle for HTTPS (default: system store)\n"
	        "      --imds-endpoint URL   IMDS base URL (default http://169.254.169.254)\n"
	        "      --verbose             log each request (stderr)\n"
	        "      --version             print the version\n"
	        "  -h, --help                this text\n"
	        "\n"
	        "Exit codes: 0 success, 1 runtime failure, 2 bad command line or configuration.\n");
}

/* What the run produced; printed once everything that can fail before the import passed. */
struct importkey_run {
	const struct importkey_options *o;
	const struct importkey_config *cfg;
	char *policy_json;
	struct secret *key;   /* oct: raw 32 bytes; RSA: PKCS#8 DER */
	struct secret *luks;  /* the 32 bytes of keyfile.bin */
	struct secret *token; /* from IMDS / workload identity, NUL-terminated */
	char salt_hex[2 * SALT_SIZE + 1];
	const char *salt; /* the salt used for RSA (given or salt_hex) */
	bool salt_generated;
	bool private_key_created;
	char *kid;
};

static void run_clear(struct importkey_run *run)
{
	free(run->policy_json);
	secret_free(run->key);
	secret_free(run->luks);
	secret_free(run->token);
	free(run->kid);
}

static const char *kty_name(enum skr_key_type t)
{
	return t == SKR_KEY_RSA ? "RSA-HSM" : "oct-HSM";
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "importkey: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

/* The checks on flags against the config: all before anything is generated or sent. */
static int check_inputs(const struct importkey_options *o, const struct importkey_config *cfg)
{
	struct stat st;

	if (o->key_hex && cfg->type != SKR_KEY_OCT)
		return usage_error("-kh/--key-hex gives an oct key but key.kty is %s; use "
		                   "-kp/--key-pem for RSA keys",
		                   kty_name(cfg->type));
	if (o->key_pem && cfg->type != SKR_KEY_RSA)
		return usage_error("-kp/--key-pem gives an RSA key but key.kty is %s; use "
		                   "-kh/--key-hex for oct keys",
		                   kty_name(cfg->type));
	if (o->salt_hex && cfg->type != SKR_KEY_RSA)
		return usage_error("--salt: only RSA keys are derived with HKDF; key.kty is %s",
		                   kty_name(cfg->type));
	if (o->print_policy_only)
		return 0;
	if (!o->imds && !cfg->bearer_token)
		return usage_error("%s: give the vault's bearer token in the config or use -a to "
		                   "get one from the managed identity",
		                   "key.akv.bearer_token is missing or empty");
	if (o->out && !o->force && lstat(KEYFILE_NAME, &st) == 0)
		return usage_error("-out: ./%s exists; move it away or add --force to replace it",
		                   KEYFILE_NAME);
	if (cfg->type == SKR_KEY_RSA && !o->key_pem && lstat(PRIVATE_KEY_NAME, &st) == 0)
		return usage_error(
		        "./%s exists and importkey never overwrites a private key: pass "
		        "it with -kp to import it, or move it away to generate a new one",
		        PRIVATE_KEY_NAME);
	return 0;
}

static int print_policy(const char *policy_json)
{
	_cleanup_json_ json_object *obj = NULL;
	struct skr_error err = {0};

	if (json_parse(policy_json, strlen(policy_json), "release policy", &obj, &err) < 0) {
		fprintf(stderr, "importkey: %s\n", skr_error_message(&err));
		return -EINVAL;
	}
	printf("release policy:\n%s\n",
	       json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY |
	                                                   JSON_C_TO_STRING_SPACED |
	                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
	return 0;
}

static int build_policy(struct importkey_run *run)
{
	_cleanup_free_ char *warnings = NULL;
	struct skr_error err = {0};
	int r;

	r = skr_policy_build(run->cfg->maa_endpoint, run->cfg->claims_json,
	                     strlen(run->cfg->claims_json), &run->policy_json, &err);
	if (r < 0) {
		fprintf(stderr, "importkey: claims: %s\n", skr_error_message(&err));
		return r == -ENOMEM ? EXIT_FAILURE : EXIT_USAGE;
	}
	r = importkey_policy_lint(run->policy_json, strlen(run->policy_json), &warnings, &err);
	if (r < 0) {
		fprintf(stderr, "importkey: %s\n", skr_error_message(&err));
		return EXIT_FAILURE;
	}
	if (warnings) {
		for (char *line = strtok(warnings, "\n"); line; line = strtok(NULL, "\n"))
			fprintf(stderr, "importkey: warning: %s\n", line);
	}
	return 0;
}

static int load_key(struct importkey_run *run)
{
	struct skr_error err = {0};
	int r = 0;

	if (run->o->key_hex) {
		r = importkey_load_oct_key(run->o->key_hex, &run->key, &err);
		/* The hex may be the key itself: take it out of /proc/self/cmdline. */
		secure_erase(run->o->key_hex, strlen(run->o->key_hex));
	} else if (run->o->key_pem) {
		r = importkey_load_rsa_key(run->o->key_pem, &run->key, &err);
	}
	if (r < 0) {
		fprintf(stderr, "importkey: %s\n", skr_error_message(&err));
		return r == -ENOMEM ? EXIT_FAILURE : EXIT_USAGE;
	}
	return 0;
}

static int get_token(struct importkey_run *run)
{
	struct skr_identity_config idc = {
	        .client_id = run->cfg->client_id,
	        .imds_endpoint = run->o->imds_endpoint,
	        .ca_bundle = run->o->ca_bundle,
	};
	struct skr_identity *id = NULL;
	_cleanup_secret_ struct secret *token = NULL;
	struct skr_error err = {0};
	const char *resource = skr_akv_resource_for(run->cfg->akv_endpoint);
	int r;

	r = skr_identity_new(&idc, &id, &err);
	if (r == 0)
		r = skr_identity_get_token(id, resource, &token, &err);
	skr_identity_free(id);
	if (r < 0) {
		fprintf(stderr, "importkey: identity: bearer token for %s: %s\n", resource,
		        skr_error_message(&err));
		return EXIT_FAILURE;
	}
	/* A NUL-terminated copy, still in locked memory, for the Authorization header. */
	run->token = secret_new(token->len + 1);
	if (!run->token) {
		fprintf(stderr, "importkey: out of memory\n");
		return EXIT_FAILURE;
	}
	memcpy(run->token->data, token->data, token->len);
	run->token->len = strnlen((const char *)run->token->data, token->len);
	return 0;
}

/* Write a generated RSA key as PKCS#8 PEM, mode 0600, never over an existing file. */
static int write_private_key(EVP_PKEY *pkey)
{
	_cleanup_(BIO_free_allp) BIO *bio = NULL;
	int fd;

	fd = open(PRIVATE_KEY_NAME, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		fprintf(stderr, "importkey: ./%s: %s\n", PRIVATE_KEY_NAME, strerror(errno));
		return -errno;
	}
	bio = BIO_new_fd(fd, BIO_CLOSE);
	if (!bio) {
		close(fd);
		unlink(PRIVATE_KEY_NAME);
		return -ENOMEM;
	}
	if (fchmod(fd, 0600) < 0 ||
	    !PEM_write_bio_PKCS8PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) ||
	    BIO_flush(bio) != 1 || fsync(fd) < 0) {
		fprintf(stderr, "importkey: ./%s: write failed\n", PRIVATE_KEY_NAME);
		unlink(PRIVATE_KEY_NAME);
		return -EIO;
	}
	return 0;
}

static int generate_key(struct importkey_run *run)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	_cleanup_(PKCS8_PRIV_KEY_INFO_freep) PKCS8_PRIV_KEY_INFO *p8 = NULL;
	unsigned char *p;
	int len;

	if (run->cfg->type == SKR_KEY_OCT) {
		run->key = secret_new(IMPORTKEY_OCT_KEY_SIZE);
		if (!run->key || RAND_priv_bytes(run->key->data, (int)run->key->len) != 1) {
			fprintf(stderr, "importkey: generating the oct key failed\n");
			return EXIT_FAILURE;
		}
		return 0;
	}
	pkey = EVP_RSA_gen(IMPORTKEY_RSA_BITS);
	p8 = pkey ? EVP_PKEY2PKCS8(pkey) : NULL;
	len = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, NULL) : -1;
	if (len <= 0 || !(run->key = secret_new((size_t)len))) {
		fprintf(stderr, "importkey: generating the RSA key failed\n");
		return EXIT_FAILURE;
	}
	p = run->key->data;
	if (i2d_PKCS8_PRIV_KEY_INFO(p8, &p) != len) {
		fprintf(stderr, "importkey: generating the RSA key failed (PKCS#8)\n");
		return EXIT_FAILURE;
	}
	if (write_private_key(pkey) < 0)
		return EXIT_FAILURE;
	run->private_key_created = true;
	return 0;
}

/* The 32 bytes keyfile.bin gets: the oct key itself, or HKDF over the RSA key (§7.6). */
static int derive_luks_key(struct importkey_run *run)
{
	struct skr_error err = {0};
	uint8_t salt[SALT_SIZE];

	if (run->cfg->type == SKR_KEY_OCT) {
		run->luks = secret_new_copy(run->key->data, run->key->len);
		if (!run->luks) {
			fprintf(stderr, "importkey: out of memory\n");
			return EXIT_FAILURE;
		}
		return 0;
	}
	run->salt = run->o->salt_hex ? run->o->salt_hex : run->cfg->salt_hex;
	if (!run->salt) {
		/* Printed below: a silently random salt makes the derived key unreproducible. */
		if (RAND_bytes(salt, sizeof(salt)) != 1) {
			fprintf(stderr, "importkey: generating the salt failed\n");
			return EXIT_FAILURE;
		}
		hex_encode(salt, sizeof(salt), run->salt_hex);
		run->salt = run->salt_hex;
		run->salt_generated = true;
	}
	if (skr_rsa_derive_key(run->key->data, run->key->len, run->salt, run->cfg->label,
	                       &run->luks, &err) < 0) {
		fprintf(stderr, "importkey: key derivation: %s\n", skr_error_message(&err));
		return EXIT_FAILURE;
	}
	return 0;
}

/*
 * The Go tool's oct JWK (§5.1): kty "oct-HSM" and key_size, the spelling Managed HSM expects
 * for a symmetric HSM key. Built in locked memory: the key never passes through json-c.
 */
static int oct_jwk(const struct importkey_run *run, struct secret **out)
{
	_cleanup_secret_ struct secret *b64 = NULL, *jwk = NULL;
	_cleanup_json_ json_object *ops = NULL;
	const char *ops_text = NULL;
	size_t size;
	int n;

	b64 = secret_new(4 * ((run->key->len + 2) / 3) + 1);
	if (!b64)
		return -ENOMEM;
	n = EVP_EncodeBlock(b64->data, run->key->data, (int)run->key->len);
	if (n < 0)
		return -EINVAL;
	/* base64url without padding (RFC 7517 "k") */
	for (int i = 0; i < n; i++) {
		if (b64->data[i] == '+')
			b64->data[i] = '-';
		else if (b64->data[i] == '/')
			b64->data[i] = '_';
	}
	while (n > 0 && b64->data[n - 1] == '=')
		b64->data[--n] = 0;
	if (run->cfg->n_key_ops > 0) {
		ops = json_object_new_array();
		if (!ops)
			return -ENOMEM;
		for (size_t i = 0; i < run->cfg->n_key_ops; i++) {
			if (json_object_array_add(ops,
			                          json_object_new_string(run->cfg->key_ops[i])) < 0)
				return -ENOMEM;
		}
		ops_text = json_compact(ops);
	}
	size = (size_t)n + (ops_text ? strlen(ops_text) : 0) + 128;
	jwk = secret_new(size);
	if (!jwk)
		return -ENOMEM;
	n = snprintf((char *)jwk->data, size,
	             "{\"kty\":\"oct-HSM\"%s%s,\"k\":\"%s\",\"key_size\":%zu}",
	             ops_text ? ",\"key_ops\":" : "", ops_text ? ops_text : "",
	             (const char *)b64->data, run->key->len * 8);
	if (n < 0 || (size_t)n >= size)
		return -EINVAL;
	jwk->len = (size_t)n;
	*out = TAKE_PTR(jwk);
	return 0;
}

static int import_key(struct importkey_run *run)
{
	_cleanup_secret_ struct secret *jwk = NULL;
	struct skr_key key = {
	        .type = run->cfg->type,
	        .n_key_ops = run->cfg->n_key_ops,
	        .material = run->key,
	};
	struct skr_akv_import imp = {
	        .endpoint = run->cfg->akv_endpoint,
	        .api_version = run->cfg->akv_api_version,
	        .name = run->cfg->kid,
	        .hsm = run->cfg->hsm,
	        .policy_json = run->policy_json,
	        .immutable = run->o->immutable,
	        .exportable = true,
	        .bearer_token =
	                run->token ? (const char *)run->token->data : run->cfg->bearer_token,
	        .ca_bundle = run->o->ca_bundle,
	};
	struct skr_error err = {0};

	if (run->cfg->type == SKR_KEY_OCT) {
		if (oct_jwk(run, &jwk) < 0) {
			fprintf(stderr, "importkey: key: building the JWK failed\n");
			return EXIT_FAILURE;
		}
	} else {
		/* The private JWK with "hsm": true in the body, as the Go tool sends RSA keys. */
		for (size_t i = 0; i < run->cfg->n_key_ops; i++)
			key.key_ops[i] = (char *)run->cfg->key_ops[i];
		if (skr_key_to_jwk(&key, &jwk, &err) < 0) {
			fprintf(stderr, "importkey: key: %s\n", skr_error_message(&err));
			return EXIT_FAILURE;
		}
	}
	imp.jwk_json = (const char *)jwk->data;
	imp.jwk_len = jwk->len;
	if (skr_akv_import_key(&imp, &run->kid, &err) < 0) {
		fprintf(stderr, "importkey: import into %s: %s\n", run->cfg->akv_endpoint,
		        skr_error_message(&err));
		return EXIT_FAILURE;
	}
	return 0;
}

static int write_keyfile(const struct importkey_run *run)
{
	_cleanup_close_ int fd = -1;
	size_t done = 0;
	int r;

	if (run->o->force) {
		r = write_file_atomic(KEYFILE_NAME, run->luks->data, run->luks->len, 0600);
		if (r < 0)
			fprintf(stderr, "importkey: ./%s: %s\n", KEYFILE_NAME, strerror(-r));
		return r;
	}
	fd = open(KEYFILE_NAME, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fchmod(fd, 0600) < 0) {
		r = -errno;
		fprintf(stderr, "importkey: ./%s: %s%s\n", KEYFILE_NAME, strerror(errno),
		        errno == EEXIST ? "; add --force to replace it" : "");
		return r;
	}
	while (done < run->luks->len) {
		ssize_t n = write(fd, run->luks->data + done, run->luks->len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			fprintf(stderr, "importkey: ./%s: %s\n", KEYFILE_NAME, strerror(errno));
			unlink(KEYFILE_NAME);
			return r;
		}
		done += (size_t)n;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		fprintf(stderr, "importkey: ./%s: %s\n", KEYFILE_NAME, strerror(errno));
		unlink(KEYFILE_NAME);
		return r;
	}
	return 0;
}

static void print_result(const struct importkey_run *run)
{
	char fp[SKR_FINGERPRINT_STR_SIZE];

	printf("key id: %s\n", run->kid);
	printf("key type: %s\n", kty_name(run->cfg->type));
	if (run->cfg->type == SKR_KEY_OCT) {
		skr_key_fingerprint(run->key->data, run->key->len, fp);
		printf("key fingerprint: %s\n", fp);
	} else {
		if (run->private_key_created)
			printf("private key: ./%s (generated, RSA-%d, PKCS#8 PEM, mode 0600)\n",
			       PRIVATE_KEY_NAME, IMPORTKEY_RSA_BITS);
		skr_key_fingerprint(run->key->data, run->key->len, fp);
		printf("private key fingerprint: %s (PKCS#8 DER)\n", fp);
		printf("key derivation salt: %s%s\n", run->salt,
		       run->salt_generated ? " (generated: put it in key_derivation.salt of the "
		                             "sidecar's configuration)"
		                           : "");
		printf("key derivation label: %s\n",
		       run->cfg->label ? run->cfg->label : SKR_DEFAULT_KDF_LABEL);
		skr_key_fingerprint(run->luks->data, run->luks->len, fp);
		printf("derived key fingerprint: %s (HKDF-SHA256, the LUKS key)\n", fp);
	}
}

static int run_import(struct importkey_run *run)
{
	int r;

	if ((r = check_inputs(run->o, run->cfg)) != 0 || (r = load_key(run)) != 0 ||
	    (r = build_policy(run)) != 0)
		return r;
	if (run->o->print_policy_only)
		return print_policy(run->policy_json) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
	if (run->o->imds && (r = get_token(run)) != 0)
		return r;
	if (!run->key && (r = generate_key(run)) != 0)
		return r;
	if ((r = derive_luks_key(run)) != 0 || (r = import_key(run)) != 0) {
		/* Never imported: a generated private key file would only block the next run. */
		if (run->private_key_created)
			unlink(PRIVATE_KEY_NAME);
		return r;
	}
	print_result(run);
	if (run->o->out) {
		if (write_keyfile(run) < 0)
			return EXIT_FAILURE;
		printf("keyfile: ./%s (%zu bytes, mode 0600)\n", KEYFILE_NAME, run->luks->len);
	}
	if (print_policy(run->policy_json) < 0)
		return EXIT_FAILURE;
	return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
	struct importkey_options o;
	struct importkey_config cfg = {0};
	struct importkey_run run = {.o = &o, .cfg = &cfg};
	struct skr_error err = {0};
	int r;

	umask(077);
	if (importkey_options_parse(argc, argv, &o, &err) < 0) {
		fprintf(stderr, "importkey: %s\n", skr_error_message(&err));
		return EXIT_USAGE;
	}
	if (o.help) {
		usage(stdout);
		return EXIT_SUCCESS;
	}
	log_set_level(o.verbose ? LOG_LEVEL_INFO : LOG_LEVEL_WARN);
	if (o.version) {
		printf("importkey %s\n", PROJECT_VERSION);
		return EXIT_SUCCESS;
	}
	if (importkey_config_load(o.config_path, &cfg, &err) < 0) {
		fprintf(stderr, "importkey: %s: %s\n", o.config_path, skr_error_message(&err));
		return EXIT_USAGE;
	}
	r = run_import(&run);
	run_clear(&run);
	importkey_config_clear(&cfg);
	fflush(stdout);
	return r;
}
