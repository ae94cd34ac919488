/* SPDX-License-Identifier: MIT */
/*
 * encrypt-model: the model vendor's tool, run outside any TEE. Encrypts a model file with
 * AES-256-GCM (format: model_crypto.h) under a 32-byte key that the vendor then imports into
 * Key Vault / Managed HSM with a release policy bound to the inference container group:
 *
 *   oct key:  encrypt-model --generate-key model.key --in model.bin --out model.bin.enc
 *             importkey -c importkeyconfig.json -kh model.key
 *   RSA key:  encrypt-model --rsa-key model-rsa.pem --salt HEX --in model.bin --out model.bin.enc
 *             importkey -c importkeyconfig.json -kp model-rsa.pem
 *             (the AES key is HKDF-SHA256 of the RSA key, protocols.md 7.6)
 *
 * Prints a JSON summary with the key's fingerprint (never the key); model-decrypt prints the
 * same fingerprint inside the TEE, so an operator can tell a wrong key from a damaged file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "model_crypto.h"
#include "ossl.h"
#include "secret.h"

#define EXIT_USAGE 2
#define CHUNK (1024 * 1024)

struct options {
	const char *in, *out;
	const char *key_file, *rsa_key, *generate_key;
	const char *salt, *label;
	bool force;
};

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: encrypt-model --in MODEL --out ENCRYPTED KEY-OPTION [--force]\n"
	        "\n"
	        "Encrypt a model with AES-256-GCM under a 32-byte key for release inside a TEE\n"
	        "(examples/model-decrypt/README.md). Prints a JSON summary with the key's\n"
	        "fingerprint, never the key.\n"
	        "\n"
	        "Key (one of):\n"
	        "  --key-file FILE       oct key: 32 bytes, or 64 hex digits (importkey -kh FILE)\n"
	        "  --generate-key FILE   a fresh random oct key, written to FILE (0600)\n"
	        "  --rsa-key PEM         RSA private key (importkey -kp PEM); the AES key is\n"
	        "                        HKDF-SHA256 of its private exponent:\n"
	        "    --salt HEX          HKDF salt (key_derivation.salt; default none)\n"
	        "    --label TEXT        HKDF info (key_derivation.label; default "
	        "\"" MODEL_DEFAULT_LABEL "\")\n"
	        "\n"
	        "  --force               replace ENCRYPTED (and the --generate-key FILE)\n"
	        "  -h, --help            this text\n"
	        "\n"
	        "Exit codes: 0 success, 1 failure, 2 bad command line.\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	        {"in", required_argument, NULL, 'i'},
	        {"out", required_argument, NULL, 'o'},
	        {"key-file", required_argument, NULL, 'k'},
	        {"generate-key", required_argument, NULL, 'g'},
	        {"rsa-key", required_argument, NULL, 'r'},
	        {"salt", required_argument, NULL, 's'},
	        {"label", required_argument, NULL, 'l'},
	        {"force", no_argument, NULL, 'f'},
	        {"help", no_argument, NULL, 'h'},
	        {},
	};
	int c, keys;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
		switch (c) {
		case 'i':
			o->in = optarg;
			break;
		case 'o':
			o->out = optarg;
			break;
		case 'k':
			o->key_file = optarg;
			break;
		case 'g':
			o->generate_key = optarg;
			break;
		case 'r':
			o->rsa_key = optarg;
			break;
		case 's':
			o->salt = optarg;
			break;
		case 'l':
			o->label = optarg;
			break;
		case 'f':
			o->force = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "encrypt-model: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (!o->in || !o->out) {
		fprintf(stderr, "encrypt-model: --in MODEL and --out ENCRYPTED are required\n");
		return -EINVAL;
	}
	keys = !!o->key_file + !!o->generate_key + !!o->rsa_key;
	if (keys != 1) {
		fprintf(stderr, "encrypt-model: give exactly one of --key-file, --generate-key, "
		                "--rsa-key\n");
		return -EINVAL;
	}
	if ((o->salt || o->label) && !o->rsa_key) {
		fprintf(stderr, "encrypt-model: --salt and --label derive the key from --rsa-key; "
		                "an oct key is used as is\n");
		return -EINVAL;
	}
	return 0;
}

/* 32 raw bytes, or 64 hex digits with an optional trailing newline (importkey -kh's forms). */
static int load_key_file(const char *path, struct secret **out)
{
	_cleanup_secret_ struct secret *file = NULL, *key = NULL;
	size_t len;
	int r = read_file_secret(path, 4096, &file);

	if (r < 0) {
		fprintf(stderr, "encrypt-model: --key-file %s: %s\n", path, strerror(-r));
		return r;
	}
	key = secret_new(MODEL_KEY_SIZE);
	if (!key)
		return -ENOMEM;
	len = file->len;
	if (len == MODEL_KEY_SIZE) {
		memcpy(key->data, file->data, MODEL_KEY_SIZE);
		*out = TAKE_PTR(key);
		return 0;
	}
	while (len > 0 && (file->data[len - 1] == '\n' || file->data[len - 1] == '\r'))
		len--;
	if (len != 2 * MODEL_KEY_SIZE ||
	    hex_decode((const char *)file->data, len, key->data, MODEL_KEY_SIZE) < 0) {
		fprintf(stderr,
		        "encrypt-model: --key-file %s: expected 32 bytes or 64 hex digits (an "
		        "AES-256 key), found %zu bytes\n",
		        path, file->len);
		return -EINVAL;
	}
	*out = TAKE_PTR(key);
	return 0;
}

