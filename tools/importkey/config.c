/* SPDX-License-Identifier: MIT */
/*
 * importkey's inputs: importkeyconfig.json (§7.4), the command line, the key given on it, and a
 * lint of the release policy it builds. Every error names the field or flag, so a bad input
 * stops the tool before anything reaches the vault.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "importkey.h"
#include "json_util.h"
#include "ossl.h"
#include "secret.h"

#define CONFIG_MAX_SIZE (1u * 1024 * 1024)
#define KEY_FILE_MAX_SIZE (64u * 1024)

DEFINE_CLEANUP_FUNC(PKCS8_PRIV_KEY_INFO *, PKCS8_PRIV_KEY_INFO_free)

/* ---------------------------------------------------------------------------------------------
 * importkeyconfig.json
 * ------------------------------------------------------------------------------------------- */

/*
 * Go's encoding/json matches field names case-insensitively when no exact match exists, so a
 * config the Go tool accepts may spell "KID" or "Endpoint"; accept what it accepts.
 */
static json_object *field(json_object *obj, const char *key)
{
	json_object *v = NULL;

	if (!obj || !json_object_is_type(obj, json_type_object))
		return NULL;
	if (json_object_object_get_ex(obj, key, &v))
		return json_object_is_type(v, json_type_null) ? NULL : v;
	json_object_object_foreach(obj, k, val)
	{
		if (strcasecmp(k, key) == 0)
			return json_object_is_type(val, json_type_null) ? NULL : val;
	}
	return NULL;
}

/* An optional string at @path; "" counts as absent (Go's omitempty zero value). */
static int get_string(json_object *obj, const char *key, const char *path, bool required,
                      const char **out, struct skr_error *err)
{
	json_object *v = field(obj, key);

	*out = NULL;
	if (v && !json_object_is_type(v, json_type_string))
		return skr_error_set(err, -EINVAL, "%s: expected a string", path);
	if (v && json_object_get_string_len(v) > 0)
		*out = json_object_get_string(v);
	if (!*out && required)
		return skr_error_set(err, -EINVAL, "%s is missing or empty", path);
	return 0;
}

static int get_object(json_object *obj, const char *key, const char *path, bool required,
                      json_object **out, struct skr_error *err)
{
	json_object *v = field(obj, key);

	*out = NULL;
	if (!v) {
		if (required)
			return skr_error_set(err, -EINVAL, "%s is missing", path);
		return 0;
	}
	if (!json_object_is_type(v, json_type_object))
		return skr_error_set(err, -EINVAL, "%s: expected a JSON object", path);
	*out = v;
	return 0;
}

static int parse_kty(const char *kty, struct importkey_config *c, struct skr_error *err)
{
	/*
	 * The Go tool treats everything but "RSA-HSM" as oct; we refuse what is neither so a typo
	 * cannot silently import a different kind of key. Plain "oct"/"RSA" mean the HSM types:
	 * Key Vault only lets HSM-protected keys be exportable, which release requires.
	 */
	c->hsm = true;
	if (!kty || strcmp(kty, "oct-HSM") == 0 || strcmp(kty, "oct") == 0) {
		c->type = SKR_KEY_OCT;
		return 0;
	}
	if (strcmp(kty, "RSA-HSM") == 0 || strcmp(kty, "RSA") == 0) {
		c->type = SKR_KEY_RSA;
		return 0;
	}
	return skr_error_set(err, -EINVAL,
	                     "key.kty: unknown key type '%.40s'; use oct-HSM (a 32-byte LUKS key) "
	                     "or RSA-HSM",
	                     kty);
}

static int parse_key_ops(json_object *key, struct importkey_config *c, struct skr_error *err)
{
	json_object *ops = field(key, "key_ops");
	size_t n;

	if (!ops)
		return 0;
	if (!json_object_is_type(ops, json_type_array))
		return skr_error_set(err, -EINVAL, "key.key_ops: expected an array of strings");
	n = json_object_array_length(ops);
	if (n > SKR_KEY_OPS_MAX)
		return skr_error_set(err, -EINVAL, "key.key_ops: more than %d operations",
		                     SKR_KEY_OPS_MAX);
	for (size_t i = 0; i < n; i++) {
		json_object *op = json_object_array_get_idx(ops, i);

		if (!json_object_is_type(op, json_type_string) ||
		    json_object_get_string_len(op) == 0)
			return skr_error_set(err, -EINVAL,
			                     "key.key_ops[%zu]: expected a non-empty string", i);
		c->key_ops[c->n_key_ops++] = json_object_get_string(op);
	}
	return 0;
}

