/* SPDX-License-Identifier: MIT */
/* One libcryptsetup session at a time (crypt_lock.h explains why). */
#include "crypt_lock.h"

#include <pthread.h>

static pthread_mutex_t crypt_mutex = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

struct crypt_session crypt_session_begin(void)
{
	pthread_mutex_lock(&crypt_mutex);
	return (struct crypt_session){.held = true};
}

void crypt_session_end(struct crypt_session *s)
{
	if (!s->held)
		return;
	s->held = false;
	pthread_mutex_unlock(&crypt_mutex);
}
