/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "test_azurite.h"
#include "test_proc.h"

/* Put Blob's single-request limit is far higher, but blocks keep each request (and the memory
 * a caller's fd upload needs) small and exercise the block API. */
#define SINGLE_PUT_MAX (4u * 1024 * 1024)
#define BLOCK_SIZE (8u * 1024 * 1024)
#define PAGE_CHUNK (4u * 1024 * 1024) /* Put Page's per-call maximum (§6.3) */
#define NAME_MAX_LEN 200

DEFINE_CLEANUP_FUNC(CURL *, curl_easy_cleanup)
DEFINE_CLEANUP_FUNC(struct curl_slist *, curl_slist_free_all)
DEFINE_CLEANUP_FUNC(char *, curl_free)
#define _cleanup_curl_free_ _cleanup_(curl_freep)

/* ---------------------------------------------------------------------------------------------
 * Finding and running Azurite
 * ------------------------------------------------------------------------------------------- */

static bool executable(const char *path)
{
	return path && path[0] && access(path, X_OK) == 0;
}

const char *test_azurite_bin(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("AZURITE_BLOB_BIN");
	const char *cache = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	const char *search = getenv("PATH");

	if (env && env[0])
		return executable(env) ? env : NULL; /* explicit: no silent fallback */
	if (cache && cache[0])
		snprintf(path, sizeof(path), "%s/csc-azurite/node_modules/.bin/azurite-blob",
		         cache);
	else
		snprintf(path, sizeof(path), "%s/.cache/csc-azurite/node_modules/.bin/azurite-blob",
		         home && home[0] ? home : "/root");
	if (executable(path))
		return path;
	while (search && *search) {
		size_t n = strcspn(search, ":");

		snprintf(path, sizeof(path), "%.*s/azurite-blob", (int)n, search);
		if (n > 0 && executable(path))
			return path;
		search += n + (search[n] == ':');
	}
	return NULL;
}

bool test_azurite_require(void)
{
	const char *allow = getenv("SKR_ALLOW_SKIP");
	const char *env = getenv("AZURITE_BLOB_BIN");

	if (test_azurite_bin())
		return true;
	if (env && env[0])
		fprintf(stderr, "AZURITE_BLOB_BIN=%s is not executable\n", env);
	if (allow && strcmp(allow, "1") == 0) {
		fprintf(stderr,
		        "SKIP: Azurite (azurite-blob) not found and SKR_ALLOW_SKIP=1; install it "
		        "with tools/install-deps.sh to run these tests\n");
		exit(77);
	}
	fprintf(stderr,
	        "FAIL: Azurite (azurite-blob) not found: run tools/install-deps.sh (npm install "
	        "azurite@3 into ${XDG_CACHE_HOME:-$HOME/.cache}/csc-azurite) or set "
	        "AZURITE_BLOB_BIN; SKR_ALLOW_SKIP=1 skips these tests locally\n");
	return false;
}

/* A port nobody listens on now (the kernel's choice for an ephemeral bind). 0 on failure. */
static int free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		return 0;
	return ntohs(sa.sin_port);
}

static void print_log_tail(const char *path)
{
	_cleanup_free_ char *text = NULL;
	size_t len;

	if (read_file(path, 16 * 1024 * 1024, &text, &len) < 0 || len == 0)
		return;
	fprintf(stderr, "--- end of %s ---\n%s\n---\n", path, text + (len > 2000 ? len - 2000 : 0));
}

static bool log_contains(const char *path, const char *needle)
{
	_cleanup_free_ char *text = NULL;
	size_t len;

	return read_file(path, 16 * 1024 * 1024, &text, &len) == 0 && strstr(text, needle);
}

static int list_containers(const struct test_azurite *az);

