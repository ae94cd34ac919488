/* SPDX-License-Identifier: MIT */
/*
 * The HTTP(S) back end over libcurl: Azure Blob (Get Blob Properties, ranged Get Blob, Put Page,
 * Put Blob and Delete Blob for uploads; protocols.md §6.3) and generic HTTP(S) servers (HEAD,
 * Range GETs).
 *
 * Never wrong bytes: a ranged answer must carry a Content-Range naming exactly the bytes asked
 * for, and exactly that many bytes must arrive; a server that ignores Range (200 with the whole
 * body) is handled by taking the slice and dropping the connection once we have it. Every read
 * is conditional on the ETag seen at open (If-Match), and an answer whose ETag differs is refused
 * even when the server ignored the condition. Content codings are never requested, and refused
 * if sent anyway (the bytes would not be the blob's).
 *
 * Threads: an easy handle serves one transfer at a time, so each attempt borrows one from a
 * per-blob pool (created on demand, never capped: concurrent reads must run concurrently; the
 * warmest is handed out first so its open connection is reused). DNS answers and TLS sessions
 * are shared between the handles through a CURLSH; connections are not (libcurl documents
 * sharing them between threads as unsafe).
 *
 * Secrets: the SAS query is only ever in the URL given to libcurl; messages use the redacted
 * display URL, and the messages built here name no URL at all (blob.c prefixes the redacted
 * one). The bearer token goes into one header string that is erased after the transfer; it is
 * never sent over plain http, and redirects are only followed for generic HTTP, which never
 * carries a token.
 */
#include "blob_internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "cleanup.h"
#include "log.h"
#include "secret.h"

#define AZURE_API_VERSION "2020-10-02"
#define HTTP_POOL_IDLE_MAX 32
#define HTTP_ERROR_BODY_MAX 4096
#define HTTP_CONNECT_TIMEOUT_MAX_MS 10000u
#define HTTP_MAX_REDIRECTS 5L
/*
 * libcurl's receive buffer for large ranged GETs (its default is 16 KiB): fewer recv(2) calls
 * and write callbacks for block-cache runs (8 MiB): 4 per MiB instead of 64.
 */
#define HTTP_READ_BUFFER (256L * 1024)

static const char access_denied_help[] =
        "access denied — check the SAS token's expiry and permissions, or the identity's "
        "Storage Blob Data Reader role";
static const char write_denied_help[] =
        "access denied — check the SAS token's expiry and write permission (sp=…w…), or the "
        "identity's Storage Blob Data Contributor role";

struct blob_http {
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_lock;
	CURL *idle[HTTP_POOL_IDLE_MAX]; /* LIFO: the warmest handle on top */
	size_t n_idle;
	char *req_url;  /* the URL without a fragment (still holds the SAS: a secret) */
	char *resource; /* "https://<host>[:port]": the audience of bearer tokens */
	bool https;
	bool warned_no_range;
};

/* ---- response parsing (untrusted input: see tests/fuzz/fuzz_blob_response.c) --------------- */

int blob_parse_u64(const char *v, uint64_t *out)
{
	uint64_t n = 0;

	if (!v || !isdigit((unsigned char)*v))
		return -EPROTO;
	for (; *v; v++) {
		if (!isdigit((unsigned char)*v))
			return -EPROTO;
		if (n > (UINT64_MAX - (uint64_t)(*v - '0')) / 10)
			return -EPROTO;
		n = n * 10 + (uint64_t)(*v - '0');
	}
	*out = n;
	return 0;
}

/* Digits up to @stop; *@v advanced past them. */
static int parse_u64_until(const char **v, char stop, uint64_t *out)
{
	char tmp[24];
	size_t n = 0;

	while ((*v)[n] && (*v)[n] != stop) {
		if (n + 1 >= sizeof(tmp))
			return -EPROTO;
		tmp[n] = (*v)[n];
		n++;
	}
	if ((*v)[n] != stop)
		return -EPROTO;
	tmp[n] = '\0';
	*v += n;
	return blob_parse_u64(tmp, out);
}

int blob_parse_content_range(const char *v, uint64_t *start, uint64_t *end, uint64_t *total)
{
	uint64_t s, e, t;

	if (strncasecmp(v, "bytes ", 6) != 0)
		return -EPROTO;
	v += 6;
	while (*v == ' ')
		v++;
	if (parse_u64_until(&v, '-', &s) < 0)
		return -EPROTO;
	v++;
	if (parse_u64_until(&v, '/', &e) < 0)
		return -EPROTO;
	v++;
	if (strcmp(v, "*") == 0)
		t = UINT64_MAX;
	else if (blob_parse_u64(v, &t) < 0 || e >= t)
		return -EPROTO;
	if (e < s)
		return -EPROTO;
	*start = s;
	*end = e;
	*total = t;
	return 0;
}

int blob_parse_retry_after(const char *v, time_t now, unsigned *ms)
{
	uint64_t secs;
	time_t when;

	if (blob_parse_u64(v, &secs) == 0) {
		*ms = secs > UINT_MAX / 1000 ? UINT_MAX : (unsigned)secs * 1000u;
		return 0;
	}
	/* An HTTP date; libcurl's parser, not ours. */
	when = curl_getdate(v, NULL);
	if (when == -1)
		return -EPROTO;
	if (when <= now)
		*ms = 0;
	else if ((uint64_t)(when - now) > UINT_MAX / 1000)
		*ms = UINT_MAX;
	else
		*ms = (unsigned)(when - now) * 1000u;
	return 0;
}

