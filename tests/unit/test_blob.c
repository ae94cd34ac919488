/* SPDX-License-Identifier: MIT */
/*
 * Blob access (encfs.h "Blob access"): URL classification and redaction, the parsers of server
 * answers, the file:// back end, and the HTTP back end against the scripted server of tests/lib
 * (range correctness, retries, ETag changes, auth, redaction, Put Page, upload).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "blob_internal.h"
#include "cleanup.h"
#include "encfs.h"
#include "secret.h"
#include "test_http_server.h"
#include "test_log.h"

#define SECRET_SIG "c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
#define TOKEN "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl"

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void fill_pattern(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 131u + seed * 7u + (i >> 9)) & 0xff);
}

/* ---- URLs ---------------------------------------------------------------------------------- */

static void test_url_redact(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	        {"https://a.blob.core.windows.net/c/b?sv=2020-10-02&se=2030&sp=r&sig=abc%2Fdef",
	         "https://a.blob.core.windows.net/c/b?sv=2020-10-02&se=2030&sp=r&sig=REDACTED"},
	        {"https://a.blob.core.windows.net/c/b?SIG=x&sv=1",
	         "https://a.blob.core.windows.net/c/b?SIG=REDACTED&sv=1"},
	        {"https://h/c/b", "https://h/c/b"},
	        {"https://h/c/b?", "https://h/c/b?"},
	        {"https://h/c/b?sig=", "https://h/c/b?sig=REDACTED"},
	        {"https://h/c/b?a=1&&sig=s&b", "https://h/c/b?a=1&&sig=REDACTED&b"},
	        {"https://h/c/b?s%69g=s", "https://h/c/b?s%69g=REDACTED"},
	        {"https://h/c/b?token=t&X-Amz-Signature=q",
	         "https://h/c/b?token=REDACTED&X-Amz-Signature=REDACTED"},
	        {"https://h/c/b?sig=s#frag", "https://h/c/b?sig=REDACTED"},
	        {"https://h/c/b#sig=s", "https://h/c/b"},
	        {"https://user:pw@h/c/b?sig=s", "https://user:REDACTED@h/c/b?sig=REDACTED"},
	        {"file:///tmp/x", "file:///tmp/x"},
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_free_ char *r = blob_url_redact(cases[i].in);

		assert_non_null(r);
		if (strcmp(r, cases[i].out) != 0)
			fail_msg("redact(%s) = %s, want %s", cases[i].in, r, cases[i].out);
	}
}

static void test_kind_from_url(void **state)
{
	static const struct {
		const char *url;
		bool token;
		int r;
		enum blob_kind kind;
	} cases[] = {
	        {"https://acct.blob.core.windows.net/c/b", false, 0, BLOB_KIND_AZURE},
	        {"HTTPS://ACCT.BLOB.core.windows.net/c/b", false, 0, BLOB_KIND_AZURE},
	        {"http://127.0.0.1:10000/devstoreaccount1/c/b?sv=2020-10-02&sig=x", false, 0,
	         BLOB_KIND_AZURE},
	        {"https://cdn.example.com/c/b", true, 0, BLOB_KIND_AZURE},
	        {"https://cdn.example.com/c/b?sig=x", false, 0, BLOB_KIND_HTTP},
	        {"https://user@blob.example.com:8443/x", false, 0, BLOB_KIND_HTTP},
	        {"http://example.com/image.img", false, 0, BLOB_KIND_HTTP},
	        {"file:///var/img", false, 0, BLOB_KIND_FILE},
	        {"ftp://example.com/x", false, -EINVAL, 0},
	        {"/var/img", false, -EINVAL, 0},
	        {"https:///nohost", false, -EINVAL, 0},
	        {"", false, -EINVAL, 0},
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct skr_error err = {0};
		enum blob_kind k = 99;
		int r = blob_kind_from_url(cases[i].url, cases[i].token, &k, &err);

		if (r != cases[i].r || (r == 0 && k != cases[i].kind))
			fail_msg("kind(%s) = %d/%d, want %d/%d", cases[i].url, r, k, cases[i].r,
			         cases[i].kind);
		if (r < 0)
			assert_true(err.msg[0]);
	}
}

static void test_file_path_from_url(void **state)
{
	static const struct {
		const char *url, *path;
	} cases[] = {
	        {"file:///tmp/a", "/tmp/a"},
	        {"file://localhost/tmp/a", "/tmp/a"},
	        {"file:///tmp/a%20b%2Fc", "/tmp/a b/c"},
	        {"file://tmp/a", NULL},
	        {"file:///tmp/a%2", NULL},
	        {"file:///tmp/a%00b", NULL},
	        {"file:///tmp/a%zz", NULL},
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_free_ char *p = NULL;
		struct skr_error err = {0};
		int r = blob_file_path_from_url(cases[i].url, &p, &err);

		if (cases[i].path) {
			assert_int_equal(r, 0);
			assert_string_equal(p, cases[i].path);
		} else {
			assert_int_equal(r, -EINVAL);
			assert_null(p);
		}
	}
}

/* ---- parsers ------------------------------------------------------------------------------- */

static void test_parse_content_range(void **state)
{
	static const struct {
		const char *v;
		int r;
		uint64_t s, e, t;
	} cases[] = {
	        {"bytes 0-511/1024", 0, 0, 511, 1024},
	        {"BYTES 10-10/11", 0, 10, 10, 11},
	        {"bytes 0-0/*", 0, 0, 0, UINT64_MAX},
	        {"bytes 0-18446744073709551614/18446744073709551615", 0, 0, UINT64_MAX - 1,
	         UINT64_MAX},
	        {"bytes 0-1023/1024", 0, 0, 1023, 1024},
	        {"bytes 0-1024/1024", -EPROTO, 0, 0, 0},
	        {"bytes 5-4/10", -EPROTO, 0, 0, 0},
	        {"bytes */1024", -EPROTO, 0, 0, 0},
	        {"bytes -1-5/10", -EPROTO, 0, 0, 0},
	        {"bytes 1-5/10x", -EPROTO, 0, 0, 0},
	        {"bytes 1-5", -EPROTO, 0, 0, 0},
	        {"items 1-5/10", -EPROTO, 0, 0, 0},
	        {"bytes 99999999999999999999-1/2", -EPROTO, 0, 0, 0},
	        {"bytes +1-5/10", -EPROTO, 0, 0, 0},
	        {"", -EPROTO, 0, 0, 0},
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		uint64_t s = 1, e = 1, t = 1;
		int r = blob_parse_content_range(cases[i].v, &s, &e, &t);

		if (r != cases[i].r)
			fail_msg("content-range '%s': %d, want %d", cases[i].v, r, cases[i].r);
		if (r == 0) {
			assert_int_equal(s, cases[i].s);
			assert_int_equal(e, cases[i].e);
			assert_true(t == cases[i].t);
		}
	}
}

