/* SPDX-License-Identifier: MIT */
/*
 * Cleanups that must happen however a test process ends (normal exit, a failed group setup):
 * run at exit in the reverse order of registration, like atexit() itself, so a temporary
 * directory registered before the servers that write into it is removed after they are killed.
 */
#pragma once

/* Call @fn(@arg) at exit; registering the same pair again does nothing. */
void test_atexit(void (*fn)(void *arg), void *arg);