/* A fresh key, written to @path before it is used: a model under a lost key is lost. */
static int generate_key(const char *path, bool force, struct secret **out)
{
	_cleanup_secret_ struct secret *key = secret_new(MODEL_KEY_SIZE);
	_cleanup_close_ int fd = -1;

	if (!key)
		return -ENOMEM;
	if (RAND_bytes(key->data, MODEL_KEY_SIZE) != 1) {
		fprintf(stderr, "encrypt-model: no random bytes for the key\n");
		return -EIO;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (force ? O_TRUNC : O_EXCL),
	          0600);
	if (fd < 0) {
		fprintf(stderr, "encrypt-model: --generate-key %s: %s%s\n", path, strerror(errno),
		        errno == EEXIST ? " (use --force to replace it)" : "");
		return -errno;
	}
	if (fchmod(fd, 0600) < 0 || write(fd, key->data, key->len) != (ssize_t)key->len ||
	    fsync(fd) < 0) {
		fprintf(stderr, "encrypt-model: writing %s: %s\n", path, strerror(errno));
		unlink(path);
		return -EIO;
	}
	*out = TAKE_PTR(key);
	return 0;
}

static int derive_from_rsa(const struct options *o, struct secret **out)
{
	_cleanup_(BIO_free_allp) BIO *bio = BIO_new_file(o->rsa_key, "r");
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	_cleanup_secret_ struct secret *d = NULL;
	BIGNUM *bn = NULL;
	struct skr_error err = {0};
	int r;

	if (!bio) {
		fprintf(stderr, "encrypt-model: --rsa-key %s: %s\n", o->rsa_key, strerror(errno));
		return -errno;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, ossl_no_password, NULL);
	if (!pkey || !EVP_PKEY_is_a(pkey, "RSA")) {
		fprintf(stderr,
		        "encrypt-model: --rsa-key %s: not an unencrypted RSA private key in PEM "
		        "(PKCS#8 or PKCS#1)\n",
		        o->rsa_key);
		return -EINVAL;
	}
	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_D, &bn) != 1) {
		fprintf(stderr, "encrypt-model: --rsa-key %s: no private exponent\n", o->rsa_key);
		return -EINVAL;
	}
	d = secret_new(BN_num_bytes(bn));
	if (!d) {
		BN_clear_free(bn);
		return -ENOMEM;
	}
	BN_bn2bin(bn, d->data);
	BN_clear_free(bn);
	r = model_key_derive(d->data, d->len, o->salt, o->label, out, &err);
	if (r < 0)
		fprintf(stderr, "encrypt-model: %s\n", skr_error_message(&err));
	return r;
}

/* Stream @in_fd through AES-256-GCM into @out_fd; the plaintext size in *@total. */
static int encrypt_stream(int in_fd, int out_fd, const struct secret *key, uint64_t *total)
{
	_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	_cleanup_free_ uint8_t *in = malloc(CHUNK), *out = malloc(CHUNK + 16);
	struct model_header h = {.version = MODEL_VERSION};
	uint8_t header[MODEL_HEADER_SIZE], tag[MODEL_TAG_SIZE];
	int outl, r;

	if (!ctx || !in || !out)
		return -ENOMEM;
	if (RAND_bytes(h.nonce, sizeof(h.nonce)) != 1)
		return -EIO;
	model_header_write(&h, header);
	if (EVP_EncryptInit_ex2(ctx, EVP_aes_256_gcm(), key->data, h.nonce, NULL) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &outl, header, sizeof(header)) != 1)
		return -EIO;
	r = write_full(out_fd, header, sizeof(header));
	if (r < 0)
		return r;
	*total = 0;
	for (;;) {
		ssize_t n = read_full(in_fd, in, CHUNK);

		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		if (EVP_EncryptUpdate(ctx, out, &outl, in, (int)n) != 1)
			return -EIO;
		r = write_full(out_fd, out, (size_t)outl);
		if (r < 0)
			return r;
		*total += (uint64_t)n;
	}
	/* The vendor's plaintext passed through this buffer: leave none of it in freed heap. */
	secure_erase(in, CHUNK);
	if (*total == 0)
		return -ENODATA;
	if (EVP_EncryptFinal_ex(ctx, out, &outl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, sizeof(tag), tag) != 1)
		return -EIO;
	return write_full(out_fd, tag, sizeof(tag));
}

