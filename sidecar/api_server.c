/* SPDX-License-Identifier: MIT */
/*
 * libmicrohttpd glue of the SKR API: loopback listeners, bodies, the worker pool. Every
 * decision about a request is in api.c; this file moves bytes and threads.
 *
 * Threads: each listener (127.0.0.1, ::1) has a small MHD thread pool doing the socket I/O and
 * answering quick routes directly. A request for a slow route (one that calls the attester or a
 * remote service) is suspended (MHD_suspend_connection), handed to the worker pool, and resumed
 * with its answer: a release that waits 30 s on a vault holds one worker, never an MHD thread,
 * so /status keeps answering whatever the upstream services do.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "api.h"
#include "cleanup.h"
#include "deadline.h"
#include "http_body.h"
#include "log.h"
#include "secret.h"

/* MHD I/O threads per listener. */
#define MHD_THREADS 4
/* Workers for slow routes: parallel upstream calls (each release has its own wrapping key). */
#define WORKERS 8
/* Open connections per listener; a 200-client load test fits. */
#define CONNECTION_LIMIT 512
/* An idle connection (keep-alive, or a client that stalls mid-request) is closed after this. */
#define CONNECTION_TIMEOUT_S 30
/*
 * libmicrohttpd's memory pool per connection (request headers, the read buffer, response
 * headers; bodies are streamed through it). Its default is 32 KiB, and it zeroes the whole pool
 * between the requests of a keep-alive connection, so every open connection keeps the full pool
 * resident: 200 clients cost 6.4 MiB at 32 KiB, measured (bench/api_load). Our requests carry a
 * handful of short headers; 16 KiB still takes ~15 KiB of them.
 */
#define CONNECTION_MEMORY 16384
#define LISTEN_BACKLOG 128
/* How much of a body over SIDECAR_API_MAX_BODY is drained to answer 413 (common/http_body.h). */
#define DRAIN_MAX (4u * 1024u * 1024u)

/* Hand a descriptor out of a _cleanup_close_ variable. */
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _fd = (fd);                                                                    \
		(fd) = -1;                                                                         \
		_fd;                                                                               \
	})

struct api_listener {
	struct MHD_Daemon *daemon;
	int family;
};

struct sidecar_api_server {
	struct sidecar_api *api;
	uint16_t port;
	struct api_listener listeners[2];
	size_t n_listeners;
	atomic_uint in_flight;

	pthread_mutex_t lock; /* the queue, stopping, idle_cond */
	pthread_cond_t work_cond;
	pthread_cond_t idle_cond;
	struct conn *queue_head, *queue_tail;
	bool stopping;
	pthread_t workers[WORKERS];
	size_t n_workers;
};

enum conn_phase {
	CONN_RECEIVING = 0,
	CONN_QUEUED, /* suspended, waiting for or running on a worker */
	CONN_DONE,   /* the worker's answer is in resp; resumed */
};

struct conn {
	struct sidecar_api_server *srv;
	struct MHD_Connection *mc;
	struct timespec start;
	struct http_body body;
	enum conn_phase phase;
	struct sidecar_api_request req;
	struct sidecar_api_response resp;
	struct conn *next;
};

/* ---------------------------------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------------------------------- */