static void test_parse_retry_after(void **state)
{
	time_t now = 1700000000;
	unsigned ms = 1;
	char date[64];
	struct tm tm;
	time_t later = now + 7;

	(void)state;
	assert_int_equal(blob_parse_retry_after("3", now, &ms), 0);
	assert_int_equal(ms, 3000);
	assert_int_equal(blob_parse_retry_after("0", now, &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(blob_parse_retry_after("99999999999", now, &ms), 0);
	assert_int_equal(ms, UINT_MAX);
	gmtime_r(&later, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	assert_int_equal(blob_parse_retry_after(date, now, &ms), 0);
	assert_int_equal(ms, 7000);
	assert_int_equal(blob_parse_retry_after(date, now + 100, &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(blob_parse_retry_after("soon", now, &ms), -EPROTO);
	assert_int_equal(blob_parse_retry_after("-5", now, &ms), -EPROTO);
	assert_int_equal(blob_parse_retry_after("", now, &ms), -EPROTO);
}

static void test_parse_error_code_and_headers(void **state)
{
	static const char xml[] = "\xef\xbb\xbf<?xml version=\"1.0\"?><Error><Code>Authorization"
	                          "PermissionMismatch</Code><Message>no</Message></Error>";
	struct blob_http_resp r;
	char code[16];

	(void)state;
	blob_parse_error_code(xml, sizeof(xml) - 1, code, sizeof(code));
	assert_string_equal(code, "AuthorizationPe"); /* bounded */
	blob_parse_error_code("<Code>x", 7, code, sizeof(code));
	assert_string_equal(code, "");
	blob_parse_error_code("<Code>a\nb</Code>", 16, code, sizeof(code));
	assert_string_equal(code, "a?b");

	memset(&r, 0x5a, sizeof(r));
	blob_http_parse_header(&r, "HTTP/1.1 100 Continue\r\n", 23);
	assert_int_equal(r.status, 100);
	assert_null(r.malformed);
	blob_http_parse_header(&r, "HTTP/1.1 206 Partial Content\r\n", 30);
	assert_int_equal(r.status, 206);
	blob_http_parse_header(&r, "content-length:  512 \r\n", 23);
	blob_http_parse_header(&r, "Content-Range: bytes 0-511/4096\r\n", 33);
	blob_http_parse_header(&r, "ETag: \"0x8D\"\r\n", 14);
	blob_http_parse_header(&r, "x-ms-blob-type: PageBlob\r\n", 26);
	blob_http_parse_header(&r, "Retry-After: 2\r\n", 16);
	blob_http_parse_header(&r, "\r\n", 2);
	assert_null(r.malformed);
	assert_true(r.has_content_length && r.content_length == 512);
	assert_true(r.has_content_range && r.range_end == 511 && r.range_total == 4096);
	assert_string_equal(r.etag, "\"0x8D\"");
	assert_string_equal(r.blob_type, "PageBlob");
	assert_string_equal(r.retry_after, "2");
	blob_http_parse_header(&r, "Content-Length: 513\r\n", 21);
	assert_string_equal(r.malformed, "Content-Length");
	/* A new status line (a redirect's target answering) forgets everything. */
	blob_http_parse_header(&r, "HTTP/2 200\r\n", 12);
	assert_int_equal(r.status, 200);
	assert_false(r.has_content_range);
	assert_null(r.malformed);
	blob_http_parse_header(&r, "HTTP/1.1 20x OK\r\n", 17);
	assert_string_equal(r.malformed, "status line");
}

static void test_backoff(void **state)
{
	struct blob_options o = {.backoff_ms = 100, .max_backoff_ms = 1000};

	(void)state;
	for (int i = 0; i < 20; i++) {
		unsigned d1 = blob_backoff_delay_ms(&o, 1, 0), d3 = blob_backoff_delay_ms(&o, 3, 0);
		unsigned d9 = blob_backoff_delay_ms(&o, 9, 0);

		assert_in_range(d1, 50, 100);
		assert_in_range(d3, 200, 400);
		assert_in_range(d9, 500, 1000);
		assert_int_equal(blob_backoff_delay_ms(&o, 1, 700), 700);
		assert_int_equal(blob_backoff_delay_ms(&o, 1, 60000), 1000); /* capped */
	}
}

/* ---- file:// ------------------------------------------------------------------------------- */

struct tmp_file {
	char dir[64];
	char path[96];
	char url[128];
};

static void tmp_file_make(struct tmp_file *t, const void *data, size_t len)
{
	int fd;

	strcpy(t->dir, "/tmp/test_blob.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/img", t->dir);
	snprintf(t->url, sizeof(t->url), "file://%s", t->path);
	fd = open(t->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void tmp_file_remove(struct tmp_file *t)
{
	char other[128];

	unlink(t->path);
	snprintf(other, sizeof(other), "%s/other", t->dir);
	unlink(other);
	rmdir(t->dir);
}

static void test_file_read(void **state)
{
	enum { N = 100000 };
	static uint8_t data[N], got[N];
	struct tmp_file t;
	struct blob_options o = {0};
	struct blob *b = NULL;
	struct skr_error err = {0};

	(void)state;
	fill_pattern(data, N, 1);
	tmp_file_make(&t, data, N);
	o.url = t.url;
	assert_int_equal(blob_open(&o, &b, &err), 0);
	assert_int_equal(blob_get_properties(b)->kind, BLOB_KIND_FILE);
	assert_int_equal(blob_get_properties(b)->size, N);
	assert_false(blob_get_properties(b)->page_blob);
	assert_true(blob_get_properties(b)->etag[0] == '"');
	assert_string_equal(blob_display_url(b), t.url);

	assert_int_equal(blob_read(b, got, N, 0, &err), 0);
	assert_memory_equal(got, data, N);
	assert_int_equal(blob_read(b, got, 777, 12345, &err), 0);
	assert_memory_equal(got, data + 12345, 777);
	assert_int_equal(blob_read(b, got, 0, N, &err), 0);
	assert_int_equal(blob_read(b, got, 1, N, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "past the end"));
	skr_error_clear(&err);
	assert_int_equal(blob_read(b, got, 2, UINT64_MAX, &err), -EINVAL);
	skr_error_clear(&err);
	assert_int_equal(blob_write(b, data, 512, 0, &err), -EROFS);
	blob_close(b);

	/* Opening fails clearly. */
	skr_error_clear(&err);
	o.url = "file:///nonexistent/dir/img";
	assert_int_equal(blob_open(&o, &b, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/dir/img"));
	assert_null(b);
	skr_error_clear(&err);
	o.url = "file:///tmp";
	assert_int_equal(blob_open(&o, &b, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not a regular file"));
	tmp_file_remove(&t);
}

static void test_file_change_detected(void **state)
{
	enum { N = 8192 };
	static uint8_t data[N], got[N];
	struct tmp_file t;
	struct blob_options o = {0};
	struct blob *b = NULL;
	struct skr_error err = {0};
	char other[128];
	int fd;

	(void)state;
	fill_pattern(data, N, 2);
	tmp_file_make(&t, data, N);
	o.url = t.url;

	/* Replaced (renamed over) with a file of the same size. */
	assert_int_equal(blob_open(&o, &b, &err), 0);
	snprintf(other, sizeof(other), "%s/other", t.dir);
	fd = open(other, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	memset(got, 0xee, N);
	assert_int_equal(write(fd, got, N), N);
	close(fd);
	assert_int_equal(rename(other, t.path), 0);
	assert_int_equal(blob_read(b, got, 512, 0, &err), -ESTALE);
	assert_non_null(strstr(err.msg, "changed since it was opened"));
	blob_close(b);

	/* Modified in place (mtime moves). */
	skr_error_clear(&err);
	assert_int_equal(blob_open(&o, &b, &err), 0);
	{
		struct timespec ts[2] = {{0, UTIME_OMIT}, {12345, 0}};

		fd = open(t.path, O_WRONLY);
		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, "x", 1, 10), 1);
		assert_int_equal(futimens(fd, ts), 0);
		close(fd);
	}
	assert_int_equal(blob_read(b, got, 512, 0, &err), -ESTALE);
	blob_close(b);

	/* Removed. */
	skr_error_clear(&err);
	assert_int_equal(blob_open(&o, &b, &err), 0);
	unlink(t.path);
	assert_int_equal(blob_read(b, got, 512, 0, &err), -ESTALE);
	assert_non_null(strstr(err.msg, "removed"));
	blob_close(b);
	tmp_file_remove(&t);
}

static void test_file_write(void **state)
{
	enum { N = 64 * 1024 };
	static uint8_t data[N], got[N], page[4096];
	struct tmp_file t;
	struct blob_options o = {0};
	struct blob *b = NULL;
	struct skr_error err = {0};

	(void)state;
	fill_pattern(data, N, 3);
	tmp_file_make(&t, data, N);
	o.url = t.url;
	o.writable = true;
	assert_int_equal(blob_open(&o, &b, &err), 0);
	memset(page, 0xab, sizeof(page));
	assert_int_equal(blob_write(b, page, 4096, 8192, &err), 0);
	/* Our own write changed mtime: reads go on, seeing the new bytes. */
	assert_int_equal(blob_read(b, got, N, 0, &err), 0);
	memcpy(data + 8192, page, 4096);
	assert_memory_equal(got, data, N);

	assert_int_equal(blob_write(b, page, 100, 0, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "multiples of 512"));
	skr_error_clear(&err);
	assert_int_equal(blob_write(b, page, 512, 100, &err), -EINVAL);
	skr_error_clear(&err);
	assert_int_equal(blob_write(b, page, 1024, N - 512, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "past the end"));
	blob_close(b);
	tmp_file_remove(&t);
}

struct reader_arg {
	struct blob *b;
	const uint8_t *data;
	size_t size;
	unsigned seed;
	int failures;
};

static void *reader_thread(void *p)
{
	struct reader_arg *a = p;
	uint8_t buf[4096];

	for (int i = 0; i < 300; i++) {
		struct skr_error err = {0};
		size_t len = 1 + rand_r(&a->seed) % sizeof(buf);
		uint64_t off = (uint64_t)rand_r(&a->seed) % (a->size - len);

		if (blob_read(a->b, buf, len, off, &err) != 0 || memcmp(buf, a->data + off, len))
			a->failures++;
	}
	return NULL;
}

static void test_file_concurrent_reads_and_writes(void **state)
{
	enum { N = 1 << 20 };
	static uint8_t data[N], page[512];
	struct tmp_file t;
	struct blob_options o = {0};
	struct blob *b = NULL;
	struct skr_error err = {0};
	struct reader_arg args[4];
	pthread_t th[4];

	(void)state;
	fill_pattern(data, N, 4);
	tmp_file_make(&t, data, N);
	o.url = t.url;
	o.writable = true;
	assert_int_equal(blob_open(&o, &b, &err), 0);
	for (int i = 0; i < 4; i++) {
		/* Readers stay below the last 64 KiB, where the writes go. */
		args[i] = (struct reader_arg){
		        .b = b, .data = data, .size = N - 65536, .seed = (unsigned)i + 1};
		assert_int_equal(pthread_create(&th[i], NULL, reader_thread, &args[i]), 0);
	}
	/* Our writes while reads run must not make them fail with -ESTALE. */
	for (int i = 0; i < 200; i++) {
		memset(page, i, sizeof(page));
		assert_int_equal(
		        blob_write(b, page, 512, N - 65536 + (uint64_t)(i % 128) * 512, &err), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].failures, 0);
	}
	blob_close(b);
	tmp_file_remove(&t);
}

/* ---- HTTP ---------------------------------------------------------------------------------- */

struct fx {
	struct test_http_server *srv;
	char url[512];
	char base[256];
	struct blob_options o;
};

static int fx_setup(void **state, bool https)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(test_http_server_start(https, &f->srv), 0);
	snprintf(f->base, sizeof(f->base), "%s", test_http_server_url(f->srv));
	snprintf(f->url, sizeof(f->url),
	         "%s/devstoreaccount1/images/disk.img?sv=2020-10-02&sp=r&sig=%s", f->base,
	         SECRET_SIG);
	f->o.url = f->url;
	f->o.ca_bundle = test_http_server_ca_file(f->srv);
	f->o.timeout_ms = 5000;
	f->o.backoff_ms = 1;
	f->o.max_backoff_ms = 20;
	f->o.max_attempts = 4;
	*state = f;
	return 0;
}

static int setup_http(void **state)
{
	return fx_setup(state, false);
}

static int setup_https(void **state)
{
	return fx_setup(state, true);
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	test_log_capture_stop();
	test_http_server_stop(f->srv);
	free(f);
	return 0;
}

#define BLOB_PATH "/devstoreaccount1/images/disk.img"
#define ETAG "\"0x8DBEEF\""

/* HEAD: MHD takes Content-Length from the body it would send. */
static void push_head(struct fx *f, size_t size, const char *headers)
{
	_cleanup_free_ void *zeros = calloc(1, size ? size : 1);
	struct test_http_reply r = {
	        .path = BLOB_PATH,
	        .status = 200,
	        .headers = headers,
	        .body = zeros,
	        .body_len = size,
	};

	/* A zero-length body is spelt body = NULL. */
	if (size == 0)
		r.body = NULL;
	test_http_server_push(f->srv, &r);
}

static void push_range(struct fx *f, const uint8_t *data, uint64_t size, uint64_t off, size_t len,
                       const char *etag)
{
	char headers[256];
	struct test_http_reply r = {
	        .path = BLOB_PATH,
	        .status = 206,
	        .headers = headers,
	        .body = data + off,
	        .body_len = len,
	};

	snprintf(headers, sizeof(headers), "Content-Range: bytes %llu-%llu/%llu\nETag: %s",
	         (unsigned long long)off, (unsigned long long)(off + len - 1),
	         (unsigned long long)size, etag);
	test_http_server_push(f->srv, &r);
}

static void push_status(struct fx *f, unsigned status, const char *headers, const char *body)
{
	struct test_http_reply r = {
	        .path = BLOB_PATH,
	        .status = status,
	        .headers = headers,
	        .body = body,
	        .content_type = body ? "application/xml" : NULL,
	};

	test_http_server_push(f->srv, &r);
}

static struct blob *open_ok(struct fx *f, size_t size, const char *head_headers)
{
	struct blob *b = NULL;
	struct skr_error err = {0};

	push_head(f, size, head_headers);
	if (blob_open(&f->o, &b, &err) != 0)
		fail_msg("blob_open: %s", err.msg);
	return b;
}

static void test_http_open_and_range_read(void **state)
{
	struct fx *f = *state;
	enum { N = 300000 };
	static uint8_t data[N], got[N];
	const struct test_http_request *rq;
	struct skr_error err = {0};
	struct blob *b;

	fill_pattern(data, N, 5);
	b = open_ok(f, N, "ETag: " ETAG "\nx-ms-blob-type: BlockBlob");
	assert_int_equal(blob_get_properties(b)->kind, BLOB_KIND_AZURE);
	assert_int_equal(blob_get_properties(b)->size, N);
	assert_string_equal(blob_get_properties(b)->etag, ETAG);
	assert_false(blob_get_properties(b)->page_blob);
	assert_null(strstr(blob_display_url(b), SECRET_SIG));
	assert_non_null(strstr(blob_display_url(b), "sig=REDACTED"));

	push_range(f, data, N, 1000, 70000, ETAG);
	assert_int_equal(blob_read(b, got, 70000, 1000, &err), 0);
	assert_memory_equal(got, data + 1000, 70000);
	push_range(f, data, N, N - 1, 1, ETAG);
	assert_int_equal(blob_read(b, got, 1, N - 1, &err), 0);
	assert_int_equal(got[0], data[N - 1]);

	assert_int_equal(test_http_server_request_count(f->srv), 3);
	rq = test_http_server_request(f->srv, 0);
	assert_string_equal(rq->method, "HEAD");
	assert_string_equal(test_http_request_header(rq, "x-ms-version"), "2020-10-02");
	assert_non_null(strstr(rq->target, "sig=" SECRET_SIG));
	rq = test_http_server_request(f->srv, 1);
	assert_string_equal(rq->method, "GET");
	assert_string_equal(test_http_request_header(rq, "x-ms-range"), "bytes=1000-70999");
	assert_null(test_http_request_header(rq, "Range"));
	assert_string_equal(test_http_request_header(rq, "x-ms-version"), "2020-10-02");
	assert_string_equal(test_http_request_header(rq, "If-Match"), ETAG);
	assert_null(test_http_request_header(rq, "Authorization"));
	assert_null(test_http_request_header(rq, "Accept-Encoding"));
	rq = test_http_server_request(f->srv, 2);
	assert_string_equal(test_http_request_header(rq, "x-ms-range"), "bytes=299999-299999");
	blob_close(b);
}

static void test_http_generic_server(void **state)
{
	struct fx *f = *state;
	enum { N = 5000 };
	static uint8_t data[N], got[N];
	char url[300];
	struct skr_error err = {0};
	struct blob *b;
	const struct test_http_request *rq;

	fill_pattern(data, N, 6);
	snprintf(url, sizeof(url), "%s" BLOB_PATH, f->base);
	f->o.url = url;
	/* No ETag, no x-ms-blob-type: a plain web server. */
	b = open_ok(f, N, NULL);
	assert_int_equal(blob_get_properties(b)->kind, BLOB_KIND_HTTP);
	assert_string_equal(blob_get_properties(b)->etag, "");

	push_range(f, data, N, 100, 200, "\"other\"");
	assert_int_equal(blob_read(b, got, 200, 100, &err), 0);
	assert_memory_equal(got, data + 100, 200);
	rq = test_http_server_request(f->srv, 1);
	assert_string_equal(test_http_request_header(rq, "Range"), "bytes=100-299");
	assert_null(test_http_request_header(rq, "x-ms-range"));
	assert_null(test_http_request_header(rq, "If-Match"));

	/* A server that ignores Range answers 200 with everything: we take the slice. */
	{
		struct test_http_reply r = {.path = BLOB_PATH,
		                            .status = 200,
		                            .body = data,
		                            .body_len = N,
		                            .chunked = true};

		test_http_server_push(f->srv, &r);
		memset(got, 0, N);
		assert_int_equal(blob_read(b, got, 1000, 3000, &err), 0);
		assert_memory_equal(got, data + 3000, 1000);
		r.chunked = false;
		test_http_server_push(f->srv, &r);
		assert_int_equal(blob_read(b, got, N, 0, &err), 0);
		assert_memory_equal(got, data, N);
	}
	/* ... but not a whole body of another size. */
	{
		struct test_http_reply r = {
		        .path = BLOB_PATH, .status = 200, .body = data, .body_len = N - 1};

		test_http_server_push(f->srv, &r);
		assert_int_equal(blob_read(b, got, 10, 0, &err), -ESTALE);
		assert_non_null(strstr(err.msg, "size changed"));
	}
	skr_error_clear(&err);
	/* Writable generic HTTP is refused. */
	blob_close(b);
	f->o.writable = true;
	push_head(f, N, NULL);
	assert_int_equal(blob_open(&f->o, &b, &err), -EOPNOTSUPP);
	assert_null(b);
}

static void test_http_azure_detected_from_answer(void **state)
{
	struct fx *f = *state;
	char url[300];
	uint8_t data[1024] = {0}, got[16];
	struct skr_error err = {0};
	struct blob *b;

	/* An anonymous Azurite URL: nothing in it says Azure; the HEAD answer does. */
	snprintf(url, sizeof(url), "%s" BLOB_PATH, f->base);
	f->o.url = url;
	b = open_ok(f, 1024, "ETag: " ETAG "\nx-ms-blob-type: PageBlob");
	assert_int_equal(blob_get_properties(b)->kind, BLOB_KIND_AZURE);
	assert_true(blob_get_properties(b)->page_blob);
	push_range(f, data, 1024, 0, 16, ETAG);
	assert_int_equal(blob_read(b, got, 16, 0, &err), 0);
	assert_string_equal(
	        test_http_request_header(test_http_server_request(f->srv, 1), "x-ms-range"),
	        "bytes=0-15");
	blob_close(b);
}

static void test_http_retries(void **state)
{
	struct fx *f = *state;
	enum { N = 4096 };
	static uint8_t data[N], got[N];
	struct skr_error err = {0};
	struct blob *b;
	char ra_date[128];
	long t0;

	fill_pattern(data, N, 7);
	f->o.max_attempts = 6;
	f->o.max_backoff_ms = 3000;
	b = open_ok(f, N, "ETag: " ETAG "\nx-ms-blob-type: PageBlob");

	/* 500, a dropped connection, a short body, then the bytes. */
	push_status(f, 500, "x-ms-error-code: InternalError", NULL);
	{
		struct test_http_reply drop = {.path = BLOB_PATH, .drop = true};

		test_http_server_push(f->srv, &drop);
	}
	push_range(f, data, N, 0, 100, ETAG); /* claims 0-99 but we ask 0-199: refused */
	{
		/* Content-Range says 200 bytes, 150 arrive (chunked: no Content-Length). */
		struct test_http_reply r = {.path = BLOB_PATH,
		                            .status = 206,
		                            .headers = "Content-Range: bytes 0-199/4096",
		                            .body = data,
		                            .body_len = 150,
		                            .chunked = true};

		test_http_server_push(f->srv, &r);
	}
	push_range(f, data, N, 0, 200, ETAG);
	test_log_capture_start(LOG_LEVEL_DEBUG);
	assert_int_equal(blob_read(b, got, 200, 0, &err), 0);
	test_log_capture_stop();
	assert_memory_equal(got, data, 200);
	assert_int_equal(test_http_server_request_count(f->srv), 6);
	assert_non_null(strstr(test_log_captured(), "HTTP 500 InternalError"));
	assert_non_null(strstr(test_log_captured(), "short body: 150 of 200"));
	assert_non_null(strstr(test_log_captured(), "not the requested 0-199"));
	assert_null(strstr(test_log_captured(), SECRET_SIG));

	/* 503 with Retry-After in seconds: honoured. */
	push_status(f, 503, "Retry-After: 1", NULL);
	push_range(f, data, N, 0, 200, ETAG);
	t0 = now_ms();
	assert_int_equal(blob_read(b, got, 200, 0, &err), 0);
	assert_true(now_ms() - t0 >= 900);

	/* 429 with an HTTP date: honoured, capped at max_backoff_ms. */
	{
		time_t later = time(NULL) + 3600;
		struct tm tm;
		char d[64];

		gmtime_r(&later, &tm);
		strftime(d, sizeof(d), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		snprintf(ra_date, sizeof(ra_date), "Retry-After: %s", d);
	}
	f->o.max_backoff_ms = 300;
	blob_close(b);
	b = open_ok(f, N, "ETag: " ETAG "\nx-ms-blob-type: PageBlob");
	push_status(f, 429, ra_date, NULL);
	push_range(f, data, N, 0, 200, ETAG);
	t0 = now_ms();
	assert_int_equal(blob_read(b, got, 200, 0, &err), 0);
	assert_in_range(now_ms() - t0, 250, 2500);

	/* Never healing: -EIO naming the last reason and the attempts. */
	for (int i = 0; i < 6; i++)
		push_status(f, 500, NULL, NULL);
	assert_int_equal(blob_read(b, got, 200, 0, &err), -EIO);
	assert_non_null(strstr(err.msg, "after 6 attempts"));
	assert_non_null(strstr(err.msg, "HTTP 500"));
	assert_non_null(strstr(err.msg, "sig=REDACTED"));
	assert_null(strstr(err.msg, SECRET_SIG));
	blob_close(b);
}

static void test_http_etag_change(void **state)
{
	struct fx *f = *state;
	uint8_t data[4096] = {1}, got[64];
	struct skr_error err = {0};
	struct blob *b = open_ok(f, sizeof(data), "ETag: " ETAG "\nx-ms-blob-type: BlockBlob");
	size_t before;

	/* 412 on If-Match: stale at once, not retried. */
	push_status(f, 412, "x-ms-error-code: ConditionNotMet", NULL);
	push_range(f, data, sizeof(data), 0, 64, ETAG); /* would succeed if retried */
	before = test_http_server_request_count(f->srv);
	assert_int_equal(blob_read(b, got, 64, 0, &err), -ESTALE);
	assert_int_equal(test_http_server_request_count(f->srv), before + 1);
	assert_non_null(strstr(err.msg, "changed since it was opened"));
	test_http_server_reset(f->srv);

	/* A server that ignores If-Match but shows another ETag: stale too. */
	skr_error_clear(&err);
	push_range(f, data, sizeof(data), 0, 64, "\"0xNEW\"");
	assert_int_equal(blob_read(b, got, 64, 0, &err), -ESTALE);
	assert_non_null(strstr(err.msg, "0xNEW"));

	/* A size change shows in Content-Range. */
	skr_error_clear(&err);
	push_range(f, data, sizeof(data) - 512, 0, 64, ETAG);
	assert_int_equal(blob_read(b, got, 64, 0, &err), -ESTALE);
	assert_non_null(strstr(err.msg, "size changed"));

	/* 416: the blob shrank. */
	skr_error_clear(&err);
	push_status(f, 416, "Content-Range: bytes */10", NULL);
	assert_int_equal(blob_read(b, got, 64, 0, &err), -ESTALE);
	assert_non_null(strstr(err.msg, "HTTP 416"));
	blob_close(b);
}

static void test_http_error_mapping(void **state)
{
	struct fx *f = *state;
	static const char denied[] = "\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"utf-8\"?><Error>"
	                             "<Code>AuthenticationFailed</Code><Message>Signature did not "
	                             "match</Message></Error>";
	struct skr_error err = {0};
	uint8_t got[16];
	struct blob *b = NULL;

	test_log_capture_start(LOG_LEVEL_TRACE);
	push_status(f, 404, "x-ms-error-code: BlobNotFound", NULL);
	assert_int_equal(blob_open(&f->o, &b, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "BlobNotFound"));
	assert_non_null(strstr(err.msg, "sig=REDACTED"));

	skr_error_clear(&err);
	push_status(f, 403, "x-ms-error-code: AuthenticationFailed", NULL);
	assert_int_equal(blob_open(&f->o, &b, &err), -EACCES);
	assert_non_null(strstr(err.msg, "AuthenticationFailed"));
	assert_non_null(strstr(err.msg, "check the SAS token's expiry and permissions"));
	assert_non_null(strstr(err.msg, "Storage Blob Data Reader"));
	assert_null(strstr(err.msg, SECRET_SIG));
	assert_int_equal(test_http_server_request_count(f->srv), 2); /* neither retried */

	skr_error_clear(&err);
	push_status(f, 400, "x-ms-error-code: InvalidQueryParameterValue", NULL);
	assert_int_equal(blob_open(&f->o, &b, &err), -EINVAL);

	/* A read's 403 (SAS expired meanwhile): the code comes from the XML body. */
	skr_error_clear(&err);
	b = open_ok(f, 1024, "ETag: " ETAG);
	push_status(f, 403, NULL, denied);
	assert_int_equal(blob_read(b, got, 16, 0, &err), -EACCES);
	assert_non_null(strstr(err.msg, "AuthenticationFailed"));
	assert_non_null(strstr(err.msg, "access denied"));
	blob_close(b);

	/* Transport failures are retried, then -EIO; nothing secret anywhere in the logs. */
	skr_error_clear(&err);
	f->o.max_attempts = 2;
	{
		char url[300];

		snprintf(url, sizeof(url), "http://127.0.0.1:1/c/b?sv=1&sig=%s", SECRET_SIG);
		f->o.url = url;
		assert_int_equal(blob_open(&f->o, &b, &err), -EIO);
		assert_non_null(strstr(err.msg, "cannot connect"));
		assert_null(strstr(err.msg, SECRET_SIG));
	}
	test_log_capture_stop();
	assert_non_null(test_log_captured());
	assert_null(strstr(test_log_captured(), SECRET_SIG));
}

static int token_calls;
static char token_resource[256];

static int token_fn(void *userdata, const char *resource, struct secret **token,
                    struct skr_error *err)
{
	(void)userdata;
	(void)err;
	token_calls++;
	snprintf(token_resource, sizeof(token_resource), "%s", resource);
	*token = secret_new_copy(TOKEN, strlen(TOKEN));
	return *token ? 0 : -ENOMEM;
}

static void test_https_bearer(void **state)
{
	struct fx *f = *state;
	uint8_t data[2048], got[100];
	char url[300], want_resource[64];
	struct skr_error err = {0};
	const struct test_http_request *rq;
	struct blob *b;

	fill_pattern(data, sizeof(data), 8);
	snprintf(url, sizeof(url), "%s" BLOB_PATH, f->base);
	f->o.url = url;
	f->o.token_fn = token_fn;
	token_calls = 0;
	test_log_capture_start(LOG_LEVEL_TRACE);
	b = open_ok(f, sizeof(data), "ETag: " ETAG "\nx-ms-blob-type: BlockBlob");
	snprintf(want_resource, sizeof(want_resource), "https://127.0.0.1:%u",
	         test_http_server_port(f->srv));
	assert_string_equal(token_resource, want_resource);
	rq = test_http_server_request(f->srv, 0);
	assert_string_equal(test_http_request_header(rq, "Authorization"), "Bearer " TOKEN);
	assert_string_equal(test_http_request_header(rq, "x-ms-version"), "2020-10-02");

	/* 401 (token expired): one fresh token, then success. */
	push_status(f, 401, "x-ms-error-code: InvalidAuthenticationInfo", NULL);
	push_range(f, data, sizeof(data), 10, 100, ETAG);
	token_calls = 0;
	assert_int_equal(blob_read(b, got, 100, 10, &err), 0);
	assert_memory_equal(got, data + 10, 100);
	assert_int_equal(token_calls, 2);
	/* Twice 403: the second is final. */
	push_status(f, 403, "x-ms-error-code: AuthorizationPermissionMismatch", NULL);
	push_status(f, 403, "x-ms-error-code: AuthorizationPermissionMismatch", NULL);
	assert_int_equal(blob_read(b, got, 100, 10, &err), -EACCES);
	assert_non_null(strstr(err.msg, "Storage Blob Data Reader"));
	blob_close(b);
	test_log_capture_stop();
	assert_null(strstr(test_log_captured(), TOKEN));
	assert_null(strstr(test_log_captured(), "c2lnbmF0dXJl"));

	/* TLS verification: a CA that did not issue the server's certificate. */
	{
		char ca[] = "/tmp/test_blob_ca.XXXXXX";
		int fd = mkstemp(ca), r;

		assert_true(fd >= 0);
		close(fd);
		assert_int_equal(test_http_write_unrelated_ca(ca), 0);
		f->o.ca_bundle = ca;
		skr_error_clear(&err);
		test_http_server_reset(f->srv);
		r = blob_open(&f->o, &b, &err);
		unlink(ca);
		assert_int_equal(r, -EPROTO);
		assert_non_null(strstr(err.msg, "TLS verification"));
	}
}

static void test_http_bearer_refused_over_http(void **state)
{
	struct fx *f = *state;
	struct skr_error err = {0};
	struct blob *b = NULL;

	f->o.token_fn = token_fn;
	token_calls = 0;
	push_head(f, 1024, "ETag: " ETAG);
	assert_int_equal(blob_open(&f->o, &b, &err), -EPERM);
	assert_non_null(strstr(err.msg, "plain http"));
	assert_int_equal(test_http_server_request_count(f->srv), 0);
	assert_int_equal(token_calls, 0);
}

static void test_http_write(void **state)
{
	struct fx *f = *state;
	enum { N = 16384 };
	static uint8_t data[N], page[1024], got[16];
	struct skr_error err = {0};
	struct blob *b = NULL;
	const struct test_http_request *rq;

	fill_pattern(data, N, 9);
	fill_pattern(page, sizeof(page), 10);
	f->o.writable = true;
	push_head(f, N, "ETag: " ETAG "\nx-ms-blob-type: BlockBlob");
	assert_int_equal(blob_open(&f->o, &b, &err), -EMEDIUMTYPE);
	assert_non_null(strstr(err.msg, "not a page blob"));
	assert_null(b);

	b = open_ok(f, N, "ETag: " ETAG "\nx-ms-blob-type: PageBlob");
	test_http_server_reset(f->srv);
	push_status(f, 500, NULL, NULL); /* retried */
	push_status(f, 201, "ETag: \"0xAFTER\"", NULL);
	assert_int_equal(blob_write(b, page, sizeof(page), 2048, &err), 0);
	assert_int_equal(test_http_server_request_count(f->srv), 2);
	rq = test_http_server_request(f->srv, 1);
	assert_string_equal(rq->method, "PUT");
	assert_non_null(strstr(rq->target, "comp=page"));
	assert_non_null(strstr(rq->target, "sig=" SECRET_SIG));
	assert_string_equal(test_http_request_header(rq, "x-ms-page-write"), "update");
	assert_string_equal(test_http_request_header(rq, "x-ms-range"), "bytes=2048-3071");
	assert_string_equal(test_http_request_header(rq, "x-ms-version"), "2020-10-02");
	assert_string_equal(test_http_request_header(rq, "Content-Length"), "1024");
	assert_int_equal(rq->body_len, sizeof(page));
	assert_memory_equal(rq->body, page, sizeof(page));

	/* Later reads expect the ETag our write answered. */
	push_range(f, data, N, 0, 16, "\"0xAFTER\"");
	assert_int_equal(blob_read(b, got, 16, 0, &err), 0);
	rq = test_http_server_request(f->srv, 2);
	assert_string_equal(test_http_request_header(rq, "If-Match"), "\"0xAFTER\"");

	assert_int_equal(blob_write(b, page, 1000, 0, &err), -EINVAL);
	skr_error_clear(&err);
	push_status(f, 403, NULL, NULL);
	assert_int_equal(blob_write(b, page, 512, 0, &err), -EACCES);
	assert_non_null(strstr(err.msg, "write permission"));
	blob_close(b);
}

struct conc_arg {
	struct blob *b;
	const uint8_t *data;
	int r;
};

static void *conc_reader(void *p)
{
	struct conc_arg *a = p;
	uint8_t got[256];
	struct skr_error err = {0};

	a->r = blob_read(a->b, got, sizeof(got), 512, &err);
	if (a->r == 0 && memcmp(got, a->data + 512, sizeof(got)))
		a->r = -EBADMSG;
	return NULL;
}

static void test_http_concurrent_reads(void **state)
{
	struct fx *f = *state;
	enum { N = 4096, T = 4, DELAY = 400 };
	static uint8_t data[N];
	struct conc_arg args[T];
	pthread_t th[T];
	struct blob *b;
	long t0, took;

	fill_pattern(data, N, 11);
	b = open_ok(f, N, "ETag: " ETAG "\nx-ms-blob-type: BlockBlob");
	for (int i = 0; i < T; i++) {
		char headers[128];
		struct test_http_reply r = {.path = BLOB_PATH,
		                            .status = 206,
		                            .headers = headers,
		                            .body = data + 512,
		                            .body_len = 256,
		                            .delay_ms = DELAY};

		snprintf(headers, sizeof(headers), "Content-Range: bytes 512-767/%d\nETag: %s", N,
		         ETAG);
		test_http_server_push(f->srv, &r);
	}
	t0 = now_ms();
	for (int i = 0; i < T; i++) {
		args[i] = (struct conc_arg){.b = b, .data = data};
		assert_int_equal(pthread_create(&th[i], NULL, conc_reader, &args[i]), 0);
	}
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].r, 0);
	}
	took = now_ms() - t0;
	/* Serialised they would take T × DELAY; concurrent, about one DELAY. */
	if (took >= (T - 1) * DELAY)
		fail_msg("%d concurrent reads took %ld ms: they did not run concurrently", T, took);
	blob_close(b);
}

/* A raw server whose first GET answer is cut mid-body (libmicrohttpd cannot do that). */
struct cut_server {
	int lfd;
	uint16_t port;
	const uint8_t *data;
	size_t size;
	pthread_t th;
	int gets;
};

static void *cut_server_run(void *p)
{
	struct cut_server *s = p;

	for (;;) {
		char req[4096], hdr[256];
		size_t n = 0;
		int fd = accept(s->lfd, NULL, NULL);

		if (fd < 0)
			return NULL;
		while (n < sizeof(req) - 1) {
			ssize_t k = read(fd, req + n, sizeof(req) - 1 - n);

			if (k <= 0)
				break;
			n += (size_t)k;
			req[n] = '\0';
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		req[n] = '\0';
		if (strncmp(req, "HEAD ", 5) == 0) {
			int h = snprintf(hdr, sizeof(hdr),
			                 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nETag: \"e\"\r\n"
			                 "Connection: close\r\n\r\n",
			                 s->size);
			(void)!write(fd, hdr, (size_t)h);
		} else {
			int h = snprintf(hdr, sizeof(hdr),
			                 "HTTP/1.1 206 Partial Content\r\nContent-Length: %zu\r\n"
			                 "Content-Range: bytes 0-%zu/%zu\r\nETag: \"e\"\r\n"
			                 "Connection: close\r\n\r\n",
			                 s->size, s->size - 1, s->size);
			(void)!write(fd, hdr, (size_t)h);
			/* The first answer stops halfway and the connection drops. */
			(void)!write(fd, s->data, s->gets++ == 0 ? s->size / 2 : s->size);
		}
		close(fd);
	}
}

static void test_http_drop_mid_body(void **state)
{
	enum { N = 200000 };
	static uint8_t data[N], got[N];
	struct cut_server s = {.data = data, .size = N};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	struct blob_options o = {.backoff_ms = 1, .max_attempts = 3, .timeout_ms = 5000};
	struct skr_error err = {0};
	struct blob *b = NULL;
	char url[128];

	(void)state;
	fill_pattern(data, N, 12);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s.lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s.lfd >= 0);
	assert_int_equal(bind(s.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s.lfd, 8), 0);
	assert_int_equal(getsockname(s.lfd, (struct sockaddr *)&sa, &sl), 0);
	s.port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&s.th, NULL, cut_server_run, &s), 0);

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/img", s.port);
	o.url = url;
	test_log_capture_start(LOG_LEVEL_WARN);
	assert_int_equal(blob_open(&o, &b, &err), 0);
	assert_int_equal(blob_read(b, got, N, 0, &err), 0);
	test_log_capture_stop();
	assert_memory_equal(got, data, N);
	assert_int_equal(s.gets, 2);
	assert_non_null(strstr(test_log_captured(), "connection dropped mid-body"));
	blob_close(b);
	shutdown(s.lfd, SHUT_RDWR);
	close(s.lfd);
	pthread_join(s.th, NULL);
}

/* ---- upload -------------------------------------------------------------------------------- */

static int make_image(uint8_t *img, size_t size)
{
	char path[] = "/tmp/test_blob_img.XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, img, size), (ssize_t)size);
	return fd;
}

static void test_upload_azure(void **state)
{
	struct fx *f = *state;
	const size_t chunk = 4u << 20, size = 3 * chunk + 1024;
	_cleanup_free_ uint8_t *img = calloc(1, size);
	struct skr_error err = {0};
	bool seen[4] = {false};
	size_t puts = 0;
	int fd;

	/* Chunk 0 and 2 and the tail hold data; chunk 1 is zeros and is not sent. */
	fill_pattern(img, chunk, 13);
	fill_pattern(img + 2 * chunk + 4096, 512, 14);
	fill_pattern(img + 3 * chunk, 1024, 15);
	fd = make_image(img, size);

	{
		struct test_http_reply put = {.path = BLOB_PATH,
		                              .status = 201,
		                              .headers = "ETag: \"0x1\"",
		                              .sticky = false};

		test_http_server_push(f->srv, &put); /* Put Blob */
	}
	push_head(f, size, "ETag: \"0x1\"\nx-ms-blob-type: PageBlob");
	for (int i = 0; i < 3; i++)
		push_status(f, 201, "ETag: \"0x2\"", NULL);
	assert_int_equal(blob_upload_page_blob(&f->o, fd, size, 3, false, &err), 0);

	for (size_t i = 0; i < test_http_server_request_count(f->srv); i++) {
		const struct test_http_request *rq = test_http_server_request(f->srv, i);
		const char *range;
		unsigned long long a, z;

		if (i == 0) {
			assert_string_equal(rq->method, "PUT");
			assert_null(strstr(rq->target, "comp="));
			assert_string_equal(test_http_request_header(rq, "x-ms-blob-type"),
			                    "PageBlob");
			assert_string_equal(
			        test_http_request_header(rq, "x-ms-blob-content-length"),
			        "12583936");
			assert_string_equal(test_http_request_header(rq, "If-None-Match"), "*");
			assert_string_equal(test_http_request_header(rq, "x-ms-version"),
			                    "2020-10-02");
			assert_int_equal(rq->body_len, 0);
			continue;
		}
		if (strcmp(rq->method, "HEAD") == 0)
			continue;
		assert_string_equal(rq->method, "PUT");
		assert_non_null(strstr(rq->target, "comp=page"));
		range = test_http_request_header(rq, "x-ms-range");
		assert_int_equal(sscanf(range, "bytes=%llu-%llu", &a, &z), 2);
		assert_int_equal(a % chunk, 0);
		assert_int_equal(rq->body_len, z - a + 1);
		assert_memory_equal(rq->body, img + a, rq->body_len);
		assert_true(a / chunk != 1);
		assert_false(seen[a / chunk]);
		seen[a / chunk] = true;
		puts++;
	}
	assert_int_equal(puts, 3);
	assert_true(seen[0] && seen[2] && seen[3]);

	/* An existing blob without overwrite: -EEXIST, nothing deleted. */
	test_http_server_reset(f->srv);
	push_status(f, 409, "x-ms-error-code: BlobAlreadyExists", NULL);
	assert_int_equal(blob_upload_page_blob(&f->o, fd, size, 2, false, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "--force"));
	assert_int_equal(test_http_server_request_count(f->srv), 1);

	/* A failing Put Page deletes the half-made blob; overwrite sends no If-None-Match. */
	test_http_server_reset(f->srv);
	skr_error_clear(&err);
	push_status(f, 201, "ETag: \"0x1\"", NULL);
	push_head(f, size, "ETag: \"0x1\"\nx-ms-blob-type: PageBlob");
	{
		/* Every Put Page is refused (and so is the DELETE: a warning, same error). */
		struct test_http_reply r = {.path = BLOB_PATH, .status = 403, .sticky = true};

		test_http_server_push(f->srv, &r);
	}
	assert_int_equal(blob_upload_page_blob(&f->o, fd, size, 1, true, &err), -EACCES);
	assert_null(strstr(err.msg, SECRET_SIG));
	{
		const struct test_http_request *last = test_http_server_request(
		        f->srv, test_http_server_request_count(f->srv) - 1);

		assert_string_equal(last->method, "DELETE");
		assert_null(test_http_request_header(test_http_server_request(f->srv, 0),
		                                     "If-None-Match"));
	}
	assert_int_equal(blob_upload_page_blob(&f->o, fd, 1000, 1, true, &err), -EINVAL);
	close(fd);
}

static void test_upload_file(void **state)
{
	const size_t size = 9u << 20;
	_cleanup_free_ uint8_t *img = calloc(1, size);
	_cleanup_free_ uint8_t *back = NULL;
	struct blob_options o = {0};
	struct skr_error err = {0};
	char dir[] = "/tmp/test_blob_up.XXXXXX", path[64], url[96];
	struct stat st;
	size_t len;
	int fd;

	(void)state;
	fill_pattern(img + (5u << 20), 1000, 16);
	fd = make_image(img, size);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/out.img", dir);
	snprintf(url, sizeof(url), "file://%s", path);
	o.url = url;
	assert_int_equal(blob_upload_page_blob(&o, fd, size, 2, false, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, size);
	assert_true((st.st_mode & 0777) == 0600);
	/* Only the one data chunk was written: the file is sparse. */
	assert_true((size_t)st.st_blocks * 512 <= (4u << 20) + 65536);
	{
		FILE *fp = fopen(path, "rb");

		assert_non_null(fp);
		back = malloc(size);
		len = fread(back, 1, size, fp);
		fclose(fp);
	}
	assert_int_equal(len, size);
	assert_memory_equal(back, img, size);

	assert_int_equal(blob_upload_page_blob(&o, fd, size, 2, false, &err), -EEXIST);
	skr_error_clear(&err);
	/* An image shorter than the size: fails and leaves nothing behind. */
	assert_int_equal(blob_upload_page_blob(&o, fd, size + 4096, 2, true, &err), -EIO);
	assert_non_null(strstr(err.msg, "shorter"));
	assert_int_equal(stat(path, &st), -1);
	close(fd);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_url_redact),
	        cmocka_unit_test(test_kind_from_url),
	        cmocka_unit_test(test_file_path_from_url),
	        cmocka_unit_test(test_parse_content_range),
	        cmocka_unit_test(test_parse_retry_after),
	        cmocka_unit_test(test_parse_error_code_and_headers),
	        cmocka_unit_test(test_backoff),
	        cmocka_unit_test(test_file_read),
	        cmocka_unit_test(test_file_change_detected),
	        cmocka_unit_test(test_file_write),
	        cmocka_unit_test(test_file_concurrent_reads_and_writes),
	        cmocka_unit_test_setup_teardown(test_http_open_and_range_read, setup_http,
	                                        fx_teardown),
	        cmocka_unit_test_setup_teardown(test_http_generic_server, setup_http, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_http_azure_detected_from_answer, setup_http,
	                                        fx_teardown),
	        cmocka_unit_test_setup_teardown(test_http_retries, setup_http, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_http_etag_change, setup_http, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_http_error_mapping, setup_http, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_https_bearer, setup_https, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_http_bearer_refused_over_http, setup_http,
	                                        fx_teardown),
	        cmocka_unit_test_setup_teardown(test_http_write, setup_http, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_http_concurrent_reads, setup_http,
	                                        fx_teardown),
	        cmocka_unit_test(test_http_drop_mid_body),
	        cmocka_unit_test_setup_teardown(test_upload_azure, setup_http, fx_teardown),
	        cmocka_unit_test(test_upload_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
