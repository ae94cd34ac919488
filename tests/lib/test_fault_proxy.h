/* SPDX-License-Identifier: MIT */
/*
 * A fault-injecting HTTP/1.1 proxy for tests: threads of the test process listening on a
 * loopback port in front of a real server (Azurite), forwarding each request on its own
 * upstream connection and, following a scriptable plan, breaking some answers the ways real
 * networks and storage services do: a connection dropped mid-body, 500, 503 with Retry-After,
 * a short body, a connection closed without an answer. It counts what it saw so a test can
 * check that the fault really happened and how many attempts the client made.
 *
 * Clients keep their connections alive to the proxy as to a real server; "Expect:
 * 100-continue" is answered by the proxy itself.
 */
#pragma once

#include <limits.h>
#include <stddef.h>

enum test_fault {
	TEST_FAULT_PASS = 0,      /* forward untouched */
	TEST_FAULT_CLOSE,         /* close the client's connection without answering */
	TEST_FAULT_DROP_MID_BODY, /* upstream's head and half its body, then close */
	TEST_FAULT_SHORT_BODY,    /* a well-formed answer with half the body: Content-Length and
	                             Content-Range shrunk to match, connection kept */
	TEST_FAULT_HTTP_500,      /* 500 InternalError, not forwarded */
	TEST_FAULT_HTTP_503,      /* 503 ServerBusy with "Retry-After: param", not forwarded */
};

#define TEST_FAULT_FOREVER UINT_MAX

/* One step of a plan: the next @count requests whose method is @method get @fault. */
struct test_fault_step {
	enum test_fault fault;
	unsigned count;     /* TEST_FAULT_FOREVER: every matching request from then on */
	const char *method; /* "GET", "HEAD", "PUT"; NULL: any */
	unsigned param;     /* TEST_FAULT_HTTP_503: the Retry-After seconds */
};

struct test_fault_counts {
	unsigned requests; /* requests received (all methods) */
	unsigned gets, heads, puts;
	unsigned faults;      /* requests answered with a fault */
	unsigned connections; /* client connections accepted */
};

struct test_fault_proxy;

/* Listen on 127.0.0.1 (ephemeral port) in front of 127.0.0.1:@upstream_port. 0 or -errno. */
int test_fault_proxy_start(int upstream_port, struct test_fault_proxy **out);

int test_fault_proxy_port(const struct test_fault_proxy *p);

/*
 * Replace the plan (copied; at most 16 steps) and zero the counts. Steps are used in order:
 * a request matching the current step's method gets its fault and uses one of its count;
 * other requests pass. After the last step everything passes. @n 0: pass everything.
 */
void test_fault_proxy_set_plan(struct test_fault_proxy *p, const struct test_fault_step *steps,
                               size_t n);

void test_fault_proxy_get_counts(struct test_fault_proxy *p, struct test_fault_counts *out);

/* Close every connection, join every thread, free. NULL is a no-op. */
void test_fault_proxy_stop(struct test_fault_proxy *p);
