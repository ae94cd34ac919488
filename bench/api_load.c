/* SPDX-License-Identifier: MIT */
/*
 * SKR API load benchmark (issue 4): C clients (default 200) POST /key/release to a running
 * confidential-sidecar at once, each sending its next request as soon as its previous one is
 * answered, until N requests (default 1000) have been answered. One libcurl multi handle drives
 * every connection from one thread, so the client itself needs little CPU and no locking.
 *
 * Printed:
 *   - throughput (answered requests per second of wall time, first request to last answer);
 *   - p50/p90/p99/max latency of the successful requests (request sent → last byte received);
 *   - errors by HTTP status (with the first error message of each) and by transport error; a
 *     200 whose body is not {"key":"<JWK with kty and k>"} counts as an error too;
 *   - GET /status probed every 200 ms during the load (the API answers it on its I/O threads,
 *     never behind the releases);
 *   - the daemon's memory from /proc/<pid>/status: VmRSS idle before the run, VmHWM (peak
 *     resident set) and VmRSS after it, with the anonymous/file split and the thread count, and
 *     the peak of RssAnon sampled every 100 ms (the part of the peak that load adds: file pages
 *     are the shared libraries, mapped once);
 *   - the daemon's CPU time per request (/proc/<pid>/stat), which does not depend on what
 *     else runs on the machine, unlike throughput.
 * Goals (PASS/MISS): 0 errors, p99 <= 5 x p50, peak RSS <= 8 MiB (a daemon with no mounts).
 * Exit 0 whether or not the goals are met; 1 when the benchmark cannot run; 2 on usage.
 *
 * Starts nothing itself: bench/run-api-load.sh sets up devcloud, the key and the daemon. The
 * response bodies carry released keys: they are checked, erased and never printed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "bench_common.h"
#include "cleanup.h"
#include "ossl.h"

#define GOAL_P99_OVER_P50 5.0
#define GOAL_PEAK_RSS_KB (8 * 1024)
#define BODY_MAX (64 * 1024)
#define STATUS_PROBE_MS 200
#define MEM_SAMPLE_MS 100
#define ERROR_MSG_MAX 160

DEFINE_CLEANUP_FUNC(FILE *, fclose)

struct load_options {
	const char *host, *maa_endpoint, *akv_endpoint, *kid;
	long port, pid, requests, concurrency, warmup, timeout_s;
	bool new_connections;
};

/* What one curl handle receives; the body may hold a released key. */
struct buffer {
	char data[BODY_MAX + 1];
	size_t len;
	bool too_big;
};

struct client {
	CURL *h;
	struct buffer body;
	double t0;
};

/* Figures of /proc/<pid>/status, in kB (threads: a count); -1 when absent. */
struct proc_mem {
	long vm_rss, vm_hwm, rss_anon, rss_file, threads;
};

struct results {
	double *latency_ms; /* successful requests */
	size_t n_ok, n_done;
	size_t by_status[600];
	char *first_message[600];
	size_t by_curl[CURL_LAST];
	size_t malformed;
	double *probe_ms;
	size_t n_probes, probe_cap, probe_failures;
	long peak_anon_kb; /* sampled; -1 when never read */
};

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: api_load --port PORT --pid PID --maa-endpoint HOST:PORT\n"
	        "                --akv-endpoint HOST:PORT --kid NAME [-n N] [-c C] [--warmup N]\n"
	        "                [--host ADDR] [--timeout-s S] [--new-connections]\n"
	        "\n"
	        "  --port PORT         the daemon's API port\n"
	        "  --pid PID           the daemon's process (its memory is read from /proc)\n"
	        "  -n, --requests N    POST /key/release requests in all (default 1000)\n"
	        "  -c, --concurrency C clients sending at once (default 200)\n"
	        "      --warmup N      unmeasured requests one after another first (default 1)\n"
	        "      --host ADDR     the daemon's address (default 127.0.0.1)\n"
	        "      --timeout-s S   per request (default 300)\n"
	        "      --new-connections  a new connection per request (default: keep-alive)\n");
}

