/* SPDX-License-Identifier: MIT */
#include "ossl.h"

#include <openssl/err.h>

int ossl_error_set(struct skr_error *err, int code, const char *what)
{
	unsigned long e = ERR_get_error();
	char reason[256] = "no detail from OpenSSL";

	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	return skr_error_set(err, code, "%s: %s", what, reason);
}

int ossl_no_password(char *buf, int size, int rwflag, void *userdata)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)userdata;
	return -1;
}