/* Copy an untrusted value for use in messages: printable ASCII only, bounded. */
static void copy_sanitized(char *dst, size_t size, const char *src, size_t len)
{
	size_t n = 0;

	if (size == 0)
		return;
	for (size_t i = 0; i < len && n + 1 < size; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	dst[n] = '\0';
}

void blob_parse_error_code(const char *body, size_t len, char *code, size_t code_size)
{
	const char *s, *e;

	if (code_size)
		code[0] = '\0';
	if (!body)
		return;
	s = memmem(body, len, "<Code>", 6);
	if (!s)
		return;
	s += 6;
	e = memmem(s, len - (size_t)(s - body), "</Code>", 7);
	if (!e)
		return;
	copy_sanitized(code, code_size, s, (size_t)(e - s));
}

static bool header_is(const char *name, size_t nlen, const char *want)
{
	return strlen(want) == nlen && strncasecmp(name, want, nlen) == 0;
}

void blob_http_parse_header(struct blob_http_resp *r, const char *line, size_t len)
{
	const char *colon, *v;
	size_t nlen, vlen;
	char value[256];

	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
		const char *sp = memchr(line, ' ', len);

		memset(r, 0, sizeof(*r));
		if (!sp || (size_t)(sp - line) + 4 > len || !isdigit((unsigned char)sp[1]) ||
		    !isdigit((unsigned char)sp[2]) || !isdigit((unsigned char)sp[3]) ||
		    ((size_t)(sp - line) + 4 < len && sp[4] != ' ')) {
			r->malformed = "status line";
			return;
		}
		r->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
		return;
	}
	colon = memchr(line, ':', len);
	if (!colon)
		return; /* the empty line ending the headers, or a continuation we do not use */
	nlen = (size_t)(colon - line);
	v = colon + 1;
	vlen = len - nlen - 1;
	while (vlen > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;

	if (header_is(line, nlen, "etag")) {
		if (vlen >= sizeof(r->etag)) {
			r->malformed = "ETag (too long)";
			return;
		}
		copy_sanitized(r->etag, sizeof(r->etag), v, vlen);
		return;
	}
	if (header_is(line, nlen, "x-ms-blob-type")) {
		copy_sanitized(r->blob_type, sizeof(r->blob_type), v, vlen);
		return;
	}
	if (header_is(line, nlen, "x-ms-error-code")) {
		copy_sanitized(r->error_code, sizeof(r->error_code), v, vlen);
		return;
	}
	if (header_is(line, nlen, "content-encoding")) {
		copy_sanitized(r->content_encoding, sizeof(r->content_encoding), v, vlen);
		return;
	}
	if (header_is(line, nlen, "retry-after")) {
		copy_sanitized(r->retry_after, sizeof(r->retry_after), v, vlen);
		r->has_retry_after = true;
		return;
	}
	if (!header_is(line, nlen, "content-length") && !header_is(line, nlen, "content-range"))
		return;
	bool is_length = header_is(line, nlen, "content-length");

	if (vlen >= sizeof(value)) {
		r->malformed = is_length ? "Content-Length" : "Content-Range";
		return;
	}
	memcpy(value, v, vlen);
	value[vlen] = '\0';
	if (is_length) {
		uint64_t n;

		if (blob_parse_u64(value, &n) < 0 ||
		    (r->has_content_length && r->content_length != n)) {
			r->malformed = "Content-Length";
			return;
		}
		r->content_length = n;
		r->has_content_length = true;
	} else {
		if (blob_parse_content_range(value, &r->range_start, &r->range_end,
		                             &r->range_total) < 0) {
			r->malformed = "Content-Range";
			return;
		}
		r->has_content_range = true;
	}
}

/* ---- handles ------------------------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userptr)
{
	struct blob_http *s = userptr;

	(void)h;
	(void)access;
	pthread_mutex_lock(&s->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *userptr)
{
	struct blob_http *s = userptr;

	(void)h;
	pthread_mutex_unlock(&s->share_locks[data]);
}

static void http_free(struct blob_http *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_idle; i++)
		curl_easy_cleanup(s->idle[i]);
	if (s->share)
		curl_share_cleanup(s->share);
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&s->share_locks[i]);
	pthread_mutex_destroy(&s->pool_lock);
	if (s->req_url)
		secure_free(s->req_url, strlen(s->req_url));
	free(s->resource);
	free(s);
}

static int http_state_new(struct blob *b, struct skr_error *err)
{
	struct blob_http *s;
	const char *auth;
	size_t n;

	if (b->be_data)
		return 0;
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_result != CURLE_OK)
		return skr_error_set(err, -EIO, "curl_global_init failed: %s",
		                     curl_easy_strerror(curl_init_result));
	s = calloc(1, sizeof(*s));
	if (!s)
		return skr_error_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&s->pool_lock, NULL);
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&s->share_locks[i], NULL);
	s->https = strncasecmp(b->url, "https://", 8) == 0;
	n = strcspn(b->url, "#");
	s->req_url = strndup(b->url, n);
	/* The audience: scheme and authority without user info, as the Go sidecar asks for. */
	auth = strstr(b->url, "://") + 3;
	n = strcspn(auth, "/?#");
	{
		const char *at = memrchr(auth, '@', n);

		if (at) {
			n -= (size_t)(at + 1 - auth);
			auth = at + 1;
		}
	}
	if (asprintf(&s->resource, "https://%.*s", (int)n, auth) < 0)
		s->resource = NULL;
	s->share = curl_share_init();
	if (!s->req_url || !s->resource || !s->share ||
	    curl_share_setopt(s->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
	    curl_share_setopt(s->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
	    curl_share_setopt(s->share, CURLSHOPT_USERDATA, s) != CURLSHE_OK ||
	    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
	    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) !=
	            CURLSHE_OK) {
		http_free(s);
		return skr_error_set(err, -ENOMEM, "cannot set up libcurl");
	}
	b->be_data = s;
	return 0;
}

static CURL *handle_get(struct blob_http *s)
{
	CURL *h = NULL;

	pthread_mutex_lock(&s->pool_lock);
	if (s->n_idle > 0)
		h = s->idle[--s->n_idle];
	pthread_mutex_unlock(&s->pool_lock);
	if (h)
		curl_easy_reset(h); /* keeps its connections; options start over */
	else
		h = curl_easy_init();
	return h;
}

static void handle_put(struct blob_http *s, CURL *h)
{
	pthread_mutex_lock(&s->pool_lock);
	if (s->n_idle < HTTP_POOL_IDLE_MAX) {
		s->idle[s->n_idle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&s->pool_lock);
	if (h)
		curl_easy_cleanup(h);
}

/* ---- one exchange -------------------------------------------------------------------------- */

enum sink_mode { SINK_UNDECIDED = 0, SINK_RANGE, SINK_FULL, SINK_ERROR_BODY, SINK_REFUSED };

struct xfer {
	/* request */
	const char *method; /* HEAD, GET, PUT, DELETE */
	const char *url;
	const char *headers[8]; /* extra header lines, NULL-terminated */
	const uint8_t *body;
	size_t body_len, body_pos;
	bool follow_redirects;

	/* GET into caller buffers (NULL iov and sink: the body is not wanted) */
	const struct iovec *iov;
	unsigned iovcnt;
	const struct blob_stream_sink *sink; /* instead of iov: buffers handed out one by one */
	size_t len;                          /* the sum of the iov lengths (the bytes asked for) */
	uint64_t off;
	const char *expect_etag; /* refuse an answer with another ETag ("" = any) */
	uint64_t blob_size;      /* for a 200 answer carrying the whole blob */

	/* response */
	struct blob_http_resp resp;
	enum sink_mode mode;
	size_t got;                /* bytes stored into iov */
	blob_seg_done_fn seg_done; /* told of each complete iov entry */
	void *seg_userdata;
	unsigned seg;      /* the iov entry the next byte goes to */
	size_t seg_got;    /* bytes stored into that entry (or the sink's buffer) */
	uint8_t *sink_buf; /* the sink's current buffer, NULL before the next is asked for */
	size_t sink_len;
	bool sink_ended;    /* the sink ended the transfer on purpose */
	uint64_t body_seen; /* body bytes seen in SINK_FULL */
	bool have_slice;    /* SINK_FULL: the slice is complete, transfer cut short on purpose */
	int refuse_code;
	char refuse_reason[200];
	char error_body[HTTP_ERROR_BODY_MAX];
	size_t error_len;
};

static size_t header_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;

	blob_http_parse_header(&x->resp, data, size * nmemb);
	return size * nmemb;
}

static size_t refuse(struct xfer *x, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static size_t refuse(struct xfer *x, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(x->refuse_reason, sizeof(x->refuse_reason), fmt, ap);
	va_end(ap);
	x->refuse_code = code;
	x->mode = SINK_REFUSED;
	return 0; /* libcurl aborts the transfer with CURLE_WRITE_ERROR */
}

static bool etag_differs(const struct xfer *x)
{
	return x->expect_etag && x->expect_etag[0] && x->resp.etag[0] &&
	       strcmp(x->expect_etag, x->resp.etag) != 0;
}

/* Decide, when the first body bytes arrive (all headers are in), whether they are ours. */
static size_t sink_decide(struct xfer *x)
{
	const struct blob_http_resp *r = &x->resp;

	if ((!x->iov && !x->sink) || (r->status != 200 && r->status != 206)) {
		x->mode = SINK_ERROR_BODY;
		return 1;
	}
	if (r->malformed)
		return refuse(x, -EPROTO, "malformed %s header in the answer", r->malformed);
	if (r->content_encoding[0] && strcasecmp(r->content_encoding, "identity") != 0)
		return refuse(x, -EPROTO,
		              "the server applied Content-Encoding '%s' (not requested); the bytes "
		              "would not be the blob's",
		              r->content_encoding);
	if (etag_differs(x))
		return refuse(x, -ESTALE,
		              "blob changed since it was opened (ETag %s, expected %s); remount to "
		              "use the new content",
		              r->etag, x->expect_etag);
	if (r->status == 206) {
		uint64_t last = x->off + x->len - 1;

		if (!r->has_content_range)
			return refuse(x, -EPROTO, "206 answer without Content-Range");
		if (r->range_start != x->off || r->range_end != last)
			return refuse(x, -EPROTO,
			              "answer holds bytes %" PRIu64 "-%" PRIu64
			              ", not the requested "
			              "%" PRIu64 "-%" PRIu64,
			              r->range_start, r->range_end, x->off, last);
		if (r->range_total != UINT64_MAX && r->range_total != x->blob_size)
			return refuse(x, -ESTALE,
			              "blob size changed since it was opened (%" PRIu64
			              " bytes, was %" PRIu64 "); remount to use the new content",
			              r->range_total, x->blob_size);
		if (r->has_content_length && r->content_length != x->len)
			return refuse(x, -EPROTO,
			              "Content-Length %" PRIu64 " differs from the %zu bytes of "
			              "Content-Range",
			              r->content_length, x->len);
		x->mode = SINK_RANGE;
		return 1;
	}
	/* 200: the server ignored Range and sends the whole blob. */
	if (r->has_content_length && r->content_length != x->blob_size)
		return refuse(x, -ESTALE,
		              "blob size changed since it was opened (%" PRIu64
		              " bytes, was %" PRIu64 "); remount to use the new content",
		              r->content_length, x->blob_size);
	x->mode = SINK_FULL;
	return 1;
}

/*
 * Store @n body bytes as the next ones of the iov or the sink's buffers (the caller checked that
 * they fit). False when the sink ended the transfer.
 */
static bool sink_store(struct xfer *x, const char *data, size_t n)
{
	while (n > 0) {
		uint8_t *dst;
		size_t room, take;

		if (x->sink) {
			if (!x->sink_buf) {
				x->sink_buf = x->sink->next(x->sink->userdata, &x->sink_len);
				if (!x->sink_buf || x->sink_len == 0 ||
				    x->sink_len > x->len - x->got) {
					x->sink_buf = NULL;
					x->sink_ended = true;
					return false;
				}
				x->seg_got = 0;
			}
			dst = x->sink_buf;
			room = x->sink_len;
		} else {
			dst = x->iov[x->seg].iov_base;
			room = x->iov[x->seg].iov_len;
		}
		take = room - x->seg_got < n ? room - x->seg_got : n;
		memcpy(dst + x->seg_got, data, take);
		data += take;
		n -= take;
		x->got += take;
		x->seg_got += take;
		if (x->seg_got == room) {
			/* Checked bytes: Content-Range and ETag were judged before the first. */
			if (x->sink) {
				x->sink_buf = NULL;
				x->sink->done(x->sink->userdata);
			} else {
				if (x->seg_done)
					x->seg_done(x->seg_userdata, x->seg);
				x->seg++;
			}
			x->seg_got = 0;
		}
	}
	return true;
}

/* The sink's transfers: end one that waits for a silent server when the sink moved on. */
static int stream_progress_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
                              curl_off_t ultotal, curl_off_t ulnow)
{
	struct xfer *x = userdata;

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	if (x->sink->cancelled && x->sink->cancelled(x->sink->userdata)) {
		x->sink_ended = true;
		return 1; /* CURLE_ABORTED_BY_CALLBACK */
	}
	return 0;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nmemb;

	if (x->mode == SINK_UNDECIDED && sink_decide(x) == 0)
		return 0;
	switch (x->mode) {
	case SINK_RANGE:
		if (n > x->len - x->got)
			return refuse(x, -EPROTO,
			              "the server sent more than the %zu bytes asked for", x->len);
		return sink_store(x, data, n) ? n : 0;
	case SINK_FULL: {
		uint64_t from = x->body_seen, to = x->body_seen + n;
		uint64_t lo = from > x->off ? from : x->off;
		uint64_t hi = to < x->off + x->len ? to : x->off + x->len;

		/* The slice arrives in order: lo is x->off + x->got. */
		if (hi > lo && !sink_store(x, data + (lo - from), (size_t)(hi - lo)))
			return 0;
		x->body_seen = to;
		if (x->got == x->len) {
			x->have_slice = true;
			return 0; /* the rest is not needed: stop the download */
		}
		return n;
	}
	case SINK_ERROR_BODY: {
		size_t room = sizeof(x->error_body) - 1 - x->error_len;
		size_t take = n < room ? n : room;

		memcpy(x->error_body + x->error_len, data, take);
		x->error_len += take;
		x->error_body[x->error_len] = '\0';
		return n;
	}
	default:
		return 0;
	}
}

static size_t read_cb(char *dst, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nmemb, left = x->body_len - x->body_pos;

	if (n > left)
		n = left;
	memcpy(dst, x->body + x->body_pos, n);
	x->body_pos += n;
	return n;
}

static int seek_cb(void *userdata, curl_off_t offset, int origin)
{
	struct xfer *x = userdata;

	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > x->body_len)
		return CURL_SEEKFUNC_FAIL;
	x->body_pos = (size_t)offset;
	return CURL_SEEKFUNC_OK;
}

