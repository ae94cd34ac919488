/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "test_fault_proxy.h"

#define PLAN_MAX 16
#define HEAD_MAX (64 * 1024)
#define BODY_MAX (64u * 1024 * 1024) /* requests: Put Page sends ≤ 4 MiB, Put Block more */
#define RELAY_CHUNK (256 * 1024)

struct conn {
	struct test_fault_proxy *proxy;
	int client_fd;
	int upstream_fd; /* -1 between requests; guarded by proxy->lock for test_fault_proxy_stop */
	pthread_t thread;
	struct conn *next;
};

struct test_fault_proxy {
	int listen_fd;
	int port, upstream_port;
	pthread_t accept_thread;
	pthread_mutex_t lock;
	struct test_fault_step plan[PLAN_MAX];
	char methods[PLAN_MAX][16];
	size_t n_plan, cur;
	struct test_fault_counts counts;
	struct conn *conns;
	bool stopping;
};

/* ---------------------------------------------------------------------------------------------
 * Socket I/O
 * ------------------------------------------------------------------------------------------- */

static int send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t k = send(fd, p, len, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k, len -= (size_t)k;
	}
	return 0;
}

/* A growing receive buffer: bytes [0, len) received, of which the caller consumed none yet. */
struct rbuf {
	char *data;
	size_t len, cap;
};

static int rbuf_fill(struct rbuf *b, int fd, size_t want_cap)
{
	ssize_t k;

	if (b->cap - b->len < 4096 || b->cap < want_cap) {
		size_t cap = b->cap ? b->cap * 2 : 65536;
		char *p;

		while (cap < want_cap || cap - b->len < 4096)
			cap *= 2;
		p = realloc(b->data, cap + 1);
		if (!p)
			return -1;
		b->data = p, b->cap = cap;
	}
	do
		k = recv(fd, b->data + b->len, b->cap - b->len, 0);
	while (k < 0 && errno == EINTR);
	if (k <= 0)
		return -1;
	b->len += (size_t)k;
	b->data[b->len] = '\0';
	return 0;
}

static void rbuf_consume(struct rbuf *b, size_t n)
{
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

/* Receive until a blank line ends the head; its length including "\r\n\r\n", or -1. */
static ssize_t read_head(struct rbuf *b, int fd)
{
	for (;;) {
		char *end = b->data ? memmem(b->data, b->len, "\r\n\r\n", 4) : NULL;

		if (end)
			return end + 4 - b->data;
		if (b->len > HEAD_MAX || rbuf_fill(b, fd, 0) < 0)
			return -1;
	}
}

/* Make at least @n bytes available. */
static int read_n(struct rbuf *b, int fd, size_t n)
{
	while (b->len < n)
		if (rbuf_fill(b, fd, n) < 0)
			return -1;
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * HTTP heads
 * ------------------------------------------------------------------------------------------- */

/* The value of header @name in @head (@head_len bytes) into @out; false if absent. */
static bool header_get(const char *head, size_t head_len, const char *name, char *out, size_t size)
{
	size_t nl = strlen(name);
	const char *p = memchr(head, '\n', head_len), *end = head + head_len;

	while (p && ++p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));

		if (!eol)
			break;
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			const char *ve = eol;

			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
				ve--;
			snprintf(out, size, "%.*s", (int)(ve - v), v);
			return true;
		}
		p = eol;
	}
	return false;
}

/* Whether the line at @p (a header line) is @name's. */
static bool line_is(const char *p, const char *name)
{
	size_t nl = strlen(name);

	return strncasecmp(p, name, nl) == 0 && p[nl] == ':';
}

/*
 * Copy @head without its hop-by-hop headers (and @drop, may be NULL) and without the final
 * blank line, into a malloc'ed string; the caller appends its own headers and "\r\n".
 */
static char *head_strip(const char *head, size_t head_len, const char *const *drop)
{
	char *out = malloc(head_len + 1), *o = out;
	const char *p = head, *end = head + head_len - 2; /* before the final "\r\n" */

	if (!out)
		return NULL;
	for (bool first = true; p < end; first = false) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t n = eol ? (size_t)(eol + 1 - p) : (size_t)(end - p);
		bool skip = !first && (line_is(p, "Connection") || line_is(p, "Keep-Alive") ||
		                       line_is(p, "Expect") || line_is(p, "Proxy-Connection"));

		for (size_t i = 0; !first && drop && drop[i]; i++)
			skip = skip || line_is(p, drop[i]);
		if (!skip) {
			memcpy(o, p, n);
			o += n;
		}
		p += n;
	}
	*o = '\0';
	return out;
}

