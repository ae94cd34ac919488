/* SPDX-License-Identifier: MIT */
/*
 * model-decrypt: the application side of the confidential-inference pattern, run in the
 * confidential container group next to the sidecar. It asks the sidecar's SKR API
 * (POST localhost:8080/key/release) for the model key — released by Key Vault only to a
 * container group whose attested claims satisfy the key's policy — and decrypts the vendor's
 * encrypted model (model_crypto.h) in memory:
 *
 *   - the plaintext goes straight from AES-GCM into an anonymous memory file (memfd), locked
 *     and excluded from core dumps; it is never written to a disk or a named file;
 *   - the key and the JWK it came in are erased as soon as the model is decrypted;
 *   - a failed authentication (wrong key, modified file) erases what was decrypted so far.
 *
 * Then either prints a summary (size, SHA-256 of the plaintext, key fingerprint), or, with
 * `-- COMMAND ARGS...`, becomes COMMAND (the inference server) with the sealed, read-only model
 * on file descriptor 3 (MODEL_FD=3, MODEL_PATH=/proc/self/fd/3 in its environment).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "model_crypto.h"
#include "ossl.h"
#include "secret.h"

#define EXIT_USAGE 2
#define CHUNK (1024 * 1024)
/* The answer of /key/release: an RSA-4096 private JWK is under 4 KiB; room to spare. */
#define RESPONSE_MAX (64 * 1024)

struct options {
	const char *model, *kid, *maa, *akv, *sidecar, *salt, *label;
	int wait_s;
	char **exec_argv; /* after "--", or NULL */
};

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: model-decrypt --model FILE --kid NAME --maa-endpoint HOST\n"
	        "                     --akv-endpoint HOST [options] [-- COMMAND [ARGS...]]\n"
	        "\n"
	        "Release the model key through the sidecar's SKR API and decrypt the model in\n"
	        "memory only. Without COMMAND: print the model's size and SHA-256. With COMMAND:\n"
	        "run it with the decrypted model on fd 3 (MODEL_FD=3, "
	        "MODEL_PATH=/proc/self/fd/3).\n"
	        "\n"
	        "  --model FILE           the encrypted model (encrypt-model's output)\n"
	        "  --kid NAME             the key's name in the vault\n"
	        "  --maa-endpoint HOST    attestation service (e.g. "
	        "sharedeus2.eus2.attest.azure.net)\n"
	        "  --akv-endpoint HOST    key vault or managed HSM (e.g. myvault.vault.azure.net)\n"
	        "  --sidecar URL          the sidecar's API (default http://localhost:8080)\n"
	        "  --salt HEX, --label T  key derivation for RSA keys (as given to encrypt-model)\n"
	        "  --wait SECONDS         wait this long for the sidecar to answer (default 120)\n"
	        "  -h, --help             this text\n"
	        "\n"
	        "Exit codes: 0 success, 1 failure (release refused, wrong key, damaged model),\n"
	        "2 bad command line or model file.\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	        {"model", required_argument, NULL, 'm'},
	        {"kid", required_argument, NULL, 'k'},
	        {"maa-endpoint", required_argument, NULL, 'a'},
	        {"akv-endpoint", required_argument, NULL, 'v'},
	        {"sidecar", required_argument, NULL, 's'},
	        {"salt", required_argument, NULL, 'S'},
	        {"label", required_argument, NULL, 'L'},
	        {"wait", required_argument, NULL, 'w'},
	        {"help", no_argument, NULL, 'h'},
	        {},
	};
	char *end;
	int c;

	o->sidecar = "http://localhost:8080";
	o->wait_s = 120;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) >= 0) {
		switch (c) {
		case 'm':
			o->model = optarg;
			break;
		case 'k':
			o->kid = optarg;
			break;
		case 'a':
			o->maa = optarg;
			break;
		case 'v':
			o->akv = optarg;
			break;
		case 's':
			o->sidecar = optarg;
			break;
		case 'S':
			o->salt = optarg;
			break;
		case 'L':
			o->label = optarg;
			break;
		case 'w':
			errno = 0;
			o->wait_s = (int)strtol(optarg, &end, 10);
			if (errno || *end || o->wait_s < 0 || o->wait_s > 3600) {
				fprintf(stderr, "model-decrypt: --wait '%s': seconds, 0..3600\n",
				        optarg);
				return -EINVAL;
			}
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc)
		o->exec_argv = argv + optind;
	if (!o->model || !o->kid || !o->maa || !o->akv) {
		fprintf(stderr, "model-decrypt: --model, --kid, --maa-endpoint and --akv-endpoint "
		                "are required\n");
		return -EINVAL;
	}
	return 0;
}

/* The response body, in locked memory: it carries the key. */
struct body {
	struct secret *buf;
	size_t len;
	bool overflow;
};

