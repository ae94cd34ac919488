/* SPDX-License-Identifier: MIT */
/*
 * generatefs: make an encrypted ext4 image from a directory, rootless (replaces the Go
 * project's generatefs.sh, which needs sudo, dm-crypt and a loop device). Flags, key handling,
 * the JSON summary, progress and the optional upload; the work is in generatefs.c.
 *
 * Exit codes: 0 success, 1 runtime failure (disk full, mke2fs, upload), 2 bad command line or
 * input (missing source, wrong key length, output exists, tree larger than --size).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "b64.h"
#include "cleanup.h"
#include "encfs.h"
#include "fileio.h"
#include "generatefs.h"
#include "log.h"
#include "ossl.h"
#include "secret.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define PROGRESS_MIN_SIZE (64ull * 1024 * 1024)
#define KEY_FILE_MAX 4096
#define TOKEN_FILE_MAX (64 * 1024)

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: generatefs --dir SRC --out IMG KEY [options]\n"
	        "\n"
	        "Make an ext4 filesystem holding SRC (owners, modes, symlinks, hard links, xattrs\n"
	        "kept; mke2fs -d) and encrypt it as LUKS2 aes-xts-plain64 entirely in userspace:\n"
	        "no root, no device-mapper, no loop device. The image opens with\n"
	        "`cryptsetup open --key-file KEY IMG name` and with the confidential sidecar.\n"
	        "Prints a JSON summary on stdout (never the key).\n"
	        "\n"
	        "KEY (exactly one):\n"
	        "  --key-file FILE        32 raw bytes (or 64 hex digits): the keyslot passphrase\n"
	        "  --key-hex HEX          64 hex digits (visible in ps: prefer a file)\n"
	        "  --generate-key FILE    create FILE (0600, must not exist) with 32 random bytes\n"
	        "\n"
	        "The keyslot uses pbkdf2-sha256 with only %d iterations, on purpose: the\n"
	        "passphrase is a random 256-bit key, so a slow KDF adds no security, only delay "
	        "at\n"
	        "every open (the Go tool's images use the same parameters).\n"
	        "\n"
	        "Options:\n"
	        "  --size N               LUKS image size (16 MiB header + ext4), multiple of 1 "
	        "MiB;\n"
	        "                         suffixes K M G T (binary). Fails if SRC does not fit.\n"
	        "  --auto-size            size from SRC plus ext4 overhead (default)\n"
	        "  --sector-size 512|4096 encryption sector size (default 4096, like the Go tool)\n"
	        "  --label L              ext4 and LUKS label (up to 16 bytes)\n"
	        "  --uuid U               LUKS and ext4 UUID; makes the run reproducible: the "
	        "ext4\n"
	        "                         bytes and the LUKS metadata except salts and digest "
	        "(the\n"
	        "                         volume key is always random). Timestamps from\n"
	        "                         $SOURCE_DATE_EPOCH, else the newest mtime in SRC.\n"
	        "  --read-only-verity     append a dm-verity hash tree over the whole LUKS image\n"
	        "                         and print its root hash: pin it in the sidecar's\n"
	        "                         configuration to detect any tampering with the blob\n"
	        "  --force                replace an existing IMG\n"
	        "  --threads N            encryption threads (default: one per CPU)\n"
	        "  --upload URL           then upload IMG as an Azure page blob (SAS in the URL, "
	        "or\n"
	        "                         with --bearer-token-file), or copy it to a file:// URL\n"
	        "  --bearer-token-file F  bearer token for --upload (https only)\n"
	        "  --ca-bundle PEM        CA bundle for --upload (default: system store)\n"
	        "  --parallel N           concurrent 4 MiB uploads (default 8)\n"
	        "  --verbose              debug messages on stderr\n"
	        "  --version              print the version\n"
	        "  -h, --help             this text\n"
	        "\n"
	        "Exit codes: 0 success, 1 runtime failure, 2 bad command line or input. On "
	        "failure\n"
	        "no partial IMG (and no generated key file) is left behind.\n",
	        GENERATEFS_PBKDF2_ITERATIONS);
}

__attribute__((format(printf, 1, 2))) static int fail_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "generatefs: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

struct cli {
	struct generatefs_options o;
	const char *key_file, *key_hex, *generate_key;
	bool auto_size, verbose;
	const char *upload_url, *bearer_token_file, *ca_bundle;
	unsigned parallel;
};

static int parse_unsigned(const char *flag, const char *s, unsigned min, unsigned max,
                          unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || s[0] == '-' || !*s || v < min || v > max)
		return fail_usage("%s '%s': expected a number from %u to %u", flag, s, min, max);
	*out = (unsigned)v;
	return 0;
}

enum {
	OPT_DIR = 256,
	OPT_OUT,
	OPT_KEY_FILE,
	OPT_KEY_HEX,
	OPT_GENERATE_KEY,
	OPT_SIZE,
	OPT_AUTO_SIZE,
	OPT_SECTOR_SIZE,
	OPT_LABEL,
	OPT_VERITY,
	OPT_UUID,
	OPT_FORCE,
	OPT_THREADS,
	OPT_UPLOAD,
	OPT_BEARER,
	OPT_CA,
	OPT_PARALLEL,
	OPT_VERBOSE,
	OPT_VERSION,
};

/* 0 parsed, -1 exit 0 (help, version), > 0 an exit code */
static int parse_args(int argc, char **argv, struct cli *c)
{
	static const struct option opts[] = {
	        {"dir", required_argument, NULL, OPT_DIR},
	        {"out", required_argument, NULL, OPT_OUT},
	        {"key-file", required_argument, NULL, OPT_KEY_FILE},
	        {"key-hex", required_argument, NULL, OPT_KEY_HEX},
	        {"generate-key", required_argument, NULL, OPT_GENERATE_KEY},
	        {"size", required_argument, NULL, OPT_SIZE},
	        {"auto-size", no_argument, NULL, OPT_AUTO_SIZE},
	        {"sector-size", required_argument, NULL, OPT_SECTOR_SIZE},
	        {"label", required_argument, NULL, OPT_LABEL},
	        {"read-only-verity", no_argument, NULL, OPT_VERITY},
	        {"uuid", required_argument, NULL, OPT_UUID},
	        {"force", no_argument, NULL, OPT_FORCE},
	        {"threads", required_argument, NULL, OPT_THREADS},
	        {"upload", required_argument, NULL, OPT_UPLOAD},
	        {"bearer-token-file", required_argument, NULL, OPT_BEARER},
	        {"ca-bundle", required_argument, NULL, OPT_CA},
	        {"parallel", required_argument, NULL, OPT_PARALLEL},
	        {"verbose", no_argument, NULL, OPT_VERBOSE},
	        {"version", no_argument, NULL, OPT_VERSION},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int opt, keys = 0;

	c->parallel = 8;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_DIR:
			c->o.src_dir = optarg;
			break;
		case OPT_OUT:
			c->o.out_path = optarg;
			break;
		case OPT_KEY_FILE:
			c->key_file = optarg;
			keys++;
			break;
		case OPT_KEY_HEX:
			c->key_hex = optarg;
			keys++;
			break;
		case OPT_GENERATE_KEY:
			c->generate_key = optarg;
			keys++;
			break;
		case OPT_SIZE:
			if (generatefs_parse_size(optarg, &c->o.size) < 0 || c->o.size == 0)
				return fail_usage("--size '%s': expected a size like 512M or 2G",
				                  optarg);
			break;
		case OPT_AUTO_SIZE:
			c->auto_size = true;
			break;
		case OPT_SECTOR_SIZE:
			if (strcmp(optarg, "512") && strcmp(optarg, "4096"))
				return fail_usage("--sector-size '%s': use 512 or 4096", optarg);
			c->o.sector_size = (unsigned)atoi(optarg);
			break;
		case OPT_LABEL:
			c->o.label = optarg;
			break;
		case OPT_VERITY:
			c->o.verity = true;
			break;
		case OPT_UUID:
			c->o.uuid = optarg;
			break;
		case OPT_FORCE:
			c->o.force = true;
			break;
		case OPT_THREADS:
			if (parse_unsigned("--threads", optarg, 1, 64, &c->o.threads))
				return EXIT_USAGE;
			break;
		case OPT_UPLOAD:
			c->upload_url = optarg;
			break;
		case OPT_BEARER:
			c->bearer_token_file = optarg;
			break;
		case OPT_CA:
			c->ca_bundle = optarg;
			break;
		case OPT_PARALLEL:
			if (parse_unsigned("--parallel", optarg, 1, 64, &c->parallel))
				return EXIT_USAGE;
			break;
		case OPT_VERBOSE:
			c->verbose = true;
			break;
		case OPT_VERSION:
			printf("generatefs %s\n", PROJECT_VERSION);
			return -1;
		case 'h':
			usage(stdout);
			return -1;
		default:
			if (optopt && optopt < 256)
				return fail_usage("unknown option '-%c' (see --help)", optopt);
			return fail_usage("unknown or incomplete option '%s' (see --help)",
			                  argv[optind - 1]);
		}
	}
	if (optind < argc)
		return fail_usage("unexpected argument '%s' (see --help)", argv[optind]);
	if (!c->o.src_dir)
		return fail_usage("--dir SRC is required (the directory to put in the image)");
	if (!c->o.out_path)
		return fail_usage("--out IMG is required (the image to create)");
	if (keys != 1)
		return fail_usage("give exactly one of --key-file, --key-hex, --generate-key "
		                  "(got %d)",
		                  keys);
	if (c->auto_size && c->o.size)
		return fail_usage("--size and --auto-size exclude each other");
	if ((c->bearer_token_file || c->ca_bundle) && !c->upload_url)
		return fail_usage("--bearer-token-file and --ca-bundle only apply to --upload");
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Key material (struct secret only)
 * ------------------------------------------------------------------------------------------- */

