/* SPDX-License-Identifier: MIT */
/*
 * Absolute deadlines for timed waits (pthread_cond_timedwait and friends take a point in time
 * on the condition's clock, not a duration).
 */
#pragma once

#include <time.h>

/* The time @ms milliseconds from now on @clock, normalised (tv_nsec below one second). */
static inline struct timespec deadline_after_ms(clockid_t clock, unsigned long ms)
{
	struct timespec t;

	clock_gettime(clock, &t);
	t.tv_sec += (time_t)(ms / 1000);
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}
