/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_log.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *captured;
static size_t used, cap;

static void capture(enum log_level level, const char *msg, void *userdata)
{
	const char *name = log_level_name(level);
	size_t need;

	(void)userdata;
	pthread_mutex_lock(&lock);
	need = used + strlen(name) + 2 + strlen(msg) + 2;
	if (need > cap) {
		/* doubling: a chatty debug log stays linear, not quadratic */
		size_t ncap = need > 2 * cap ? need : 2 * cap;
		char *n = realloc(captured, ncap);

		if (!n)
			abort(); /* a lost message could hide a leak */
		captured = n;
		cap = ncap;
	}
	used += (size_t)sprintf(captured + used, "%s: %s\n", name, msg);
	pthread_mutex_unlock(&lock);
}

void test_log_capture_start(enum log_level level)
{
	test_log_capture_clear();
	log_set_level(level);
	log_set_sink(capture, NULL);
}

void test_log_capture_stop(void)
{
	log_set_sink(NULL, NULL);
	log_set_level(LOG_LEVEL_INFO);
}

const char *test_log_captured(void)
{
	return captured;
}

bool test_log_has(const char *needle)
{
	return test_log_has_after("", needle);
}

bool test_log_has_after(const char *first, const char *then)
{
	const char *at;
	bool found;

	pthread_mutex_lock(&lock);
	at = captured ? strstr(captured, first) : NULL;
	found = at && strstr(at, then);
	pthread_mutex_unlock(&lock);
	return found;
}

void test_log_capture_clear(void)
{
	pthread_mutex_lock(&lock);
	free(captured);
	captured = NULL;
	used = cap = 0;
	pthread_mutex_unlock(&lock);
}
