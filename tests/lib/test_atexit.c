/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>

#include "test_atexit.h"

#define CLEANUPS_MAX 16

static struct {
	void (*fn)(void *arg);
	void *arg;
} cleanups[CLEANUPS_MAX];
static size_t n_cleanups;

static void run_cleanups(void)
{
	while (n_cleanups > 0) {
		n_cleanups--;
		cleanups[n_cleanups].fn(cleanups[n_cleanups].arg);
	}
}

void test_atexit(void (*fn)(void *arg), void *arg)
{
	for (size_t i = 0; i < n_cleanups; i++)
		if (cleanups[i].fn == fn && cleanups[i].arg == arg)
			return;
	if (n_cleanups == CLEANUPS_MAX) {
		fprintf(stderr, "test_atexit: more than %d cleanups\n", CLEANUPS_MAX);
		abort();
	}
	if (n_cleanups == 0 && atexit(run_cleanups) != 0)
		abort();
	cleanups[n_cleanups].fn = fn;
	cleanups[n_cleanups].arg = arg;
	n_cleanups++;
}