static int key_from_hex(const char *what, const char *hex, size_t len, struct secret **out)
{
	_cleanup_secret_ struct secret *k = secret_new(GENERATEFS_KEY_SIZE);

	if (!k)
		return fail_usage("out of memory");
	if (len != 2 * GENERATEFS_KEY_SIZE ||
	    hex_decode(hex, len, k->data, GENERATEFS_KEY_SIZE) < 0)
		return fail_usage("%s: expected %d hex digits (a %d-byte key), got %zu characters",
		                  what, 2 * GENERATEFS_KEY_SIZE, GENERATEFS_KEY_SIZE, len);
	*out = TAKE_PTR(k);
	return 0;
}

static int load_key(const struct cli *c, struct secret **out, bool *generated)
{
	_cleanup_secret_ struct secret *file = NULL;
	int r;

	*generated = false;
	if (c->key_hex)
		return key_from_hex("--key-hex", c->key_hex, strlen(c->key_hex), out);
	if (c->generate_key) {
		_cleanup_secret_ struct secret *k = secret_new(GENERATEFS_KEY_SIZE);
		_cleanup_close_ int fd = -1;
		size_t done = 0;

		if (!k)
			return fail_usage("out of memory");
		if (RAND_priv_bytes(k->data, GENERATEFS_KEY_SIZE) != 1)
			return fail_usage("no random bytes for the key");
		fd = open(c->generate_key, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			return errno == EEXIST
			               ? fail_usage(
			                         "--generate-key %s exists: never overwritten; use "
			                         "--key-file to reuse it",
			                         c->generate_key)
			               : fail_usage("--generate-key %s: %s", c->generate_key,
			                            skr_strerror(errno));
		while (done < k->len) {
			ssize_t n = write(fd, k->data + done, k->len - done);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0 || fsync(fd) < 0) {
				int e = errno;

				unlink(c->generate_key);
				fprintf(stderr, "generatefs: --generate-key %s: %s\n",
				        c->generate_key, skr_strerror(e));
				return EXIT_RUNTIME;
			}
			done += (size_t)n;
		}
		*generated = true;
		*out = TAKE_PTR(k);
		return 0;
	}
	r = read_file_secret(c->key_file, KEY_FILE_MAX, &file);
	if (r == -EFBIG)
		return fail_usage("--key-file %s is larger than a key: expected %d raw bytes or %d "
		                  "hex digits",
		                  c->key_file, GENERATEFS_KEY_SIZE, 2 * GENERATEFS_KEY_SIZE);
	if (r < 0)
		return fail_usage("--key-file %s: %s", c->key_file, skr_strerror(r));
	if (file->len == GENERATEFS_KEY_SIZE) {
		*out = TAKE_PTR(file);
		return 0;
	}
	/* 64 hex digits, as `openssl rand -hex 32 > key` writes them (with a newline) */
	size_t len = file->len;
	while (len > 0 && (file->data[len - 1] == '\n' || file->data[len - 1] == '\r'))
		len--;
	if (len == 2 * GENERATEFS_KEY_SIZE)
		return key_from_hex(c->key_file, (const char *)file->data, len, out);
	return fail_usage("--key-file %s holds %zu bytes: expected exactly %d raw bytes (or %d hex "
	                  "digits)",
	                  c->key_file, file->len, GENERATEFS_KEY_SIZE, 2 * GENERATEFS_KEY_SIZE);
}