static int parse_options(int argc, char **argv, struct load_options *o)
{
	const struct bench_opt opts[] = {
	        {"port", 0, BENCH_OPT_LONG, &o->port, .min = 1, .max = 65535, .required = true},
	        {"pid", 0, BENCH_OPT_LONG, &o->pid, .min = 1, .max = 1L << 30, .required = true},
	        {"maa-endpoint", 0, BENCH_OPT_STRING, &o->maa_endpoint, .required = true},
	        {"akv-endpoint", 0, BENCH_OPT_STRING, &o->akv_endpoint, .required = true},
	        {"kid", 0, BENCH_OPT_STRING, &o->kid, .required = true},
	        {"requests", 'n', BENCH_OPT_LONG, &o->requests, .min = 1, .max = 10000000},
	        {"concurrency", 'c', BENCH_OPT_LONG, &o->concurrency, .min = 1, .max = 10000},
	        {"warmup", 0, BENCH_OPT_LONG, &o->warmup, .min = 0, .max = 1000},
	        {"host", 0, BENCH_OPT_STRING, .dest = &o->host},
	        {"timeout-s", 0, BENCH_OPT_LONG, &o->timeout_s, .min = 1, .max = 3600},
	        {"new-connections", 0, BENCH_OPT_FLAG, .dest = &o->new_connections},
	};
	int r;

	o->host = "127.0.0.1";
	o->requests = 1000;
	o->concurrency = 200;
	o->warmup = 1;
	o->timeout_s = 300;
	r = bench_parse_options("api_load", argc, argv, opts, ELEMENTSOF(opts), usage);
	if (r < 0)
		return r;
	if (o->concurrency > o->requests)
		o->concurrency = o->requests;
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The daemon's memory
 * ------------------------------------------------------------------------------------------- */

static int proc_mem_read(long pid, struct proc_mem *m)
{
	static const struct {
		const char *name;
		size_t off;
	} fields[] = {
	        {"VmRSS:", offsetof(struct proc_mem, vm_rss)},
	        {"VmHWM:", offsetof(struct proc_mem, vm_hwm)},
	        {"RssAnon:", offsetof(struct proc_mem, rss_anon)},
	        {"RssFile:", offsetof(struct proc_mem, rss_file)},
	        {"Threads:", offsetof(struct proc_mem, threads)},
	};
	char path[64], line[256];
	_cleanup_(fclosep) FILE *f = NULL;

	*m = (struct proc_mem){-1, -1, -1, -1, -1};
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
			size_t n = strlen(fields[i].name);

			if (strncmp(line, fields[i].name, n) == 0)
				*(long *)((char *)m + fields[i].off) = strtol(line + n, NULL, 10);
		}
	return m->vm_rss >= 0 && m->vm_hwm >= 0 ? 0 : -ENODATA;
}