static int check_endpoint(const char *endpoint, const char *path, const char *example,
                          struct skr_error *err)
{
	if (strncasecmp(endpoint, "http://", 7) == 0 || strncasecmp(endpoint, "https://", 8) == 0 ||
	    strchr(endpoint, '/'))
		return skr_error_set(
		        err, -EINVAL,
		        "%s: give the host name only (e.g. %s), without scheme or path", path,
		        example);
	return 0;
}

static int parse_claims(json_object *root, struct importkey_config *c, struct skr_error *err)
{
	json_object *claims = field(root, "claims");
	size_t n;

	if (!claims)
		return skr_error_set(err, -EINVAL,
		                     "claims is missing: give an array of arrays of conditions, "
		                     "e.g. [[{\"claim\": \"x-ms-sevsnpvm-hostdata\", \"equals\": "
		                     "\"<hex>\"}]]");
	if (!json_object_is_type(claims, json_type_array))
		return skr_error_set(err, -EINVAL,
		                     "claims: expected an array of arrays of conditions "
		                     "([[{\"claim\": ..., \"equals\": ...}]])");
	n = json_object_array_length(claims);
	if (n == 0)
		return skr_error_set(err, -EINVAL,
		                     "claims: empty; the release policy needs at least one list of "
		                     "conditions");
	for (size_t i = 0; i < n; i++) {
		json_object *inner = json_object_array_get_idx(claims, i);
		size_t m;

		if (!json_object_is_type(inner, json_type_array))
			return skr_error_set(err, -EINVAL,
			                     "claims[%zu]: expected an array of conditions (claims "
			                     "is an array of arrays)",
			                     i);
		m = json_object_array_length(inner);
		if (m == 0)
			return skr_error_set(err, -EINVAL,
			                     "claims[%zu]: empty; it would release the key to any "
			                     "token of the authority",
			                     i);
		for (size_t j = 0; j < m; j++) {
			if (!json_object_is_type(json_object_array_get_idx(inner, j),
			                         json_type_object))
				return skr_error_set(err, -EINVAL,
				                     "claims[%zu][%zu]: expected an object "
				                     "{\"claim\": name, <operator>: value}",
				                     i, j);
		}
	}
	c->claims_json = strdup(json_compact(claims));
	if (!c->claims_json)
		return skr_error_set(err, -ENOMEM, "claims: out of memory");
	return 0;
}

static int config_parse(json_object *root, struct importkey_config *c, struct skr_error *err)
{
	json_object *key, *authority, *akv, *kdf, *identity;
	const char *kty;
	int r;

	if (!json_object_is_type(root, json_type_object))
		return skr_error_set(err, -EINVAL, "config: expected a JSON object");
	if ((r = get_object(root, "key", "key", true, &key, err)) < 0 ||
	    (r = get_string(key, "kid", "key.kid", true, &c->kid, err)) < 0 ||
	    (r = get_string(key, "kty", "key.kty", false, &kty, err)) < 0 ||
	    (r = parse_kty(kty, c, err)) < 0 || (r = parse_key_ops(key, c, err)) < 0)
		return r;
	if (strchr(c->kid, '/') || strchr(c->kid, '?') || strchr(c->kid, '#'))
		return skr_error_set(err, -EINVAL,
		                     "key.kid: '%.80s' is not a key name (letters, digits, '-')",
		                     c->kid);
	if ((r = get_object(key, "authority", "key.authority", true, &authority, err)) < 0 ||
	    (r = get_string(authority, "endpoint", "key.authority.endpoint", true, &c->maa_endpoint,
	                    err)) < 0 ||
	    (r = check_endpoint(c->maa_endpoint, "key.authority.endpoint",
	                        "sharedeus.eus.attest.azure.net", err)) < 0)
		return r;
	if ((r = get_object(key, "akv", "key.akv", true, &akv, err)) < 0 ||
	    (r = get_string(akv, "endpoint", "key.akv.endpoint", true, &c->akv_endpoint, err)) <
	            0 ||
	    (r = check_endpoint(c->akv_endpoint, "key.akv.endpoint", "myvault.vault.azure.net",
	                        err)) < 0 ||
	    (r = get_string(akv, "api_version", "key.akv.api_version", false, &c->akv_api_version,
	                    err)) < 0 ||
	    (r = get_string(akv, "bearer_token", "key.akv.bearer_token", false, &c->bearer_token,
	                    err)) < 0)
		return r;
	if ((r = get_object(root, "key_derivation", "key_derivation", false, &kdf, err)) < 0 ||
	    (r = get_string(kdf, "salt", "key_derivation.salt", false, &c->salt_hex, err)) < 0 ||
	    (r = get_string(kdf, "label", "key_derivation.label", false, &c->label, err)) < 0)
		return r;
	if (c->salt_hex) {
		_cleanup_free_ uint8_t *salt = NULL;
		size_t salt_len;

		if (hex_decode_alloc(c->salt_hex, strlen(c->salt_hex), &salt, &salt_len) < 0)
			return skr_error_set(err, -EINVAL,
			                     "key_derivation.salt: expected hex digits (an even "
			                     "number of them)");
	}
	if ((r = get_object(root, "identity", "identity", false, &identity, err)) < 0 ||
	    (r = get_string(identity, "client_id", "identity.client_id", false, &c->client_id,
	                    err)) < 0)
		return r;
	return parse_claims(root, c, err);
}