/* Transport failures: which may heal, and what to call them. */
static int map_curl_error(CURLcode rc, const char *detail, struct blob_attempt *a,
                          struct skr_error *err)
{
	const char *what = detail && *detail ? detail : curl_easy_strerror(rc);

	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		return skr_error_set(err, -EPROTO,
		                     "TLS verification of the server failed: %s (check ca_bundle)",
		                     what);
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return skr_error_set(err, -EINVAL, "unusable URL: %s", what);
	case CURLE_TOO_MANY_REDIRECTS:
		return skr_error_set(err, -EPROTO, "too many redirects: %s", what);
	case CURLE_OUT_OF_MEMORY:
		return skr_error_set(err, -ENOMEM, "out of memory in libcurl");
	case CURLE_OPERATION_TIMEDOUT:
		a->retryable = true;
		return skr_error_set(err, -ETIMEDOUT, "timed out: %s", what);
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
		a->retryable = true;
		return skr_error_set(err, -ECONNREFUSED, "cannot connect: %s", what);
	case CURLE_PARTIAL_FILE:
		a->retryable = true;
		return skr_error_set(err, -ECONNRESET, "connection dropped mid-body: %s", what);
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR: /* a handshake cut short by a dropped connection */
		a->retryable = true;
		return skr_error_set(err, -ECONNRESET, "transfer failed: %s", what);
	default:
		/* Usage, TLS setup and the like: another attempt would fail the same way. */
		return skr_error_set(err, -EPROTO, "transfer failed (curl error %d): %s", (int)rc,
		                     what);
	}
}