/* ---------------------------------------------------------------------------------------------
 * Progress, signals
 * ------------------------------------------------------------------------------------------- */

static volatile sig_atomic_t cancelled;

static void on_signal(int sig)
{
	(void)sig;
	cancelled = 1;
}

struct progress {
	bool tty;
	unsigned last_decile;
	struct timespec start;
};

static void on_progress(void *userdata, uint64_t done, uint64_t total)
{
	struct progress *p = userdata;
	struct timespec now;
	double secs, mib = (double)done / (1024.0 * 1024.0);
	unsigned pct = total ? (unsigned)(done * 100 / total) : 100;

	/* only for images worth waiting for */
	if (total + GENERATEFS_DATA_OFFSET <= PROGRESS_MIN_SIZE)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	secs = (double)(now.tv_sec - p->start.tv_sec) + (now.tv_nsec - p->start.tv_nsec) / 1e9;
	if (p->tty) {
		fprintf(stderr, "\rgeneratefs: encrypting %3u%% (%.0f of %.0f MiB, %.0f MiB/s)",
		        pct, mib, (double)total / (1024.0 * 1024.0), secs > 0 ? mib / secs : 0.0);
		if (done == total)
			fputc('\n', stderr);
	} else if (pct / 10 > p->last_decile || done == total) {
		/* logs: one line per 10 % */
		p->last_decile = pct / 10;
		fprintf(stderr, "generatefs: encrypting %u%% (%.0f MiB)\n", pct, mib);
	}
}