static size_t body_write(char *data, size_t size, size_t n, void *userdata)
{
	struct body *b = userdata;
	size_t len = size * n;

	if (len > b->buf->len - 1 - b->len) {
		b->overflow = true;
		return 0; /* aborts the transfer */
	}
	memcpy(b->buf->data + b->len, data, len);
	b->len += len;
	b->buf->data[b->len] = '\0';
	return len;
}

/* @method @url with @json (NULL: none): the HTTP status, or a negative errno (no answer). */
static long http_call(const char *url, const char *json, struct body *b, char *errbuf)
{
	CURL *curl = curl_easy_init();
	struct curl_slist *headers = NULL;
	long status = 0;
	CURLcode rc;

	if (!curl)
		return -ENOMEM;
	b->len = 0;
	b->overflow = false;
	errbuf[0] = '\0';
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
	/* attestation + token + release: seconds normally, bounded by the sidecar's timeouts */
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 180L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	if (json) {
		headers = curl_slist_append(headers, "Content-Type: application/json");
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json);
	}
	rc = curl_easy_perform(curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	else if (!errbuf[0])
		snprintf(errbuf, CURL_ERROR_SIZE, "%s", curl_easy_strerror(rc));
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
	if (b->overflow)
		return -EFBIG;
	return rc == CURLE_OK ? status : -ECONNREFUSED;
}

/* Until the sidecar answers /status (it may start after this container). */
static int wait_for_sidecar(const struct options *o, struct body *b)
{
	char url[512], errbuf[CURL_ERROR_SIZE];
	time_t deadline = time(NULL) + o->wait_s;
	long status;

	snprintf(url, sizeof(url), "%s/status", o->sidecar);
	for (;;) {
		status = http_call(url, NULL, b, errbuf);
		if (status == 200)
			return 0;
		if (time(NULL) >= deadline) {
			fprintf(stderr,
			        "model-decrypt: the sidecar at %s did not answer in %d s: %s\n",
			        o->sidecar, o->wait_s,
			        status > 0 ? "unexpected HTTP status" : errbuf);
			return -ETIMEDOUT;
		}
		usleep(500 * 1000);
	}
}

/* Erase a string json-c holds (it would free it without erasing). */
static void erase_json_string(json_object *s)
{
	if (s && json_object_is_type(s, json_type_string))
		secure_erase((char *)json_object_get_string(s),
		             (size_t)json_object_get_string_len(s));
}

/* The AES key from the released JWK (oct: "k" as is; RSA: HKDF of "d"). */
static int key_from_jwk(const struct options *o, json_object *jwk, struct secret **out)
{
	_cleanup_secret_ struct secret *material = NULL;
	struct skr_error err = {0};
	json_object *kty, *field;
	bool rsa;
	int r;

	if (!json_object_object_get_ex(jwk, "kty", &kty) ||
	    !json_object_is_type(kty, json_type_string)) {
		fprintf(stderr, "model-decrypt: the released key has no \"kty\"\n");
		return -EPROTO;
	}
	rsa = strcmp(json_object_get_string(kty), "RSA") == 0;
	if (!rsa && strcmp(json_object_get_string(kty), "oct") != 0) {
		fprintf(stderr,
		        "model-decrypt: the released key is of type %s: use an oct-HSM (32 bytes) "
		        "or RSA-HSM key\n",
		        json_object_get_string(kty));
		return -EINVAL;
	}
	if (!json_object_object_get_ex(jwk, rsa ? "d" : "k", &field) ||
	    !json_object_is_type(field, json_type_string) ||
	    b64_decode_secret(json_object_get_string(field),
	                      (size_t)json_object_get_string_len(field), B64_ACCEPT_URL,
	                      &material) < 0) {
		fprintf(stderr, "model-decrypt: the released %s key has no base64url \"%s\"\n",
		        rsa ? "RSA" : "oct", rsa ? "d" : "k");
		return -EPROTO;
	}
	if (!rsa) {
		if (material->len != MODEL_KEY_SIZE) {
			fprintf(stderr,
			        "model-decrypt: the released oct key has %zu bytes; AES-256 needs "
			        "32\n",
			        material->len);
			return -EINVAL;
		}
		*out = TAKE_PTR(material);
		return 0;
	}
	r = model_key_derive(material->data, material->len, o->salt, o->label, out, &err);
	if (r < 0)
		fprintf(stderr, "model-decrypt: %s\n", skr_error_message(&err));
	return r;
}

