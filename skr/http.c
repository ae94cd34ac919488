/* SPDX-License-Identifier: MIT */
/*
 * The libcurl client of libskr (http.h).
 *
 * Threads: the daemon serves requests on several threads, and a curl easy handle may only be
 * used by one thread at a time. A client therefore keeps a small pool of easy handles (at most
 * HTTP_POOL_MAX, created on demand); a request borrows one for each attempt and returns it,
 * so concurrent callers do not queue behind a slow MAA call, and the most recently used handle
 * (whose connection is warm) is handed out first, which keeps connection reuse effective.
 * Nothing is held while sleeping between attempts.
 *
 * Redirects are never followed: every endpoint we talk to answers directly, and following one
 * could carry an Authorization header or a SAS URL to another host.
 */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "bytes.h"
#include "cleanup.h"
#include "json_util.h"
#include "ossl.h"
#include "log.h"
#include "secret.h"

#define HTTP_POOL_MAX 4
#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 5000L
#define HTTP_DEFAULT_TIMEOUT_MS 30000L
#define HTTP_DEFAULT_ATTEMPTS 3
#define HTTP_DEFAULT_BACKOFF_MS 500L
#define HTTP_DEFAULT_MAX_RETRY_AFTER_MS 30000L
#define HTTP_DEFAULT_MAX_BODY (16u * 1024 * 1024)
/* Captured response headers are short; anything longer is not a value we would use. */
#define HTTP_HEADER_VALUE_MAX 256

struct http_client {
	pthread_mutex_t lock;
	pthread_cond_t idle_cond;
	CURL *idle[HTTP_POOL_MAX]; /* LIFO: the warmest handle on top */
	size_t n_idle;
	size_t n_total; /* handles in existence, idle or lent out */

	char *ca_bundle;
	char *user_agent;
	long connect_timeout_ms;
	long timeout_ms;
	int max_attempts;
	long backoff_ms;
	long max_retry_after_ms;
};

/* What one attempt collected. */
struct http_attempt {
	char *body;
	size_t len, cap, max;
	bool too_big;
	char content_type[HTTP_HEADER_VALUE_MAX];
	char retry_after[HTTP_HEADER_VALUE_MAX];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

char *http_url_redact(const char *url)
{
	const char *q;
	char *s;

	if (!url)
		return strdup("(null)");
	q = strpbrk(url, "?#");
	if (!q)
		return strdup(url);
	if (asprintf(&s, "%.*s?<redacted>", (int)(q - url), url) < 0)
		return NULL;
	return s;
}

static long positive_or(long v, long def)
{
	return v > 0 ? v : def;
}

int http_client_new(const struct http_client_config *cfg, struct http_client **out,
                    struct skr_error *err)
{
	static const struct http_client_config defaults = {0};
	_cleanup_free_ struct http_client *c = NULL;

	*out = NULL;
	if (!cfg)
		cfg = &defaults;
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_result != CURLE_OK)
		return skr_error_set(err, -EIO, "HTTP client: curl_global_init failed: %s",
		                     curl_easy_strerror(curl_init_result));

	c = calloc(1, sizeof(*c));
	if (!c)
		return skr_error_set(err, -ENOMEM, "HTTP client: out of memory");
	c->connect_timeout_ms =
	        positive_or(cfg->connect_timeout_ms, HTTP_DEFAULT_CONNECT_TIMEOUT_MS);
	c->timeout_ms = positive_or(cfg->timeout_ms, HTTP_DEFAULT_TIMEOUT_MS);
	c->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : HTTP_DEFAULT_ATTEMPTS;
	c->backoff_ms = positive_or(cfg->backoff_ms, HTTP_DEFAULT_BACKOFF_MS);
	c->max_retry_after_ms =
	        positive_or(cfg->max_retry_after_ms, HTTP_DEFAULT_MAX_RETRY_AFTER_MS);
	if (cfg->ca_bundle && *cfg->ca_bundle) {
		c->ca_bundle = strdup(cfg->ca_bundle);
		if (!c->ca_bundle)
			return skr_error_set(err, -ENOMEM, "HTTP client: out of memory");
	}
	if (cfg->user_agent && *cfg->user_agent)
		c->user_agent = strdup(cfg->user_agent);
	else
		c->user_agent = strdup("confidential-sidecar/" PROJECT_VERSION);
	if (!c->user_agent) {
		free(c->ca_bundle);
		return skr_error_set(err, -ENOMEM, "HTTP client: out of memory");
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->idle_cond, NULL);
	*out = TAKE_PTR(c);
	return 0;
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	/* Every handle must be back: freeing a client with a request in flight is a caller bug. */
	for (size_t i = 0; i < c->n_idle; i++)
		curl_easy_cleanup(c->idle[i]);
	pthread_cond_destroy(&c->idle_cond);
	pthread_mutex_destroy(&c->lock);
	free(c->ca_bundle);
	free(c->user_agent);
	free(c);
}