/* utime + stime of @pid in seconds, or a negative value. */
static double proc_cpu_s(long pid)
{
	char path[64], buf[1024];
	_cleanup_(fclosep) FILE *f = NULL;
	unsigned long utime, stime;
	const char *p;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	/* After "pid (comm)": state is field 3, utime and stime fields 14 and 15. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
	                 &stime) != 2)
		return -1;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double mib(long kb)
{
	return (double)kb / 1024.0;
}

/* ---------------------------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------------------------- */

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct buffer *b = userdata;
	size_t n = size * nmemb;

	if (n > BODY_MAX - b->len) {
		b->too_big = true;
		return 0;
	}
	memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

static void buffer_erase(struct buffer *b)
{
	explicit_bzero(b->data, b->len);
	b->len = 0;
	b->too_big = false;
}

/* {"key": "<JWK as a JSON string>"} with the JWK's kty and k present (protocols.md §7.2). */
static bool release_body_ok(const struct buffer *b)
{
	_cleanup_json_ json_object *root = NULL, *jwk = NULL;
	json_object *key, *kty, *k;

	if (b->too_big || !(root = json_tokener_parse(b->data)) ||
	    !json_object_object_get_ex(root, "key", &key) ||
	    !json_object_is_type(key, json_type_string) ||
	    !(jwk = json_tokener_parse(json_object_get_string(key))))
		return false;
	return json_object_object_get_ex(jwk, "kty", &kty) &&
	       json_object_is_type(kty, json_type_string) &&
	       json_object_object_get_ex(jwk, "k", &k) &&
	       json_object_is_type(k, json_type_string) && json_object_get_string_len(k) > 0;
}

/* The "error" message of an error body (never a secret: the API puts none there). */
static char *error_message(const struct buffer *b)
{
	_cleanup_json_ json_object *root = b->too_big ? NULL : json_tokener_parse(b->data);
	json_object *msg;
	const char *s = "(no {\"error\": ...} body)";

	if (root && json_object_object_get_ex(root, "error", &msg) &&
	    json_object_is_type(msg, json_type_string))
		s = json_object_get_string(msg);
	return strndup(s, ERROR_MSG_MAX);
}

static CURL *handle_new(const struct load_options *o, const char *url, const char *body,
                        struct curl_slist *headers, struct buffer *buf)
{
	CURL *h = curl_easy_init();

	if (!h)
		return NULL;
	if (curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_TIMEOUT, o->timeout_s) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_WRITEDATA, buf) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, o->new_connections ? 1L : 0L) != CURLE_OK ||
	    (body && (curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
	              curl_easy_setopt(h, CURLOPT_POSTFIELDS, body) != CURLE_OK))) {
		curl_easy_cleanup(h);
		return NULL;
	}
	return h;
}

/* Account for one finished release request. */
static void record_release(struct results *res, CURL *h, CURLcode rc, struct buffer *b, double ms)
{
	long status = 0;

	res->n_done++;
	if (rc != CURLE_OK) {
		res->by_curl[rc < CURL_LAST ? rc : CURLE_RECV_ERROR]++;
	} else {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		if (status < 0 || status >= 600)
			status = 0;
		if (status == 200 && release_body_ok(b)) {
			res->latency_ms[res->n_ok++] = ms;
		} else if (status == 200) {
			res->malformed++;
		} else {
			res->by_status[status]++;
			if (!res->first_message[status])
				res->first_message[status] = error_message(b);
		}
	}
	buffer_erase(b);
}

static void record_probe(struct results *res, CURL *h, CURLcode rc, struct buffer *b, double ms)
{
	long status = 0;

	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	buffer_erase(b);
	if (status != 200) {
		res->probe_failures++;
		return;
	}
	if (res->n_probes == res->probe_cap) {
		size_t cap = res->probe_cap ? res->probe_cap * 2 : 256;
		double *p = realloc(res->probe_ms, cap * sizeof(*p));

		if (!p)
			return;
		res->probe_ms = p;
		res->probe_cap = cap;
	}
	res->probe_ms[res->n_probes++] = ms;
}

