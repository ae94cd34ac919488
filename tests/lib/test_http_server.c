/* SPDX-License-Identifier: MIT */
/*
 * Scripted test server (test_http_server.h). Thread-per-connection so that a delayed reply
 * holds only its own connection; the script and the record are shared under one mutex.
 */
#include "test_http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct script_entry {
	struct test_http_reply r; /* strings owned */
	struct script_entry *next;
};

struct test_http_server {
	struct MHD_Daemon *daemon;
	uint16_t port;
	char url[64];
	char *ca_file;
	char *cert_pem, *key_pem;
	volatile int stopping;

	pthread_mutex_t lock;
	struct script_entry *script; /* FIFO */
	struct test_http_request **requests;
	size_t n_requests, cap_requests;
};

/* Per-request state, created by the URI callback (which sees the raw target). */
struct pending {
	struct test_http_request *req;
	bool started;
	bool recorded;
};

static void *xmalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (!p)
		abort();
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = s ? strdup(s) : NULL;

	if (s && !p)
		abort();
	return p;
}

static void *xmemdup(const void *src, size_t len)
{
	char *p = xmalloc(len + 1);

	if (len)
		memcpy(p, src, len);
	p[len] = '\0';
	return p;
}

static void request_free(struct test_http_request *r)
{
	if (!r)
		return;
	free(r->method);
	free(r->target);
	free(r->path);
	for (size_t i = 0; i < r->n_headers; i++)
		free(r->headers[i]);
	free(r->headers);
	free(r->body);
	free(r);
}

static void entry_free(struct script_entry *e)
{
	free((char *)e->r.path);
	free((char *)e->r.content_type);
	free((char *)e->r.headers);
	free((void *)e->r.body);
	free(e);
}

/* ---- certificates ---------------------------------------------------------------------- */

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	X509V3_CTX ctx;
	BIGNUM *serial = BN_new();
	bool ok = x && name && serial;
	const char *exts[][2] = {
	        {"basicConstraints", ca ? "critical,CA:TRUE" : "critical,CA:FALSE"},
	        {"keyUsage", ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature"},
	        {"subjectAltName", ca ? NULL : "DNS:localhost,IP:127.0.0.1"},
	        {"extendedKeyUsage", ca ? NULL : "serverAuth"},
	        {"subjectKeyIdentifier", "hash"},
	};

	ok = ok && BN_rand(serial, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
	     BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x));
	ok = ok && X509_set_version(x, X509_VERSION_3) &&
	     X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
	                                0) &&
	     X509_set_subject_name(x, name) &&
	     X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) &&
	     X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
	     X509_gmtime_adj(X509_getm_notAfter(x), 7L * 24 * 3600) && X509_set_pubkey(x, key);
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	for (size_t i = 0; ok && i < sizeof(exts) / sizeof(exts[0]); i++) {
		X509_EXTENSION *ext;

		if (!exts[i][1])
			continue;
		ext = X509V3_EXT_conf(NULL, &ctx, exts[i][0], exts[i][1]);
		ok = ext && X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	ok = ok && X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0;
	BN_free(serial);
	X509_NAME_free(name);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static char *bio_to_string(BIO *b)
{
	char *data;
	long n = BIO_get_mem_data(b, &data);

	return n > 0 ? xmemdup(data, (size_t)n) : NULL;
}

static char *cert_pem(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *s = NULL;

	if (b && PEM_write_bio_X509(b, x))
		s = bio_to_string(b);
	BIO_free(b);
	return s;
}

static char *key_pem(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *s = NULL;

	if (b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL))
		s = bio_to_string(b);
	BIO_free(b);
	return s;
}

/* A CA and, when @srv_cert is not NULL, a server certificate + key it issued. */
static int make_pki(char **ca_pem, char **srv_cert, char **srv_key)
{
	EVP_PKEY *ca_key = EVP_EC_gen("P-256");
	EVP_PKEY *srv = srv_cert ? EVP_EC_gen("P-256") : NULL;
	X509 *ca = ca_key ? make_cert("test-http-server CA", ca_key, NULL, NULL, true) : NULL;
	X509 *leaf = NULL;
	int r = -EIO;

	if (!ca)
		goto out;
	*ca_pem = cert_pem(ca);
	if (!*ca_pem)
		goto out;
	if (srv_cert) {
		if (!srv)
			goto out;
		leaf = make_cert("localhost", srv, ca, ca_key, false);
		if (!leaf)
			goto out;
		*srv_cert = cert_pem(leaf);
		*srv_key = key_pem(srv);
		if (!*srv_cert || !*srv_key)
			goto out;
	}
	r = 0;
out:
	X509_free(leaf);
	X509_free(ca);
	EVP_PKEY_free(srv);
	EVP_PKEY_free(ca_key);
	return r;
}