static CURL *handle_acquire(struct http_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->lock);
	while (c->n_idle == 0 && c->n_total >= HTTP_POOL_MAX)
		pthread_cond_wait(&c->idle_cond, &c->lock);
	if (c->n_idle > 0) {
		h = c->idle[--c->n_idle];
	} else {
		h = curl_easy_init();
		if (h)
			c->n_total++;
	}
	pthread_mutex_unlock(&c->lock);
	return h;
}

static void handle_release(struct http_client *c, CURL *h)
{
	pthread_mutex_lock(&c->lock);
	c->idle[c->n_idle++] = h;
	pthread_cond_signal(&c->idle_cond);
	pthread_mutex_unlock(&c->lock);
}

/* The body may hold a token or a key: secure_buf_append() leaves no copy in freed memory. */
static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct http_attempt *a = userdata;
	size_t n = size * nmemb;

	if (n > a->max || a->len > a->max - n) {
		a->too_big = true;
		return 0; /* curl aborts the transfer with CURLE_WRITE_ERROR */
	}
	if (secure_buf_append(&a->body, &a->len, &a->cap, data, n) < 0)
		return 0;
	return n;
}

static void capture_value(const char *line, size_t len, size_t name_len, char *out, size_t size)
{
	const char *v = line + name_len;
	const char *end = line + len;

	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && isspace((unsigned char)end[-1]))
		end--;
	if ((size_t)(end - v) >= size)
		return;
	memcpy(out, v, (size_t)(end - v));
	out[end - v] = '\0';
}

/*
 * Called for every header line of every response of the attempt (a 100 Continue comes before
 * the real one), so a status line starts over.
 */
static size_t header_cb(char *line, size_t size, size_t nitems, void *userdata)
{
	struct http_attempt *a = userdata;
	size_t n = size * nitems;

	if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		a->content_type[0] = '\0';
		a->retry_after[0] = '\0';
	} else if (n > 13 && strncasecmp(line, "Content-Type:", 13) == 0) {
		capture_value(line, n, 13, a->content_type, sizeof(a->content_type));
	} else if (n > 12 && strncasecmp(line, "Retry-After:", 12) == 0) {
		capture_value(line, n, 12, a->retry_after, sizeof(a->retry_after));
	}
	return n;
}

static void attempt_clear(struct http_attempt *a)
{
	if (a->body)
		secure_free(a->body, a->cap);
	a->body = NULL;
	a->len = a->cap = 0;
	a->too_big = false;
	a->content_type[0] = '\0';
	a->retry_after[0] = '\0';
}

/*
 * Retry-After is either delay-seconds or an HTTP-date (RFC 9110 §10.2.3); curl_getdate parses
 * the date forms. Returns the delay in ms, or -1 when absent or unparsable.
 */
static long retry_after_ms(const char *v, long cap)
{
	char *end;
	long long secs;

	if (!v || !*v)
		return -1;
	if (isdigit((unsigned char)v[0])) {
		errno = 0;
		secs = strtoll(v, &end, 10);
		if (errno || *end)
			return -1;
	} else {
		time_t when = curl_getdate(v, NULL);

		if (when == -1)
			return -1;
		secs = (long long)(when - time(NULL));
		if (secs < 0)
			secs = 0;
	}
	if (secs > cap / 1000)
		return cap;
	return (long)(secs * 1000);
}