/*
 * One exchange on a pooled handle. 0 when an HTTP answer arrived (any status, judged by the
 * caller), else a negative errno with @a->retryable telling whether a transport failure may
 * heal. Common headers: x-ms-version, Authorization when a token is configured.
 */
static int xfer_run(struct blob *b, struct xfer *x, struct blob_attempt *a, struct skr_error *err)
{
	struct blob_http *s = b->be_data;
	_cleanup_secret_ struct secret *auth = NULL;
	struct curl_slist *hl = NULL, *tmp;
	char curl_err[CURL_ERROR_SIZE] = "";
	unsigned timeout = blob_opt_timeout_ms(&b->o);
	CURLcode rc;
	CURL *h;
	int r = 0;

	if (b->o.token_fn) {
		struct secret *tok = NULL;
		struct skr_error e = {0};
		static const char prefix[] = "Authorization: Bearer ";

		if (!s->https)
			return skr_error_set(err, -EPERM,
			                     "a bearer token is never sent over plain http; use an "
			                     "https URL");
		r = b->o.token_fn(b->o.token_userdata, s->resource, &tok, &e);
		if (r < 0)
			return skr_error_set(err, r, "bearer token for %s: %s", s->resource,
			                     skr_error_message(&e));
		auth = secret_new(sizeof(prefix) - 1 + (tok ? tok->len : 0) + 1);
		if (!auth || !tok || !tok->len) {
			secret_free(tok);
			return skr_error_set(err, auth ? -EINVAL : -ENOMEM,
			                     auth ? "the token source returned an empty token"
			                          : "out of memory");
		}
		memcpy(auth->data, prefix, sizeof(prefix) - 1);
		memcpy(auth->data + sizeof(prefix) - 1, tok->data, tok->len);
		secret_free(tok);
		if (memchr(auth->data, '\r', auth->len - 1) ||
		    memchr(auth->data, '\n', auth->len - 1))
			return skr_error_set(err, -EINVAL,
			                     "the bearer token contains a line break");
	}

	h = handle_get(s);
	if (!h)
		return skr_error_set(err, -ENOMEM, "cannot create a libcurl handle");

	tmp = curl_slist_append(hl, "x-ms-version: " AZURE_API_VERSION);
	hl = tmp ? tmp : hl;
	for (size_t i = 0; tmp && x->headers[i]; i++) {
		tmp = curl_slist_append(hl, x->headers[i]);
		hl = tmp ? tmp : hl;
	}
	if (tmp && auth) {
		tmp = curl_slist_append(hl, (const char *)auth->data);
		hl = tmp ? tmp : hl;
	}
	if (tmp && x->body) {
		/* Azure answers at once; 100-continue would only add a round trip. */
		tmp = curl_slist_append(hl, "Expect:");
		hl = tmp ? tmp : hl;
	}
	if (!tmp) {
		r = skr_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}

	curl_easy_setopt(h, CURLOPT_URL, x->url);
	curl_easy_setopt(h, CURLOPT_SHARE, s->share);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
	if (x->sink) {
		/* A stream lasts as long as its reader reads: bound the server's silence instead
		 * (less than a byte a second for timeout_ms), and let the sink end it early. */
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)((timeout + 999) / 1000));
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, stream_progress_cb);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	} else {
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout);
	}
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)(timeout < HTTP_CONNECT_TIMEOUT_MAX_MS
	                                ? timeout
	                                : HTTP_CONNECT_TIMEOUT_MAX_MS));
	curl_easy_setopt(h, CURLOPT_USERAGENT, "confidential-sidecar/" PROJECT_VERSION);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	if ((x->iov || x->sink) && x->len >= (size_t)HTTP_READ_BUFFER)
		curl_easy_setopt(h, CURLOPT_BUFFERSIZE, HTTP_READ_BUFFER);
	/* TLS verification stays on (libcurl's default); only the trust store may change. */
	if (b->o.ca_bundle)
		curl_easy_setopt(h, CURLOPT_CAINFO, b->o.ca_bundle);
	if (x->follow_redirects) {
		curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(h, CURLOPT_MAXREDIRS, HTTP_MAX_REDIRECTS);
		curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, s->https ? "https" : "http,https");
	}
	if (strcmp(x->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(x->method, "PUT") == 0) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->body_len);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(h, CURLOPT_READDATA, x);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, x);
	} else if (strcmp(x->method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, x->method);
	}

	rc = curl_easy_perform(h);
	if (rc == CURLE_WRITE_ERROR && x->mode == SINK_REFUSED) {
		a->retryable = x->refuse_code == -EPROTO; /* a garbled answer may not recur */
		r = skr_error_set(err, x->refuse_code, "%s", x->refuse_reason);
	} else if (rc == CURLE_WRITE_ERROR && x->have_slice) {
		r = 0;
	} else if ((rc == CURLE_WRITE_ERROR || rc == CURLE_ABORTED_BY_CALLBACK) && x->sink_ended) {
		r = 0; /* the sink ended the stream: the connection is dropped, not reused */
	} else if (rc != CURLE_OK) {
		long verify = 0;

		/* A certificate that failed verification can surface as a mere handshake error
		 * (OpenSSL reporting the failed signature check): ask what verification said. */
		if (rc == CURLE_SSL_CONNECT_ERROR &&
		    curl_easy_getinfo(h, CURLINFO_SSL_VERIFYRESULT, &verify) == CURLE_OK &&
		    verify != 0)
			rc = CURLE_PEER_FAILED_VERIFICATION;
		r = map_curl_error(rc, curl_err, a, err);
	} else if (x->resp.status == 0) {
		a->retryable = true;
		r = skr_error_set(err, -EPROTO, "no HTTP status in the answer");
	}