static int write_pem(const char *path, const char *pem)
{
	FILE *f = fopen(path, "we");
	int r = 0;

	if (!f)
		return -errno;
	if (fputs(pem, f) < 0)
		r = -EIO;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	return r;
}

int test_http_write_unrelated_ca(const char *path)
{
	char *pem = NULL;
	int r = make_pki(&pem, NULL, NULL);

	if (r == 0)
		r = write_pem(path, pem);
	free(pem);
	return r;
}

/* ---- request handling ------------------------------------------------------------------ */

static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *con)
{
	struct pending *p = xmalloc(sizeof(*p));
	const char *q = strchr(uri, '?');
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	p->req = xmalloc(sizeof(*p->req));
	p->req->target = xstrdup(uri);
	p->req->path = q ? xmemdup(uri, (size_t)(q - uri)) : xstrdup(uri);
	p->req->body = xmemdup("", 0);
	if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
		p->req->client_port = ntohs(
		        ((const struct sockaddr_in *)(const void *)ci->client_addr)->sin_port);
	return p;
}

static enum MHD_Result header_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
	struct test_http_request *r = cls;
	char *line;

	if (asprintf(&line, "%s: %s", key, value ? value : "") < 0)
		abort();
	r->headers = realloc(r->headers, (r->n_headers + 1) * sizeof(*r->headers));
	if (!r->headers)
		abort();
	r->headers[r->n_headers++] = line;
	return MHD_YES;
}

static void record(struct test_http_server *s, struct pending *p)
{
	pthread_mutex_lock(&s->lock);
	if (s->n_requests == s->cap_requests) {
		s->cap_requests = s->cap_requests ? 2 * s->cap_requests : 16;
		s->requests = realloc(s->requests, s->cap_requests * sizeof(*s->requests));
		if (!s->requests)
			abort();
	}
	s->requests[s->n_requests++] = p->req;
	p->recorded = true;
	pthread_mutex_unlock(&s->lock);
}

/* Take the first matching reply; sticky ones are copied out and stay queued. */
static struct script_entry *script_take(struct test_http_server *s, const char *path)
{
	struct script_entry **pp, *e = NULL;

	pthread_mutex_lock(&s->lock);
	for (pp = &s->script; *pp; pp = &(*pp)->next) {
		if ((*pp)->r.path && strcmp((*pp)->r.path, path) != 0)
			continue;
		if ((*pp)->r.sticky) {
			const struct test_http_reply *src = &(*pp)->r;

			e = xmalloc(sizeof(*e));
			e->r = *src;
			e->r.path = xstrdup(src->path);
			e->r.content_type = xstrdup(src->content_type);
			e->r.headers = xstrdup(src->headers);
			e->r.body = xmemdup(src->body ? src->body : "", src->body_len);
		} else {
			e = *pp;
			*pp = e->next;
		}
		break;
	}
	pthread_mutex_unlock(&s->lock);
	return e;
}

static void wait_ms(struct test_http_server *s, unsigned ms)
{
	for (unsigned waited = 0; waited < ms && !s->stopping; waited += 10) {
		struct timespec ts = {0, 10 * 1000000L};

		nanosleep(&ts, NULL);
	}
}

static enum MHD_Result add_headers(struct MHD_Response *resp, const char *lines)
{
	char *copy = xstrdup(lines), *save = NULL;
	enum MHD_Result ok = MHD_YES;

	for (char *l = strtok_r(copy, "\n", &save); l && ok == MHD_YES;
	     l = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(l, ':'), *v;

		if (!colon)
			continue;
		*colon = '\0';
		for (v = colon + 1; *v == ' '; v++)
			;
		ok = MHD_add_response_header(resp, l, v);
	}
	free(copy);
	return ok;
}