int importkey_config_parse(const char *json, size_t len, struct importkey_config *out,
                           struct skr_error *err)
{
	struct importkey_config c = {0};
	int r;

	r = json_parse(json, len, "config", &c.root, err);
	if (r < 0)
		return r == -ENOMEM ? r : -EINVAL;
	r = config_parse(c.root, &c, err);
	if (r < 0) {
		importkey_config_clear(&c);
		return r;
	}
	*out = c;
	return 0;
}

int importkey_config_load(const char *path, struct importkey_config *out, struct skr_error *err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r = read_file(path, CONFIG_MAX_SIZE, &text, &len);

	if (r < 0)
		return skr_error_set(err, -EINVAL, "cannot read the config: %s",
		                     r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
	r = importkey_config_parse(text, len, out, err);
	/* The file may hold a bearer token. */
	secure_erase(text, len);
	return r;
}

void importkey_config_clear(struct importkey_config *c)
{
	if (!c)
		return;
	json_object_put(c->root);
	free(c->claims_json);
	memset(c, 0, sizeof(*c));
}

/* ---------------------------------------------------------------------------------------------
 * Command line
 * ------------------------------------------------------------------------------------------- */

static bool is_hex(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		if (!strchr("0123456789abcdefABCDEF", *s))
			return false;
	}
	return true;
}

int importkey_options_parse(int argc, char **argv, struct importkey_options *out,
                            struct skr_error *err)
{
	enum {
		OPT_CONFIG = 'c',
		OPT_IMDS = 'a',
		OPT_HELP = 'h',
		OPT_KEY_HEX = 0x100,
		OPT_KEY_PEM,
		OPT_OUT,
		OPT_FORCE,
		OPT_CA,
		OPT_IMDS_ENDPOINT,
		OPT_IMMUTABLE,
		OPT_POLICY_ONLY,
		OPT_SALT,
		OPT_VERSION,
		OPT_VERBOSE,
	};
	/*
	 * getopt_long_only() reads Go's single-dash long flags (-kh, -kp, -out) as long options;
	 * the one-letter Go names are listed as long options too, so an exact "-c=FILE" or "-a"
	 * wins over the prefix ambiguity with --ca-bundle or --out.
	 */
	static const struct option options[] = {
	        {"config", required_argument, NULL, OPT_CONFIG},
	        {"c", required_argument, NULL, OPT_CONFIG},
	        {"key-hex", required_argument, NULL, OPT_KEY_HEX},
	        {"kh", required_argument, NULL, OPT_KEY_HEX},
	        {"key-pem", required_argument, NULL, OPT_KEY_PEM},
	        {"kp", required_argument, NULL, OPT_KEY_PEM},
	        {"imds", no_argument, NULL, OPT_IMDS},
	        {"a", no_argument, NULL, OPT_IMDS},
	        {"out", no_argument, NULL, OPT_OUT},
	        {"force", no_argument, NULL, OPT_FORCE},
	        {"ca-bundle", required_argument, NULL, OPT_CA},
	        {"imds-endpoint", required_argument, NULL, OPT_IMDS_ENDPOINT},
	        {"immutable", no_argument, NULL, OPT_IMMUTABLE},
	        {"print-policy-only", no_argument, NULL, OPT_POLICY_ONLY},
	        {"salt", required_argument, NULL, OPT_SALT},
	        {"version", no_argument, NULL, OPT_VERSION},
	        {"verbose", no_argument, NULL, OPT_VERBOSE},
	        {"help", no_argument, NULL, OPT_HELP},
	        {},
	};
	struct importkey_options o = {0};
	int c;