out:
	/* Erase the header copies libcurl was given (the token); libcurl's own request buffer is
	 * out of our reach. */
	for (tmp = hl; tmp; tmp = tmp->next)
		secure_erase(tmp->data, strlen(tmp->data));
	curl_slist_free_all(hl);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	handle_put(s, h);
	return r;
}

/* The Azure error code of an answer: x-ms-error-code, else <Code> of the XML body. */
static const char *answer_code(struct xfer *x, char *buf, size_t size)
{
	if (x->resp.error_code[0])
		return x->resp.error_code;
	blob_parse_error_code(x->error_body, x->error_len, buf, size);
	return buf;
}

/*
 * An answer that is not the success the operation expects: map it to an errno, a reason naming
 * the status and Azure's error code, and whether to retry.
 */
static int status_error(struct blob *b, struct xfer *x, bool writing, struct blob_attempt *a,
                        struct skr_error *err)
{
	long st = x->resp.status;
	char codebuf[64];
	const char *code = answer_code(x, codebuf, sizeof(codebuf));
	char c[80] = "";

	if (code[0])
		snprintf(c, sizeof(c), " %s", code);

	if (st == 401 || st == 403) {
		if (b->o.token_fn && a->auth_retries == 0) {
			/* The token may have expired: ask the token source once more. */
			a->auth_retries++;
			a->retry_now = true;
			return skr_error_set(err, -EACCES, "HTTP %ld%s", st, c);
		}
		if (st == 401 && !b->o.token_fn && !strchr(b->url, '?'))
			return skr_error_set(
			        err, -EACCES,
			        "HTTP 401%s: the container is not public; give a SAS URL "
			        "or a bearer token",
			        c);
		return skr_error_set(err, -EACCES, "HTTP %ld%s: %s", st, c,
		                     writing ? write_denied_help : access_denied_help);
	}
	if (st == 404)
		return skr_error_set(err, -ENOENT, "HTTP 404%s: %s", c,
		                     strcmp(code, "ContainerNotFound") == 0
		                             ? "the container does not exist"
		                             : "no blob at this URL (check the container and blob "
		                               "names)");
	if (st == 412)
		return skr_error_set(
		        err, -ESTALE,
		        "blob changed since it was opened (HTTP 412%s: ETag %s no longer "
		        "matches); remount to use the new content",
		        c, x->expect_etag ? x->expect_etag : "");
	if (st == 416)
		return skr_error_set(
		        err, -ESTALE,
		        "HTTP 416%s: bytes %" PRIu64 "-%" PRIu64 " are past the blob's "
		        "end: it is shorter than the %" PRIu64 " bytes it had when opened",
		        c, x->off, x->off + x->len - 1, x->blob_size);
	if (st == 408 || st == 429 || (st >= 500 && st <= 599)) {
		a->retryable = true;
		if (x->resp.has_retry_after &&
		    blob_parse_retry_after(x->resp.retry_after, time(NULL), &a->retry_after_ms) < 0)
			a->retry_after_ms = 0;
		return skr_error_set(err, -EIO, "HTTP %ld%s", st, c);
	}
	if (st >= 300 && st <= 399)
		return skr_error_set(err, -EPROTO,
		                     "HTTP %ld: redirects are not followed for Azure "
		                     "Blob URLs",
		                     st);
	return skr_error_set(err, st == 400 ? -EINVAL : -EPROTO, "unexpected HTTP %ld%s", st, c);
}