/* Chunked bodies are produced by a reader that owns the script entry. */
static ssize_t chunk_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct script_entry *e = cls;
	size_t left;

	if (pos >= e->r.body_len)
		return MHD_CONTENT_READER_END_OF_STREAM;
	left = e->r.body_len - (size_t)pos;
	if (left > max)
		left = max;
	/* Small pieces, so the client sees several writes. */
	if (left > 512)
		left = 512;
	memcpy(buf, (const char *)e->r.body + pos, left);
	return (ssize_t)left;
}

static void chunk_reader_free(void *cls)
{
	entry_free(cls);
}

static enum MHD_Result respond(struct test_http_server *s, struct MHD_Connection *con,
                               const char *path)
{
	struct script_entry *e = script_take(s, path);
	bool owned_by_response = false;
	struct MHD_Response *resp;
	enum MHD_Result ok;
	char msg[512];

	if (!e) {
		int n = snprintf(msg, sizeof(msg), "no scripted reply for %s\n", path);

		resp = MHD_create_response_from_buffer((size_t)n, msg, MHD_RESPMEM_MUST_COPY);
		if (!resp)
			return MHD_NO;
		ok = MHD_queue_response(con, MHD_HTTP_NOT_FOUND, resp);
		MHD_destroy_response(resp);
		return ok;
	}
	if (e->r.delay_ms)
		wait_ms(s, e->r.delay_ms);
	if (e->r.drop || s->stopping) {
		entry_free(e);
		return MHD_NO;
	}
	if (e->r.chunked) {
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, chunk_reader, e,
		                                         chunk_reader_free);
		if (!resp) {
			entry_free(e);
			return MHD_NO;
		}
		owned_by_response = true;
	} else {
		resp = MHD_create_response_from_buffer(e->r.body_len, (void *)e->r.body,
		                                       MHD_RESPMEM_MUST_COPY);
	}
	ok = resp ? MHD_YES : MHD_NO;
	if (ok && e->r.content_type)
		ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, e->r.content_type);
	if (ok && e->r.headers)
		ok = add_headers(resp, e->r.headers);
	if (ok)
		ok = MHD_queue_response(con, e->r.status ? e->r.status : 200, resp);
	if (!owned_by_response)
		entry_free(e);
	if (resp)
		MHD_destroy_response(resp);
	return ok;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *con, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
	struct test_http_server *s = cls;
	struct pending *p = *con_cls;
	struct test_http_request *r;

	if (!p)
		return MHD_NO;
	r = p->req;
	if (!p->started) {
		p->started = true;
		r->method = xstrdup(method);
		MHD_get_connection_values(con, MHD_HEADER_KIND, header_cb, r);
		return MHD_YES;
	}
	if (*upload_data_size) {
		r->body = realloc(r->body, r->body_len + *upload_data_size + 1);
		if (!r->body)
			abort();
		memcpy(r->body + r->body_len, upload_data, *upload_data_size);
		r->body_len += *upload_data_size;
		r->body[r->body_len] = '\0';
		*upload_data_size = 0;
		return MHD_YES;
	}
	record(s, p);
	return respond(s, con, r->path);
}

