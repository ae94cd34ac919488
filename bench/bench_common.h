/* SPDX-License-Identifier: MIT */
/*
 * Plumbing the benchmarks share: command-line options, a monotonic clock, sleeping, percentiles.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* CLOCK_MONOTONIC in milliseconds. */
double bench_now_ms(void);

/* Sleep @ms milliseconds, resuming after signals. */
void bench_sleep_ms(long ms);

/*
 * @s as a decimal number in @min..@max into @out; otherwise prints "<prog>: <opt> must be
 * <min>..<max>, not '<s>'" to stderr and returns -EINVAL.
 */
int bench_parse_long(const char *prog, const char *opt, const char *s, long min, long max,
                     long *out);

/* Sort @n values ascending, for bench_percentile(). */
void bench_sort(double *v, size_t n);

/* Nearest-rank percentile @p (0..100] of @n sorted values; 0 when @n is 0. */
double bench_percentile(const double *sorted, size_t n, unsigned p);

/* How an option's argument is stored. */
enum bench_opt_kind {
	BENCH_OPT_STRING, /* dest: const char **, the argument itself */
	BENCH_OPT_LONG,   /* dest: long *, a number in min..max (bench_parse_long) */
	BENCH_OPT_FLAG,   /* dest: bool *, set to true; takes no argument */
	BENCH_OPT_CUSTOM, /* parse(prog, arg, dest); it prints its own message on failure */
};

struct bench_opt {
	const char *name; /* long name without "--" */
	char short_name;  /* 0: long only */
	enum bench_opt_kind kind;
	void *dest;
	long min, max;
	bool required;
	int (*parse)(const char *prog, const char *arg, void *dest);
};

/*
 * getopt_long over @opts (@n_opts entries) plus -h/--help, which prints @usage to stdout and
 * exits 0. Unknown options, stray arguments and missing required options print @usage to
 * stderr; every failure returns -EINVAL. Defaults are whatever the destinations hold before.
 */
int bench_parse_options(const char *prog, int argc, char **argv, const struct bench_opt *opts,
                        size_t n_opts, void (*usage)(FILE *f));