/* ---- operations ---------------------------------------------------------------------------- */

static int http_open(struct blob *b, struct blob_attempt *a, struct skr_error *err)
{
	struct blob_http *s;
	struct xfer x = {.method = "HEAD"};
	int r;

	r = http_state_new(b, err);
	if (r < 0)
		return r;
	s = b->be_data;
	if (b->o.token_fn && !s->https)
		return skr_error_set(
		        err, -EPERM,
		        "a bearer token is never sent over plain http; use an https URL");
	x.url = s->req_url;
	x.follow_redirects = b->props.kind == BLOB_KIND_HTTP;
	r = xfer_run(b, &x, a, err);
	if (r < 0)
		return r;
	if (x.resp.status != 200)
		return status_error(b, &x, false, a, err);
	if (x.resp.malformed) {
		a->retryable = true;
		return skr_error_set(err, -EPROTO, "malformed %s header in the properties",
		                     x.resp.malformed);
	}
	if (!x.resp.has_content_length)
		return skr_error_set(err, -EPROTO,
		                     "the server did not say the blob's size (no Content-Length "
		                     "in the HEAD answer)");
	b->props.size = x.resp.content_length;
	memcpy(b->props.etag, x.resp.etag, sizeof(b->props.etag));
	/* An answer with x-ms-blob-type comes from Azure Blob (or Azurite) whatever the host
	 * name: from now on speak its dialect (x-ms-range, Put Page). */
	if (x.resp.blob_type[0])
		b->props.kind = BLOB_KIND_AZURE;
	b->props.page_blob = strcmp(x.resp.blob_type, "PageBlob") == 0;
	return 0;
}

