/* SPDX-License-Identifier: MIT */
/*
 * Blob access, the front end (encfs.h "Blob access"): options and their defaults, URL
 * classification and redaction, dispatch to a back end, the retry policy all back ends share,
 * and the ETag bookkeeping that tells our own writes apart from someone else's.
 *
 * ETags and our own writes: every read is conditional on the ETag we expect, so a blob replaced
 * under us fails with -ESTALE instead of mixing old and new bytes. Our own Put Page changes the
 * ETag too; the write's answer carries the new one and we adopt it. Two things need care:
 *  - a read that was sent before our write finished may fail the condition: it waits for the
 *    writes in flight and retries with the new ETag (write_gen tells that a write happened);
 *  - overlapping writes answer in any order, so the last answer's ETag need not be the blob's:
 *    then the ETag is "uncertain" and the first failed condition re-reads the current ETag
 *    once instead of reporting a change. (A foreign change that lands exactly while our writes
 *    overlap is indistinguishable from them; a single writer per blob is the supported use.)
 */
#include "blob_internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bytes.h"
#include "cleanup.h"
#include "log.h"

#define BLOB_DEFAULT_TIMEOUT_MS 30000u
#define BLOB_DEFAULT_ATTEMPTS 6u
#define BLOB_DEFAULT_BACKOFF_MS 100u
#define BLOB_DEFAULT_MAX_BACKOFF_MS 5000u
/* Retries that do not count as attempts (a fresh token, our own write changed the ETag) are
 * still bounded, so a steady stream of our own writes cannot starve a read forever. */
#define BLOB_MAX_FREE_RETRIES 16u

unsigned blob_opt_timeout_ms(const struct blob_options *o)
{
	return o->timeout_ms ? o->timeout_ms : BLOB_DEFAULT_TIMEOUT_MS;
}

unsigned blob_opt_max_attempts(const struct blob_options *o)
{
	return o->max_attempts ? o->max_attempts : BLOB_DEFAULT_ATTEMPTS;
}

static unsigned opt_backoff_ms(const struct blob_options *o)
{
	return o->backoff_ms ? o->backoff_ms : BLOB_DEFAULT_BACKOFF_MS;
}

static unsigned opt_max_backoff_ms(const struct blob_options *o)
{
	return o->max_backoff_ms ? o->max_backoff_ms : BLOB_DEFAULT_MAX_BACKOFF_MS;
}

/* ---- URLs ---------------------------------------------------------------------------------- */

/* Query parameters whose value is a credential. Azure SAS: only sig is secret (sv, se, sp, …
 * describe the grant and help debugging); the rest are common spellings elsewhere. */
static const char *const secret_params[] = {
        "sig",
        "signature",
        "x-amz-signature",
        "x-goog-signature",
        "x-amz-security-token",
        "token",
        "access_token",
        "code",
        "key",
        "password",
        "secret",
        "client_secret",
};

static bool param_is_secret(const char *name, size_t len)
{
	/* A percent-encoded name may decode to "sig" on the server: unsure, so secret. */
	if (memchr(name, '%', len))
		return true;
	for (size_t i = 0; i < ELEMENTSOF(secret_params); i++)
		if (strlen(secret_params[i]) == len &&
		    strncasecmp(name, secret_params[i], len) == 0)
			return true;
	return false;
}

char *blob_url_redact(const char *url)
{
	const char *q, *p, *auth, *auth_end, *at;
	char *out, *w;
	size_t n;

	if (!url)
		return strdup("(null)");
	n = strlen(url);
	/* Worst case every value becomes "REDACTED" (8 bytes) and a password is added; the
	 * fragment is dropped. */
	out = malloc(n + 8 * (n / 2 + 2) + 1);
	if (!out)
		return NULL;
	w = out;

	/* user:password@ in the authority: keep the user, drop the password. */
	auth = strstr(url, "://");
	auth = auth ? auth + 3 : url;
	auth_end = auth + strcspn(auth, "/?#");
	at = memrchr(auth, '@', (size_t)(auth_end - auth));
	if (at) {
		const char *colon = memchr(auth, ':', (size_t)(at - auth));

		if (colon) {
			memcpy(w, url, (size_t)(colon - url));
			w += colon - url;
			w = stpcpy(w, ":REDACTED");
			url = at;
		}
	}

	q = strpbrk(url, "?#");
	if (!q || *q == '#') {
		n = q ? (size_t)(q - url) : strlen(url);
		memcpy(w, url, n);
		w[n] = '\0';
		return out;
	}
	memcpy(w, url, (size_t)(q - url) + 1);
	w += q - url + 1;
	p = q + 1;
	while (*p && *p != '#') {
		size_t len = strcspn(p, "&#");
		const char *eq = memchr(p, '=', len);

		if (eq && param_is_secret(p, (size_t)(eq - p))) {
			memcpy(w, p, (size_t)(eq - p) + 1);
			w += eq - p + 1;
			w = stpcpy(w, "REDACTED");
		} else {
			memcpy(w, p, len);
			w += len;
		}
		p += len;
		if (*p == '&')
			*w++ = *p++;
	}
	*w = '\0';
	return out;
}