/* backoff_ms doubled for each attempt already made, saturating at the Retry-After cap. */
static long backoff_delay(const struct http_client *c, int attempt)
{
	long d = c->backoff_ms;

	for (int i = 1; i < attempt && d < c->max_retry_after_ms; i++)
		d = d > LONG_MAX / 2 ? LONG_MAX : d * 2;
	return d < c->max_retry_after_ms ? d : c->max_retry_after_ms;
}

static bool status_retryable(long status)
{
	return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

/* Failures where another attempt may succeed; certificate and usage errors never will. */
static bool curl_retryable(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

static int curl_errno(CURLcode cc, bool too_big)
{
	if (too_big || cc == CURLE_FILESIZE_EXCEEDED)
		return -EFBIG;
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	case CURLE_URL_MALFORMAT:
		return -EINVAL;
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EPROTONOSUPPORT;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_WRITE_ERROR:
		return -ENOMEM; /* our callback refuses only on overflow (too_big) or ENOMEM */
	default:
		/* TLS handshake, certificate verification, malformed responses. */
		return -EPROTO;
	}
}

/* curl's detail text, with the query string cut out should curl ever quote the URL. */
static void errbuf_sanitize(char *errbuf, const char *url)
{
	const char *q = strpbrk(url, "?#");
	char *hit;

	if (!q || !q[1])
		return;
	hit = strstr(errbuf, q + 1);
	if (hit)
		snprintf(hit, (size_t)(errbuf + CURL_ERROR_SIZE - hit), "<redacted>");
}

static bool has_header(const char *const *headers, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; headers && headers[i]; i++)
		if (strncasecmp(headers[i], name, n) == 0 && headers[i][n] == ':')
			return true;
	return false;
}

static bool method_sends_body(const char *method)
{
	return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	       strcmp(method, "PATCH") == 0;
}

/*
 * curl_slist_append copies each line, an "Authorization: Bearer ..." one included: erase the
 * copies before they go back to the heap.
 */
static void headers_free(struct curl_slist *list)
{
	for (struct curl_slist *n = list; n; n = n->next)
		if (n->data)
			secure_erase(n->data, strlen(n->data));
	curl_slist_free_all(list);
}

static int build_headers(const char *const *headers, bool with_body, struct curl_slist **out)
{
	struct curl_slist *list = NULL, *n;

	for (size_t i = 0; headers && headers[i]; i++) {
		n = curl_slist_append(list, headers[i]);
		if (!n)
			goto oom;
		list = n;
	}
	/*
	 * curl would otherwise announce an uploaded body as a form and, for large bodies, wait for
	 * "100 Continue": neither is what these APIs want.
	 */
	if (with_body && !has_header(headers, "Content-Type")) {
		n = curl_slist_append(list, "Content-Type:");
		if (!n)
			goto oom;
		list = n;
	}
	n = curl_slist_append(list, "Expect:");
	if (!n)
		goto oom;
	*out = n;
	return 0;
oom:
	headers_free(list);
	return -ENOMEM;
}