static double elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) * 1e3 +
	       (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

static void free_plain_body(void *p)
{
	free(p);
}

/* The fixed answer when not even an error body could be built. */
static const char oom_body[] = "{\"error\":\"internal error: out of memory\"}";

static enum MHD_Result send_response(struct conn *c, const char *method, const char *url)
{
	struct sidecar_api_response *resp = &c->resp;
	struct MHD_Response *r;
	enum MHD_Result ret;
	bool secret = resp->secret != NULL;
	unsigned status = resp->status;

	if (!resp->body) {
		r = MHD_create_response_from_buffer(sizeof(oom_body) - 1, (void *)oom_body,
		                                    MHD_RESPMEM_PERSISTENT);
		status = 500;
	} else {
		/* libmicrohttpd sends straight from this buffer and frees (erases) it when done. */
		r = MHD_create_response_from_buffer_with_free_callback(
		        resp->body_len, resp->body,
		        secret ? sidecar_api_secret_body_free : free_plain_body);
	}
	if (!r) {
		sidecar_api_response_clear(resp);
		return MHD_NO;
	}
	/* Owned by the response now. */
	resp->body = NULL;
	resp->secret = NULL;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
	if (resp->allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, resp->allow);
	if (secret)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(c->mc, status, r);
	MHD_destroy_response(r);
	/* Method, path and status only: bodies carry tokens and keys. */
	log_info("%s %s %u %.1f ms", method, url, status, elapsed_ms(&c->start));
	return ret;
}

/* ---------------------------------------------------------------------------------------------
 * Workers
 * ------------------------------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
	struct sidecar_api_server *srv = arg;

	for (;;) {
		struct conn *c;

		pthread_mutex_lock(&srv->lock);
		while (!srv->queue_head && !srv->stopping)
			pthread_cond_wait(&srv->work_cond, &srv->lock);
		if (!srv->queue_head) {
			pthread_mutex_unlock(&srv->lock);
			return NULL;
		}
		c = srv->queue_head;
		srv->queue_head = c->next;
		if (!srv->queue_head)
			srv->queue_tail = NULL;
		pthread_mutex_unlock(&srv->lock);

		if (sidecar_api_handle(srv->api, &c->req, &c->resp) < 0)
			memset(&c->resp, 0, sizeof(c->resp)); /* send_response answers 500 */
		c->phase = CONN_DONE;
		/* MHD's resume takes its own lock: the answer above is visible to its thread. */
		MHD_resume_connection(c->mc);
	}
}

static void enqueue(struct sidecar_api_server *srv, struct conn *c)
{
	pthread_mutex_lock(&srv->lock);
	c->next = NULL;
	if (srv->queue_tail)
		srv->queue_tail->next = c;
	else
		srv->queue_head = c;
	srv->queue_tail = c;
	pthread_cond_signal(&srv->work_cond);
	pthread_mutex_unlock(&srv->lock);
}

/* ---------------------------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------------------------- */

static enum MHD_Result answer(struct conn *c, const char *url, const char *method)
{
	struct sidecar_api_server *srv = c->srv;