int test_azurite_start(struct test_azurite *az, const char *dir, bool in_memory)
{
	const char *bin = test_azurite_bin();
	char port_s[16], err_log[600];

	memset(az, 0, sizeof(*az));
	az->pid = -1;
	if (!bin) {
		fprintf(stderr, "azurite-blob not found (tools/install-deps.sh installs it)\n");
		return -1;
	}
	snprintf(az->dir, sizeof(az->dir), "%s", dir);
	snprintf(az->log, sizeof(az->log), "%s/azurite.log", dir);
	snprintf(err_log, sizeof(err_log), "%s/azurite.err", dir);
	if (mkdir_p(dir, 0700) < 0) {
		fprintf(stderr, "cannot create %s: %s\n", dir, strerror(errno));
		return -1;
	}
	/* The port is free when probed but may be taken before Azurite binds it: retry. */
	for (int attempt = 0; attempt < 3; attempt++) {
		const char *argv[16] = {bin,
		                        "--blobHost",
		                        "127.0.0.1",
		                        "--blobPort",
		                        port_s,
		                        "--skipApiVersionCheck",
		                        "--disableTelemetry"};
		struct test_proc_io io = {
		        .cwd = dir, .stdout_path = az->log, .stderr_path = err_log};
		size_t n = 7;
		int status = 0;

		/* Azurite refuses --location with --inMemoryPersistence; it runs in @dir anyway. */
		if (in_memory) {
			argv[n++] = "--inMemoryPersistence";
		} else {
			argv[n++] = "--location";
			argv[n++] = dir;
		}
		argv[n] = NULL;
		az->port = free_port();
		if (az->port == 0) {
			fprintf(stderr, "no free loopback port: %s\n", strerror(errno));
			return -1;
		}
		snprintf(port_s, sizeof(port_s), "%d", az->port);
		snprintf(az->endpoint, sizeof(az->endpoint), "http://127.0.0.1:%d/%s", az->port,
		         TEST_AZURITE_ACCOUNT);
		az->pid = test_proc_spawn(argv, &io);
		if (az->pid < 0) {
			fprintf(stderr, "cannot start %s: %s\n", bin, strerror((int)-az->pid));
			az->pid = -1;
			return -1;
		}
		test_proc_kill_at_exit(&az->pid);
		for (int i = 0; i < 600; i++) {
			if (test_proc_exited(&az->pid, &status))
				break;
			if (list_containers(az) == 0)
				return 0;
			usleep(100 * 1000);
		}
		if (az->pid > 0) {
			fprintf(stderr, "Azurite on port %d did not answer in 60 s\n", az->port);
			test_proc_kill(&az->pid);
			print_log_tail(err_log);
			return -1;
		}
		if (log_contains(err_log, "EADDRINUSE"))
			continue;
		fprintf(stderr, "Azurite exited early (wait status %d) on port %d\n", status,
		        az->port);
		print_log_tail(err_log);
		print_log_tail(az->log);
		return -1;
	}
	fprintf(stderr, "Azurite could not bind a free port in 3 attempts\n");
	return -1;
}

int test_azurite_stop(struct test_azurite *az)
{
	if (az->pid <= 0)
		return 0;
	return test_proc_stop(&az->pid, SIGTERM, 10000) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * SharedKey signing (Authorize with Shared Key, version 2015-02-21 and later)
 * ------------------------------------------------------------------------------------------- */

/* HMAC-SHA256 of @msg with the base64 key @key_b64 → base64 (malloc'ed), NULL on failure. */
static char *hmac_b64(const char *key_b64, const char *msg)
{
	_cleanup_free_ uint8_t *key = NULL;
	uint8_t mac[EVP_MAX_MD_SIZE];
	size_t key_len = 0, mac_len = 0;
	char *out = NULL;

	if (b64_decode(key_b64, strlen(key_b64), B64_ACCEPT_STD, &key, &key_len) < 0)
		return NULL;
	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len, (const uint8_t *)msg,
	               strlen(msg), mac, sizeof(mac), &mac_len))
		mac_len = 0;
	OPENSSL_cleanse(key, key_len);
	if (mac_len == 0 || b64_encode(mac, mac_len, B64_STD, &out) < 0)
		return NULL;
	return out;
}

/* One Blob REST request below the account. */
struct rest_req {
	const char *method;       /* GET, HEAD, PUT */
	const char *container;    /* NULL: the account itself */
	const char *blob;         /* NULL: the container */
	const char *const *query; /* name, value pairs (unescaped), NULL-terminated; may be NULL */
	const char *const *xms; /* extra "x-ms-…" name, value pairs, NULL-terminated; may be NULL */
	const void *body;
	size_t body_len;
	bool quiet; /* no message on failure (polling a start) */
};

struct rest_resp {
	long status;
	char *body; /* NUL-terminated */
	size_t len;
	char etag[128];
};