/* The host of an absolute URL, without user info and port, lower-cased into @host. */
static void url_host(const char *url, char *host, size_t size)
{
	const char *a = strstr(url, "://"), *end, *at, *h;
	size_t n = 0;

	host[0] = '\0';
	if (!a)
		return;
	a += 3;
	end = a + strcspn(a, "/?#");
	at = memrchr(a, '@', (size_t)(end - a));
	h = at ? at + 1 : a;
	if (*h == '[') { /* IPv6 literal: never an Azure account name */
		snprintf(host, size, "%.*s", (int)(end - h), h);
		return;
	}
	for (; h < end && *h != ':' && n + 1 < size; h++)
		host[n++] = (char)tolower((unsigned char)*h);
	host[n] = '\0';
}

static bool query_has_param(const char *url, const char *name)
{
	const char *p = strchr(url, '?');
	size_t nl = strlen(name);

	if (!p)
		return false;
	for (p++; *p && *p != '#'; p += strcspn(p, "&#"), p += (*p == '&')) {
		if (strncasecmp(p, name, nl) == 0 && p[nl] == '=')
			return true;
	}
	return false;
}

int blob_kind_from_url(const char *url, bool has_token, enum blob_kind *kind, struct skr_error *err)
{
	char host[256];

	if (!url || !*url)
		return skr_error_set(err, -EINVAL, "blob: no URL given");
	if (strncasecmp(url, "file://", 7) == 0) {
		*kind = BLOB_KIND_FILE;
		return 0;
	}
	if (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0) {
		_cleanup_free_ char *shown = blob_url_redact(url);

		return skr_error_set(err, -EINVAL,
		                     "blob URL '%s' is not https://, http:// or file://",
		                     shown ? shown : "?");
	}
	url_host(url, host, sizeof(host));
	if (!host[0]) {
		_cleanup_free_ char *shown = blob_url_redact(url);

		return skr_error_set(err, -EINVAL, "blob URL '%s' has no host",
		                     shown ? shown : "?");
	}
	if (has_token || strstr(host, ".blob.") ||
	    (query_has_param(url, "sv") && query_has_param(url, "sig")))
		*kind = BLOB_KIND_AZURE;
	else
		*kind = BLOB_KIND_HTTP;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int blob_file_path_from_url(const char *url, char **path, struct skr_error *err)
{
	const char *p = url + 7; /* after "file://" */
	char *out, *w;

	*path = NULL;
	if (strncasecmp(p, "localhost/", 10) == 0)
		p += 9;
	if (*p != '/')
		return skr_error_set(err, -EINVAL,
		                     "blob URL '%s': a file URL needs an absolute path "
		                     "(file:///dir/image)",
		                     url);
	out = malloc(strlen(p) + 1);
	if (!out)
		return skr_error_set(err, -ENOMEM, "blob: out of memory");
	for (w = out; *p; p++) {
		if (*p == '%') {
			int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);

			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				free(out);
				return skr_error_set(err, -EINVAL,
				                     "blob URL '%s': invalid percent-encoding",
				                     url);
			}
			*w++ = (char)(hi * 16 + lo);
			p += 2;
		} else {
			*w++ = *p;
		}
	}
	*w = '\0';
	*path = out;
	return 0;
}

/* ---- retry policy -------------------------------------------------------------------------- */