	if (c->phase == CONN_DONE)
		return send_response(c, method, url);
	c->req = (struct sidecar_api_request){
	        .method = method,
	        .path = url,
	        .body = c->body.data,
	        .body_len = c->body.len,
	        .content_length = http_body_size(&c->body),
	};
	if (!c->body.too_large && sidecar_api_route_is_slow(method, url)) {
		c->phase = CONN_QUEUED;
		MHD_suspend_connection(c->mc);
		enqueue(srv, c);
		return MHD_YES;
	}
	if (sidecar_api_handle(srv->api, &c->req, &c->resp) < 0)
		memset(&c->resp, 0, sizeof(c->resp));
	c->phase = CONN_DONE;
	return send_response(c, method, url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct sidecar_api_server *srv = cls;
	struct conn *c = *con_cls;
	int r;

	(void)version;
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c)
			return MHD_NO;
		c->srv = srv;
		c->mc = mc;
		clock_gettime(CLOCK_MONOTONIC, &c->start);
		http_body_init(&c->body, SIDECAR_API_MAX_BODY, DRAIN_MAX);
		*con_cls = c;
		atomic_fetch_add(&srv->in_flight, 1);
		if (http_body_announce(&c->body,
		                       MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
		                                                   MHD_HTTP_HEADER_CONTENT_LENGTH),
		                       MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Expect")))
			return answer(c, url, method);
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		r = http_body_receive(&c->body, upload_data, n);
		return r == 0 || r == -E2BIG ? MHD_YES : MHD_NO;
	}
	return answer(c, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct sidecar_api_server *srv = cls;
	struct conn *c = *con_cls;

	(void)mc;
	(void)toe;
	if (!c)
		return;
	http_body_erase(&c->body);
	sidecar_api_response_clear(&c->resp);
	free(c);
	*con_cls = NULL;
	if (atomic_fetch_sub(&srv->in_flight, 1) == 1) {
		pthread_mutex_lock(&srv->lock);
		pthread_cond_broadcast(&srv->idle_cond);
		pthread_mutex_unlock(&srv->lock);
	}
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

/* ---------------------------------------------------------------------------------------------
 * Listeners
 * ------------------------------------------------------------------------------------------- */

/*
 * A listening socket on the loopback address of @family. Bound here rather than by
 * libmicrohttpd so that the address is ours to choose (never INADDR_ANY) and a failure says
 * why (in use, or no such address on this machine).
 */
static int listen_loopback(int family, uint16_t port, uint16_t *bound, struct skr_error *err)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	const char *name = family == AF_INET ? "127.0.0.1" : "::1";
	int one = 1;
	_cleanup_close_ int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return skr_error_set(err, -errno, "cannot create a socket for %s: %s", name,
		                     skr_strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return skr_error_set(err, -errno, "setsockopt SO_REUSEADDR: %s",
		                     skr_strerror(errno));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		/* ::1 only, never the IPv4 side through a mapped address. */
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
			return skr_error_set(err, -errno, "setsockopt IPV6_V6ONLY: %s",
			                     skr_strerror(errno));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sin6->sin6_addr = in6addr_loopback;
		len = sizeof(*sin6);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		return skr_error_set(err, -errno, "cannot listen on %s%s%s:%u: %s",
		                     family == AF_INET6 ? "[" : "", name,
		                     family == AF_INET6 ? "]" : "", port, skr_strerror(errno));
	if (listen(fd, LISTEN_BACKLOG) < 0)
		return skr_error_set(err, -errno, "listen on %s: %s", name, skr_strerror(errno));
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return skr_error_set(err, -errno, "getsockname: %s", skr_strerror(errno));
	*bound = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
	                                 : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return TAKE_FD(fd);
}

static int start_listener(struct sidecar_api_server *srv, int fd, int family, struct skr_error *err)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
	                 MHD_USE_ERROR_LOG;
	struct api_listener *l = &srv->listeners[srv->n_listeners];

	if (family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* The logger first: libmicrohttpd reports options before it to stderr. */
	l->daemon = MHD_start_daemon(
	        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
	        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)MHD_THREADS,
	        MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT,
	        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
	        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
	        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_END);
	if (!l->daemon) {
		close(fd);
		return skr_error_set(err, -EIO,
		                     "libmicrohttpd could not start on %s (see --log-level debug)",
		                     family == AF_INET ? "127.0.0.1" : "[::1]");
	}
	l->family = family;
	srv->n_listeners++;
	return 0;
}

static void stop_workers(struct sidecar_api_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	srv->stopping = true;
	pthread_cond_broadcast(&srv->work_cond);
	pthread_mutex_unlock(&srv->lock);
	for (size_t i = 0; i < srv->n_workers; i++)
		pthread_join(srv->workers[i], NULL);
	srv->n_workers = 0;
}

void sidecar_api_server_free(struct sidecar_api_server *srv)
{
	if (!srv)
		return;
	for (size_t i = 0; i < srv->n_listeners; i++)
		MHD_stop_daemon(srv->listeners[i].daemon);
	stop_workers(srv);
	pthread_mutex_destroy(&srv->lock);
	pthread_cond_destroy(&srv->work_cond);
	pthread_cond_destroy(&srv->idle_cond);
	free(srv);
}

int sidecar_api_server_start(struct sidecar_api *api, uint16_t port,
                             struct sidecar_api_server **out, struct skr_error *err)
{
	struct sidecar_api_server *srv = calloc(1, sizeof(*srv));
	uint16_t bound = 0, bound6 = 0;
	int fd4 = -1, fd6 = -1, r;

