/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: compact JWS parsing and RS256 verification with a fixed key (jwt.h), and
 * the JWKS key lookup. The first input byte selects the target so one corpus covers both.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *fixed_key(void)
{
	static EVP_PKEY *key;

	/* One key per process: RSA keygen per input would drown the fuzzer. */
	if (!key)
		key = EVP_RSA_gen(2048);
	return key;
}

static void fuzz_token(const char *text, size_t len)
{
	struct skr_error err = {0};
	struct jwt j;
	char *token;

	if (jwt_parse(text, len, &j, &err) < 0) {
		if (!err.msg[0])
			__builtin_trap();
		return;
	}
	/* jwt_verify_rs256 takes the NUL-terminated token text. */
	token = strndup(text, len);
	if (token) {
		(void)jwt_verify_rs256(&j, token, fixed_key(), &err);
		free(token);
	}
	(void)jwt_header_string(&j, "kid");
	(void)jwt_check_time(&j, time(NULL), JWT_CLOCK_SKEW_SEC, true, &err);
	(void)jwt_check_issuer(&j, "https://shared.eus.attest.azure.net", &err);
	jwt_clear(&j);
}

static void fuzz_jwks(const char *text, size_t len)
{
	struct skr_error err = {0};
	EVP_PKEY *key = NULL;

	if (jwks_find_key(text, len, "key-1", &key, &err) == 0)
		EVP_PKEY_free(key);
	else if (!err.msg[0])
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		fuzz_jwks((const char *)data + 1, size - 1);
	else
		fuzz_token((const char *)data + 1, size - 1);
	return 0;
}