static int release_key(const struct options *o, struct secret **out)
{
	_cleanup_json_ json_object *req = json_object_new_object(), *resp = NULL, *jwk = NULL;
	struct body b = {.buf = secret_new(RESPONSE_MAX)};
	char url[512], errbuf[CURL_ERROR_SIZE];
	json_object *key = NULL, *error;
	long status;
	int r;

	if (!req || !b.buf) {
		secret_free(b.buf);
		return -ENOMEM;
	}
	r = wait_for_sidecar(o, &b);
	if (r < 0)
		goto out;
	json_object_object_add(req, "maa_endpoint", json_object_new_string(o->maa));
	json_object_object_add(req, "akv_endpoint", json_object_new_string(o->akv));
	json_object_object_add(req, "kid", json_object_new_string(o->kid));
	snprintf(url, sizeof(url), "%s/key/release", o->sidecar);
	status = http_call(url, json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN), &b,
	                   errbuf);
	if (status < 0) {
		fprintf(stderr, "model-decrypt: POST %s: %s\n", url,
		        status == -EFBIG ? "answer too large" : errbuf);
		r = (int)status;
		goto out;
	}
	resp = json_tokener_parse((const char *)b.buf->data);
	if (!resp || !json_object_is_type(resp, json_type_object)) {
		fprintf(stderr, "model-decrypt: POST %s: HTTP %ld, not a JSON object\n", url,
		        status);
		r = -EPROTO;
		goto out;
	}
	if (status != 200 || !json_object_object_get_ex(resp, "key", &key) ||
	    !json_object_is_type(key, json_type_string)) {
		/* the sidecar's {"error": "..."} names the failed step (policy, claim, vault) */
		fprintf(stderr, "model-decrypt: key release failed (HTTP %ld): %s\n", status,
		        json_object_object_get_ex(resp, "error", &error)
		                ? json_object_get_string(error)
		                : "no key in the answer");
		r = -EACCES;
		goto out;
	}
	/* "key" is the JWK serialized as a JSON string (the Go sidecar's format). */
	jwk = json_tokener_parse(json_object_get_string(key));
	if (!jwk || !json_object_is_type(jwk, json_type_object)) {
		fprintf(stderr, "model-decrypt: the released key is not a JWK\n");
		r = -EPROTO;
		goto out;
	}
	r = key_from_jwk(o, jwk, out);
out:
	if (jwk) {
		json_object *f;

		if (json_object_object_get_ex(jwk, "k", &f))
			erase_json_string(f);
		if (json_object_object_get_ex(jwk, "d", &f))
			erase_json_string(f);
		/* p, q, dp, dq, qi also reveal the RSA key */
		json_object_object_foreach(jwk, name, value)
		{
			(void)name;
			erase_json_string(value);
		}
	}
	erase_json_string(key);
	secret_free(b.buf);
	return r;
}

/*
 * Decrypt the ciphertext of @fd (positioned after the header) into @plain (@len bytes) and
 * check the tag. On failure @plain is erased: unauthenticated plaintext is never used.
 */
static int decrypt_model(int fd, const uint8_t header[MODEL_HEADER_SIZE],
                         const struct model_header *h, const struct secret *key, uint8_t *plain,
                         uint64_t len)
{
	_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	_cleanup_free_ uint8_t *buf = malloc(CHUNK);
	uint8_t tag[MODEL_TAG_SIZE];
	uint64_t done = 0;
	int outl, r = -EIO;

	if (!ctx || !buf)
		return -ENOMEM;
	if (EVP_DecryptInit_ex2(ctx, EVP_aes_256_gcm(), key->data, h->nonce, NULL) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &outl, header, MODEL_HEADER_SIZE) != 1)
		goto fail;
	while (done < len) {
		size_t want = len - done < CHUNK ? (size_t)(len - done) : CHUNK;
		ssize_t n = read_full(fd, buf, want);

		if (n != (ssize_t)want) {
			r = n < 0 ? (int)n : -EIO;
			goto fail;
		}
		if (EVP_DecryptUpdate(ctx, plain + done, &outl, buf, (int)n) != 1)
			goto fail;
		done += (uint64_t)n;
	}
	if (read_full(fd, tag, sizeof(tag)) != (ssize_t)sizeof(tag) ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, sizeof(tag), tag) != 1)
		goto fail;
	if (EVP_DecryptFinal_ex(ctx, NULL, &outl) != 1) {
		r = -EBADMSG;
		goto fail;
	}
	return 0;
fail:
	secure_erase(plain, (size_t)len);
	return r;
}