unsigned blob_backoff_delay_ms(const struct blob_options *o, unsigned attempt,
                               unsigned retry_after_ms)
{
	unsigned cap = opt_max_backoff_ms(o);
	uint64_t d = opt_backoff_ms(o);
	struct timespec ts;

	for (unsigned i = 1; i < attempt && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	/* Equal jitter: parallel fetch threads that failed together do not retry in lockstep. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	d = d / 2 + (d / 2 ? (uint64_t)ts.tv_nsec % (d / 2 + 1) : 0);
	if (retry_after_ms > d)
		d = retry_after_ms < cap ? retry_after_ms : cap;
	return (unsigned)d;
}

int blob_retry_run(const struct blob_options *o, const char *display_url, const char *what,
                   blob_attempt_fn fn, void *userdata, struct skr_error *err)
{
	unsigned max = blob_opt_max_attempts(o), free_retries = 0;
	struct blob_attempt a = {0};
	struct skr_error e;

	for (unsigned attempt = 1;;) {
		int r;

		skr_error_clear(&e);
		a.retryable = false;
		a.retry_now = false;
		a.retry_after_ms = 0;
		r = fn(userdata, &a, &e);
		if (r >= 0)
			return r;
		if (a.retry_now && free_retries < BLOB_MAX_FREE_RETRIES) {
			free_retries++;
			continue;
		}
		if (!a.retryable && !a.retry_now)
			return skr_error_set(err, r, "%s", skr_error_message(&e));
		if (attempt >= max) {
			log_error("blob %s: %s failed after %u attempts: %s", display_url, what,
			          attempt, skr_error_message(&e));
			return skr_error_set(err, -EIO, "%s failed after %u attempts: %s", what,
			                     attempt, skr_error_message(&e));
		}
		unsigned delay = blob_backoff_delay_ms(o, attempt, a.retry_after_ms);
		log_warn("blob %s: %s failed (%s); attempt %u of %u in %u ms", display_url, what,
		         skr_error_message(&e), attempt + 1, max, delay);
		sleep_ms(delay);
		attempt++;
	}
}

/* ---- handles ------------------------------------------------------------------------------- */

int blob_new_handle(const struct blob_options *o, enum blob_kind kind, struct blob **out,
                    struct skr_error *err)
{
	struct blob *b;

	*out = NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return skr_error_set(err, -ENOMEM, "blob: out of memory");
	b->o = *o;
	b->url = strdup(o->url);
	b->display_url = blob_url_redact(o->url);
	b->ca_bundle = o->ca_bundle && *o->ca_bundle ? strdup(o->ca_bundle) : NULL;
	if (!b->url || !b->display_url || (o->ca_bundle && *o->ca_bundle && !b->ca_bundle)) {
		free(b->url);
		free(b->display_url);
		free(b->ca_bundle);
		free(b);
		return skr_error_set(err, -ENOMEM, "blob: out of memory");
	}
	b->o.url = b->url;
	b->o.ca_bundle = b->ca_bundle;
	b->props.kind = kind;
	b->be = kind == BLOB_KIND_FILE ? &blob_file_backend : &blob_http_backend;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->writes_done, NULL);
	*out = b;
	return 0;
}

void blob_close(struct blob *b)
{
	if (!b)
		return;
	if (b->be && b->be->close)
		b->be->close(b);
	pthread_cond_destroy(&b->writes_done);
	pthread_mutex_destroy(&b->lock);
	if (b->url) /* the SAS signature is a secret: do not leave it in freed heap */
		secure_free(b->url, strlen(b->url));
	free(b->display_url);
	free(b->ca_bundle);
	free(b);
}

static int open_attempt(void *userdata, struct blob_attempt *a, struct skr_error *err)
{
	struct blob *b = userdata;

	return b->be->open(b, a, err);
}

int blob_open(const struct blob_options *o, struct blob **out, struct skr_error *err)
{
	struct blob *b = NULL;
	enum blob_kind kind;
	int r;

	*out = NULL;
	if (!o)
		return skr_error_set(err, -EINVAL, "blob: no options given");
	r = blob_kind_from_url(o->url, o->token_fn != NULL, &kind, err);
	if (r < 0)
		return r;
	r = blob_new_handle(o, kind, &b, err);
	if (r < 0)
		return r;
	r = blob_retry_run(&b->o, b->display_url, "get properties", open_attempt, b, err);
	if (r < 0) {
		skr_error_prefix(err, "blob %s: ", b->display_url);
		blob_close(b);
		return r;
	}
	if (o->writable) {
		if (b->props.kind == BLOB_KIND_HTTP)
			r = skr_error_set(
			        err, -EOPNOTSUPP,
			        "blob %s: a read-write mount needs an Azure page blob or a "
			        "file; a generic HTTP server cannot be written",
			        b->display_url);
		else if (b->props.kind == BLOB_KIND_AZURE && !b->props.page_blob)
			r = skr_error_set(
			        err, -EMEDIUMTYPE,
			        "blob %s is not a page blob; a read-write mount needs one "
			        "(upload the image with generatefs --upload, which creates "
			        "a page blob, or mount read-only)",
			        b->display_url);
		if (r < 0) {
			blob_close(b);
			return r;
		}
	}
	memcpy(b->etag, b->props.etag, sizeof(b->etag));
	log_debug("blob %s: opened (%s, %" PRIu64 " bytes, etag %s%s)", b->display_url,
	          b->props.kind == BLOB_KIND_AZURE  ? "azure"
	          : b->props.kind == BLOB_KIND_HTTP ? "http"
	                                            : "file",
	          b->props.size, b->props.etag[0] ? b->props.etag : "none",
	          b->props.page_blob ? ", page blob" : "");
	*out = b;
	return 0;
}

const struct blob_properties *blob_get_properties(const struct blob *b)
{
	return &b->props;
}

const char *blob_display_url(const struct blob *b)
{
	return b->display_url;
}

/* ---- read and write ------------------------------------------------------------------------ */

struct io_ctx {
	struct blob *b;
	const struct iovec *iov;
	unsigned iovcnt;
	size_t len;
	uint64_t off;
	blob_seg_done_fn seg_done;
	void *seg_userdata;
	unsigned segs_done; /* complete buffers: a retry resumes after them */
	size_t bytes_done;
};

/* A buffer of the current attempt is complete (its index relative to the attempt's first). */
static void io_seg_done(void *userdata, unsigned seg)
{
	struct io_ctx *c = userdata;
	unsigned abs = c->segs_done;

	(void)seg; /* buffers complete in order: always the first unfinished one */
	c->bytes_done += c->iov[abs].iov_len;
	c->segs_done++;
	if (c->seg_done)
		c->seg_done(c->seg_userdata, abs);
}

static int read_attempt(void *userdata, struct blob_attempt *a, struct skr_error *err)
{
	struct io_ctx *c = userdata;
	struct blob *b = c->b;
	char etag[BLOB_ETAG_MAX];
	uint64_t gen;
	bool ours, uncertain;
	int r;

	pthread_mutex_lock(&b->lock);
	memcpy(etag, b->etag, sizeof(etag));
	gen = b->write_gen;
	pthread_mutex_unlock(&b->lock);

	if (c->segs_done == c->iovcnt)
		return 0; /* everything arrived before the attempt that failed went wrong */
	r = b->be->read(b, c->iov + c->segs_done, c->iovcnt - c->segs_done, c->len - c->bytes_done,
	                c->off + c->bytes_done, etag, io_seg_done, c, a, err);
	if (r != -ESTALE)
		return r;

	/* Changed: by one of our writes (retry with the ETag it answered), or by someone else. */
	pthread_mutex_lock(&b->lock);
	while (b->writes_inflight > 0)
		pthread_cond_wait(&b->writes_done, &b->lock);
	/* A write of ours completed, or another reader re-read the ETag after overlapping writes
	 * (uncertain then cleared): either way, what this attempt expected is outdated. */
	ours = b->write_gen != gen || strcmp(b->etag, etag) != 0;
	uncertain = b->etag_uncertain;
	pthread_mutex_unlock(&b->lock);
	if (ours) {
		a->retry_now = true;
		return r;
	}
	if (uncertain) {
		char cur[BLOB_ETAG_MAX];
		struct skr_error e = {0};
		int q = b->be->current_etag(b, cur, a, &e);

		if (q < 0)
			return skr_error_reset(err, q, "%s", skr_error_message(&e));
		pthread_mutex_lock(&b->lock);
		if (b->write_gen == gen && b->writes_inflight == 0) {
			memcpy(b->etag, cur, sizeof(b->etag));
			b->etag_uncertain = false;
		}
		pthread_mutex_unlock(&b->lock);
		log_debug("blob %s: ETag re-read after overlapping writes of our own: %s",
		          b->display_url, cur);
		a->retry_now = true;
		return r;
	}
	return r;
}

int blob_readv(struct blob *b, const struct iovec *iov, unsigned iovcnt, uint64_t off,
               blob_seg_done_fn seg_done, void *seg_userdata, struct skr_error *err)
{
	struct io_ctx c = {.b = b,
	                   .iov = iov,
	                   .iovcnt = iovcnt,
	                   .off = off,
	                   .seg_done = seg_done,
	                   .seg_userdata = seg_userdata};
	char what[96];

	for (unsigned i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > SIZE_MAX - c.len)
			return skr_error_set(err, -EINVAL, "blob %s: read of more than %zu bytes",
			                     b->display_url, SIZE_MAX);
		c.len += iov[i].iov_len;
	}
	if (off > b->props.size || c.len > b->props.size - off)
		return skr_error_set(err, -EINVAL,
		                     "blob %s: read of %zu bytes at %" PRIu64
		                     " is past the end (%" PRIu64 " bytes)",
		                     b->display_url, c.len, off, b->props.size);
	if (c.len == 0)
		return 0;
	snprintf(what, sizeof(what), "read of %zu bytes at %" PRIu64, c.len, off);
	int r = blob_retry_run(&b->o, b->display_url, what, read_attempt, &c, err);
	if (r < 0)
		return skr_error_prefix(err, "blob %s: ", b->display_url);
	return 0;
}