/* A ranged GET of x->len bytes at x->off (ETag x->expect_etag) into x's iov or sink. */
static int ranged_get(struct blob *b, struct xfer *x, struct blob_attempt *a, struct skr_error *err)
{
	struct blob_http *s = b->be_data;
	const char *etag = x->expect_etag;
	char range[80], if_match[BLOB_ETAG_MAX + 16];
	size_t nh = 0;
	int r;

	x->method = "GET";
	x->url = s->req_url;
	x->blob_size = b->props.size;
	x->follow_redirects = b->props.kind == BLOB_KIND_HTTP;
	snprintf(range, sizeof(range), "%s: bytes=%" PRIu64 "-%" PRIu64,
	         b->props.kind == BLOB_KIND_AZURE ? "x-ms-range" : "Range", x->off,
	         x->off + x->len - 1);
	x->headers[nh++] = range;
	/* A weak ETag never matches If-Match (strong comparison); the answer's ETag is still
	 * compared below. */
	if (etag[0] && strncmp(etag, "W/", 2) != 0) {
		snprintf(if_match, sizeof(if_match), "If-Match: %s", etag);
		x->headers[nh++] = if_match;
	}
	r = xfer_run(b, x, a, err);
	if (r < 0)
		return r;
	if (x->sink_ended)
		return 0; /* what arrived was checked; the rest is not wanted */
	if (x->resp.status != 200 && x->resp.status != 206)
		return status_error(b, x, false, a, err);
	if (x->mode == SINK_UNDECIDED && x->len > 0) {
		/* No body at all: still judge the headers. */
		if (sink_decide(x) == 0) {
			a->retryable = x->refuse_code == -EPROTO;
			return skr_error_set(err, x->refuse_code, "%s", x->refuse_reason);
		}
	}
	if (x->got != x->len) {
		a->retryable = true;
		return skr_error_set(err, -EIO, "short body: %zu of %zu bytes arrived", x->got,
		                     x->len);
	}
	if (x->mode == SINK_FULL &&
	    !__atomic_exchange_n(&s->warned_no_range, true, __ATOMIC_RELAXED))
		log_warn(
		        "blob %s: the server ignores Range requests; every read downloads the blob "
		        "from its start",
		        b->display_url);
	return 0;
}

static int http_read(struct blob *b, const struct iovec *iov, unsigned iovcnt, size_t len,
                     uint64_t off, const char *etag, blob_seg_done_fn seg_done, void *seg_userdata,
                     struct blob_attempt *a, struct skr_error *err)
{
	struct xfer x = {
	        .iov = iov,
	        .iovcnt = iovcnt,
	        .seg_done = seg_done,
	        .seg_userdata = seg_userdata,
	        .len = len,
	        .off = off,
	        .expect_etag = etag,
	};

	return ranged_get(b, &x, a, err);
}

static int http_stream(struct blob *b, uint64_t off, size_t len, const char *etag,
                       const struct blob_stream_sink *sink, struct blob_attempt *a,
                       struct skr_error *err)
{
	struct xfer x = {.sink = sink, .len = len, .off = off, .expect_etag = etag};

