/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: a Key Vault release answer ({"value": JWS}) as release.c parses it before
 * verifying it: the JWS, its x5c certificates and the payload's response.key.key members.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "release_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct release_answer a;
	struct skr_error err = {0};

	if (release_answer_parse((const char *)data, size, &a, &err) < 0) {
		/* Every refusal says why. */
		if (!err.msg[0])
			__builtin_trap();
		return 0;
	}
	/* What release.c relies on after a successful parse. */
	if (!a.jws || !a.x5c || sk_X509_num(a.x5c) < 1 || !a.kty || !a.key_hsm ||
	    (a.key_ops && json_object_array_length(a.key_ops) > SKR_KEY_OPS_MAX))
		__builtin_trap();
	release_answer_clear(&a);
	return 0;
}
