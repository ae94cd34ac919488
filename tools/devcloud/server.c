/* SPDX-License-Identifier: MIT */
/*
 * HTTP(S) for devcloud: one libmicrohttpd daemon per service, loopback only, a small thread
 * pool each. attest and kv speak HTTPS (GnuTLS) with their key and certificate from memory;
 * imds speaks plain HTTP as the real link-local IMDS does. This file only moves bytes between
 * libmicrohttpd and devcloud_dispatch_service(); every decision is in the handlers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "cleanup.h"
#include "devcloud.h"
#include "http_body.h"
#include "log.h"
#include "secret.h"

#define THREAD_POOL_SIZE 4
/*
 * Connections served at once. Each may buffer a body of up to --max-body (at most
 * DEVCLOUD_MAX_BODY_LIMIT, 2 MiB; larger ones are drained, never stored), so the worst case is
 * about 64 × 2 MiB = 128 MiB of request bodies per listener.
 */
#define CONNECTION_LIMIT 64
#define CONNECTION_TIMEOUT_S 30
#define MAX_KV DEVCLOUD_MAX_HEADERS
/* A logged path is cut here (escaped, a byte may take three characters). */
#define LOG_PATH_MAX 512
/* How much of a body over --max-body is drained to answer 413 (common/http_body.h): this many
 * times the limit. */
#define DISCARD_FACTOR 4

struct devcloud_server {
	struct MHD_Daemon *daemon;
	struct devcloud *dc;
	enum devcloud_service service;
	uint16_t port;
};

struct conn_state {
	struct timespec start;
	struct http_body body;
};

int devcloud_listen_parse(const char *s, int *family, uint8_t addr[16], struct skr_error *err)
{
	memset(addr, 0, 16);
	if (!s || !*s)
		return skr_error_set(err, -EINVAL, "--listen needs an address");
	if (strcmp(s, "localhost") == 0)
		s = "127.0.0.1";
	if (inet_pton(AF_INET, s, addr) == 1) {
		*family = AF_INET;
		if (addr[0] != 127)
			return skr_error_set(err, -EPERM,
			                     "--listen %s is not a loopback address: devcloud is a "
			                     "development service without authentication and only "
			                     "listens on 127.0.0.0/8 or ::1",
			                     s);
		return 0;
	}
	if (inet_pton(AF_INET6, s, addr) == 1) {
		*family = AF_INET6;
		if (!IN6_IS_ADDR_LOOPBACK((struct in6_addr *)addr))
			return skr_error_set(err, -EPERM,
			                     "--listen %s is not a loopback address: devcloud is a "
			                     "development service without authentication and only "
			                     "listens on 127.0.0.0/8 or ::1",
			                     s);
		return 0;
	}
	return skr_error_set(err, -EINVAL,
	                     "--listen '%s' is not an IP address (use 127.0.0.1 or ::1)", s);
}

static size_t escaped_len(unsigned char c)
{
	return c > ' ' && c < 0x7f && c != '%' ? 1 : 3;
}

void devcloud_log_escape(const char *in, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0, total = 0, limit;
	bool cut;

	if (size == 0)
		return;
	for (const char *p = in; p && *p; p++)
		total += escaped_len((unsigned char)*p);
	/* When it does not fit, room is kept for "..." (if there is room at all). */
	cut = total + 1 > size;
	limit = cut && size > 4 ? size - 4 : size - 1;
	for (; in && *in; in++) {
		unsigned char c = (unsigned char)*in;

		if (o + escaped_len(c) > limit)
			break;
		if (escaped_len(c) == 1) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		}
	}
	if (cut && size > 4) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

struct kv_list {
	struct devcloud_kv items[MAX_KV];
	size_t n;
};

static enum MHD_Result collect_kv(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
	struct kv_list *l = cls;

	(void)kind;
	if (l->n == MAX_KV)
		return MHD_NO;
	l->items[l->n].key = key;
	l->items[l->n].value = value;
	l->n++;
	return MHD_YES;
}