	return ranged_get(b, &x, a, err);
}

/* "<url>?…&comp=page" or "<url>?comp=page"; malloc'ed (holds the SAS). */
static char *url_with_param(const char *url, const char *param)
{
	char *out;

	if (asprintf(&out, "%s%c%s", url, strchr(url, '?') ? '&' : '?', param) < 0)
		return NULL;
	return out;
}

static void free_url(char **u)
{
	if (*u)
		secure_free(*u, strlen(*u));
}

static int http_write(struct blob *b, const void *buf, size_t len, uint64_t off,
                      char etag_out[BLOB_ETAG_MAX], struct blob_attempt *a, struct skr_error *err)
{
	struct blob_http *s = b->be_data;
	_cleanup_(free_url) char *url = url_with_param(s->req_url, "comp=page");
	char range[80];
	struct xfer x = {.method = "PUT", .body = buf, .body_len = len};
	int r;

	etag_out[0] = '\0';
	if (!url)
		return skr_error_set(err, -ENOMEM, "out of memory");
	snprintf(range, sizeof(range), "x-ms-range: bytes=%" PRIu64 "-%" PRIu64, off,
	         off + len - 1);
	x.url = url;
	x.headers[0] = range;
	x.headers[1] = "x-ms-page-write: update";
	x.headers[2] = "Content-Type:"; /* no form type: the body is raw pages */
	r = xfer_run(b, &x, a, err);
	if (r < 0)
		return r;
	if (x.resp.status != 201)
		return status_error(b, &x, true, a, err);
	memcpy(etag_out, x.resp.etag, BLOB_ETAG_MAX);
	return 0;
}

static int http_current_etag(struct blob *b, char etag_out[BLOB_ETAG_MAX], struct blob_attempt *a,
                             struct skr_error *err)
{
	struct blob_http *s = b->be_data;
	struct xfer x = {.method = "HEAD", .url = s->req_url};
	int r = xfer_run(b, &x, a, err);

	if (r < 0)
		return r;
	if (x.resp.status != 200)
		return status_error(b, &x, false, a, err);
	memcpy(etag_out, x.resp.etag, BLOB_ETAG_MAX);
	return 0;
}

static void http_close(struct blob *b)
{
	http_free(b->be_data);
	b->be_data = NULL;
}

const struct blob_backend blob_http_backend = {
        .name = "http",
        .open = http_open,
        .read = http_read,
        .stream = http_stream,
        .write = http_write,
        .current_etag = http_current_etag,
        .close = http_close,
};

/* ---- upload helpers ------------------------------------------------------------------------ */

struct create_ctx {
	struct blob *b;
	uint64_t size;
	bool overwrite;
};

static int create_attempt(void *userdata, struct blob_attempt *a, struct skr_error *err)
{
	struct create_ctx *c = userdata;
	struct blob *b = c->b;
	struct blob_http *s = b->be_data;
	char length[64];
	struct xfer x = {
	        .method = "PUT", .url = s->req_url, .body = (const uint8_t *)"", .body_len = 0};
	size_t nh = 0;
	int r;

	snprintf(length, sizeof(length), "x-ms-blob-content-length: %" PRIu64, c->size);
	x.headers[nh++] = "x-ms-blob-type: PageBlob";
	x.headers[nh++] = length;
	x.headers[nh++] = "Content-Type: application/octet-stream";
	if (!c->overwrite)
		x.headers[nh++] = "If-None-Match: *";
	r = xfer_run(b, &x, a, err);
	if (r < 0)
		return r;
	if (x.resp.status == 201)
		return 0;
	if (x.resp.status == 409 || x.resp.status == 412) {
		char codebuf[64];

		return skr_error_set(err, -EEXIST,
		                     "HTTP %ld %s: the blob exists (overwrite it with --force)",
		                     x.resp.status, answer_code(&x, codebuf, sizeof(codebuf)));
	}
	return status_error(b, &x, true, a, err);
}

int blob_http_create_page_blob(struct blob *b, uint64_t size, bool overwrite, struct skr_error *err)
{
	struct create_ctx c = {.b = b, .size = size, .overwrite = overwrite};
	int r = http_state_new(b, err);

	if (r < 0)
		return r;
	if (b->o.token_fn && !((struct blob_http *)b->be_data)->https)
		return skr_error_set(
		        err, -EPERM,
		        "a bearer token is never sent over plain http; use an https URL");
	return blob_retry_run(&b->o, b->display_url, "create page blob", create_attempt, &c, err);
}

static int delete_attempt(void *userdata, struct blob_attempt *a, struct skr_error *err)
{
	struct blob *b = userdata;
	struct blob_http *s = b->be_data;
	struct xfer x = {.method = "DELETE", .url = s->req_url};
	int r = xfer_run(b, &x, a, err);

	if (r < 0)
		return r;
	if (x.resp.status == 202 || x.resp.status == 404)
		return 0;
	return status_error(b, &x, true, a, err);
}

int blob_http_delete(struct blob *b, struct skr_error *err)
{
	int r = http_state_new(b, err);

	if (r < 0)
		return r;
	return blob_retry_run(&b->o, b->display_url, "delete blob", delete_attempt, b, err);
}