static void completed_cb(void *cls, struct MHD_Connection *con, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct pending *p = *con_cls;

	if (!p)
		return;
	if (!p->recorded)
		request_free(p->req);
	free(p);
	*con_cls = NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

int test_http_server_start(bool https, struct test_http_server **out)
{
	struct test_http_server *s = xmalloc(sizeof(*s));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
	const union MHD_DaemonInfo *info;
	int r;

	*out = NULL;
	pthread_mutex_init(&s->lock, NULL);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (https) {
		char *ca_pem = NULL;
		const char *tmp = getenv("TMPDIR");
		int fd;

		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			r = -ENOTSUP;
			goto fail;
		}
		r = make_pki(&ca_pem, &s->cert_pem, &s->key_pem);
		if (r < 0) {
			free(ca_pem);
			goto fail;
		}
		if (asprintf(&s->ca_file, "%s/test-http-ca-XXXXXX.pem",
		             tmp && *tmp ? tmp : "/tmp") < 0)
			abort();
		fd = mkstemps(s->ca_file, 4);
		if (fd < 0) {
			r = -errno;
			free(ca_pem);
			free(s->ca_file);
			s->ca_file = NULL;
			goto fail;
		}
		close(fd);
		r = write_pem(s->ca_file, ca_pem);
		free(ca_pem);
		if (r < 0)
			goto fail;
		flags |= MHD_USE_TLS;
	}
	if (https)
		s->daemon = MHD_start_daemon(
		        flags, 0, NULL, NULL, access_cb, s, MHD_OPTION_SOCK_ADDR, &sa,
		        MHD_OPTION_URI_LOG_CALLBACK, uri_cb, s, MHD_OPTION_NOTIFY_COMPLETED,
		        completed_cb, s, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
		        MHD_OPTION_HTTPS_MEM_KEY, s->key_pem, MHD_OPTION_HTTPS_MEM_CERT,
		        s->cert_pem, MHD_OPTION_END);
	else
		s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, s,
		                             MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_URI_LOG_CALLBACK,
		                             uri_cb, s, MHD_OPTION_NOTIFY_COMPLETED, completed_cb,
		                             s, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
	if (!s->daemon) {
		r = -EADDRNOTAVAIL;
		goto fail;
	}
	info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (!info || !info->port) {
		r = -EADDRNOTAVAIL;
		goto fail;
	}
	s->port = info->port;
	snprintf(s->url, sizeof(s->url), "%s://127.0.0.1:%u", https ? "https" : "http",
	         (unsigned)s->port);
	*out = s;
	return 0;
fail:
	test_http_server_stop(s);
	return r;
}

void test_http_server_reset(struct test_http_server *s)
{
	pthread_mutex_lock(&s->lock);
	while (s->script) {
		struct script_entry *e = s->script;

		s->script = e->next;
		entry_free(e);
	}
	for (size_t i = 0; i < s->n_requests; i++)
		request_free(s->requests[i]);
	free(s->requests);
	s->requests = NULL;
	s->n_requests = s->cap_requests = 0;
	pthread_mutex_unlock(&s->lock);
}

void test_http_server_stop(struct test_http_server *s)
{
	if (!s)
		return;
	s->stopping = 1;
	if (s->daemon)
		MHD_stop_daemon(s->daemon);
	test_http_server_reset(s);
	if (s->ca_file) {
		unlink(s->ca_file);
		free(s->ca_file);
	}
	free(s->cert_pem);
	free(s->key_pem);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

uint16_t test_http_server_port(const struct test_http_server *s)
{
	return s->port;
}

const char *test_http_server_url(const struct test_http_server *s)
{
	return s->url;
}

const char *test_http_server_ca_file(const struct test_http_server *s)
{
	return s->ca_file;
}

void test_http_server_push(struct test_http_server *s, const struct test_http_reply *reply)
{
	struct script_entry *e = xmalloc(sizeof(*e)), **pp;

	e->r = *reply;
	if (e->r.body && !e->r.body_len)
		e->r.body_len = strlen(reply->body);
	e->r.path = xstrdup(reply->path);
	e->r.content_type = xstrdup(reply->content_type);
	e->r.headers = xstrdup(reply->headers);
	e->r.body = xmemdup(reply->body ? reply->body : "", e->r.body_len);
	pthread_mutex_lock(&s->lock);
	for (pp = &s->script; *pp; pp = &(*pp)->next)
		;
	*pp = e;
	pthread_mutex_unlock(&s->lock);
}

void test_http_server_reply(struct test_http_server *s, const char *path, unsigned status,
                            const char *content_type, const char *body)
{
	struct test_http_reply r = {
	        .path = path, .status = status, .content_type = content_type, .body = body};

	test_http_server_push(s, &r);
}

size_t test_http_server_request_count(struct test_http_server *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->n_requests;
	pthread_mutex_unlock(&s->lock);
	return n;
}

const struct test_http_request *test_http_server_request(struct test_http_server *s, size_t i)
{
	const struct test_http_request *r = NULL;

	pthread_mutex_lock(&s->lock);
	if (i < s->n_requests)
		r = s->requests[i];
	pthread_mutex_unlock(&s->lock);
	return r;
}

const char *test_http_request_header(const struct test_http_request *r, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; r && i < r->n_headers; i++)
		if (strncasecmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':')
			return r->headers[i] + n + 2;
	return NULL;
}
