/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

static log_sink_fn log_sink;
static void *log_sink_userdata;
static enum log_level log_max_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {
        [LOG_LEVEL_ERROR] = "error", [LOG_LEVEL_WARN] = "warn",   [LOG_LEVEL_INFO] = "info",
        [LOG_LEVEL_DEBUG] = "debug", [LOG_LEVEL_TRACE] = "trace",
};

void log_set_sink(log_sink_fn sink, void *userdata)
{
	log_sink = sink;
	log_sink_userdata = userdata;
}

void log_set_level(enum log_level level)
{
	log_max_level = level;
}

enum log_level log_get_level(void)
{
	return log_max_level;
}

const char *log_level_name(enum log_level level)
{
	if (level > LOG_LEVEL_TRACE)
		return "unknown";
	return level_names[level];
}

int log_level_from_string(const char *s, enum log_level *out)
{
	if (!s)
		return -EINVAL;
	for (unsigned i = 0; i <= LOG_LEVEL_TRACE; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	/* The Go sidecar's logrus names. */
	if (strcasecmp(s, "warning") == 0) {
		*out = LOG_LEVEL_WARN;
		return 0;
	}
	if (strcasecmp(s, "fatal") == 0 || strcasecmp(s, "panic") == 0) {
		*out = LOG_LEVEL_ERROR;
		return 0;
	}
	return -EINVAL;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if (level > log_max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if (log_sink) {
		log_sink(level, msg, log_sink_userdata);
		return;
	}

	char stamp[32];
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %-5s %s\n", stamp, ts.tv_nsec / 1000000, log_level_name(level),
	        msg);
}
