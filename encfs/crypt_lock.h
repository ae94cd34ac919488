/* SPDX-License-Identifier: MIT */
/*
 * Private to libencfs: one libcryptsetup session at a time in the process.
 *
 * libcryptsetup's device-mapper back end (libdevmapper) keeps process-wide state — its
 * name/UUID lookup buffers, the udev cookie, the backend's use count — and is not thread-safe:
 * two filesystems' pipelines activating at once were caught by ASan in the VM test reading a
 * buffer another thread's dm task had freed. Every session that may reach device-mapper
 * (crypt_init… to crypt_free, including activation and deactivation) therefore runs under one
 * recursive lock. It costs the parallel pipelines little: the sessions are short next to the key
 * release and the blob reads, which stay parallel.
 */
#pragma once

#include <stdbool.h>

#include "cleanup.h"

struct crypt_session {
	bool held;
};

struct crypt_session crypt_session_begin(void);
void crypt_session_end(struct crypt_session *s);

/* Declare first in a scope that owns a struct crypt_device: the lock is released last, after
 * the _cleanup_ crypt_free of variables declared below it. */
#define CRYPT_SESSION_SCOPE                                                                        \
	_cleanup_(crypt_session_end)                                                               \
	        __attribute__((unused)) struct crypt_session _crypt_session_ =                     \
	                crypt_session_begin()