/* ---------------------------------------------------------------------------------------------
 * Upload
 * ------------------------------------------------------------------------------------------- */

struct token_source {
	struct secret *token;
};

static int token_from_file(void *userdata, const char *resource, struct secret **token,
                           struct skr_error *err)
{
	struct token_source *t = userdata;

	(void)resource;
	*token = secret_new_copy(t->token->data, t->token->len);
	return *token ? 0 : skr_error_set(err, -ENOMEM, "out of memory");
}

static int upload(const struct cli *c, const char *image, uint64_t size, struct skr_error *err)
{
	_cleanup_close_ int fd = -1;
	struct token_source ts = {NULL};
	struct blob_options bo = {
	        .url = c->upload_url,
	        .ca_bundle = c->ca_bundle,
	        .writable = true,
	};
	int r;

	if (c->bearer_token_file) {
		r = read_file_secret(c->bearer_token_file, TOKEN_FILE_MAX, &ts.token);
		if (r < 0)
			return skr_error_set(err, r, "--bearer-token-file %s: %s",
			                     c->bearer_token_file, skr_strerror(r));
		while (ts.token->len > 0 && (ts.token->data[ts.token->len - 1] == '\n' ||
		                             ts.token->data[ts.token->len - 1] == '\r' ||
		                             ts.token->data[ts.token->len - 1] == ' '))
			ts.token->data[--ts.token->len] = 0;
		if (ts.token->len == 0) {
			secret_free(ts.token);
			return skr_error_set(err, -EINVAL, "--bearer-token-file %s is empty",
			                     c->bearer_token_file);
		}
		bo.token_fn = token_from_file;
		bo.token_userdata = &ts;
	}
	fd = open(image, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = skr_error_set(err, -errno, "%s: %s", image, skr_strerror(errno));
	} else {
		r = blob_upload_page_blob(&bo, fd, size, c->parallel, c->o.force, err);
		if (r < 0 && strncmp(skr_error_message(err), "upload", 6) != 0)
			skr_error_prefix(err, "upload: ");
	}
	secret_free(ts.token);
	return r;
}

/* ---------------------------------------------------------------------------------------------
 * Summary
 * ------------------------------------------------------------------------------------------- */