int blob_read(struct blob *b, void *buf, size_t len, uint64_t off, struct skr_error *err)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};

	return blob_readv(b, &iov, 1, off, NULL, NULL, err);
}

struct write_ctx {
	struct blob *b;
	const void *buf;
	size_t len;
	uint64_t off;
	char etag[BLOB_ETAG_MAX];
};

static int write_attempt(void *userdata, struct blob_attempt *a, struct skr_error *err)
{
	struct write_ctx *c = userdata;

	return c->b->be->write(c->b, c->buf, c->len, c->off, c->etag, a, err);
}

int blob_write(struct blob *b, const void *buf, size_t len, uint64_t off, struct skr_error *err)
{
	struct write_ctx c = {.b = b, .buf = buf, .len = len, .off = off};
	uint64_t starts;
	bool overlapped;
	char what[96];
	int r;

	if (!b->o.writable)
		return skr_error_set(err, -EROFS, "blob %s: opened read-only", b->display_url);
	if (off % BLOB_PAGE_SIZE || len % BLOB_PAGE_SIZE || len > BLOB_MAX_WRITE)
		return skr_error_set(err, -EINVAL,
		                     "blob %s: write of %zu bytes at %" PRIu64
		                     ": offset and length must be multiples of 512 and at most "
		                     "4 MiB (Put Page)",
		                     b->display_url, len, off);
	if (off > b->props.size || len > b->props.size - off)
		return skr_error_set(err, -EINVAL,
		                     "blob %s: write of %zu bytes at %" PRIu64
		                     " is past the end (%" PRIu64 " bytes)",
		                     b->display_url, len, off, b->props.size);
	if (len == 0)
		return 0;

	pthread_mutex_lock(&b->lock);
	overlapped = b->writes_inflight > 0;
	b->writes_inflight++;
	starts = ++b->write_starts;
	pthread_mutex_unlock(&b->lock);

	snprintf(what, sizeof(what), "write of %zu bytes at %" PRIu64, len, off);
	r = blob_retry_run(&b->o, b->display_url, what, write_attempt, &c, err);

	pthread_mutex_lock(&b->lock);
	b->writes_inflight--;
	overlapped = overlapped || b->write_starts != starts || b->writes_inflight > 0;
	/* Even a failed write may have reached the blob (an answer lost on the way back). */
	b->write_gen++;
	if (r == 0 && c.etag[0]) {
		memcpy(b->etag, c.etag, sizeof(b->etag));
		b->etag_uncertain = overlapped;
	} else {
		b->etag_uncertain = true;
	}
	pthread_cond_broadcast(&b->writes_done);
	pthread_mutex_unlock(&b->lock);

	if (r < 0)
		return skr_error_prefix(err, "blob %s: ", b->display_url);
	return 0;
}