static void rest_resp_clear(struct rest_resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

struct upload {
	const uint8_t *data;
	size_t len, off;
};

static size_t upload_cb(char *buf, size_t size, size_t n, void *userdata)
{
	struct upload *u = userdata;
	size_t take = size * n;

	if (take > u->len - u->off)
		take = u->len - u->off;
	memcpy(buf, u->data + u->off, take);
	u->off += take;
	return take;
}

static size_t body_cb(char *data, size_t size, size_t n, void *userdata)
{
	struct rest_resp *r = userdata;
	size_t add = size * n;
	char *p = realloc(r->body, r->len + add + 1);

	if (!p)
		return 0;
	memcpy(p + r->len, data, add);
	r->body = p;
	r->len += add;
	r->body[r->len] = '\0';
	return add;
}

static size_t header_cb(char *data, size_t size, size_t n, void *userdata)
{
	struct rest_resp *r = userdata;
	size_t len = size * n;

	if (len > 5 && strncasecmp(data, "ETag:", 5) == 0) {
		const char *v = data + 5;
		size_t vl = len - 5;

		while (vl > 0 && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		snprintf(r->etag, sizeof(r->etag), "%.*s", (int)vl, v);
	}
	return len;
}

static bool name_ok(const char *s)
{
	if (!s)
		return true;
	if (!s[0] || strlen(s) > NAME_MAX_LEN)
		return false;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._",
		            *s))
			return false;
	return true;
}

static int cmp_pair(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sort name/value pairs (flattened) by name; @n pairs. */
static void sort_pairs(const char **pairs, size_t n)
{
	qsort(pairs, n, 2 * sizeof(*pairs), cmp_pair);
}

#define PAIRS_MAX 16

/*
 * The SharedKey string to sign. Only the headers we send are non-empty: Content-Length (empty
 * for 0, as required since 2015-02-21), no Content-Type/MD5/Date (x-ms-date instead), no
 * conditional headers and x-ms-range rather than Range.
 */
static char *string_to_sign(const struct rest_req *q, const char *const *xms_all, size_t n_xms,
                            const char *path)
{
	const char *xms[2 * PAIRS_MAX], *query[2 * PAIRS_MAX];
	size_t n_query = 0, cap = 4096, used = 0;
	char *s = malloc(cap);
	char cl[32] = "";

	if (!s)
		return NULL;
	memcpy(xms, xms_all, 2 * n_xms * sizeof(*xms));
	sort_pairs(xms, n_xms);
	for (size_t i = 0; q->query && q->query[i]; i += 2) {
		query[2 * n_query] = q->query[i];
		query[2 * n_query + 1] = q->query[i + 1];
		n_query++;
	}
	sort_pairs(query, n_query);
	if (q->body_len > 0)
		snprintf(cl, sizeof(cl), "%zu", q->body_len);
#define APPEND(...)                                                                                \
	do {                                                                                       \
		int w_ = snprintf(s + used, cap - used, __VA_ARGS__);                              \
		if (w_ < 0 || (size_t)w_ >= cap - used) {                                          \
			free(s);                                                                   \
			return NULL;                                                               \
		}                                                                                  \
		used += (size_t)w_;                                                                \
	} while (0)
	APPEND("%s\n\n\n%s\n\n\n\n\n\n\n\n\n", q->method, cl);
	for (size_t i = 0; i < n_xms; i++)
		APPEND("%s:%s\n", xms[2 * i], xms[2 * i + 1]);
	/* Path-style: the account appears twice, once as the resource owner, once in the path. */
	APPEND("/%s%s", TEST_AZURITE_ACCOUNT, path);
	for (size_t i = 0; i < n_query; i++)
		APPEND("\n%s:%s", query[2 * i], query[2 * i + 1]);
#undef APPEND
	return s;
}

static int rest(const struct test_azurite *az, const struct rest_req *q, struct rest_resp *r)
{
	_cleanup_(curl_easy_cleanupp) CURL *curl = NULL;
	_cleanup_(curl_slist_free_allp) struct curl_slist *headers = NULL;
	_cleanup_free_ char *sts = NULL, *sig = NULL;
	const char *xms[2 * PAIRS_MAX];
	char path[3 * NAME_MAX_LEN], url[4096], date[64], line[512];
	struct upload up = {.data = q->body, .len = q->body_len};
	size_t n_xms = 0, used;
	struct tm tm;
	time_t now = time(NULL);
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	if (!name_ok(q->container) || !name_ok(q->blob)) {
		fprintf(stderr, "test_azurite: container/blob names must be [A-Za-z0-9._-]+\n");
		return -1;
	}
	snprintf(path, sizeof(path), "/%s%s%s%s%s", TEST_AZURITE_ACCOUNT, q->container ? "/" : "/",
	         q->container ? q->container : "", q->blob ? "/" : "", q->blob ? q->blob : "");
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&now, &tm));
	xms[n_xms * 2] = "x-ms-date", xms[n_xms * 2 + 1] = date, n_xms++;
	xms[n_xms * 2] = "x-ms-version", xms[n_xms * 2 + 1] = TEST_AZURITE_VERSION, n_xms++;
	for (size_t i = 0; q->xms && q->xms[i] && n_xms < PAIRS_MAX; i += 2, n_xms++) {
		xms[n_xms * 2] = q->xms[i];
		xms[n_xms * 2 + 1] = q->xms[i + 1];
	}
	sts = string_to_sign(q, xms, n_xms, path);
	if (!sts || !(sig = hmac_b64(TEST_AZURITE_KEY, sts)))
		return -1;

	curl = curl_easy_init();
	if (!curl)
		return -1;
	used = (size_t)snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", az->port, path);
	for (size_t i = 0; q->query && q->query[i]; i += 2) {
		_cleanup_curl_free_ char *v = curl_easy_escape(curl, q->query[i + 1], 0);

		if (!v)
			return -1;
		used += (size_t)snprintf(url + used, sizeof(url) - used, "%c%s=%s", i ? '&' : '?',
		                         q->query[i], v);
		if (used >= sizeof(url))
			return -1;
	}
	for (size_t i = 0; i < n_xms; i++) {
		snprintf(line, sizeof(line), "%s: %s", xms[2 * i], xms[2 * i + 1]);
		headers = curl_slist_append(headers, line);
	}
	snprintf(line, sizeof(line), "Authorization: SharedKey %s:%s", TEST_AZURITE_ACCOUNT, sig);
	headers = curl_slist_append(headers, line);
	headers = curl_slist_append(headers, "Expect:");       /* no 100-continue round trip */
	headers = curl_slist_append(headers, "Content-Type:"); /* unsigned: never sent */
	if (!headers)
		return -1;
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 300L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
	if (strcmp(q->method, "PUT") == 0) {
		curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(curl, CURLOPT_READFUNCTION, upload_cb);
		curl_easy_setopt(curl, CURLOPT_READDATA, &up);
		curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->body_len);
	} else if (strcmp(q->method, "HEAD") == 0) {
		curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
	} else if (strcmp(q->method, "GET") != 0) {
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, q->method);
	}
	rc = curl_easy_perform(curl);
	if (rc != CURLE_OK) {
		if (!q->quiet)
			fprintf(stderr, "Azurite %s %s: %s\n", q->method, path,
			        curl_easy_strerror(rc));
		rest_resp_clear(r);
		return -1;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->status < 200 || r->status > 299) {
		if (!q->quiet)
			fprintf(stderr, "Azurite %s %s: HTTP %ld %s\n", q->method, path, r->status,
			        r->body ? r->body : "");
		return -1;
	}
	return 0;
}