static CURLcode setup_handle(struct http_client *c, CURL *h, const char *method, const char *url,
                             struct curl_slist *hdrs, const void *body, size_t body_len,
                             bool with_body, size_t max_body, struct http_attempt *a, char *errbuf)
{
	CURLcode cc = CURLE_OK;

#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (cc == CURLE_OK)                                                                \
			cc = curl_easy_setopt(h, opt, val);                                        \
	} while (0)

	/* Keeps live connections, TLS sessions and the DNS cache; drops the previous options. */
	curl_easy_reset(h);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	/*
	 * The instance metadata service (IMDS, THIM) is plain HTTP on a link-local address and
	 * answers with bearer tokens: it must never be reached through an http_proxy from the
	 * environment, which could read or forge those answers.
	 */
	SET(CURLOPT_NOPROXY, "169.254.169.254,localhost,127.0.0.1,::1");
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_bundle)
		SET(CURLOPT_CAINFO, c->ca_bundle);
	SET(CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	SET(CURLOPT_TIMEOUT_MS, c->timeout_ms);
	SET(CURLOPT_USERAGENT, c->user_agent);
	SET(CURLOPT_HTTPHEADER, hdrs);
	SET(CURLOPT_WRITEFUNCTION, write_cb);
	SET(CURLOPT_WRITEDATA, a);
	SET(CURLOPT_HEADERFUNCTION, header_cb);
	SET(CURLOPT_HEADERDATA, a);
	/* Refuses early when Content-Length already says too much; write_cb catches the rest. */
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_body);

	if (strcmp(method, "GET") == 0 && !with_body) {
		SET(CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "HEAD") == 0) {
		SET(CURLOPT_NOBODY, 1L);
	} else {
		if (strcmp(method, "POST") != 0)
			SET(CURLOPT_CUSTOMREQUEST, method);
		if (with_body) {
			SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
			SET(CURLOPT_POSTFIELDS, body ? (const char *)body : "");
		}
	}
#undef SET
	return cc;
}

static bool method_valid(const char *method)
{
	if (!method || !*method || strlen(method) > 16)
		return false;
	for (const char *p = method; *p; p++)
		if (!isupper((unsigned char)*p))
			return false;
	return true;
}

/* One "Name: value" line each: a CR or LF would let a value smuggle in another header. */
static bool headers_valid(const char *const *headers)
{
	for (size_t i = 0; headers && headers[i]; i++)
		if (strpbrk(headers[i], "\r\n") || !strchr(headers[i], ':'))
			return false;
	return true;
}

int http_request(struct http_client *c, const char *method, const char *url,
                 const char *const *headers, const void *body, size_t body_len, size_t max_body,
                 struct http_response *resp, struct skr_error *err)
{
	_cleanup_free_ char *safe_url = NULL;
	struct curl_slist *hdrs = NULL;
	struct http_attempt a = {0};
	char errbuf[CURL_ERROR_SIZE];
	bool with_body;
	long status = 0;
	int r;

	memset(resp, 0, sizeof(*resp));
	safe_url = http_url_redact(url);
	if (!safe_url)
		return skr_error_set(err, -ENOMEM, "HTTP: out of memory");
	if (!c || !url)
		return skr_error_set(err, -EINVAL, "HTTP: no client or no URL");
	if (!method_valid(method))
		return skr_error_set(err, -EINVAL,
		                     "HTTP %s: method '%s' is not an upper-case token", safe_url,
		                     method ? method : "(null)");
	if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
		return skr_error_set(err, -EINVAL,
		                     "%s %s: only http:// and https:// URLs are allowed", method,
		                     safe_url);
	/* The header itself may be an Authorization header: name only its position. */
	if (!headers_valid(headers))
		return skr_error_set(err, -EINVAL,
		                     "%s %s: a request header is not one 'Name: value' line",
		                     method, safe_url);
	/*
	 * A credential never crosses the network in clear: plain HTTP is for IMDS-style link-local
	 * endpoints that need no Authorization header (the IMDS token request itself has none).
	 */
	if (has_header(headers, "Authorization") && strncasecmp(url, "http://", 7) == 0)
		return skr_error_set(err, -EPERM,
		                     "%s %s: refusing to send an Authorization header over plain "
		                     "http://; use an https:// endpoint",
		                     method, safe_url);
	with_body = body != NULL || method_sends_body(method);
	a.max = max_body ? max_body : HTTP_DEFAULT_MAX_BODY;
	if (build_headers(headers, with_body, &hdrs) < 0)
		return skr_error_set(err, -ENOMEM, "HTTP: out of memory");

