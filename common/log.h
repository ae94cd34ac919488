/* SPDX-License-Identifier: MIT */
/*
 * One logger for every library and binary. Libraries call log_*(); the binary installs a sink
 * (human text or JSON lines, a file, a test's capture buffer). Never pass a secret to these.
 */
#pragma once

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_TRACE,
};

typedef void (*log_sink_fn)(enum log_level level, const char *msg, void *userdata);

/* Install a sink (NULL restores the default: human text on stderr). */
void log_set_sink(log_sink_fn sink, void *userdata);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* "error", "warn"/"warning", "info", "debug", "trace" (any case). Returns 0 or -EINVAL. */
int log_level_from_string(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_trace(...) log_msg(LOG_LEVEL_TRACE, __VA_ARGS__)