static void free_body(void *p)
{
	free(p);
}

static void free_secret_body(void *p)
{
	secure_free(p, strlen(p));
}

static double elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) * 1e3 +
	       (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

static enum MHD_Result send_response(struct MHD_Connection *conn, const char *method,
                                     const char *url, const struct conn_state *st,
                                     struct devcloud_response *resp)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer_with_free_callback(
	        resp->body_len, resp->body, resp->secret_body ? free_secret_body : free_body);
	if (!r) {
		devcloud_response_clear(resp);
		return MHD_NO;
	}
	resp->body = NULL; /* libmicrohttpd owns it now */
	if (resp->content_type)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
	if (resp->allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, resp->allow);
	if (resp->cache_control)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, resp->cache_control);
	if (resp->www_authenticate)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		                        resp->www_authenticate);
	ret = MHD_queue_response(conn, resp->status, r);
	MHD_destroy_response(r);
	/*
	 * Method, path (no query) and status only: bodies may carry tokens. The path is decoded
	 * client text ("%0A" is a line break): escaped, or a client could forge log lines.
	 */
	{
		char m[64], path[LOG_PATH_MAX];

		devcloud_log_escape(method, m, sizeof(m));
		devcloud_log_escape(url, path, sizeof(path));
		log_info("%s %s %u %.1f ms", m, path, resp->status, elapsed_ms(&st->start));
	}
	return ret;
}

