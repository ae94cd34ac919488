/* SPDX-License-Identifier: MIT */
/*
 * Plumbing the benchmarks share (bench_common.h).
 */
#include "bench_common.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"

double bench_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void bench_sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int bench_parse_long(const char *prog, const char *opt, const char *s, long min, long max,
                     long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "%s: %s must be %ld..%ld, not '%s'\n", prog, opt, min, max, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

void bench_sort(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
}

double bench_percentile(const double *sorted, size_t n, unsigned p)
{
	size_t i = (n * p + 99) / 100;

	return n ? sorted[i ? i - 1 : 0] : 0;
}

static int opt_store(const char *prog, const struct bench_opt *opt, const char *arg)
{
	char flag[64];

	switch (opt->kind) {
	case BENCH_OPT_STRING:
		*(const char **)opt->dest = arg;
		return 0;
	case BENCH_OPT_LONG:
		snprintf(flag, sizeof(flag), "--%s", opt->name);
		return bench_parse_long(prog, flag, arg, opt->min, opt->max, opt->dest);
	case BENCH_OPT_FLAG:
		*(bool *)opt->dest = true;
		return 0;
	case BENCH_OPT_CUSTOM:
		return opt->parse(prog, arg, opt->dest) < 0 ? -EINVAL : 0;
	}
	return -EINVAL;
}

int bench_parse_options(const char *prog, int argc, char **argv, const struct bench_opt *opts,
                        size_t n_opts, void (*usage)(FILE *f))
{
	/* getopt_long's value of a long-only option: its index above any character. */
	enum { LONG_ONLY = 0x100 };
	_cleanup_free_ struct option *longopts = calloc(n_opts + 2, sizeof(*longopts));
	_cleanup_free_ bool *seen = calloc(n_opts ? n_opts : 1, sizeof(*seen));
	_cleanup_free_ char *shortopts = malloc(2 * n_opts + 2);
	bool missing = false;
	size_t k = 0;
	int c;

	if (!longopts || !seen || !shortopts) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return -EINVAL;
	}
	for (size_t i = 0; i < n_opts; i++) {
		bool has_arg = opts[i].kind != BENCH_OPT_FLAG;

		longopts[i] = (struct option){
		        opts[i].name, has_arg ? required_argument : no_argument, NULL,
		        opts[i].short_name ? opts[i].short_name : LONG_ONLY + (int)i};
		if (opts[i].short_name) {
			shortopts[k++] = opts[i].short_name;
			if (has_arg)
				shortopts[k++] = ':';
		}
	}
	longopts[n_opts] = (struct option){"help", no_argument, NULL, 'h'};
	shortopts[k++] = 'h';
	shortopts[k] = '\0';

	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) >= 0) {
		size_t i = n_opts;

		if (c == 'h') {
			usage(stdout);
			exit(EXIT_SUCCESS);
		}
		if (c >= LONG_ONLY)
			i = (size_t)(c - LONG_ONLY);
		else
			for (i = 0; i < n_opts && opts[i].short_name != c; i++)
				;
		if (i >= n_opts) {
			usage(stderr);
			return -EINVAL;
		}
		if (opt_store(prog, &opts[i], optarg) < 0)
			return -EINVAL;
		seen[i] = true;
	}
	for (size_t i = 0; i < n_opts; i++)
		missing = missing || (opts[i].required && !seen[i]);
	if (optind < argc || missing) {
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}