static int send_error(int fd, bool head_request, int status, const char *reason, const char *code,
                      unsigned retry_after)
{
	char body[256], msg[512], extra[64] = "";
	int blen = snprintf(body, sizeof(body),
	                    "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code>"
	                    "<Message>injected by the test fault proxy</Message></Error>",
	                    code);
	int n;

	if (status == 503)
		snprintf(extra, sizeof(extra), "Retry-After: %u\r\n", retry_after);
	n = snprintf(msg, sizeof(msg),
	             "HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
	             "x-ms-error-code: %s\r\n%s\r\n%s",
	             status, reason, head_request ? 0 : blen, code, extra,
	             head_request ? "" : body);
	return send_all(fd, msg, (size_t)n);
}

/* ---------------------------------------------------------------------------------------------
 * The plan
 * ------------------------------------------------------------------------------------------- */

static enum test_fault plan_take(struct test_fault_proxy *p, const char *method, unsigned *param)
{
	enum test_fault f = TEST_FAULT_PASS;

	pthread_mutex_lock(&p->lock);
	p->counts.requests++;
	if (strcmp(method, "GET") == 0)
		p->counts.gets++;
	else if (strcmp(method, "HEAD") == 0)
		p->counts.heads++;
	else if (strcmp(method, "PUT") == 0)
		p->counts.puts++;
	if (p->cur < p->n_plan) {
		struct test_fault_step *s = &p->plan[p->cur];

		if (!s->method || strcmp(s->method, method) == 0) {
			f = s->fault;
			*param = s->param;
			if (s->count != TEST_FAULT_FOREVER && --s->count == 0)
				p->cur++;
			if (f != TEST_FAULT_PASS)
				p->counts.faults++;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return f;
}

void test_fault_proxy_set_plan(struct test_fault_proxy *p, const struct test_fault_step *steps,
                               size_t n)
{
	pthread_mutex_lock(&p->lock);
	p->n_plan = n < PLAN_MAX ? n : PLAN_MAX;
	p->cur = 0;
	for (size_t i = 0; i < p->n_plan; i++) {
		p->plan[i] = steps[i];
		if (steps[i].method) {
			snprintf(p->methods[i], sizeof(p->methods[i]), "%s", steps[i].method);
			p->plan[i].method = p->methods[i];
		}
	}
	/* Zero-count steps would never advance the plan. */
	while (p->cur < p->n_plan && p->plan[p->cur].count == 0)
		p->cur++;
	memset(&p->counts, 0, sizeof(p->counts));
	pthread_mutex_unlock(&p->lock);
}

void test_fault_proxy_get_counts(struct test_fault_proxy *p, struct test_fault_counts *out)
{
	pthread_mutex_lock(&p->lock);
	*out = p->counts;
	pthread_mutex_unlock(&p->lock);
}

int test_fault_proxy_port(const struct test_fault_proxy *p)
{
	return p->port;
}

/* ---------------------------------------------------------------------------------------------
 * One exchange
 * ------------------------------------------------------------------------------------------- */

static int connect_upstream(struct conn *c)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)c->proxy->upstream_port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	pthread_mutex_lock(&c->proxy->lock);
	c->upstream_fd = fd;
	pthread_mutex_unlock(&c->proxy->lock);
	return fd;
}

static void close_upstream(struct conn *c)
{
	pthread_mutex_lock(&c->proxy->lock);
	if (c->upstream_fd >= 0)
		close(c->upstream_fd);
	c->upstream_fd = -1;
	pthread_mutex_unlock(&c->proxy->lock);
}

/* "bytes a-b/total" with its end moved so that it spans @len bytes. */
static void shrink_content_range(const char *in, uint64_t len, char *out, size_t size)
{
	uint64_t a, b;
	char total[32];

	if (sscanf(in, "bytes %" SCNu64 "-%" SCNu64 "/%31s", &a, &b, total) == 3 && len > 0)
		snprintf(out, size, "bytes %" PRIu64 "-%" PRIu64 "/%s", a, a + len - 1, total);
	else
		snprintf(out, size, "%s", in);
}

/*
 * Forward one request (head @req_head, body in @req_body) upstream and relay the answer with
 * @fault applied. 1: keep the client connection, 0: close it.
 */
