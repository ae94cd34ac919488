/* SPDX-License-Identifier: MIT */
/*
 * Capturing what the code under test logs (common/log.h), to check that a message is there or
 * that a secret is not. Each message is captured as "LEVEL: message\n" (log_level_name()).
 * The capture takes a lock, so threads of the code under test may log while a test checks.
 */
#pragma once

#include <stdbool.h>

#include "log.h"

/* Forget earlier captures, log at @level and up into the capture. */
void test_log_capture_start(enum log_level level);

/* Back to the default sink and level (info); the capture is kept. */
void test_log_capture_stop(void);

/*
 * The captured messages, one a line; NULL when nothing was logged since the start. Only while
 * nothing logs: a message logged later may free it (test_log_has() checks under the lock).
 */
const char *test_log_captured(void);

/* Whether a captured message contains @needle. */
bool test_log_has(const char *needle);

/* Whether @then is captured after (or within) the first capture of @first. */
bool test_log_has_after(const char *first, const char *then);

/* Free the capture (also done by the next start). */
void test_log_capture_clear(void);