static int rest_simple(const struct test_azurite *az, const struct rest_req *q)
{
	struct rest_resp r;
	int ret = rest(az, q, &r);

	rest_resp_clear(&r);
	return ret;
}

static int list_containers(const struct test_azurite *az)
{
	const char *const query[] = {"comp", "list", NULL};

	return rest_simple(az, &(struct rest_req){.method = "GET", .query = query, .quiet = true});
}

/* ---------------------------------------------------------------------------------------------
 * Blob operations
 * ------------------------------------------------------------------------------------------- */

int test_azurite_create_container(const struct test_azurite *az, const char *container,
                                  bool public_blob)
{
	const char *const query[] = {"restype", "container", NULL};
	const char *const xms[] = {"x-ms-blob-public-access", "blob", NULL};

	return rest_simple(az, &(struct rest_req){.method = "PUT",
	                                          .container = container,
	                                          .query = query,
	                                          .xms = public_blob ? xms : NULL});
}

static int put_blob(const struct test_azurite *az, const char *container, const char *blob,
                    const void *data, size_t len)
{
	const char *const xms[] = {"x-ms-blob-type", "BlockBlob", NULL};

	return rest_simple(az, &(struct rest_req){.method = "PUT",
	                                          .container = container,
	                                          .blob = blob,
	                                          .xms = xms,
	                                          .body = data,
	                                          .body_len = len});
}