/* @n requests one after another (warm-up); returns how many failed. */
static long run_sequential(CURL *h, struct buffer *b, long n)
{
	long failed = 0;

	for (long i = 0; i < n; i++) {
		long status = 0;

		if (curl_easy_perform(h) == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		if (status != 200 || !release_body_ok(b))
			failed++;
		buffer_erase(b);
	}
	return failed;
}

/*
 * The measured run: every client sends, each sends again when answered, until o->requests have
 * been sent; GET /status every STATUS_PROBE_MS meanwhile. Returns the wall time in ms.
 */
static int run_load(const struct load_options *o, const char *release_url, const char *status_url,
                    const char *body, struct curl_slist *headers, struct results *res,
                    double *wall_ms)
{
	_cleanup_free_ struct client *clients = calloc((size_t)o->concurrency, sizeof(*clients));
	_cleanup_free_ struct buffer *probe_buf = calloc(1, sizeof(*probe_buf));
	CURLM *multi = curl_multi_init();
	CURL *probe = NULL;
	long sent = 0;
	double start, next_probe, next_sample, probe_t0 = 0;
	bool probe_busy = false;
	int running = 0, r = 0;

	if (!clients || !probe_buf || !multi) {
		r = -ENOMEM;
		goto out;
	}
	/* Every client its own connection, all kept for the next request. */
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, o->concurrency + 1);
	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
	for (long i = 0; i < o->concurrency; i++) {
		clients[i].h = handle_new(o, release_url, body, headers, &clients[i].body);
		if (!clients[i].h) {
			r = -ENOMEM;
			goto out;
		}
		curl_easy_setopt(clients[i].h, CURLOPT_PRIVATE, &clients[i]);
	}
	probe = handle_new(o, status_url, NULL, NULL, probe_buf);
	if (!probe) {
		r = -ENOMEM;
		goto out;
	}

	start = bench_now_ms();
	next_probe = start + STATUS_PROBE_MS;
	next_sample = start;
	for (long i = 0; i < o->concurrency; i++) {
		clients[i].t0 = bench_now_ms();
		curl_multi_add_handle(multi, clients[i].h);
		sent++;
	}
	while (res->n_done < (size_t)o->requests) {
		CURLMsg *msg;
		int left;

		if (curl_multi_perform(multi, &running) != CURLM_OK ||
		    curl_multi_poll(multi, NULL, 0, 20, NULL) != CURLM_OK) {
			fprintf(stderr, "api_load: curl multi interface failed\n");
			r = -EIO;
			goto out;
		}
		while ((msg = curl_multi_info_read(multi, &left))) {
			CURL *h = msg->easy_handle;
			CURLcode rc = msg->data.result;
			struct client *c = NULL;
			double t = bench_now_ms();

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_multi_remove_handle(multi, h);
			if (h == probe) {
				record_probe(res, h, rc, probe_buf, t - probe_t0);
				probe_busy = false;
				continue;
			}
			curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&c);
			record_release(res, h, rc, &c->body, t - c->t0);
			if (sent < o->requests) {
				c->t0 = bench_now_ms();
				curl_multi_add_handle(multi, h);
				sent++;
			}
		}
		if (bench_now_ms() >= next_sample) {
			struct proc_mem m;

			next_sample = bench_now_ms() + MEM_SAMPLE_MS;
			if (proc_mem_read(o->pid, &m) == 0 && m.rss_anon > res->peak_anon_kb)
				res->peak_anon_kb = m.rss_anon;
		}
		if (!probe_busy && bench_now_ms() >= next_probe &&
		    res->n_done < (size_t)o->requests) {
			probe_t0 = bench_now_ms();
			next_probe = probe_t0 + STATUS_PROBE_MS;
			curl_multi_add_handle(multi, probe);
			probe_busy = true;
		}
	}
	*wall_ms = bench_now_ms() - start;
out:
	if (probe) {
		if (probe_busy)
			curl_multi_remove_handle(multi, probe);
		curl_easy_cleanup(probe);
	}
	for (long i = 0; clients && i < o->concurrency; i++)
		if (clients[i].h) {
			curl_multi_remove_handle(multi, clients[i].h);
			curl_easy_cleanup(clients[i].h);
			buffer_erase(&clients[i].body);
		}
	curl_multi_cleanup(multi);
	return r;
}

/* ---------------------------------------------------------------------------------------------
 * Report
 * ------------------------------------------------------------------------------------------- */

static size_t print_errors(const struct results *res)
{
	size_t total = res->malformed;

	for (size_t s = 0; s < 600; s++)
		total += res->by_status[s];
	for (size_t c = 0; c < CURL_LAST; c++)
		total += res->by_curl[c];
	printf("errors           %zu\n", total);
	for (size_t s = 0; s < 600; s++)
		if (res->by_status[s])
			printf("  HTTP %3zu       %zu  (first: %s)\n", s, res->by_status[s],
			       res->first_message[s] ? res->first_message[s] : "?");
	if (res->malformed)
		printf("  HTTP 200       %zu  with a body that is not {\"key\": \"<JWK>\"}\n",
		       res->malformed);
	for (size_t c = 0; c < CURL_LAST; c++)
		if (res->by_curl[c])
			printf("  transport      %zu  %s\n", res->by_curl[c],
			       curl_easy_strerror((CURLcode)c));
	return total;
}