	if (!srv)
		return skr_error_set(err, -ENOMEM, "API: out of memory");
	srv->api = api;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_cond_init(&srv->work_cond, NULL);
	pthread_cond_init(&srv->idle_cond, NULL);

	/*
	 * Both addresses on one port. With port 0 the kernel picks the IPv4 port; should ::1
	 * have that port taken, try again with another (only then: a configured port is final).
	 */
	for (int attempt = 0; attempt < 8; attempt++) {
		struct skr_error e6 = {0};

		fd4 = listen_loopback(AF_INET, port, &bound, err);
		if (fd4 < 0) {
			r = fd4;
			goto fail;
		}
		fd6 = listen_loopback(AF_INET6, bound, &bound6, &e6);
		if (fd6 >= 0)
			break;
		if (fd6 == -EADDRNOTAVAIL || fd6 == -EAFNOSUPPORT) {
			log_warn("API: no IPv6 loopback on this machine (%s); serving 127.0.0.1 "
			         "only",
			         e6.msg);
			break;
		}
		close(fd4);
		fd4 = -1;
		if (port != 0 || fd6 != -EADDRINUSE) {
			r = skr_error_set(err, fd6, "%s", e6.msg);
			goto fail;
		}
	}
	if (fd4 < 0) {
		r = skr_error_set(err, -EADDRINUSE, "no port free on both 127.0.0.1 and ::1");
		goto fail;
	}
	srv->port = bound;

	for (size_t i = 0; i < WORKERS; i++) {
		r = -pthread_create(&srv->workers[i], NULL, worker_main, srv);
		if (r < 0) {
			skr_error_set(err, r, "API: cannot start a worker thread: %s",
			              skr_strerror(r));
			goto fail;
		}
		srv->n_workers++;
	}
	r = start_listener(srv, TAKE_FD(fd4), AF_INET, err);
	if (r < 0)
		goto fail;
	if (fd6 >= 0) {
		r = start_listener(srv, TAKE_FD(fd6), AF_INET6, err);
		if (r < 0)
			goto fail;
	}
	log_info("API: listening on 127.0.0.1:%u%s", srv->port,
	         srv->n_listeners == 2 ? " and [::1]" : "");
	*out = srv;
	return 0;
fail:
	if (fd4 >= 0)
		close(fd4);
	if (fd6 >= 0)
		close(fd6);
	sidecar_api_server_free(srv);
	return r;
}

uint16_t sidecar_api_server_port(const struct sidecar_api_server *srv)
{
	return srv->port;
}

bool sidecar_api_server_has_ipv6(const struct sidecar_api_server *srv)
{
	return srv->n_listeners == 2;
}

void sidecar_api_server_quiesce(struct sidecar_api_server *srv)
{
	for (size_t i = 0; i < srv->n_listeners; i++) {
		/* MHD hands the listening socket back; closing it refuses new connections. */
		int fd = MHD_quiesce_daemon(srv->listeners[i].daemon);

		if (fd >= 0)
			close(fd);
	}
}

unsigned sidecar_api_server_in_flight(struct sidecar_api_server *srv)
{
	return atomic_load(&srv->in_flight);
}

int sidecar_api_server_drain(struct sidecar_api_server *srv, long timeout_ms)
{
	struct timespec deadline =
	        deadline_after_ms(CLOCK_REALTIME, timeout_ms > 0 ? (unsigned long)timeout_ms : 0);
	int r = 0;

	pthread_mutex_lock(&srv->lock);
	while (atomic_load(&srv->in_flight) > 0 && r == 0)
		if (pthread_cond_timedwait(&srv->idle_cond, &srv->lock, &deadline) == ETIMEDOUT)
			r = atomic_load(&srv->in_flight) > 0 ? -ETIMEDOUT : 0;
	pthread_mutex_unlock(&srv->lock);
	return r;
}