static int exchange(struct conn *c, const char *method, const char *req_head, size_t req_head_len,
                    const char *req_body, size_t req_body_len, enum test_fault fault)
{
	_cleanup_free_ char *fwd = NULL, *resp_head = NULL;
	struct rbuf up = {0};
	char value[256], status_line[64];
	ssize_t head_len;
	uint64_t body_len = 0, send_len;
	bool known_len, chunked, head_request = strcmp(method, "HEAD") == 0;
	int status = 0, ret = 0, fd;

	fwd = head_strip(req_head, req_head_len, NULL);
	if (!fwd || (fd = connect_upstream(c)) < 0)
		goto out;
	if (send_all(fd, fwd, strlen(fwd)) < 0 ||
	    send_all(fd, "Connection: close\r\n\r\n", 21) < 0 ||
	    (req_body_len > 0 && send_all(fd, req_body, req_body_len) < 0))
		goto out;
	head_len = read_head(&up, fd);
	if (head_len < 0)
		goto out;
	snprintf(status_line, sizeof(status_line), "%.*s", (int)strcspn(up.data, "\r\n"), up.data);
	if (sscanf(status_line, "HTTP/1.%*d %d", &status) != 1)
		goto out;
	chunked =
	        header_get(up.data, (size_t)head_len, "Transfer-Encoding", value, sizeof(value)) &&
	        strcasestr(value, "chunked");
	known_len = !chunked &&
	            header_get(up.data, (size_t)head_len, "Content-Length", value, sizeof(value));
	if (known_len)
		body_len = strtoull(value, NULL, 10);
	if (head_request || status == 204 || status == 304) {
		known_len = true;
		body_len = 0;
	}
	if (!known_len) {
		/* Framed by chunks or by the close: relay to the end and close the client too. */
		resp_head = head_strip(up.data, (size_t)head_len, NULL);
		if (!resp_head || send_all(c->client_fd, resp_head, strlen(resp_head)) < 0 ||
		    send_all(c->client_fd, "Connection: close\r\n\r\n", 21) < 0)
			goto out;
		rbuf_consume(&up, (size_t)head_len);
		do {
			if (up.len > 0 && send_all(c->client_fd, up.data, up.len) < 0)
				goto out;
			up.len = 0;
		} while (rbuf_fill(&up, fd, 0) == 0);
		goto out;
	}
	send_len = body_len;
	if ((fault == TEST_FAULT_DROP_MID_BODY || fault == TEST_FAULT_SHORT_BODY) && body_len >= 2)
		send_len = body_len / 2;
	if (fault == TEST_FAULT_SHORT_BODY && send_len != body_len) {
		const char *const drop[] = {"Content-Length", "Content-Range", NULL};
		char range[256] = "", line[320];
		int n;

		if (header_get(up.data, (size_t)head_len, "Content-Range", value, sizeof(value)))
			shrink_content_range(value, send_len, range, sizeof(range));
		resp_head = head_strip(up.data, (size_t)head_len, drop);
		n = snprintf(line, sizeof(line), "Content-Length: %" PRIu64 "\r\n%s%s%s\r\n",
		             send_len, range[0] ? "Content-Range: " : "", range,
		             range[0] ? "\r\n" : "");
		if (!resp_head || send_all(c->client_fd, resp_head, strlen(resp_head)) < 0 ||
		    send_all(c->client_fd, line, (size_t)n) < 0)
			goto out;
	} else {
		resp_head = head_strip(up.data, (size_t)head_len, NULL);
		if (!resp_head || send_all(c->client_fd, resp_head, strlen(resp_head)) < 0 ||
		    send_all(c->client_fd, "\r\n", 2) < 0)
			goto out;
	}
	rbuf_consume(&up, (size_t)head_len);
	/* The body, in chunks; only send_len of body_len bytes reach the client. */
	for (uint64_t done = 0; done < body_len;) {
		size_t n;

		if (up.len == 0 && rbuf_fill(&up, fd, 0) < 0)
			goto out;
		n = up.len;
		if (n > body_len - done)
			n = (size_t)(body_len - done);
		if (done < send_len) {
			size_t give = send_len - done < n ? (size_t)(send_len - done) : n;

			if (send_all(c->client_fd, up.data, give) < 0)
				goto out;
		}
		done += n;
		up.len = 0; /* upstream closes after this answer: nothing follows */
		if (fault == TEST_FAULT_DROP_MID_BODY && done >= send_len && send_len < body_len)
			goto out;
	}
	ret = fault == TEST_FAULT_DROP_MID_BODY && send_len < body_len ? 0 : 1;
out:
	free(up.data);
	close_upstream(c);
	return ret;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct rbuf in = {0};

	for (;;) {
		char method[16] = "", value[64];
		uint64_t body_len = 0;
		unsigned param = 0;
		enum test_fault fault;
		ssize_t head_len = read_head(&in, c->client_fd);
		bool head_request;

		if (head_len < 0 || sscanf(in.data, "%15s ", method) != 1)
			break;
		if (header_get(in.data, (size_t)head_len, "Content-Length", value, sizeof(value)))
			body_len = strtoull(value, NULL, 10);
		if (body_len > BODY_MAX)
			break;
		if (header_get(in.data, (size_t)head_len, "Expect", value, sizeof(value)) &&
		    strcasecmp(value, "100-continue") == 0 &&
		    send_all(c->client_fd, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
			break;
		if (read_n(&in, c->client_fd, (size_t)head_len + (size_t)body_len) < 0)
			break;
		fault = plan_take(c->proxy, method, &param);
		head_request = strcmp(method, "HEAD") == 0;
		if (fault == TEST_FAULT_CLOSE)
			break;
		if (fault == TEST_FAULT_HTTP_500) {
			if (send_error(c->client_fd, head_request, 500, "Internal Server Error",
			               "InternalError", 0) < 0)
				break;
		} else if (fault == TEST_FAULT_HTTP_503) {
			if (send_error(c->client_fd, head_request, 503, "Service Unavailable",
			               "ServerBusy", param) < 0)
				break;
		} else if (exchange(c, method, in.data, (size_t)head_len, in.data + head_len,
		                    (size_t)body_len, fault) <= 0) {
			break;
		}
		rbuf_consume(&in, (size_t)head_len + (size_t)body_len);
	}
	free(in.data);
	/* The fd is closed by test_fault_proxy_stop(); shut it now so the client sees the end. */
	shutdown(c->client_fd, SHUT_RDWR);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct test_fault_proxy *p = arg;

	for (;;) {
		int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		struct conn *c;
		int one = 1;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break; /* shut down by test_fault_proxy_stop() */
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->proxy = p;
		c->client_fd = fd;
		c->upstream_fd = -1;
		pthread_mutex_lock(&p->lock);
		if (p->stopping || pthread_create(&c->thread, NULL, conn_main, c) != 0) {
			pthread_mutex_unlock(&p->lock);
			close(fd);
			free(c);
			continue;
		}
		c->next = p->conns;
		p->conns = c;
		p->counts.connections++;
		pthread_mutex_unlock(&p->lock);
	}
	return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------------------------- */

int test_fault_proxy_start(int upstream_port, struct test_fault_proxy **out)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	struct test_fault_proxy *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	p->upstream_port = upstream_port;
	pthread_mutex_init(&p->lock, NULL);
	p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(p->listen_fd, 64) < 0 ||
	    getsockname(p->listen_fd, (struct sockaddr *)&sa, &sl) < 0) {
		r = -errno;
		goto fail;
	}
	p->port = ntohs(sa.sin_port);
	r = -pthread_create(&p->accept_thread, NULL, accept_main, p);
	if (r < 0)
		goto fail;
	*out = p;
	return 0;
fail:
	if (p->listen_fd >= 0)
		close(p->listen_fd);
	pthread_mutex_destroy(&p->lock);
	free(p);
	return r;
}

void test_fault_proxy_stop(struct test_fault_proxy *p)
{
	struct conn *c;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_mutex_unlock(&p->lock);
	shutdown(p->listen_fd, SHUT_RDWR); /* wakes accept() with EINVAL */
	pthread_join(p->accept_thread, NULL);
	close(p->listen_fd);
	/* Wake every connection thread blocked on either side, then wait for it. */
	pthread_mutex_lock(&p->lock);
	for (c = p->conns; c; c = c->next) {
		shutdown(c->client_fd, SHUT_RDWR);
		if (c->upstream_fd >= 0)
			shutdown(c->upstream_fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&p->lock);
	while ((c = p->conns)) {
		p->conns = c->next;
		pthread_join(c->thread, NULL);
		close(c->client_fd);
		free(c);
	}
	pthread_mutex_destroy(&p->lock);
	free(p);
}
