/* SPDX-License-Identifier: MIT */
/*
 * Capturing what the code under test logs (common/log.h), to check that a message is there or
 * that a secret is not.
 */
#pragma once

#include "log.h"

/* Forget earlier captures, log at @level and up into the capture. */
void test_log_capture_start(enum log_level level);

/* Back to the default sink and level (info); the capture is kept. */
void test_log_capture_stop(void);

/* The captured messages, one a line; NULL when nothing was logged since the start. */
const char *test_log_captured(void);

/* Free the capture (also done by the next start). */
void test_log_capture_clear(void);