static void print_summary(const struct options *o, uint64_t bytes, const struct secret *key)
{
	_cleanup_json_ json_object *s = json_object_new_object();
	char fp[MODEL_FINGERPRINT_SIZE];

	if (!s)
		return;
	model_key_fingerprint(key, fp);
	json_object_object_add(s, "model", json_object_new_string(o->out));
	json_object_object_add(s, "plaintext_bytes", json_object_new_int64((int64_t)bytes));
	json_object_object_add(s, "cipher", json_object_new_string("AES-256-GCM"));
	json_object_object_add(s, "key_type", json_object_new_string(o->rsa_key ? "RSA" : "oct"));
	json_object_object_add(s, "key_fingerprint", json_object_new_string(fp));
	if (o->rsa_key) {
		json_object_object_add(s, "salt", json_object_new_string(o->salt ? o->salt : ""));
		json_object_object_add(
		        s, "label",
		        json_object_new_string(o->label ? o->label : MODEL_DEFAULT_LABEL));
	}
	printf("%s\n",
	       json_object_to_json_string_ext(s, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
	                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
}

int main(int argc, char **argv)
{
	struct options o = {0};
	_cleanup_secret_ struct secret *key = NULL;
	_cleanup_close_ int in_fd = -1, out_fd = -1;
	_cleanup_free_ char *tmp = NULL;
	struct stat st;
	uint64_t total = 0;
	int r;

	r = parse_options(argc, argv, &o);
	if (r != 0)
		return r > 0 ? EXIT_SUCCESS : EXIT_USAGE;

	/* Everything that can be refused is refused before a key is generated or a byte written. */
	in_fd = open(o.in, O_RDONLY | O_CLOEXEC);
	if (in_fd < 0) {
		fprintf(stderr, "encrypt-model: --in %s: %s\n", o.in, strerror(errno));
		return EXIT_USAGE;
	}
	if (fstat(in_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "encrypt-model: --in %s: not a regular file\n", o.in);
		return EXIT_USAGE;
	}
	if (st.st_size == 0) {
		fprintf(stderr, "encrypt-model: --in %s is empty\n", o.in);
		return EXIT_USAGE;
	}
	if (!o.force && access(o.out, F_OK) == 0) {
		fprintf(stderr, "encrypt-model: --out %s exists (use --force to replace it)\n",
		        o.out);
		return EXIT_USAGE;
	}
	if (asprintf(&tmp, "%s.tmp.XXXXXX", o.out) < 0)
		return EXIT_FAILURE;

	if (o.key_file)
		r = load_key_file(o.key_file, &key);
	else if (o.generate_key)
		r = generate_key(o.generate_key, o.force, &key);
	else
		r = derive_from_rsa(&o, &key);
	if (r < 0)
		return r == -EINVAL ? EXIT_USAGE : EXIT_FAILURE;

	/* A temporary file renamed into place: no half-written model under the final name. */
	out_fd = mkstemp(tmp);
	if (out_fd < 0) {
		fprintf(stderr, "encrypt-model: --out %s: %s\n", o.out, strerror(errno));
		return EXIT_FAILURE;
	}
	r = encrypt_stream(in_fd, out_fd, key, &total);
	if (r == 0 && (fchmod(out_fd, 0644) < 0 || fsync(out_fd) < 0))
		r = -errno;
	if (r == 0 && rename(tmp, o.out) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		if (r == -ENODATA)
			fprintf(stderr, "encrypt-model: --in %s is empty\n", o.in);
		else
			fprintf(stderr, "encrypt-model: encrypting %s into %s: %s\n", o.in, o.out,
			        strerror(-r));
		return EXIT_FAILURE;
	}
	print_summary(&o, total, key);
	return EXIT_SUCCESS;
}