	optind = 0; /* full reset, including getopt's internal state */
	opterr = 0;
	while ((c = getopt_long_only(argc, argv, ":c:ah", options, NULL)) >= 0) {
		switch (c) {
		case OPT_CONFIG:
			o.config_path = optarg;
			break;
		case OPT_KEY_HEX:
			o.key_hex = optarg;
			break;
		case OPT_KEY_PEM:
			o.key_pem = optarg;
			break;
		case OPT_IMDS:
			o.imds = true;
			break;
		case OPT_OUT:
			o.out = true;
			break;
		case OPT_FORCE:
			o.force = true;
			break;
		case OPT_CA:
			o.ca_bundle = optarg;
			break;
		case OPT_IMDS_ENDPOINT:
			o.imds_endpoint = optarg;
			break;
		case OPT_IMMUTABLE:
			o.immutable = true;
			break;
		case OPT_POLICY_ONLY:
			o.print_policy_only = true;
			break;
		case OPT_SALT:
			if (!is_hex(optarg) || strlen(optarg) % 2)
				return skr_error_set(
				        err, -EINVAL,
				        "--salt: expected hex digits (an even number of "
				        "them), e.g. 32 random bytes");
			o.salt_hex = optarg;
			break;
		case OPT_VERSION:
			o.version = true;
			break;
		case OPT_VERBOSE:
			o.verbose = true;
			break;
		case OPT_HELP:
			o.help = true;
			break;
		case ':':
			return skr_error_set(err, -EINVAL, "option %s needs an argument",
			                     argv[optind - 1]);
		default:
			return skr_error_set(err, -EINVAL, "unknown option '%s'; see --help",
			                     argv[optind - 1]);
		}
	}
	if (optind < argc)
		return skr_error_set(err, -EINVAL, "unexpected argument '%s'; see --help",
		                     argv[optind]);
	if (o.help || o.version) {
		*out = o;
		return 0;
	}
	if (!o.config_path)
		return skr_error_set(err, -EINVAL,
		                     "-c/--config FILE is required (the importkeyconfig.json)");
	if (o.key_hex && o.key_pem)
		return skr_error_set(err, -EINVAL,
		                     "-kh/--key-hex and -kp/--key-pem exclude each other: give an "
		                     "oct key or an RSA key");
	if (o.force && !o.out)
		return skr_error_set(err, -EINVAL, "--force only applies to -out/--out");
	*out = o;
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Keys from the command line
 * ------------------------------------------------------------------------------------------- */

/* A whole small file straight into locked memory (no plain copy on the way). */
static int read_secret_file(const char *path, const char *flag, struct secret **out,
                            struct skr_error *err)
{
	_cleanup_secret_ struct secret *s = NULL;
	_cleanup_close_ int fd = -1;
	struct stat st;
	size_t len = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return skr_error_set(err, -EINVAL, "%s %s: cannot read the key file: %s", flag,
		                     path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return skr_error_set(err, -EINVAL, "%s %s: not a regular file", flag, path);
	if ((uintmax_t)st.st_size > KEY_FILE_MAX_SIZE)
		return skr_error_set(err, -EINVAL, "%s %s: larger than %u bytes, not a key file",
		                     flag, path, KEY_FILE_MAX_SIZE);
	/* One spare byte keeps text NUL-terminated; the file may grow while we read. */
	s = secret_new((size_t)st.st_size + 1);
	if (!s)
		return skr_error_set(err, -ENOMEM, "%s: out of memory", flag);
	for (;;) {
		ssize_t n = read(fd, s->data + len, s->len - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return skr_error_set(err, -EINVAL, "%s %s: cannot read the key file: %s",
			                     flag, path, strerror(errno));
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == s->len - 1)
			break;
	}
	s->len = len; /* data[len] stays 0: secret_new() zeroes */
	*out = TAKE_PTR(s);
	return 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int decode_oct_hex(const char *hex, size_t len, const char *what, struct secret **key,
                          struct skr_error *err)
{
	_cleanup_secret_ struct secret *k = NULL;

	if (len != 2 * IMPORTKEY_OCT_KEY_SIZE)
		return skr_error_set(err, -EINVAL,
		                     "-kh/--key-hex: %s has %zu hex digits; an oct key must be %d "
		                     "(32 bytes)",
		                     what, len, 2 * IMPORTKEY_OCT_KEY_SIZE);
	k = secret_new(IMPORTKEY_OCT_KEY_SIZE);
	if (!k)
		return skr_error_set(err, -ENOMEM, "-kh/--key-hex: out of memory");
	if (hex_decode(hex, len, k->data, k->len) < 0)
		return skr_error_set(err, -EINVAL, "-kh/--key-hex: %s is not hex", what);
	*key = TAKE_PTR(k);
	return 0;
}

int importkey_load_oct_key(const char *arg, struct secret **key, struct skr_error *err)
{
	_cleanup_secret_ struct secret *file = NULL;
	const char *start, *end;
	struct stat st;
	int r;

	/* A file wins over an argument that merely looks like hex (a file named "cafe"). */
	if (stat(arg, &st) < 0 && is_hex(arg))
		return decode_oct_hex(arg, strlen(arg), "the argument", key, err);
	r = read_secret_file(arg, "-kh/--key-hex", &file, err);
	if (r < 0)
		return r;
	if (file->len == IMPORTKEY_OCT_KEY_SIZE) {
		_cleanup_secret_ struct secret *k = secret_new_copy(file->data, file->len);

		if (!k)
			return skr_error_set(err, -ENOMEM, "-kh/--key-hex: out of memory");
		*key = TAKE_PTR(k);
		return 0;
	}
	start = (const char *)file->data;
	end = start + file->len;
	while (start < end && is_space(*start))
		start++;
	while (end > start && is_space(end[-1]))
		end--;
	if (end - start != 2 * IMPORTKEY_OCT_KEY_SIZE)
		return skr_error_set(err, -EINVAL,
		                     "-kh/--key-hex %s: holds %zu bytes; expected 32 raw bytes or "
		                     "64 hex digits",
		                     arg, file->len);
	return decode_oct_hex(start, (size_t)(end - start), "the key file", key, err);
}

/* PEM_read_bio_PrivateKey() would prompt on the terminal for an encrypted key: refuse instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int importkey_load_rsa_key(const char *path, struct secret **pkcs8, struct skr_error *err)
{
	_cleanup_secret_ struct secret *pem = NULL, *der = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	_cleanup_(PKCS8_PRIV_KEY_INFO_freep) PKCS8_PRIV_KEY_INFO *p8 = NULL;
	_cleanup_(BIO_free_allp) BIO *bio = NULL;
	unsigned char *p;
	int r, bits, len;

	r = read_secret_file(path, "-kp/--key-pem", &pem, err);
	if (r < 0)
		return r;
	bio = BIO_new_mem_buf(pem->data, (int)pem->len);
	if (!bio)
		return skr_error_set(err, -ENOMEM, "-kp/--key-pem: out of memory");
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (!pkey) {
		ERR_clear_error();
		return skr_error_set(err, -EINVAL,
		                     "-kp/--key-pem %s: not an unencrypted PEM private key (PKCS#8 "
		                     "\"PRIVATE KEY\" or PKCS#1 \"RSA PRIVATE KEY\")",
		                     path);
	}
	if (!EVP_PKEY_is_a(pkey, "RSA"))
		return skr_error_set(err, -EINVAL, "-kp/--key-pem %s: a %s key, not RSA", path,
		                     EVP_PKEY_get0_type_name(pkey));
	bits = EVP_PKEY_get_bits(pkey);
	if (bits != 2048 && bits != 3072 && bits != 4096)
		return skr_error_set(
		        err, -EINVAL,
		        "-kp/--key-pem %s: RSA key of %d bits; Key Vault imports 2048, "
		        "3072 or 4096",
		        path, bits);
	p8 = EVP_PKEY2PKCS8(pkey);
	if (!p8)
		return ossl_error_set(err, -EINVAL, "-kp/--key-pem: PKCS#8 encoding");
	len = i2d_PKCS8_PRIV_KEY_INFO(p8, NULL);
	if (len <= 0)
		return ossl_error_set(err, -EINVAL, "-kp/--key-pem: PKCS#8 encoding");
	der = secret_new((size_t)len);
	if (!der)
		return skr_error_set(err, -ENOMEM, "-kp/--key-pem: out of memory");
	p = der->data;
	if (i2d_PKCS8_PRIV_KEY_INFO(p8, &p) != len)
		return ossl_error_set(err, -EINVAL, "-kp/--key-pem: PKCS#8 encoding");
	*pkcs8 = TAKE_PTR(der);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Policy lint
 * ------------------------------------------------------------------------------------------- */

struct pin {
	const char *claim;
	const char *description;
	bool (*holds)(const char *op, json_object *value);
};

/* The string form Key Vault compares by (booleans and numbers match "false", "0"). */
static const char *loose_string(json_object *v)
{
	if (json_object_is_type(v, json_type_string) || json_object_is_type(v, json_type_boolean) ||
	    json_object_is_type(v, json_type_int))
		return json_object_get_string(v);
	return NULL;
}

static bool not_debuggable(const char *op, json_object *value)
{
	const char *s = loose_string(value);

	if (!s)
		return false;
	return (strcmp(op, "equals") == 0 && strcasecmp(s, "false") == 0) ||
	       (strcmp(op, "notEquals") == 0 && strcasecmp(s, "true") == 0);
}

static bool vmpl_zero(const char *op, json_object *value)
{
	const char *s = loose_string(value);

	if (!s)
		return false;
	return ((strcmp(op, "equals") == 0 || strcmp(op, "lessOrEquals") == 0) &&
	        strcmp(s, "0") == 0) ||
	       (strcmp(op, "less") == 0 && strcmp(s, "1") == 0);
}

static const struct pin pins[] = {
        {"x-ms-sevsnpvm-is-debuggable",
         "x-ms-sevsnpvm-is-debuggable == false (a debuggable VM "
         "exposes its memory to the host)",
         not_debuggable},
        {"x-ms-sevsnpvm-vmpl",
         "x-ms-sevsnpvm-vmpl == 0 (a report from a less privileged VMPL "
         "can be requested by other code in the VM)",
         vmpl_zero},
};

/* Does every way of satisfying @node satisfy @pin? */
static bool requires_pin(json_object *node, const struct pin *pin, unsigned depth)
{
	json_object *v;

	if (depth > 64 || !json_object_is_type(node, json_type_object))
		return false;
	if (json_object_object_get_ex(node, "claim", &v)) {
		if (!json_object_is_type(v, json_type_string) ||
		    strcmp(json_object_get_string(v), pin->claim) != 0)
			return false;
		json_object_object_foreach(node, op, value)
		{
			if (strcmp(op, "claim") != 0 && pin->holds(op, value))
				return true;
		}
		return false;
	}
	if (json_object_object_get_ex(node, "allOf", &v) &&
	    json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			if (requires_pin(json_object_array_get_idx(v, i), pin, depth + 1))
				return true;
		}
	}
	if (json_object_object_get_ex(node, "anyOf", &v) &&
	    json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			if (!requires_pin(json_object_array_get_idx(v, i), pin, depth + 1))
				return false;
		}
		return true;
	}
	return false;
}

int importkey_policy_lint(const char *policy_json, size_t len, char **warnings,
                          struct skr_error *err)
{
	_cleanup_json_ json_object *root = NULL;
	_cleanup_free_ char *text = NULL;
	size_t size = 0;
	FILE *f;
	json_object *authorities;
	int r, count = 0;

	*warnings = NULL;
	r = json_parse(policy_json, len, "release policy", &root, err);
	if (r < 0)
		return r;
	if (!json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "anyOf", &authorities) ||
	    !json_object_is_type(authorities, json_type_array))
		return skr_error_set(err, -EINVAL, "release policy: no top-level anyOf array");
	f = open_memstream(&text, &size);
	if (!f)
		return skr_error_set(err, -ENOMEM, "release policy lint: out of memory");
	for (size_t i = 0; i < json_object_array_length(authorities); i++) {
		json_object *a = json_object_array_get_idx(authorities, i), *iss = NULL;

		json_object_object_get_ex(a, "authority", &iss);
		for (size_t p = 0; p < ELEMENTSOF(pins); p++) {
			if (requires_pin(a, &pins[p], 0))
				continue;
			fprintf(f,
			        "release policy entry %zu (authority %s, claims[%zu]) does not "
			        "require %s\n",
			        i, iss ? json_object_get_string(iss) : "?", i, pins[p].description);
			count++;
		}
	}
	if (fclose(f) != 0)
		return skr_error_set(err, -ENOMEM, "release policy lint: out of memory");
	if (count > 0)
		*warnings = TAKE_PTR(text);
	return count;
}
