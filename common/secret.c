/* SPDX-License-Identifier: MIT */
#include "secret.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>

struct secret *secret_new(size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	struct secret *s;
	size_t mapped;
	void *p;

	if (page <= 0)
		page = 4096;
	if (len > SIZE_MAX - (size_t)page)
		return NULL;
	mapped = len ? (len + (size_t)page - 1) / (size_t)page * (size_t)page : (size_t)page;

	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	p = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		free(s);
		return NULL;
	}
	/* Best effort: an unprivileged process may hit RLIMIT_MEMLOCK; the secret still works. */
	s->locked = mlock(p, mapped) == 0;
	(void)madvise(p, mapped, MADV_DONTDUMP);
	(void)madvise(p, mapped, MADV_WIPEONFORK);
	s->data = p;
	s->len = len;
	s->mapped = mapped;
	return s;
}

struct secret *secret_new_copy(const void *src, size_t len)
{
	struct secret *s = secret_new(len);

	if (s && len)
		memcpy(s->data, src, len);
	return s;
}

void secret_free(struct secret *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s->data, s->mapped);
	if (s->locked)
		munlock(s->data, s->mapped);
	munmap(s->data, s->mapped);
	free(s);
}

void secure_erase(void *p, size_t len)
{
	if (p && len)
		OPENSSL_cleanse(p, len);
}

void secure_free(void *p, size_t len)
{
	secure_erase(p, len);
	free(p);
}

int secure_buf_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
	if (n >= SIZE_MAX - *len)
		return -ENOMEM;
	if (*len + n + 1 > *cap) {
		size_t new_cap = *cap ? *cap : 1024;
		char *nb;

		while (new_cap < *len + n + 1)
			new_cap = new_cap > SIZE_MAX / 2 ? *len + n + 1 : new_cap * 2;
		nb = malloc(new_cap);
		if (!nb)
			return -ENOMEM;
		if (*buf) {
			memcpy(nb, *buf, *len);
			secure_free(*buf, *cap);
		}
		*buf = nb;
		*cap = new_cap;
	}
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}