static enum MHD_Result answer(struct devcloud_server *srv, struct MHD_Connection *conn,
                              const char *url, const char *method, struct conn_state *st)
{
	struct kv_list query = {0}, headers = {0};
	struct devcloud_response resp = {0};
	struct devcloud_request req = {
	        .method = method,
	        .path = url,
	        .body = st->body.data ? st->body.data : "",
	        .body_len = st->body.len,
	        .content_length = http_body_size(&st->body),
	};
	int r;

	/*
	 * Refused rather than cut: a Host header past the 64th would otherwise be reported as
	 * missing, a query parameter silently ignored.
	 */
	if (MHD_get_connection_values(conn, MHD_HEADER_KIND, NULL, NULL) > MAX_KV) {
		if (devcloud_response_error(&resp, 431, "RequestHeaderFieldsTooLarge",
		                            "the request has more than %d header fields",
		                            MAX_KV) < 0)
			return MHD_NO;
		return send_response(conn, method, url, st, &resp);
	}
	if (MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, NULL, NULL) > MAX_KV) {
		if (devcloud_response_error(&resp, 414, "UriTooLong",
		                            "the request has more than %d query parameters",
		                            MAX_KV) < 0)
			return MHD_NO;
		return send_response(conn, method, url, st, &resp);
	}
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_kv, &query);
	MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_kv, &headers);
	req.query = query.items;
	req.n_query = query.n;
	req.headers = headers.items;
	req.n_headers = headers.n;

	r = devcloud_dispatch_service(srv->dc, srv->service, &req, &resp);
	if (r < 0 || !resp.status) {
		devcloud_response_clear(&resp);
		/* skr_strerror(): strerror() is not thread-safe and this runs on MHD's workers. */
		if (devcloud_response_error(&resp, 500, "InternalServerError", "internal error: %s",
		                            skr_strerror(r < 0 ? r : -EIO)) < 0)
			return MHD_NO;
	}
	return send_response(conn, method, url, st, &resp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct devcloud_server *srv = cls;
	struct conn_state *st = *con_cls;
	size_t max = srv->dc->max_body;
	int r;

	(void)version;
	if (!st) {
		st = calloc(1, sizeof(*st));
		if (!st)
			return MHD_NO;
		clock_gettime(CLOCK_MONOTONIC, &st->start);
		http_body_init(&st->body, max, max * DISCARD_FACTOR);
		*con_cls = st;
		if (http_body_announce(
		            &st->body,
		            MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                        MHD_HTTP_HEADER_CONTENT_LENGTH),
		            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect")))
			return answer(srv, conn, url, method, st);
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		r = http_body_receive(&st->body, upload_data, n);
		return r == 0 || r == -E2BIG ? MHD_YES : MHD_NO;
	}
	return answer(srv, conn, url, method, st);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct conn_state *st = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (!st)
		return;
	/* Bodies carry private keys (imports) and tokens: erased, not just freed. */
	http_body_erase(&st->body);
	free(st);
	*con_cls = NULL;
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t len;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = strlen(msg);
	while (len && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
		msg[--len] = '\0';
	log_debug("libmicrohttpd: %s", msg);
}

int devcloud_server_start(struct devcloud *dc, const char *listen, uint16_t port,
                          struct devcloud_server **out, struct skr_error *err)
{
	return devcloud_server_start_service(dc, DEVCLOUD_SERVICE_ATTEST, listen, port, out, err);
}

static const char *service_name(enum devcloud_service service)
{
	switch (service) {
	case DEVCLOUD_SERVICE_ATTEST:
		return "attest";
	case DEVCLOUD_SERVICE_KV:
		return "kv";
	case DEVCLOUD_SERVICE_IMDS:
		return "imds";
	}
	return "?";
}

int devcloud_server_start_service(struct devcloud *dc, enum devcloud_service service,
                                  const char *listen, uint16_t port, struct devcloud_server **out,
                                  struct skr_error *err)
{
	struct devcloud_server *srv;
	struct sockaddr_storage ss = {0};
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_POLL;
	const char *tls_key = NULL, *tls_cert = NULL;
	uint8_t addr[16];
	int family, r;

	r = devcloud_listen_parse(listen, &family, addr, err);
	if (r < 0)
		return r;
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, addr, 4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, addr, 16);
		flags |= MHD_USE_IPv6;
	}
	switch (service) {
	case DEVCLOUD_SERVICE_ATTEST:
		tls_key = (const char *)dc->tls_key_pem->data;
		tls_cert = dc->tls_cert_pem;
		break;
	case DEVCLOUD_SERVICE_KV:
		if (!dc->vault.tls_key_pem)
			return skr_error_set(err, -EINVAL, "the key vault is not loaded");
		tls_key = (const char *)dc->vault.tls_key_pem->data;
		tls_cert = dc->vault.tls_cert_pem;
		break;
	case DEVCLOUD_SERVICE_IMDS:
		break; /* plain HTTP, as http://169.254.169.254 */
	}

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return skr_error_set(err, -ENOMEM, "out of memory");
	srv->dc = dc;
	srv->service = service;
	if (tls_key)
		srv->daemon = MHD_start_daemon(
		        flags | MHD_USE_TLS, port, NULL, NULL, on_request, srv,
		        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_HTTPS_MEM_KEY,
		        tls_key, MHD_OPTION_HTTPS_MEM_CERT, tls_cert, MHD_OPTION_THREAD_POOL_SIZE,
		        (unsigned)THREAD_POOL_SIZE, MHD_OPTION_CONNECTION_LIMIT,
		        (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
		        (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
		        srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv, MHD_OPTION_END);
	else
		srv->daemon = MHD_start_daemon(
		        flags, port, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR,
		        (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
		        (unsigned)THREAD_POOL_SIZE, MHD_OPTION_CONNECTION_LIMIT,
		        (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
		        (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
		        srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv, MHD_OPTION_END);
	if (!srv->daemon) {
		free(srv);
		return skr_error_set(
		        err, -EADDRINUSE,
		        "cannot listen on %s port %u for %s (in use, or the TLS key/certificate "
		        "of the state directory is unusable; see --log-level debug)",
		        listen, port, service_name(service));
	}
	info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info ? info->port : port;
	*out = srv;
	return 0;
}

uint16_t devcloud_server_port(const struct devcloud_server *srv)
{
	return srv->port;
}

void devcloud_server_stop(struct devcloud_server *srv)
{
	if (!srv)
		return;
	MHD_stop_daemon(srv->daemon);
	free(srv);
}