static void print_summary(const struct options *o, const uint8_t *plain, uint64_t len,
                          const char *fingerprint)
{
	_cleanup_json_ json_object *s = json_object_new_object();
	uint8_t digest[32];
	char hex[65];
	unsigned int dlen = 0;

	if (!s || EVP_Digest(plain, (size_t)len, digest, &dlen, EVP_sha256(), NULL) != 1)
		return;
	hex_encode(digest, sizeof(digest), hex);
	json_object_object_add(s, "model", json_object_new_string(o->model));
	json_object_object_add(s, "plaintext_bytes", json_object_new_int64((int64_t)len));
	json_object_object_add(s, "plaintext_sha256", json_object_new_string(hex));
	json_object_object_add(s, "key_fingerprint", json_object_new_string(fingerprint));
	json_object_object_add(s, "in_memory_only", json_object_new_boolean(1));
	printf("%s\n",
	       json_object_to_json_string_ext(s, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
	                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
}

int main(int argc, char **argv)
{
	struct options o = {0};
	_cleanup_secret_ struct secret *key = NULL;
	_cleanup_close_ int fd = -1, mfd = -1;
	uint8_t header[MODEL_HEADER_SIZE];
	char fingerprint[MODEL_FINGERPRINT_SIZE];
	struct model_header h;
	struct skr_error err = {0};
	uint64_t len;
	uint8_t *plain;
	struct stat st;
	int r;

	r = parse_options(argc, argv, &o);
	if (r != 0)
		return r > 0 ? EXIT_SUCCESS : EXIT_USAGE;

	/* The model is checked before any key is asked for. */
	fd = open(o.model, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "model-decrypt: --model %s: %s\n", o.model, strerror(errno));
		return EXIT_USAGE;
	}
	if (read_full(fd, header, sizeof(header)) < 0 ||
	    model_header_parse(header, sizeof(header), (uint64_t)st.st_size, &h, &len, &err) < 0) {
		fprintf(stderr, "model-decrypt: --model %s: %s\n", o.model,
		        err.msg[0] ? skr_error_message(&err) : strerror(errno));
		return EXIT_USAGE;
	}
	if (len > (uint64_t)SIZE_MAX / 2) {
		fprintf(stderr, "model-decrypt: --model %s: too large for this machine\n", o.model);
		return EXIT_USAGE;
	}

	curl_global_init(CURL_GLOBAL_DEFAULT);
	r = release_key(&o, &key);
	curl_global_cleanup();
	if (r < 0)
		return r == -EINVAL ? EXIT_USAGE : EXIT_FAILURE;
	model_key_fingerprint(key, fingerprint);
	fprintf(stderr, "model-decrypt: key released, fingerprint %s\n", fingerprint);

	/* An anonymous memory file: no path, gone when the last descriptor closes. */
	mfd = memfd_create("model", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0 || ftruncate(mfd, (off_t)len) < 0) {
		fprintf(stderr, "model-decrypt: memory for %llu bytes: %s\n",
		        (unsigned long long)len, strerror(errno));
		return EXIT_FAILURE;
	}
	plain = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (plain == MAP_FAILED) {
		fprintf(stderr, "model-decrypt: mapping %llu bytes: %s\n", (unsigned long long)len,
		        strerror(errno));
		return EXIT_FAILURE;
	}
	if (mlock(plain, (size_t)len) < 0)
		fprintf(stderr,
		        "model-decrypt: warning: cannot lock the model in memory (%s): it "
		        "could be swapped; raise RLIMIT_MEMLOCK\n",
		        strerror(errno));
	madvise(plain, (size_t)len, MADV_DONTDUMP);

	r = decrypt_model(fd, header, &h, key, plain, len);
	secret_free(TAKE_PTR(key));
	if (r < 0) {
		munmap(plain, (size_t)len);
		if (r == -EBADMSG)
			fprintf(stderr,
			        "model-decrypt: --model %s failed authentication: the released key "
			        "(%s) is not the one it was encrypted with, or the file was "
			        "modified\n",
			        o.model, fingerprint);
		else
			fprintf(stderr, "model-decrypt: reading --model %s: %s\n", o.model,
			        strerror(-r));
		return EXIT_FAILURE;
	}

	if (!o.exec_argv) {
		print_summary(&o, plain, len, fingerprint);
		secure_erase(plain, (size_t)len);
		munmap(plain, (size_t)len);
		return EXIT_SUCCESS;
	}

	/* Hand the model over read-only: no writable mapping may remain before F_SEAL_WRITE. */
	munmap(plain, (size_t)len);
	if (fcntl(mfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0 ||
	    dup2(mfd, 3) < 0 || fcntl(3, F_SETFD, 0) < 0 || setenv("MODEL_FD", "3", 1) < 0 ||
	    setenv("MODEL_PATH", "/proc/self/fd/3", 1) < 0) {
		fprintf(stderr, "model-decrypt: handing the model over: %s\n", strerror(errno));
		return EXIT_FAILURE;
	}
	fflush(NULL);
	execvp(o.exec_argv[0], o.exec_argv);
	fprintf(stderr, "model-decrypt: %s: %s\n", o.exec_argv[0], strerror(errno));
	return EXIT_FAILURE;
}