/* Block ids: base64 of equal-length strings, as Put Block requires. */
static char *block_id(unsigned i)
{
	char raw[32];
	char *id = NULL;

	snprintf(raw, sizeof(raw), "block-%010u", i);
	return b64_encode(raw, strlen(raw), B64_STD, &id) < 0 ? NULL : id;
}

static int put_block(const struct test_azurite *az, const char *container, const char *blob,
                     unsigned i, const void *data, size_t len)
{
	_cleanup_free_ char *id = block_id(i);
	const char *const query[] = {"comp", "block", "blockid", id, NULL};

	if (!id)
		return -1;
	return rest_simple(az, &(struct rest_req){.method = "PUT",
	                                          .container = container,
	                                          .blob = blob,
	                                          .query = query,
	                                          .body = data,
	                                          .body_len = len});
}

static int put_block_list(const struct test_azurite *az, const char *container, const char *blob,
                          unsigned n_blocks)
{
	const char *const query[] = {"comp", "blocklist", NULL};
	static const char head[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>";
	static const char tail[] = "</BlockList>";
	size_t cap = sizeof(head) + sizeof(tail) + (size_t)n_blocks * 64, used;
	_cleanup_free_ char *xml = malloc(cap);

	if (!xml)
		return -1;
	used = (size_t)snprintf(xml, cap, "%s", head);
	for (unsigned i = 0; i < n_blocks; i++) {
		_cleanup_free_ char *id = block_id(i);

		if (!id)
			return -1;
		used += (size_t)snprintf(xml + used, cap - used, "<Latest>%s</Latest>", id);
	}
	used += (size_t)snprintf(xml + used, cap - used, "%s", tail);
	return rest_simple(az, &(struct rest_req){.method = "PUT",
	                                          .container = container,
	                                          .blob = blob,
	                                          .query = query,
	                                          .body = xml,
	                                          .body_len = used});
}

int test_azurite_put_block_blob(const struct test_azurite *az, const char *container,
                                const char *blob, const void *data, size_t len)
{
	unsigned n = 0;

	if (len <= SINGLE_PUT_MAX)
		return put_blob(az, container, blob, data, len);
	for (size_t off = 0; off < len; off += BLOCK_SIZE, n++)
		if (put_block(az, container, blob, n, (const uint8_t *)data + off,
		              len - off < BLOCK_SIZE ? len - off : BLOCK_SIZE) < 0)
			return -1;
	return put_block_list(az, container, blob, n);
}

/* pread exactly @len bytes at @off. */
static int read_exactly(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	ssize_t n = pread_full(fd, buf, len, (off_t)off);

	if (n == (ssize_t)len)
		return 0;
	fprintf(stderr, "test_azurite: read at %llu: %s\n", (unsigned long long)off,
	        n < 0 ? strerror((int)-n) : "unexpected end of file");
	return -1;
}

int test_azurite_put_block_blob_fd(const struct test_azurite *az, const char *container,
                                   const char *blob, int fd, uint64_t size)
{
	_cleanup_free_ uint8_t *buf = malloc(BLOCK_SIZE);
	unsigned n = 0;

	if (!buf)
		return -1;
	if (size <= SINGLE_PUT_MAX) {
		if (read_exactly(fd, buf, (size_t)size, 0) < 0)
			return -1;
		return put_blob(az, container, blob, buf, (size_t)size);
	}
	for (uint64_t off = 0; off < size; off += BLOCK_SIZE, n++) {
		size_t len = size - off < BLOCK_SIZE ? (size_t)(size - off) : BLOCK_SIZE;

		if (read_exactly(fd, buf, len, off) < 0 ||
		    put_block(az, container, blob, n, buf, len) < 0)
			return -1;
	}
	return put_block_list(az, container, blob, n);
}

static bool all_zero(const uint8_t *p, size_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

int test_azurite_put_page_blob(const struct test_azurite *az, const char *container,
                               const char *blob, const void *data, size_t len)
{
	const uint8_t *bytes = data;
	char size_s[32];
	const char *const xms[] = {"x-ms-blob-type", "PageBlob", "x-ms-blob-content-length", size_s,
	                           NULL};
	const char *const query[] = {"comp", "page", NULL};

	if (len % 512 != 0) {
		fprintf(stderr, "test_azurite: a page blob's size must be a multiple of 512\n");
		return -1;
	}
	snprintf(size_s, sizeof(size_s), "%zu", len);
	if (rest_simple(az, &(struct rest_req){.method = "PUT",
	                                       .container = container,
	                                       .blob = blob,
	                                       .xms = xms}) < 0)
		return -1;
	for (size_t off = 0; off < len; off += PAGE_CHUNK) {
		size_t n = len - off < PAGE_CHUNK ? len - off : PAGE_CHUNK;
		char range[64];
		const char *const page_xms[] = {"x-ms-page-write", "update", "x-ms-range", range,
		                                NULL};

		if (all_zero(bytes + off, n))
			continue;
		snprintf(range, sizeof(range), "bytes=%zu-%zu", off, off + n - 1);
		if (rest_simple(az, &(struct rest_req){.method = "PUT",
		                                       .container = container,
		                                       .blob = blob,
		                                       .query = query,
		                                       .xms = page_xms,
		                                       .body = bytes + off,
		                                       .body_len = n}) < 0)
			return -1;
	}
	return 0;
}

int test_azurite_get_blob(const struct test_azurite *az, const char *container, const char *blob,
                          uint8_t **data, size_t *len)
{
	struct rest_resp r;

	*data = NULL;
	*len = 0;
	if (rest(az, &(struct rest_req){.method = "GET", .container = container, .blob = blob},
	         &r) < 0) {
		rest_resp_clear(&r);
		return -1;
	}
	*data = (uint8_t *)r.body;
	*len = r.len;
	return 0;
}

int test_azurite_get_etag(const struct test_azurite *az, const char *container, const char *blob,
                          char etag[128])
{
	struct rest_resp r;
	int ret = rest(
	        az, &(struct rest_req){.method = "HEAD", .container = container, .blob = blob}, &r);

	snprintf(etag, 128, "%s", r.etag);
	rest_resp_clear(&r);
	if (ret == 0 && !etag[0]) {
		fprintf(stderr, "Azurite sent no ETag for %s/%s\n", container, blob);
		return -1;
	}
	return ret;
}

/* ---------------------------------------------------------------------------------------------
 * URLs and SAS
 * ------------------------------------------------------------------------------------------- */

char *test_azurite_blob_sas(const char *container, const char *blob, const char *permissions,
                            time_t expiry, const char *key_b64)
{
	_cleanup_free_ char *sts = NULL, *sig = NULL;
	_cleanup_curl_free_ char *sig_q = NULL, *se_q = NULL;
	char se[32], *out = NULL;
	struct tm tm;

	strftime(se, sizeof(se), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&expiry, &tm));
	/*
	 * Service SAS string to sign for sv ≥ 2020-12-06: sp, st, se, canonicalized resource, si,
	 * sip, spr, sv, sr, snapshot time, encryption scope, rscc, rscd, rsce, rscl, rsct.
	 */
	if (asprintf(&sts, "%s\n\n%s\n/blob/%s/%s/%s\n\n\n\n%s\nb\n\n\n\n\n\n\n", permissions, se,
	             TEST_AZURITE_ACCOUNT, container, blob, TEST_AZURITE_VERSION) < 0) {
		sts = NULL;
		return NULL;
	}
	sig = hmac_b64(key_b64 ? key_b64 : TEST_AZURITE_KEY, sts);
	if (!sig || !(sig_q = curl_easy_escape(NULL, sig, 0)) ||
	    !(se_q = curl_easy_escape(NULL, se, 0)))
		return NULL;
	if (asprintf(&out, "sv=%s&sr=b&sp=%s&se=%s&sig=%s", TEST_AZURITE_VERSION, permissions, se_q,
	             sig_q) < 0)
		return NULL;
	return out;
}

char *test_azurite_blob_url(const struct test_azurite *az, int port, const char *container,
                            const char *blob, const char *query)
{
	char *out = NULL;

	if (asprintf(&out, "http://127.0.0.1:%d/%s/%s/%s%s%s", port ? port : az->port,
	             TEST_AZURITE_ACCOUNT, container, blob, query ? "?" : "",
	             query ? query : "") < 0)
		return NULL;
	return out;
}

void test_azurite_sas_signature(const char *query, char *out, size_t size)
{
	const char *p = query;
	char *dec;
	int dec_len = 0;

	out[0] = '\0';
	while (p && *p) {
		size_t n = strcspn(p, "&");

		if (strncmp(p, "sig=", 4) == 0) {
			dec = curl_easy_unescape(NULL, p + 4, (int)(n - 4), &dec_len);
			if (dec)
				snprintf(out, size, "%.*s", dec_len, dec);
			curl_free(dec);
			return;
		}
		p += n + (p[n] == '&');
	}
}