static void print_summary(const struct cli *c, const struct generatefs_result *res,
                          bool key_generated, const char *uploaded)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	const char *key_path = c->key_file ? c->key_file : c->generate_key;

	json_object_object_add(o, "image", json_object_new_string(c->o.out_path));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)res->image_size));
	json_object_object_add(o, "luks_size", json_object_new_int64((int64_t)res->luks_size));
	json_object_object_add(o, "filesystem", json_object_new_string("ext4"));
	json_object_object_add(o, "filesystem_size", json_object_new_int64((int64_t)res->fs_size));
	json_object_object_add(o, "auto_size", json_object_new_boolean(res->auto_sized));
	json_object_object_add(o, "type", json_object_new_string("luks2"));
	json_object_object_add(o, "cipher", json_object_new_string("aes-xts-plain64"));
	json_object_object_add(o, "key_size_bits",
	                       json_object_new_int(GENERATEFS_VOLUME_KEY_SIZE * 8));
	json_object_object_add(o, "sector_size", json_object_new_int((int)res->sector_size));
	json_object_object_add(o, "data_offset", json_object_new_int64((int64_t)res->data_offset));
	json_object_object_add(o, "pbkdf", json_object_new_string("pbkdf2-sha256"));
	json_object_object_add(o, "pbkdf_iterations",
	                       json_object_new_int(GENERATEFS_PBKDF2_ITERATIONS));
	json_object_object_add(o, "luks_uuid", json_object_new_string(res->luks_uuid));
	json_object_object_add(o, "label", c->o.label ? json_object_new_string(c->o.label) : NULL);
	if (res->verity) {
		json_object *v = json_object_new_object();

		json_object_object_add(v, "root_hash",
		                       json_object_new_string(res->verity_root_hash));
		json_object_object_add(v, "hash_offset",
		                       json_object_new_int64((int64_t)res->verity_hash_offset));
		json_object_object_add(v, "hash_algorithm", json_object_new_string("sha256"));
		json_object_object_add(v, "block_size", json_object_new_int(4096));
		json_object_object_add(o, "verity", v);
	} else {
		json_object_object_add(o, "verity", NULL);
	}
	json_object_object_add(o, "key_file", key_path ? json_object_new_string(key_path) : NULL);
	json_object_object_add(o, "key_generated", json_object_new_boolean(key_generated));
	json_object_object_add(o, "uploaded_to",
	                       uploaded ? json_object_new_string(uploaded) : NULL);
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
	                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* Configuration problems (2) versus failures while working (1). */
static int exit_code_for(int r)
{
	switch (r) {
	case -EINVAL:
	case -ENOENT:
	case -ENOTDIR:
	case -EEXIST:
	case -EISDIR:
	case -EFBIG:
		return EXIT_USAGE;
	default:
		return EXIT_RUNTIME;
	}
}

int main(int argc, char **argv)
{
	struct cli c = {0};
	struct generatefs_result res;
	struct skr_error err = {0};
	_cleanup_secret_ struct secret *key = NULL;
	_cleanup_free_ char *display_url = NULL;
	struct progress prog = {.tty = isatty(STDERR_FILENO)};
	struct sigaction sa = {.sa_handler = on_signal};
	bool generated = false;
	int r;

	r = parse_args(argc, argv, &c);
	if (r)
		return r < 0 ? 0 : r;
	log_set_level(c.verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN);
	r = load_key(&c, &key, &generated);
	/* The key is in locked memory now: shorten the time it is readable in /proc/PID/cmdline
	 * (argv is ours to overwrite; --help already says to prefer a key file). */
	if (c.key_hex)
		secure_erase((char *)c.key_hex, strlen(c.key_hex));
	if (r)
		return r;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	c.o.key = key;
	c.o.cancel = &cancelled;
	clock_gettime(CLOCK_MONOTONIC, &prog.start);
	c.o.progress = on_progress;
	c.o.progress_userdata = &prog;

	r = generatefs_run(&c.o, &res, &err);
	if (r < 0) {
		if (generated)
			unlink(c.generate_key); /* a key for no image: do not leave it behind */
		fprintf(stderr, "generatefs: %s\n", skr_error_message(&err));
		return exit_code_for(r);
	}
	if (c.upload_url) {
		display_url = blob_url_redact(c.upload_url);
		r = upload(&c, c.o.out_path, res.image_size, &err);
		if (r < 0) {
			fprintf(stderr,
			        "generatefs: %s (the image %s is complete; retry the upload)\n",
			        skr_error_message(&err), c.o.out_path);
			return EXIT_RUNTIME;
		}
	}
	print_summary(&c, &res, generated, display_url);
	return 0;
}