static void print_mem(const char *what, const struct proc_mem *m)
{
	printf("  %-28s VmRSS %6ld kB (%.1f MiB): anon %ld kB, file %ld kB; %ld threads\n", what,
	       m->vm_rss, mib(m->vm_rss), m->rss_anon, m->rss_file, m->threads);
}

int main(int argc, char **argv)
{
	struct load_options o = {0};
	struct results res = {.peak_anon_kb = -1};
	struct proc_mem idle, after;
	_cleanup_json_ json_object *req = NULL;
	_cleanup_free_ char *release_url = NULL, *status_url = NULL, *body = NULL;
	_cleanup_free_ struct buffer *warm_buf = NULL;
	struct curl_slist *headers = NULL;
	CURL *warm = NULL;
	double wall_ms = 0, p50, p90, p99, max, cpu0, cpu1;
	size_t errors;
	long warm_failed;
	int r, rc = 1;
	bool ipv6;

	if (parse_options(argc, argv, &o) < 0)
		return 2;
	ipv6 = strchr(o.host, ':') != NULL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "api_load: curl_global_init failed\n");
		return 1;
	}
	req = json_object_new_object();
	if (!req ||
	    json_object_object_add(req, "maa_endpoint", json_object_new_string(o.maa_endpoint)) <
	            0 ||
	    json_object_object_add(req, "akv_endpoint", json_object_new_string(o.akv_endpoint)) <
	            0 ||
	    json_object_object_add(req, "kid", json_object_new_string(o.kid)) < 0 ||
	    !(body = strdup(json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN))) ||
	    asprintf(&release_url, "http://%s%s%s:%ld/key/release", ipv6 ? "[" : "", o.host,
	             ipv6 ? "]" : "", o.port) < 0 ||
	    asprintf(&status_url, "http://%s%s%s:%ld/status", ipv6 ? "[" : "", o.host,
	             ipv6 ? "]" : "", o.port) < 0 ||
	    !(headers = curl_slist_append(NULL, "Content-Type: application/json")) ||
	    !curl_slist_append(headers, "Expect:") || !(warm_buf = calloc(1, sizeof(*warm_buf))) ||
	    !(res.latency_ms = calloc((size_t)o.requests, sizeof(double)))) {
		fprintf(stderr, "api_load: out of memory\n");
		goto out;
	}

	r = proc_mem_read(o.pid, &idle);
	if (r < 0) {
		fprintf(stderr,
		        "api_load: cannot read /proc/%ld/status: %s (is --pid the daemon?)\n",
		        o.pid, strerror(-r));
		goto out;
	}
	warm = handle_new(&o, release_url, body, headers, warm_buf);
	if (!warm) {
		fprintf(stderr, "api_load: out of memory\n");
		goto out;
	}
	fprintf(stderr, "api_load: %ld warm-up request(s), then %ld requests from %ld clients\n",
	        o.warmup, o.requests, o.concurrency);
	warm_failed = run_sequential(warm, warm_buf, o.warmup);
	curl_easy_cleanup(warm);
	if (warm_failed)
		fprintf(stderr, "api_load: %ld of %ld warm-up request(s) failed\n", warm_failed,
		        o.warmup);

	cpu0 = proc_cpu_s(o.pid);
	r = run_load(&o, release_url, status_url, body, headers, &res, &wall_ms);
	if (r < 0)
		goto out;
	cpu1 = proc_cpu_s(o.pid);
	r = proc_mem_read(o.pid, &after);
	if (r < 0) {
		fprintf(stderr,
		        "api_load: cannot read /proc/%ld/status after the run: %s (did the "
		        "daemon exit?)\n",
		        o.pid, strerror(-r));
		after = (struct proc_mem){-1, -1, -1, -1, -1};
	}

	bench_sort(res.latency_ms, res.n_ok);
	p50 = bench_percentile(res.latency_ms, res.n_ok, 50);
	p90 = bench_percentile(res.latency_ms, res.n_ok, 90);
	p99 = bench_percentile(res.latency_ms, res.n_ok, 99);
	max = res.n_ok ? res.latency_ms[res.n_ok - 1] : 0;

	printf("API load benchmark: %ld POST /key/release from %ld concurrent clients (%s), "
	       "daemon pid %ld on %s:%ld, key '%s' at %s, devcloud on loopback\n\n",
	       o.requests, o.concurrency,
	       o.new_connections ? "a new connection per request" : "keep-alive connections", o.pid,
	       o.host, o.port, o.kid, o.akv_endpoint);
	printf("throughput       %.1f req/s (%zu answered in %.1f s; %zu successful: %.1f/s)\n",
	       (double)res.n_done / (wall_ms / 1e3), res.n_done, wall_ms / 1e3, res.n_ok,
	       (double)res.n_ok / (wall_ms / 1e3));
	if (res.n_ok)
		printf("latency          p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms "
		       "(successful requests, sent to answered)\n",
		       p50, p90, p99, max);
	else
		printf("latency          no successful request\n");
	if (cpu0 >= 0 && cpu1 >= cpu0)
		printf("daemon CPU       %.1f ms per request (%.1f s in all; %ld CPUs online)\n",
		       (cpu1 - cpu0) * 1e3 / (double)res.n_done, cpu1 - cpu0,
		       sysconf(_SC_NPROCESSORS_ONLN));
	errors = print_errors(&res);
	if (res.n_probes) {
		bench_sort(res.probe_ms, res.n_probes);
		printf("GET /status      %zu probes during the load: p50 %.1f ms, max %.1f ms, "
		       "%zu failed\n",
		       res.n_probes, bench_percentile(res.probe_ms, res.n_probes, 50),
		       res.probe_ms[res.n_probes - 1], res.probe_failures);
	} else {
		printf("GET /status      %s\n", res.probe_failures
		                                        ? "every probe during the load failed"
		                                        : "not probed (the run was too short)");
	}
	printf("daemon memory (/proc/%ld/status)\n", o.pid);
	print_mem("idle, before the run:", &idle);
	if (after.vm_hwm >= 0) {
		print_mem("after the run:", &after);
		printf("  %-28s VmHWM %6ld kB (%.1f MiB)\n", "peak since start:", after.vm_hwm,
		       mib(after.vm_hwm));
	}
	if (res.peak_anon_kb >= 0)
		printf("  %-28s RssAnon %4ld kB (%.1f MiB), sampled every %d ms\n",
		       "peak anonymous, run:", res.peak_anon_kb, mib(res.peak_anon_kb),
		       MEM_SAMPLE_MS);

	printf("\ngoals\n");
	printf("  %-30s %s (%zu)\n", "0 errors", errors == 0 ? "PASS" : "MISS", errors);
	if (res.n_ok)
		printf("  %-30s %s (p99/p50 = %.2f)\n", "p99 <= 5 x p50",
		       p99 <= GOAL_P99_OVER_P50 * p50 ? "PASS" : "MISS", p99 / p50);
	else
		printf("  %-30s MISS (no successful request)\n", "p99 <= 5 x p50");
	if (after.vm_hwm >= 0)
		printf("  %-30s %s (VmHWM %.1f MiB)\n", "peak RSS <= 8 MiB, no mounts",
		       after.vm_hwm <= GOAL_PEAK_RSS_KB ? "PASS" : "MISS", mib(after.vm_hwm));
	else
		printf("  %-30s MISS (not measured: the daemon is gone)\n",
		       "peak RSS <= 8 MiB, no mounts");
	rc = 0;
out:
	for (size_t s = 0; s < 600; s++)
		free(res.first_message[s]);
	free(res.latency_ms);
	free(res.probe_ms);
	if (warm_buf)
		buffer_erase(warm_buf);
	curl_slist_free_all(headers);
	curl_global_cleanup();
	return rc;
}