	for (int attempt = 1;; attempt++) {
		bool last = attempt >= c->max_attempts;
		CURLcode cc;
		long delay;
		CURL *h;

		attempt_clear(&a);
		errbuf[0] = '\0';
		h = handle_acquire(c);
		if (!h) {
			r = skr_error_set(err, -ENOMEM, "%s %s: curl_easy_init failed", method,
			                  safe_url);
			goto out;
		}
		cc = setup_handle(c, h, method, url, hdrs, body, body_len, with_body, a.max, &a,
		                  errbuf);
		if (cc == CURLE_OK)
			cc = curl_easy_perform(h);
		status = 0;
		if (cc == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		handle_release(c, h);

		if (cc != CURLE_OK) {
			r = curl_errno(cc, a.too_big);
			errbuf_sanitize(errbuf, url);
			log_debug("HTTP %s %s: attempt %d/%d failed: %s", method, safe_url, attempt,
			          c->max_attempts, curl_easy_strerror(cc));
			if (r == -EFBIG) {
				r = skr_error_set(
				        err, r,
				        "%s %s: response body exceeds the limit of %zu bytes",
				        method, safe_url, a.max);
				goto out;
			}
			if (last || !curl_retryable(cc)) {
				char tries[32] = "";

				if (attempt > 1)
					snprintf(tries, sizeof(tries), " (after %d attempts)",
					         attempt);
				r = skr_error_set(err, r, "%s %s: %s%s%s%s", method, safe_url,
				                  curl_easy_strerror(cc), errbuf[0] ? ": " : "",
				                  errbuf, tries);
				goto out;
			}
			delay = backoff_delay(c, attempt);
		} else {
			log_debug("HTTP %s %s: %ld (attempt %d/%d)", method, safe_url, status,
			          attempt, c->max_attempts);
			if (last || !status_retryable(status))
				break;
			delay = retry_after_ms(a.retry_after, c->max_retry_after_ms);
			if (delay < 0)
				delay = backoff_delay(c, attempt);
		}
		log_debug("HTTP %s %s: retrying in %ld ms", method, safe_url, delay);
		sleep_ms(delay);
	}

	resp->status = status;
	if (!a.body) {
		a.body = calloc(1, 1);
		if (!a.body) {
			r = skr_error_set(err, -ENOMEM, "HTTP: out of memory");
			goto out;
		}
		a.cap = 1;
	}
	if (a.content_type[0]) {
		resp->content_type = strdup(a.content_type);
		if (!resp->content_type) {
			r = skr_error_set(err, -ENOMEM, "HTTP: out of memory");
			goto out;
		}
	}
	/* Released with http_response_clear(), which erases the a.len + 1 meaningful bytes. */
	resp->body = TAKE_PTR(a.body);
	resp->body_len = a.len;
	r = 0;
out:
	attempt_clear(&a);
	headers_free(hdrs);
	return r;
}

void http_response_clear(struct http_response *r)
{
	if (!r)
		return;
	/* Bodies carry tokens and wrapped keys: erase them rather than leave them in the heap. */
	secure_free(r->body, r->body_len);
	free(r->content_type);
	memset(r, 0, sizeof(*r));
}

/* Copy untrusted text into an error message: bounded, without control characters. */
static void sanitize(const char *in, char *out, size_t size)
{
	size_t i = 0;

	for (; in && *in && i + 1 < size; in++)
		out[i++] = iscntrl((unsigned char)*in) ? ' ' : *in;
	out[i] = '\0';
}

void http_azure_error_fields(const struct http_response *resp, char *code, size_t code_size,
                             char *message, size_t message_size)
{
	_cleanup_json_ json_object *root = NULL;
	json_object *e, *v;

	code[0] = message[0] = '\0';
	if (!resp->body || !resp->body_len ||
	    json_parse(resp->body, resp->body_len, "error body", &root, NULL) < 0 ||
	    !json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "error", &e) ||
	    !json_object_is_type(e, json_type_object))
		return;
	if (json_object_object_get_ex(e, "code", &v) && json_object_is_type(v, json_type_string))
		sanitize(json_object_get_string(v), code, code_size);
	if (json_object_object_get_ex(e, "message", &v) && json_object_is_type(v, json_type_string))
		sanitize(json_object_get_string(v), message, message_size);
}
