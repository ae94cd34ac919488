/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>

#include "test_log.h"

static char *captured;

static void capture(enum log_level level, const char *msg, void *userdata)
{
	char *n = NULL;

	(void)level;
	(void)userdata;
	if (asprintf(&n, "%s%s\n", captured ? captured : "", msg) < 0)
		abort(); /* a lost message could hide a leak */
	free(captured);
	captured = n;
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

void test_log_capture_clear(void)
{
	free(captured);
	captured = NULL;
}
